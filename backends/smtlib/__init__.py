"""IR -> SMT-LIB text (QF_LRA), and the backends that solve it: z3, cvc5, PySMT, any binary."""
from nnir.backends.smtlib.cvc5_backend import Cvc5Backend
from nnir.backends.smtlib.external_backend import ExternalBackend
from nnir.backends.smtlib.lower import SmtScript, smt_number, to_smtlib
from nnir.backends.smtlib.pysmt_backend import PysmtBackend
from nnir.backends.smtlib.z3_backend import Z3Backend

BACKENDS = (Z3Backend, Cvc5Backend, PysmtBackend, ExternalBackend)

__all__ = ["BACKENDS", "Cvc5Backend", "ExternalBackend", "PysmtBackend", "SmtScript",
           "Z3Backend", "smt_number", "to_smtlib"]
