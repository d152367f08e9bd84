"""Hand a sub-box the bounds cannot close to the existing exact route.

The sub-problem is the original one with the input box narrowed to the sub-box (intersected with
the original exact box) and its bound facts tightened by the split engine's per-box bounds and
the default passes (all sound on the sub-box). It is decided by an exact SMT backend (cvc5, else
z3) when it has at most `registry.AUTO_SMT_MAX_UNSTABLE` unstable ReLUs (beyond that, SMT case
splitting is hopeless and cvc5 was seen to overrun its time limit); with more than
`HIGHS_FIRST_ABOVE`, HiGHS goes first, but only for its witness: a HiGHS `unsat` rests on float
tolerances, so it never closes a box by itself. Every witness is replayed exactly against the
*original* problem.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from nnir.backends import registry
from nnir.backends.base import Answer
from nnir.backends.smtlib.check import killable
from nnir.errors import NnirError
from nnir.ir.const import Const
from nnir.passes.interval import merge
from nnir.passes.manager import default_pipeline
from nnir.queries.problem import VerifyProblem
from nnir.queries.replay import replay_verify
from nnir.queries.run import count_unstable

# Above this many unstable ReLUs on the sub-box HiGHS looks for a witness before the SMT solver.
HIGHS_FIRST_ABOVE = 8


@dataclass
class Decision:
    status: str  # sat (replayed witness), unsat (exact), or undecided
    inputs: list | None = None
    how: str = ""


def sub_problem(problem: VerifyProblem, lo: np.ndarray, hi: np.ndarray, zlo: dict, zhi: dict):
    """The problem on the float box [lo, hi] (None when it misses the original box)."""
    net = problem.net
    new_lo = [max(Fraction(float(a)), e) for a, e in zip(lo, net.input.lo.exact)]
    new_hi = [min(Fraction(float(b)), e) for b, e in zip(hi, net.input.hi.exact)]
    if any(a > b for a, b in zip(new_lo, new_hi)):
        return None
    inp = replace(net.input, lo=Const.exact_of(new_lo), hi=Const.exact_of(new_hi))
    sub = merge(replace(net, input=inp), "split", zlo, zhi)  # intersects with the root facts
    sub = default_pipeline().run(sub)
    return VerifyProblem(sub, problem.where, problem.prop, problem.name)


def _exact_solve(name: str, sub: VerifyProblem, timeout):
    return registry.get_backend(name).solve_verify(sub, timeout=timeout)


def decide(problem: VerifyProblem, sub: VerifyProblem, deadline: float | None,
           budget: float | None, exact_name: str | None) -> Decision:
    """Decide `sub` exactly within `budget` seconds (and the overall `deadline`)."""
    def left():
        t = [v for v in (budget and start + budget, deadline) if v]
        return None if not t else max(0.01, min(t) - time.monotonic())

    start = time.monotonic()
    unstable = count_unstable(sub.net)
    try:
        if unstable > HIGHS_FIRST_ABOVE and registry.backend_class("highs").available():
            ans = registry.get_backend("highs").solve_verify(sub, timeout=left())
            if ans.status == "sat":
                rep = replay_verify(problem, ans.inputs, clip=True)
                if rep.exact:
                    return Decision("sat", rep.inputs, "HiGHS on a sub-box, replayed exactly")
        if exact_name is None:
            return Decision("undecided", how="no exact backend installed")
        if unstable > registry.AUTO_SMT_MAX_UNSTABLE:
            return Decision("undecided", how=f"{unstable} unstable ReLUs: too many for SMT")
        t = left()
        # in a killable child: z3 and cvc5 do not keep their limits in every phase (a 30 s
        # split ran 64-190 s once it handed boxes over)
        ans = killable(_exact_solve, exact_name, sub, t, timeout=t,
                       stopped=lambda how: Answer("timeout", message=f"{exact_name} {how}"))
    except NnirError as exc:
        return Decision("undecided", how=f"{exact_name}: {exc}")
    if ans.status == "sat":
        rep = replay_verify(problem, ans.inputs, clip=False)
        if rep.exact:
            return Decision("sat", rep.inputs, f"{exact_name} on a sub-box, replayed exactly")
        return Decision("undecided", how=f"{exact_name}'s witness failed replay: {rep.reason}")
    if ans.status == "unsat":
        return Decision("unsat", how=exact_name)
    return Decision("undecided", how=f"{exact_name}: {ans.status}")
