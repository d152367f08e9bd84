"""Branch and bound over ReLU splits (issue 13): the `bab` backend.

Sub-problems fix some ReLUs active or inactive over the whole input box; each is bounded by the
split engine's sound float64 machinery with the fixed ReLUs clamped (`bounds.py`), and the search
(`engine.py`) splits the unstable ReLU that contributes most to the critical row's bound.
"""
