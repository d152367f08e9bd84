"""Concrete evaluation of networks and formulas, in float64 and in exact rationals.

Exact evaluation is the referee of every answer nnir reports: witnesses, counterexamples and
trained networks are replayed here before they are believed.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from nnir.ir.nodes import Add, And, Atom, BoolConst, Concat, Dense, Formula, Network, Not, Or, Slice


def _relu_exact(v: np.ndarray) -> np.ndarray:
    out = np.empty(len(v), dtype=object)
    out[:] = [x if x > 0 else Fraction(0) for x in v]
    return out


def evaluate(net: Network, x, exact: bool = False) -> dict[str, np.ndarray]:
    """Run `net` on one input; return every node's post-activation vector by name.

    Args:
        net: a network without unknown weights.
        x: the input vector (length `net.input.size`).
        exact: if True compute in `Fraction`s (inputs converted exactly), else in float64.
    Returns:
        dict from node name (input and every layer) to its value vector; with `exact` the layer
        pre-activations are also given under the key `"<layer>.pre"`.
    """
    if net.has_unknowns:
        raise ValueError(f"network '{net.name}' has unknown weights; train it first")
    if exact:
        vals = {net.input.name: _as_fractions(x)}
    else:
        vals = {net.input.name: np.asarray(x, dtype=np.float64)}
    for lay in net.layers:
        if not isinstance(lay, Dense):
            pre = _graph_pre(lay, vals, axis=0)
        elif exact:
            pre = lay.weight.exact.dot(vals[lay.src]) + lay.bias.exact
        else:
            pre = lay.weight.f64 @ vals[lay.src] + lay.bias.f64
        vals[lay.name + ".pre"] = pre
        if lay.act != "relu":
            vals[lay.name] = pre
        else:
            vals[lay.name] = _relu_exact(pre) if exact else np.maximum(pre, 0.0)
    return vals


def evaluate_batch(net: Network, X: np.ndarray) -> dict[str, np.ndarray]:
    """Float64 evaluation of many inputs at once (rows of X); same keys as `evaluate`."""
    vals = {net.input.name: np.asarray(X, dtype=np.float64)}
    for lay in net.layers:
        if isinstance(lay, Dense):
            pre = vals[lay.src] @ lay.weight.f64.T + lay.bias.f64
        else:
            pre = _graph_pre(lay, vals, axis=-1)
        vals[lay.name + ".pre"] = pre
        vals[lay.name] = np.maximum(pre, 0.0) if lay.act == "relu" else pre
    return vals


def _graph_pre(lay, vals: dict, axis: int) -> np.ndarray:
    """The (pre-activation) value of a slice, concat or add node along the entry axis: exact
    for Fractions (object arrays), rounded once per term for floats."""
    if isinstance(lay, Slice):
        return np.take(vals[lay.src], range(lay.start, lay.start + lay.size), axis=axis)
    if isinstance(lay, Concat):
        return np.concatenate([vals[s] for s in lay.srcs], axis=axis)
    if isinstance(lay, Add):
        out = vals[lay.srcs[0]]
        for s in lay.srcs[1:]:
            out = out + vals[s]
        return np.array(out, copy=True)
    raise TypeError(f"not a network node: {type(lay).__name__}")


def _as_fractions(x) -> np.ndarray:
    from nnir.ir.const import to_fraction

    out = np.empty(len(x), dtype=object)
    out[:] = [to_fraction(v) for v in x]
    return out


def atom_value(atom: Atom, vals: dict[str, np.ndarray]):
    """The left-hand side of `atom` minus its right-hand side, exact when `vals` hold Fractions."""
    terms = [(c, vals[ref.node][ref.index]) for ref, c in atom.terms]
    if any(isinstance(v, Fraction) for _, v in terms):
        return sum((c * v for c, v in terms), Fraction(0)) - atom.rhs
    return float(sum(float(c) * float(v) for c, v in terms)) - float(atom.rhs)


def holds(f: Formula, vals: dict[str, np.ndarray], tol: float = 0.0) -> bool:
    """Truth of formula `f` at the values `vals`; `tol` loosens float comparisons only."""
    if isinstance(f, BoolConst):
        return f.value
    if isinstance(f, And):
        return all(holds(a, vals, tol) for a in f.args)
    if isinstance(f, Or):
        return any(holds(a, vals, tol) for a in f.args)
    if isinstance(f, Not):
        return not holds(f.arg, vals, -tol)
    d = atom_value(f, vals)
    t = 0 if isinstance(d, Fraction) else tol
    return {"<=": d <= t, "<": d < t, "==": abs(d) <= abs(t), ">=": d >= -t, ">": d > -t}[f.rel]


def atom_slack(f: Formula, vals: dict[str, np.ndarray]) -> float:
    """How far `f` is from flipping at `vals` (min over atoms of |lhs - rhs|), for reports."""
    if isinstance(f, Atom):
        return abs(float(atom_value(f, vals)))
    if isinstance(f, (And, Or)):
        return min((atom_slack(a, vals) for a in f.args), default=float("inf"))
    if isinstance(f, Not):
        return atom_slack(f.arg, vals)
    return float("inf")


