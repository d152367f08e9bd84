"""The cvc5 backend: cvc5's own SMT-LIB parser reads the emitted script; models are read exactly.

Commands are replayed through `cvc5.InputParser` (see `check.py`), except `check-sat` and
`get-value`, which are done through the API so that the answer and the values
(`Term.getRealValue`, a `Fraction`) are read without printing and re-parsing.
"""
from __future__ import annotations

from nnir.backends.smtlib.api_backend import ApiSmtBackend


class Cvc5Backend(ApiSmtBackend):
    """QF_LRA verification with cvc5 (in process). Options: relu ("ite"|"or"), hints (bool)."""

    name = "cvc5"
    description = "cvc5 SMT solver (Python API), exact QF_LRA"
    optimizes = False
    modules = ("cvc5",)
