"""Input splitting: branch and bound on the input box with sound bounds (the `split` backend).

This package imports none of its modules: the registry reads `props.supported` without loading
the backend (whose hand-over to exact solvers imports the query layer).
"""
