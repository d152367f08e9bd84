"""Bound queries (exact min/max of a pre-activation) on the ReLU-split engine, by bisection on
decisions.

Each decision asks the engine (`engine.Search`) whether some input of the domain has
`s * pre > t` (s = +1: maximum, -1: minimum): `BoundProblem.exceeds`, a verify problem on the
network cut at the neuron's layer with that layer made linear. A `sat` comes
with a witness the engine replayed exactly, so its exact value is attained and becomes the lower
end; an `unsat` is the engine's sound proof that `t` is an upper end. The first decision uses a
threshold below every value of the domain (the bound facts' other end), so it only runs the
engine's gradient search, which maximises `s * pre - t` and so starts the lower end near the
optimum; a `start` from the caller (e.g. HiGHS's replayed arg-optimum) is the first lower end
instead. Bisection then stops when [lo, hi] is `tol` wide (relative,
as `queries.bound.close_enough`), on the first decision the engine cannot settle, or at the
deadline.

The issue asked for best-first branch and bound on the neuron's value; decisions reuse the
verify engine unchanged (its bounds, attack and exact leaves) at the price of re-searching near
the optimum. The thresholds are biased towards the attained end: the gradient search usually
lands close to the optimum, and an unsat just above it ends the search.
"""
from __future__ import annotations

import time
from fractions import Fraction

from nnir.queries.bound import DEFAULT_TOL, SENSES, BoundAnswer, BoundProblem, Side, close_enough

# Where the next threshold sits in [lo, hi], from the attained end.
BIAS = 0.25


def bab_bound(problem: BoundProblem, decide, timeout: float | None = None,
              senses=tuple(SENSES), start: dict | None = None,
              tol: float = DEFAULT_TOL) -> BoundAnswer:
    """Per sense, [attained, proven] for max s * pre.

    Args:
        problem: the bound problem (its network holds sound bound facts).
        decide: `decide(verify_problem, timeout) -> Answer` (the engine; exact answers).
        timeout: seconds for all senses together.
        start: sense -> (value of s * pre, input) already replayed by the caller.
        tol: relative width at which the bisection stops.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    sides, stats = {}, {"decisions": 0}
    for k, sense in enumerate(senses):
        # each sense gets an equal share of the time left, so one hard side leaves the
        # other its turn
        share = None if deadline is None else \
            time.monotonic() + (deadline - time.monotonic()) / (len(senses) - k)
        sides[sense] = _bisect(problem, sense, decide, share, stats,
                               (start or {}).get(sense), tol)
    return BoundAnswer(sides, {"solver": "bab", **stats})


def _bisect(problem: BoundProblem, sense: str, decide, deadline, stats, start,
            tol: float) -> Side:
    s = SENSES[sense]

    def check(t: Fraction):
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return "timeout", None
        stats["decisions"] += 1
        ans = decide(problem.exceeds(sense, t), left)
        if ans.status == "sat":
            x = [Fraction(v) for v in ans.inputs]
            return "sat", (s * problem.value(x), x)
        return ans.status, ans.message

    hi = problem.facts_bound(sense)
    proven = "the bound passes' sound bound"
    other = problem.facts_bound("min" if sense == "max" else "max")
    if start is not None:  # not "> start" at once: sound float bounds cannot close at the
        lo, arg = start    # optimum itself, so that decision is the hardest of all
        t = lo + max(1, abs(lo)) if hi is None else lo + (hi - lo) * Fraction(BIAS)
    else:  # below every value: only the gradient search runs, and it climbs s * pre
        lo = arg = None
        t = -other - 1 if other is not None else Fraction(-10 ** 9)
    n0 = stats["decisions"]
    while True:
        st, out = check(t)
        if st == "sat":
            lo, arg = out
        elif st == "unsat" and lo is None:
            return Side("unsat", message="bab: the input domain is empty")
        elif st == "unsat":
            hi, proven = t, "an unsat of the ReLU-split engine"
        else:
            if lo is None:
                return Side(st, message=f"bab: {st} before any input was found ({out})")
            break
        if hi is not None and close_enough(lo, hi, tol):
            break
        t = lo + max(1, abs(lo)) if hi is None else lo + (hi - lo) * Fraction(BIAS)
    n = stats["decisions"] - n0
    if hi is None:
        return Side("unknown", lo, None, arg, message=f"bab: no finite upper end after {n} "
                    "decisions")
    how = (f"bisection on exact decisions to tol {tol:g}, the upper end {proven}, {n} "
           f"decision{'s' if n != 1 else ''}")
    return Side("sat", lo, hi, arg, lo == hi, how)
