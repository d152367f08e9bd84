"""Input splitting: branch and bound on the input box with sound bounds (the `split` backend)."""
from nnir.backends.split.split_backend import SplitBackend

__all__ = ["SplitBackend"]
