"""nnir: a solver-agnostic IR and compiler for exact reasoning about ReLU neural networks.

Entry points: `load`/`parse` read `.nnir` text into a verified `Program`; `network` builds one
from numpy arrays; `program` attaches queries; `solve` answers them; `to_smtlib`/`to_milp` lower.
"""
from nnir.api import network, program, solve, to_milp, to_smtlib
from nnir.errors import BackendError, DslError, InputFileError, IrError, NnirError, UnsupportedQuery
from nnir.frontend import load, parse
from nnir.ir.printer import print_program

__version__ = "0.1.0"

__all__ = [
    "load", "parse", "network", "program", "solve", "to_smtlib", "to_milp", "print_program",
    "NnirError", "DslError", "IrError", "InputFileError", "UnsupportedQuery", "BackendError",
]
