"""Close an LP leaf (no free unstable ReLU left) with a safe LP dual bound.

With every ReLU stable under the sub-problem's clamped bounds, `nnir.passes.lp._LayerLp` built
for the output layer over those bounds is the sub-problem itself (the fixed ReLUs' sign
constraints are the clamped column bounds, the ReLUs are identity or zero), so its optimum is
the row's exact maximum on the sub-problem. Only its safe dual bound (Neumaier & Shcherbina,
`safe_lower_bound`, exact rationals) is used. A row `s * (c . y - rhs)` over the output y =
W h + b reads the last hidden layer h through w = s c^T W, computed exactly and rounded to the
nearest float (the error `safe_lower_bound`'s allowance covers); its constant s (c . b - rhs)
is exact. Rows that read other nodes keep their box bound.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from nnir.passes.lp import _LayerLp, default_lp_solver


def lp_row_bounds(net, comp, zlo: dict, zhi: dict, U: np.ndarray) -> np.ndarray:
    """Sound upper bounds (R,) of the rows on one LP leaf: the safe LP bound where it applies
    and is tighter, else `U` (the box bound)."""
    out = np.array(U, dtype=np.float64)
    k = len(net.layers) - 1
    lay = net.layers[k]
    if lay.name != net.output or lay.act == "relu" or lay.kind != "dense":
        return out
    if any(len(x.srcs) > 1 for x in net.layers):  # add / concat: `_LayerLp` takes chains
        return out
    try:
        lp = _LayerLp(net, k, zlo, zhi, {}, default_lp_solver())
    except ImportError:
        return out
    if not lp.finite:
        return out
    W, b = lay.weight.exact, lay.bias.exact
    for r, (a, s) in enumerate(zip(comp.row_atom, comp.row_sign)):
        atom = comp.atoms[a]
        if any(ref.node != net.output for ref, _ in atom.terms):
            continue
        w = np.full(W.shape[1], Fraction(0), dtype=object)
        const = -atom.rhs
        for ref, c in atom.terms:
            const += c * b[ref.index]
            w = w + c * W[ref.index]
        neg = np.array([float(-int(s) * v) for v in w])  # max s w.h = -min(-s w.h)
        lower = lp.minimum(neg)
        if lower is None:
            continue
        exact_up = -lower + int(s) * const
        f = float(exact_up)
        if Fraction(f) < exact_up:
            f = float(np.nextafter(f, np.inf))
        out[r] = min(out[r], f)
    return out
