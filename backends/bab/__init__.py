"""Branch and bound over ReLU splits (issue 13): the `bab` backend.

Sub-problems fix some ReLUs active or inactive over the whole input box; each is bounded by
alpha/beta-CROWN (`crown.py`: slopes and split multipliers optimised in float64, the bound that
closes re-evaluated with rigorous rounding-error terms), or by the split engine's forward
intervals with the fixed ReLUs clamped (`bounds.py`), and the search (`engine.py`) splits the
unstable ReLU that contributes most to the critical row's bound.
"""
