"""MILP backend: IR -> solver-neutral MILP model (big-M ReLUs), HiGHS solver, .mps/.lp writer."""
from nnir.backends.milp.lower import to_milp
from nnir.backends.milp.model import MilpModel, Row, Var
from nnir.backends.milp.writer import write_model

__all__ = ["MilpModel", "Row", "Var", "to_milp", "write_model"]
