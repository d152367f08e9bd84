"""nnir: a solver-agnostic IR and compiler for exact reasoning about ReLU neural networks.

The public API is what this package exports (`__all__`):

* read and build: `load`/`parse` read `.nnir` text into a verified `Program`; `network` builds a
  `Network` from numpy arrays; `program` attaches queries; `read_onnx`, `read_nnet`,
  `read_vnnlib` read other tools' files (`write_onnx`, `write_vnnlib` write them);
* answer: `solve` answers one query (a `Result`); `solve_problems` answers a property given as
  several `VerifyProblem` regions (the VNN-COMP convention);
* lower and print: `to_smtlib` (SMT-LIB text), `to_milp` (a `MilpModel`), `print_program`;
  `embed` puts a network into your own HiGHS, z3 or PySMT model (or plain MILP data) and
  returns an `Embedding` with the variables of every neuron;
* the IR types (`Program`, `Network`, `Input`, `Dense`, `Slice`, `Concat`, `Add`, `Const`,
  `Ref`, `Atom`, `And`, `Or`, `Not`, `BoolConst`), the query classes (`Verify`, `Train`,
  `Bound`, `Stable`, `Compress`, `Equiv`), a backend's raw `Answer`, and the errors (all
  `NnirError`).

Anything else is internal and may change.
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
from nnir.backends.base import Answer  # noqa: E402
from nnir.backends.milp.model import MilpModel  # noqa: E402
from nnir.embedding import Embedding, embed  # noqa: E402
from nnir.errors import (  # noqa: E402
    BackendError,
    DslError,
    InputFileError,
    IrError,
    NnirError,
    Span,
    UnsupportedQuery,
    UsageError,
)
from nnir.formats import (  # noqa: E402
    read_nnet,
    read_onnx,
    read_vnnlib,
    write_onnx,
    write_vnnlib,
)
from nnir.formats.vnncomp import solve_problems  # noqa: E402
from nnir.frontend import load, parse  # noqa: E402
from nnir.ir.const import Const  # noqa: E402
from nnir.ir.nodes import (  # noqa: E402
    Add,
    And,
    Atom,
    BoolConst,
    Bound,
    Compress,
    Concat,
    Dense,
    Equiv,
    Input,
    Network,
    Not,
    Or,
    Program,
    Ref,
    Slice,
    Stable,
    Train,
    Verify,
)
from nnir.ir.printer import print_program  # noqa: E402
from nnir.queries.problem import VerifyProblem  # noqa: E402
from nnir.queries.result import Result  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    # reading, building, answering, lowering
    "load",
    "parse",
    "network",
    "program",
    "solve",
    "solve_problems",
    "to_smtlib",
    "to_milp",
    "embed",
    "print_program",
    "read_onnx",
    "write_onnx",
    "read_nnet",
    "read_vnnlib",
    "write_vnnlib",
    # IR types
    "Program",
    "Network",
    "Input",
    "Dense",
    "Slice",
    "Concat",
    "Add",
    "Const",
    "Ref",
    "Atom",
    "And",
    "Or",
    "Not",
    "BoolConst",
    # queries
    "Verify",
    "Train",
    "Bound",
    "Stable",
    "Compress",
    "Equiv",
    # problems, answers, results, models
    "VerifyProblem",
    "Answer",
    "Result",
    "MilpModel",
    "Embedding",
    # errors
    "NnirError",
    "DslError",
    "IrError",
    "InputFileError",
    "UnsupportedQuery",
    "BackendError",
    "UsageError",
    "Span",
]
