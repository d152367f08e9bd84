"""The `bab` backend: verify queries by branch and bound over ReLU splits (see `engine.py`).

It answers `sat` only with a witness replayed in exact rational arithmetic, and `unsat` only when
every sub-problem was closed by a sound float64 bound or by an exact SMT solver, so its verdicts
are exact. Networks are made of dense, conv, gather, slice, add and concat nodes with relu or
linear activations (`split.props.supported`); a graph with add or concat nodes (residual and
sharded networks) is bounded through its exact chain form (`split.chain`): its witnesses are
still replayed on the original network, and LP leaves go to z3 on the original graph.

On a small input (at most `registry.AUTO_SPLIT_MAX_INPUTS` coordinates, as ACAS Xu's 5) it
splits the input box instead (the `split` engine, option `input_split`): there ReLU splitting
alone timed out on 7 of 8 ACAS Xu instances at 30 s that input splitting proves in about a
second, so one backend serves ACAS Xu and MNIST.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from nnir.backends import registry
from nnir.backends.bab.bound import bab_bound
from nnir.backends.bab.engine import Options, Search
from nnir.backends.base import Answer, Backend
from nnir.backends.split.split_backend import SplitBackend, run_search
from nnir.options import opt, parse


@dataclass
class BabOptions(Options):
    """The engine's search settings (`engine.Options`), and the solver of LP leaves."""

    exact_backend: str | None = opt(None, "solver of LP sub-problems (default z3, else cvc5)")
    tol: float = opt(1e-6, "bound: the bisection's relative tolerance")
    input_split: bool | None = opt(None, "split the input box instead of ReLUs (None: when the "
                                   "input has at most 8 coordinates)")


def parse_options(options) -> Options:
    """The engine's `Options` from the backend's (a `BabOptions` or a dict of its keys)."""
    if isinstance(options, dict):
        options = parse(BabOptions, options)
    return Options(**{f.name: getattr(options, f.name) for f in fields(Options)})


class BabBackend(Backend):
    """Branch and bound over ReLU splits; exact answers (bounds sound in float64, witnesses
    replayed exactly, LP leaves decided by z3/cvc5). Options: see `engine.Options`, and
    `exact_backend`."""

    name = "bab"
    description = ("ReLU splitting: branch and bound over ReLU phases with sound back-"
                   "substitution bounds, exact solver for LP leaves")
    kinds = frozenset({"verify", "bound"})
    logics = frozenset({"QF_LRA"})
    exact = True
    modules = ("numpy",)
    Options = BabOptions

    def solve_verify(self, problem, timeout: float | None = None) -> Answer:
        n = problem.net.input.size
        small = n <= registry.AUTO_SPLIT_MAX_INPUTS
        if self.opts.input_split or (self.opts.input_split is None and small):
            ans = SplitBackend(exact_backend=self.opts.exact_backend).solve_verify(problem,
                                                                                 timeout)
            ans.message = f"bab (input splitting, {n} inputs): {ans.message}"
            return ans
        return run_search(self.name, Search, problem, parse_options(self.opts),
                          self.opts.exact_backend, timeout)

    def solve_bound(self, problem, timeout: float | None = None, senses=("max", "min"),
                    start: dict | None = None):
        """[attained, proven] min/max of a pre-activation by bisection on the engine's exact
        decisions (`bound.py`); `start` maps a sense to a replayed (value of s * pre, input)."""
        return bab_bound(problem, self.solve_verify, timeout, senses, start, self.opts.tol)
