"""Formula helpers: and/or of a list, negation normal form and the references a formula reads."""
from __future__ import annotations

from dataclasses import replace

from nnir.ir.nodes import And, Atom, BoolConst, Formula, Not, Or, Ref

_FLIP = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}


def junction(conj: bool, args) -> Formula:
    """`And(args)` (conj) or `Or(args)`, without the wrapper for one argument; an empty
    conjunction is true, an empty disjunction false."""
    args = tuple(args)
    if not args:
        return BoolConst(conj)
    return args[0] if len(args) == 1 else (And if conj else Or)(args)


def nnf(f: Formula, negate: bool = False) -> Formula:
    """Push negations into atoms, leaving no `Not` (`not a == b` becomes `a < b or a > b`)."""
    if isinstance(f, BoolConst):
        return BoolConst(f.value != negate, f.span)
    if isinstance(f, Not):
        return nnf(f.arg, not negate)
    if isinstance(f, (And, Or)):
        args = tuple(nnf(a, negate) for a in f.args)
        flip = isinstance(f, And) == negate  # De Morgan: and<->or under negation
        return Or(args, f.span) if flip else And(args, f.span)
    if not negate:
        return f
    if f.rel == "==":
        return Or((replace(f, rel="<"), replace(f, rel=">")), f.span)
    return replace(f, rel=_FLIP[f.rel])


def atoms(f: Formula) -> list[Atom]:
    """Every atom of `f`, in order."""
    if isinstance(f, Atom):
        return [f]
    if isinstance(f, Not):
        return atoms(f.arg)
    if isinstance(f, (And, Or)):
        return [a for g in f.args for a in atoms(g)]
    return []


def refs(f: Formula) -> list[Ref]:
    return [r for a in atoms(f) for r in a.refs()]
