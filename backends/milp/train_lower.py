"""Lower the sign-normalised one-hidden-layer training problem to a big-M MILP.

The problem and why its relaxation is exact are described in `backends/smtlib/train_lower.py`
(`signed_script`); this is the same system with the one disjunction per (point, helping unit)
made a binary. For point i with sigma_i = +1 (label 1) or -1 (label 0) and unit j of fixed sign
s_j, the pre-activation a_ij = w_j . x_i + b_j is linear in the unknowns and bounded by
|a_ij| <= A_i = Wmax ||x_i||_1 + Bmax over the (finite) weight box. With h_ij in [0, A_i]:
- sigma_i s_j = -1 (convex side): h_ij >= a_ij;
- sigma_i s_j = +1, binary delta: h_ij <= a_ij + 2 A_i (1 - delta), h_ij <= A_i delta
  (the big-M ReLU upper bound of Tjeng, Xiao & Tedrake, ICLR 2019, eq. (5), lower half dropped
  because only h_ij <= relu(a_ij) is needed);
- sum_j sigma_i s_j h_ij + sigma_i c >= margin + tighten.
`tighten` (> 0) replaces the strict `> 0` of margin 0 and leaves room for HiGHS's feasibility
tolerances, so a solution survives exact replay; an infeasible model therefore means "no weights
in the box clear margin + tighten", up to HiGHS's tolerances. Every variable must be boxed: the
caller supplies finite bounds (a default box where the problem has none).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnir.backends.milp.model import INF, MilpModel


@dataclass
class SignedMilp:
    """The model and the columns of the normalised weights w (h x d), b (h) and c (or None)."""

    model: MilpModel
    w: np.ndarray
    b: np.ndarray
    c: int | None
    start: np.ndarray | None = None


def signed_milp(spec, signs, X: np.ndarray, sigma, margin: float, tighten: float,
                box: tuple[float, float, float, float, float, float],
                symmetry: bool = True, fixed: np.ndarray | None = None,
                start=None) -> SignedMilp:
    """Build the MILP of the sign-normalised problem on points X (float64 rows).

    Args:
        spec: a `train_exact.normalise.SignedForm` (its `c_fixed` is used when the offset is known).
        signs: +1/-1 per hidden unit.
        X: points (n, d) as float64; sigma: +1/-1 per point.
        margin: the query's margin; tighten: the extra margin (see the module docstring).
        box: finite (w_lo, w_hi, b_lo, b_hi, c_lo, c_hi) for the normalised unknowns.
        symmetry: order the biases of same-sign units.
        fixed: optional (n, h) array restricting the helping side (the "find" phase of a warm
            start): +1 fixes delta = 1 (h <= a, no binary), -1 fixes delta = 0 (the unit adds
            nothing), 0 leaves the binary. A restricted model can only miss solutions: its
            infeasibility proves nothing.
        start: optional normalised (w (h x d), b (h), c) floats; `start` of the result is then a
            value for every column (a MIP start; HiGHS checks it, it may be infeasible).
    """
    h, d = len(signs), spec.d
    w_lo, w_hi, b_lo, b_hi, c_lo, c_hi = (float(v) for v in box)
    m = MilpModel(name="train_signed")
    w = np.array([m.add_vars([f"w_{j}_{k}" for k in range(d)], w_lo, w_hi) for j in range(h)],
                 dtype=np.int64).reshape(h, d)
    b = m.add_vars([f"b_{j}" for j in range(h)], b_lo, b_hi)
    c = None if spec.c_fixed is not None else m.add_var("c", c_lo, c_hi)
    c_val = 0.0 if spec.c_fixed is None else float(spec.c_fixed)
    wmax, bmax = max(abs(w_lo), abs(w_hi)), max(abs(b_lo), abs(b_hi))
    vals: list[float] | None = None
    if start is not None:
        sw, sb = np.asarray(start[0], dtype=np.float64), np.asarray(start[1], dtype=np.float64)
        vals = list(np.clip(sw, w_lo, w_hi).reshape(-1)) + list(np.clip(sb, b_lo, b_hi))
        if c is not None:
            vals.append(min(max(float(start[2]), c_lo), c_hi))
        sa = X @ np.clip(sw, w_lo, w_hi).T + np.clip(sb, b_lo, b_hi)  # (n, h) pre-activations
    if symmetry and fixed is None and start is None:  # a restriction or a start picks its order
        for j in range(h - 1):
            if signs[j] == signs[j + 1]:  # b_j - b_{j+1} <= 0
                m.add_row([b[j], b[j + 1]], [1.0, -1.0], -INF, 0.0, f"sym_{j}")
    for i, (x, sg) in enumerate(zip(X, sigma)):
        A = wmax * float(np.abs(x).sum()) + bmax
        A = A * (1 + 1e-9) + 1e-9  # pad: the bound must hold after float rounding
        goal_idx, goal_val = [], []
        for j in range(h):
            helps = sg * signs[j] > 0
            fix = 0 if fixed is None or not helps else int(fixed[i][j])
            if fix < 0:  # delta = 0: the unit adds nothing to this point
                continue
            hij = m.add_var(f"h_{i}_{j}", 0.0, A)
            # a_ij = sum_k x_k w_jk + b_j
            a_idx, a_val = list(w[j]) + [b[j]], list(map(float, x)) + [1.0]
            if vals is not None:
                aij = float(sa[i, j])
                vals.append(min(max(aij, 0.0), A) if not helps or fix > 0 or aij > 0 else 0.0)
            if not helps:  # h - a >= 0
                m.add_row([hij] + a_idx, [1.0] + [-v for v in a_val], 0.0, INF, f"lo_{i}_{j}")
            elif fix > 0:  # delta = 1: h - a <= 0
                m.add_row([hij] + a_idx, [1.0] + [-v for v in a_val], -INF, 0.0, f"up_{i}_{j}")
            else:
                dlt = m.add_var(f"d_{i}_{j}", 0.0, 1.0, integer=True)
                # h - a + 2A delta <= 2A
                m.add_row([hij] + a_idx + [dlt], [1.0] + [-v for v in a_val] + [2 * A],
                          -INF, 2 * A, f"up_{i}_{j}")
                m.add_row([hij, dlt], [1.0, -A], -INF, 0.0, f"on_{i}_{j}")  # h <= A delta
                if vals is not None:
                    vals.append(1.0 if float(sa[i, j]) > 0 else 0.0)
            goal_idx.append(hij)
            goal_val.append(float(sg * signs[j]))
        if c is not None:
            goal_idx.append(c)
            goal_val.append(float(sg))
        m.add_row(goal_idx, goal_val, margin + tighten - sg * c_val, INF, f"fit_{i}")
    m.notes.append(f"each point must clear margin {margin:g} + {tighten:g}")
    if fixed is not None:
        m.notes.append("restricted: some activation phases fixed from a warm start (find only)")
    return SignedMilp(m, w, b, c, None if vals is None else np.asarray(vals, dtype=np.float64))
