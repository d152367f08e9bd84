"""Sound bounds on ReLU-split sub-problems, batched, from the split engine's float64 machinery.

A sub-problem is the input box restricted to the inputs where each *fixed* ReLU has the sign it
was fixed to: `+1` active (pre-activation z >= 0), `-1` inactive (z <= 0), `0` free. On that
region the forward symbolic intervals of `split.forward.forward_bounds`, computed over the whole
box, still hold (the region is a subset), and so does the clamp z >= 0 (active) or z <= 0
(inactive): both are exact facts of the region, and intersecting a sound bound with them needs
no rounding. The clamped bounds make a fixed ReLU stable, so `relu_relaxation` gives it its
exact linear form (identity or zero) and every later layer's bounds are recomputed under the
splits. A sub-problem whose clamped bounds cross (lo > hi somewhere) is empty.

The clamps enter through `Prepared.root_lo` / `root_hi`, which `forward_bounds` intersects with
every layer's bounds: given (B, m) arrays instead of (m,) ones they apply per sub-problem. All
rounding allowances are `forward_bounds`' and `backsub.upper_bounds`' own (see their modules),
so a sub-problem closed here is closed by a sound bound, never by a tolerance.

No alpha/beta optimisation yet: the lower slopes are CROWN's 0/1 choice and the split
constraints act only through the clamps (beta-CROWN would also carry them into the
back-substitution with Lagrange multipliers).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from nnir.backends.split.backsub import upper_bounds
from nnir.backends.split.forward import BoxBounds, Prepared, forward_bounds


@dataclass
class ReluIndex:
    """Where each ReLU layer's neurons sit in a sub-problem's flat split vector."""

    names: list  # relu layer names in order
    offset: dict  # name -> first column
    size: int  # total ReLU neurons

    @classmethod
    def of(cls, prep: Prepared) -> ReluIndex:
        names, offset, n = [], {}, 0
        for lay in prep.layers:
            if lay.act == "relu":
                names.append(lay.name)
                offset[lay.name] = n
                n += len(lay.b)
        return cls(names, offset, n)

    def part(self, fixed: np.ndarray, name: str, m: int) -> np.ndarray:
        o = self.offset[name]
        return fixed[:, o:o + m]


def split_prep(prep: Prepared, idx: ReluIndex, fixed: np.ndarray) -> Prepared:
    """`prep` with each sub-problem's clamps as its per-row root facts."""
    B = len(fixed)
    lo, hi = {}, {}
    for lay in prep.layers:
        m = len(lay.b)
        L = np.broadcast_to(prep.root_lo.get(lay.name, np.full(m, -np.inf)), (B, m))
        H = np.broadcast_to(prep.root_hi.get(lay.name, np.full(m, np.inf)), (B, m))
        if lay.act == "relu":
            f = idx.part(fixed, lay.name, m)
            L = np.where(f > 0, np.maximum(L, 0.0), L)
            H = np.where(f < 0, np.minimum(H, 0.0), H)
        lo[lay.name], hi[lay.name] = L, H
    return replace(prep, root_lo=lo, root_hi=hi)


def bound_subproblems(prep: Prepared, idx: ReluIndex, rows, lo, hi, fixed):
    """Sound upper bounds (B, R) of the rows on each sub-problem, which sub-problems are empty,
    and their box bounds (for branching and hand-over)."""
    sp = split_prep(prep, idx, fixed)
    fb = forward_bounds(sp, lo, hi)
    empty = np.zeros(len(fixed), dtype=bool)
    for name in fb.zlo:
        empty |= (fb.zlo[name] > fb.zhi[name]).any(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        U, _ = upper_bounds(sp, fb, rows)
    return U, empty, fb


def branch_scores(prep: Prepared, idx: ReluIndex, rows, fb: BoxBounds, crit: np.ndarray,
                  fixed: np.ndarray):
    """A BaBSR-like score per free unstable ReLU (B, N; -inf for the others), and the input
    coefficients (B, d) of the critical row's relaxed linear bound (for the attack's start).

    Float heuristics only (never used to close anything): back-substitute the critical row with
    the relaxations; an unstable neuron scores |coefficient| * (-l u / (u - l)), the height of
    its relaxation triangle weighted by how much the row reads it.
    """
    B = len(crit)
    r = np.maximum(crit, 0)
    lam = {node: np.asarray(c)[r] for node, c in rows.coef.items()}
    score = np.full((B, idx.size), -np.inf)  # fixed and stable neurons are never chosen
    for name in idx.names:  # free unstable ones the row does not read: a tiny tie-breaker
        zl, zu = fb.zlo[name], fb.zhi[name]
        m = zl.shape[1]
        free = (zl < 0) & (zu > 0) & (idx.part(fixed, name, m) == 0)
        o = idx.offset[name]
        score[:, o:o + m] = np.where(free, np.nan_to_num(zu - zl) * 1e-300, -np.inf)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for lay in reversed(prep.layers):
            g = lam.pop(lay.name, None)
            if g is None:
                continue
            m = len(lay.b)
            if lay.act == "relu":
                a, _, alpha = fb.relax[lay.name]
                zl, zu = fb.zlo[lay.name], fb.zhi[lay.name]
                free = (zl < 0) & (zu > 0) & (idx.part(fixed, lay.name, m) == 0)
                tri = np.where(free, -zl * zu / (zu - zl), 0.0)
                o = idx.offset[lay.name]
                s = np.nan_to_num(np.abs(g) * tri, posinf=1e300)
                score[:, o:o + m] = np.where(free, np.maximum(s, score[:, o:o + m]), -np.inf)
                g = np.where(g > 0, g * a, g * alpha)
            back = np.asarray(g @ lay.W)
            lam[lay.src] = lam[lay.src] + back if lay.src in lam else back
    lx = lam.get(prep.net.input.name, np.zeros((B, prep.net.input.size)))
    return score, np.nan_to_num(lx)
