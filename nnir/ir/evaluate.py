"""Concrete evaluation of networks and formulas, in float64 and in exact rationals.

Exact evaluation is the referee of every answer nnir reports: witnesses, counterexamples and
trained networks are replayed here before they are believed.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from nnir.ir import conv
from nnir.ir.const import to_fraction
from nnir.ir.nodes import And, Atom, BoolConst, Formula, Network, Not, Or


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
    rules = EXACT_RULES if exact else FLOAT_RULES
    for lay in net.layers:
        pre = rules[lay.kind](lay, vals)
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
        pre = BATCH_RULES[lay.kind](lay, vals)
        vals[lay.name + ".pre"] = pre
        vals[lay.name] = np.maximum(pre, 0.0) if lay.act == "relu" else pre
    return vals


# Per node kind, the pre-activation from the values `vals` of the sources. Slice, concat and add
# work along the entry axis (0 for one input, -1 for a batch in rows): exact for Fractions
# (object arrays), rounded once per term for floats.
def _dense_exact(lay, vals: dict) -> np.ndarray:
    return lay.weight.exact.dot(vals[lay.src]) + lay.bias.exact


def _dense_float(lay, vals: dict) -> np.ndarray:
    return lay.weight.f64 @ vals[lay.src] + lay.bias.f64


def _dense_batch(lay, vals: dict) -> np.ndarray:
    return vals[lay.src] @ lay.weight.f64.T + lay.bias.f64


def _slice(lay, vals: dict, axis: int = 0) -> np.ndarray:
    return np.take(vals[lay.src], range(lay.start, lay.start + lay.size), axis=axis)


def _concat(lay, vals: dict, axis: int = 0) -> np.ndarray:
    return np.concatenate([vals[s] for s in lay.srcs], axis=axis)


def _add(lay, vals: dict) -> np.ndarray:
    out = vals[lay.srcs[0]]
    for s in lay.srcs[1:]:
        out = out + vals[s]
    return np.array(out, copy=True)


def _slice_batch(lay, vals: dict) -> np.ndarray:
    return _slice(lay, vals, axis=-1)


def _concat_batch(lay, vals: dict) -> np.ndarray:
    return _concat(lay, vals, axis=-1)


def _conv_exact(lay, vals: dict) -> np.ndarray:
    return conv.apply_exact(lay, vals[lay.src], zero=Fraction(0)) + conv.bias_vector(lay, True)


def _conv_float(lay, vals: dict) -> np.ndarray:
    return conv.matrix(lay) @ vals[lay.src] + conv.bias_vector(lay)


def _conv_batch(lay, vals: dict) -> np.ndarray:
    return np.asarray((conv.matrix(lay) @ vals[lay.src].T).T) + conv.bias_vector(lay)


def _gather(lay, vals: dict, axis: int = 0) -> np.ndarray:
    return np.take(vals[lay.src], lay.index, axis=axis)


def _gather_batch(lay, vals: dict) -> np.ndarray:
    return _gather(lay, vals, axis=-1)


EXACT_RULES = {"dense": _dense_exact, "slice": _slice, "concat": _concat, "add": _add,
               "conv": _conv_exact, "gather": _gather}
FLOAT_RULES = {"dense": _dense_float, "slice": _slice, "concat": _concat, "add": _add,
               "conv": _conv_float, "gather": _gather}
BATCH_RULES = {"dense": _dense_batch, "slice": _slice_batch, "concat": _concat_batch,
               "add": _add, "conv": _conv_batch, "gather": _gather_batch}


def _as_fractions(x) -> np.ndarray:
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


