"""The z3 backend: solves the emitted SMT-LIB text with z3's Python API, reading models exactly.

The script is parsed by z3 itself (`Solver.from_string`, see `check.py`), so what is solved is
exactly the text `nnirc emit` would write; `check-sat`/`get-value` in it are done through the API.
"""
from __future__ import annotations

from nnir.backends.smtlib.api_backend import ApiSmtBackend


class Z3Backend(ApiSmtBackend):
    """QF_LRA verification with z3 (in process). Options: relu ("ite"|"or"), hints (bool)."""

    name = "z3"
    description = "z3 SMT solver (Python API), exact QF_LRA"
    optimizes = True
    modules = ("z3",)
