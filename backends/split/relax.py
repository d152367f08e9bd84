"""A quick exact check of the formula with the network cut out: contradictions split cannot see.

Every value the formula names (an input, a neuron, an output) becomes a free real variable,
bounded by the box (inputs, exactly) or by the sound bound facts of the passes (neurons: the
facts' float bounds, taken at their exact values, after the ReLU where the node has one). The
formula `And(input constraints, where, prop)` over these variables is a relaxation of the query:
every input that meets the query gives values that meet it. So when z3 finds it unsat, the query
is unsat, exactly (QF_LRA over the rationals), whatever the network.

Why: input splitting closes a box only when one atom is certainly false on it. Atoms that
contradict each other but are each satisfiable on every box (`where s >= 0.3, s <= 0.29999` over
a thin slab, `y[0] >= y[1] + 1e-6 and y[1] >= y[0]`) keep boxes open along a surface, so the
search splits until its time runs out, where z3 answers in a second.
"""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from nnir.ir.nodes import And, Atom, BoolConst, Formula, Or
from nnir.queries.problem import VerifyProblem

TIMEOUT = 1.0  # seconds for the check (it is tiny: one variable per named value)


def contradictory(problem: VerifyProblem, deadline: float | None = None) -> bool:
    """True when the relaxed formula is unsat (proof that `problem` is unsat); False when it
    is sat, undecided in `TIMEOUT` s (or before `deadline`), or z3 is missing."""
    try:
        import z3
    except ImportError:
        return False
    left = TIMEOUT if deadline is None else min(TIMEOUT, deadline - time.monotonic())
    if left <= 0.01:
        return False
    ctx = z3.Context()
    solver = z3.Solver(ctx=ctx)
    solver.set("timeout", max(1, int(left * 1000)))
    net = problem.net
    made: dict[tuple[str, int], object] = {}

    def var(node: str, i: int):
        key = (node, i)
        if key not in made:
            v = made[key] = z3.Real(f"{node}__{i}", ctx)
            lo, hi = _bounds(net, node, i)
            if lo is not None:
                solver.add(v >= _num(z3, lo, ctx))
            if hi is not None:
                solver.add(v <= _num(z3, hi, ctx))
        return made[key]

    def atom(a: Atom):
        lhs = z3.Sum([_num(z3, c, ctx) * var(r.node, r.index) for r, c in a.terms]) \
            if a.terms else z3.RealVal(0, ctx)
        rhs = _num(z3, a.rhs, ctx)
        return {"<=": lhs <= rhs, "<": lhs < rhs, ">=": lhs >= rhs, ">": lhs > rhs,
                "==": lhs == rhs}[a.rel]

    def walk(f: Formula):
        if isinstance(f, BoolConst):
            return z3.BoolVal(f.value, ctx)
        if isinstance(f, Atom):
            return atom(f)
        if isinstance(f, (And, Or)):
            args = [walk(a) for a in f.args]
            return (z3.And if isinstance(f, And) else z3.Or)(*args) if args else \
                z3.BoolVal(isinstance(f, And), ctx)
        raise TypeError(f"formula node {type(f).__name__} is not in negation normal form")

    try:
        solver.add(walk(And(tuple(problem.input_constraints) + (problem.prop,))))
        return solver.check() == z3.unsat
    except (z3.Z3Exception, TypeError, KeyError):
        return False


def _bounds(net, node: str, i: int) -> tuple[Fraction | None, Fraction | None]:
    """Sound bounds of the value `node[i]` (None: unbounded on that side)."""
    if node == net.input.name:
        return net.input.lo.exact[i], net.input.hi.exact[i]
    facts = net.facts
    if facts is None or node not in facts.lo:
        return None, None
    lo, hi = float(facts.lo[node][i]), float(facts.hi[node][i])
    act = next((getattr(lay, "act", "linear") for lay in net.layers if lay.name == node),
               "linear")
    if act == "relu":  # the node's value is after its ReLU
        lo, hi = max(lo, 0.0), max(hi, 0.0)
    return (Fraction(lo) if np.isfinite(lo) else None), (Fraction(hi) if np.isfinite(hi) else None)


def _num(z3, q, ctx):
    q = Fraction(q)
    return z3.RealVal(f"{q.numerator}/{q.denominator}", ctx)
