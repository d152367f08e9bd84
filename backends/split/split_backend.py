"""The `split` backend: verify queries on a box by input splitting (see `engine.py`).

It answers `sat` only with a witness replayed in exact rational arithmetic, and `unsat` only when
every sub-box was closed by a sound float64 bound or by an exact SMT solver, so its verdicts are
exact. Networks are made of dense, conv, gather, slice, add and concat nodes with relu or
linear activations (`split.props.supported`); a graph with add or concat nodes (residual and
sharded networks) is bounded through its exact chain form (`split.chain`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields

from nnir.backends import registry
from nnir.backends.base import Answer, Backend
from nnir.backends.split.engine import Options, Search
from nnir.backends.split.props import supported
from nnir.deadline import Deadline
from nnir.options import opt, parse


@dataclass
class SplitOptions(Options):
    """The engine's search settings (`engine.Options`), and the hand-over solver."""

    exact_backend: str | None = opt(None, "solver of handed-over sub-boxes (default z3, else "
                                    "cvc5)")


def parse_options(options) -> Options:
    """The engine's `Options` from the backend's (a `SplitOptions` or a dict of its keys)."""
    if isinstance(options, dict):
        options = parse(SplitOptions, options)
    return Options(**{f.name: getattr(options, f.name) for f in fields(Options)})


class SplitBackend(Backend):
    """Branch and bound on the input box; exact answers (bounds sound in float64, witnesses
    replayed exactly, hard sub-boxes decided by cvc5/z3). Options: see `engine.Options`, and
    `exact_backend` (for handed-over sub-boxes; default z3, else cvc5)."""

    name = "split"
    description = ("input splitting: branch and bound on the input box with sound symbolic "
                   "bounds, exact solver for hard sub-boxes")
    kinds = frozenset({"verify"})
    logics = frozenset({"QF_LRA"})
    exact = True
    modules = ("numpy",)
    Options = SplitOptions

    def solve_verify(self, problem, timeout: float | None = None) -> Answer:
        return run_search(self.name, Search, problem, parse_options(self.opts),
                          self.opts.exact_backend, timeout)


def run_search(name: str, search, problem, opts, exact_backend: str | None,
               timeout: float | None) -> Answer:
    """Run a branch-and-bound engine's `search(problem, opts, deadline, exact).run()` (split's,
    or bab's over ReLU splits): decline a network it cannot read, pick the exact solver of its
    hand-offs, keep BLAS to one thread."""
    why = supported(problem.net)
    if why is not None:
        return Answer("unknown", None, f"{name}: unsupported network ({why}); use another "
                      "backend", {"unsupported": 1})
    # z3 first for hand-overs: it keeps its time limit, where cvc5 overran a 2 s limit by
    # 8 s on an ACAS Xu sub-box (exact arithmetic on float weights is slow for both).
    have = registry.exact_backends()
    exact = exact_backend or ("z3" if "z3" in have else next(iter(have), None))
    with one_blas_thread():
        return search(problem, opts, Deadline.after(timeout).at, exact).run()


def one_blas_thread():
    """Limit BLAS to one thread while searching: the engine's matrix products are small, and
    OpenBLAS's threads made them 4-50x slower on a loaded 2-core machine (prepare + bound + 2
    gradient steps for 512 ACAS Xu boxes: 0.95 s with 2 threads, 0.10 s with one)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a missing optional speed-up must not stop verification
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")
