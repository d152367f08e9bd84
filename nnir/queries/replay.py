"""Replay: check a solver's witness on the network in exact rationals and in float64.

Nothing is reported `sat` unless its witness satisfies the domain, the input constraints and the
property in exact arithmetic. Float witnesses (from MILP) are first taken at their exact binary
values and clipped into the box (any point of the box is a legal input, so clipping is sound).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from nnir.ir.const import to_fraction
from nnir.ir.evaluate import atom_slack, evaluate, holds
from nnir.ir.intexact import IntegerReplay
from nnir.ir.nodes import And
from nnir.queries.problem import VerifyProblem


@dataclass
class Replay:
    inputs: list[Fraction]
    exact: bool
    float64: bool
    reason: str
    vals_exact: dict
    slack: float

    def to_dict(self) -> dict:
        return {"exact": self.exact, "float64": self.float64, "reason": self.reason,
                "slack": self.slack}


def exact_values(net, x) -> dict:
    """`evaluate(net, x, exact=True)`, in integer arithmetic where it applies (the same exact
    values; on a 784-256-256 network 0.05 s instead of 3.8 s in Fractions)."""
    if not IntegerReplay.applies(net):
        return evaluate(net, x, exact=True)
    vals = IntegerReplay(net).values(x)
    vals[net.input.name] = np.array(x, dtype=object)
    return vals


def replay_verify(problem: VerifyProblem, inputs, clip: bool = False) -> Replay:
    """Check `inputs` against `problem` exactly and in float64."""
    net = problem.net
    x = [to_fraction(v) for v in inputs]
    if len(x) != net.input.size:
        return Replay(x, False, False, f"witness has {len(x)} inputs, expected "
                      f"{net.input.size}", {}, 0.0)
    lo, hi = net.input.lo.exact, net.input.hi.exact
    if clip:
        x = [min(max(v, a), b) for v, a, b in zip(x, lo, hi)]
    outside = [i for i, (v, a, b) in enumerate(zip(x, lo, hi)) if not a <= v <= b]
    vals = exact_values(net, x)
    fvals = evaluate(net, [float(v) for v in x], exact=False)
    if outside:
        return Replay(x, False, False, f"input {outside[0]} is outside the domain", vals, 0.0)
    pre = And(problem.input_constraints) if problem.input_constraints else None
    if pre is not None and not holds(pre, vals):
        return Replay(x, False, False, "witness violates the input constraints", vals,
                      atom_slack(pre, vals))
    ok = holds(problem.prop, vals)
    ok_f = holds(problem.prop, fvals) and (pre is None or holds(pre, fvals))
    reason = "" if ok else "the property does not hold at the witness in exact arithmetic"
    if ok and not ok_f:
        reason = "holds exactly but not in float64 evaluation (a boundary case)"
    return Replay(x, ok, ok_f, reason, vals, atom_slack(problem.prop, vals))
