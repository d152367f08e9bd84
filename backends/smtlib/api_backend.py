"""The in-process SMT backend class z3 and cvc5 share (`z3_backend`, `cvc5_backend`): verify
through `check.py`, exact bounds through `bound.py`, exact training through `train_exact/`.

It sits above those modules (they use `check.py`'s helpers), so none of them imports it back.
"""
from __future__ import annotations

from nnir.backends.base import Answer, Backend
from nnir.backends.options import SmtOptions
from nnir.backends.smtlib.bound import cvc5_bound, z3_bound
from nnir.backends.smtlib.check import verify_with
from nnir.backends.smtlib.lower import check_options
from nnir.backends.train_exact import solve_train_exact


class ApiSmtBackend(Backend):
    """z3 or cvc5 in process (`name`): verify through `check_script`, train exactly.

    Options: relu ("ite"|"or"), hints (bool); for training see `backends/train_exact/`.
    """

    kinds = frozenset({"verify", "train", "bound", "stable", "equiv"})
    logics = frozenset({"QF_LRA", "QF_NRA"})
    exact = True
    Options = SmtOptions

    def __init__(self, **options):
        check_options(self.name, options)
        super().__init__(**options)

    def solve_verify(self, problem, timeout: float | None = None) -> Answer:
        return verify_with(self.name, problem, self.options, timeout)

    def solve_bound(self, problem, timeout: float | None = None, senses=("max", "min"),
                    start: dict | None = None):
        """Exact min/max of a pre-activation (`BoundProblem`): z3 `Optimize`, cvc5 bisection to
        option `tol`; `start` maps a sense to a replayed (value of s * pre, input) to confirm.
        See `backends/smtlib/bound.py`."""
        fn = z3_bound if self.name == "z3" else cvc5_bound
        return fn(problem, self.options, timeout, senses, start)

    def solve_train(self, problem, timeout: float | None = None) -> Answer:
        """Find weights fitting every point of `problem` (option `encoding`: auto, signed
        QF_LRA, naive QF_NRA, or layerwise for deeper nets; see `backends/train_exact/`).

        The weights returned are replayed exactly on every point.
        """
        return solve_train_exact(problem, self.name, timeout, self.options)
