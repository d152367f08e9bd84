"""nnir: a solver-agnostic IR and compiler for exact reasoning about ReLU neural networks.

Entry points: `load`/`parse` read `.nnir` text into a verified `Program`; `network` builds one
from numpy arrays; `program` attaches queries; `solve` answers them; `to_smtlib`/`to_milp` lower.
"""
import os as _os

# Installed, `backends/` and `grammar/` live inside this package (see pyproject.toml). Run from a
# source checkout without installing (`python -m nnir` in the repository root), they sit beside
# it: let the package search there too. The grammar file marks a genuine checkout.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(__path__[0], "backends")) and _os.path.isfile(
        _os.path.join(_root, "grammar", "nnir.lark")):
    __path__.append(_root)

from nnir.api import network, program, solve, to_milp, to_smtlib  # noqa: E402
from nnir.errors import (  # noqa: E402
    BackendError,
    DslError,
    InputFileError,
    IrError,
    NnirError,
    UnsupportedQuery,
)
from nnir.formats import (  # noqa: E402
    read_nnet,
    read_onnx,
    read_vnnlib,
    write_onnx,
    write_vnnlib,
)
from nnir.frontend import load, parse  # noqa: E402
from nnir.ir.printer import print_program  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "DslError",
    "InputFileError",
    "IrError",
    "NnirError",
    "UnsupportedQuery",
    "load",
    "network",
    "parse",
    "print_program",
    "program",
    "read_nnet",
    "read_onnx",
    "read_vnnlib",
    "solve",
    "to_milp",
    "to_smtlib",
    "write_onnx",
    "write_vnnlib",
]
