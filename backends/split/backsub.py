"""Sound upper bounds of linear functions of a network's values on many sub-boxes at once.

Each row is `c . values + c0` over any nodes (input, hidden post-activations, output), e.g. the
left-hand side of a property atom. Its upper bound is found by back-substitution (CROWN, Zhang
et al. 2018; DeepPoly, Singh et al. 2019) in reverse topological order, with the per-box ReLU
relaxations of `forward.forward_bounds`: an unstable ReLU becomes its upper line a z + d where its
coefficient is positive and alpha z (alpha 0 or 1) where it is negative. Bounding the atom's own
linear combination of outputs keeps the outputs' correlation (y0 - y1 shares every hidden
neuron), which per-output bounds lose.

Soundness in float64 follows `nnir.passes.symbolic._Backsub` step for step (same invariant,
same error terms, batched over boxes): target <= sum_j Lam_j . h_j + c + E for the floats stored,
E grows by `fac` times the magnitudes of each step's terms plus an underflow allowance and is
rounded up with `nextafter`; the final concretisation is rounded outward. The coefficients on the
input (`lx`) are returned too: the branching heuristic reads them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnir.backends.split.forward import TINY, BoxBounds, Prepared


@dataclass
class Rows:
    """R linear functions of node values: `coef[node]` (R, size) floats and a constant (R,).

    `err0` (R,) bounds how far the float rows are from the exact ones, per unit magnitude of the
    values they read: |c_exact - c| <= u |c| entrywise and |c0_exact - c0| <= u |c0|, so the
    caller's rows are sound once `fac * (|c| . M + |c0|)` is added (done here).
    """

    coef: dict
    const: np.ndarray


def upper_bounds(prep: Prepared, fb: BoxBounds, rows: Rows):
    """Sound upper bounds (B, R) of every row on every box, and each input dimension's share
    (B, R, d) of how far each bound is above the row's minimum over the box, for branching.

    A bound is +inf where the float computation overflowed. The shares: the linear part's
    variation |lx_k| w_k, plus each unstable ReLU's relaxation gap (pos * d for the upper line,
    |neg| * min(u, -l) for the lower) split among the dimensions in proportion to their part in
    that neuron's bound width (ReluVal's smear, extended to the relaxation gaps).
    """
    net, fac = prep.net, prep.fac
    B, d = fb.lo.shape
    R = len(rows.const)
    lam = {k: np.broadcast_to(v, (B,) + v.shape) for k, v in rows.coef.items()}
    c = np.broadcast_to(rows.const, (B, R)).copy()
    start = np.zeros((B, R))
    for k, v in rows.coef.items():
        start += (np.abs(v) @ fb.mag[k].T).T
    err = np.nextafter(fac * (start + np.abs(c)) + TINY * (R + 2), np.inf)
    smear = np.zeros((B, R, d))
    with np.errstate(over="ignore", invalid="ignore"):
        for lay in reversed(prep.layers):  # reverse topological order
            coef = lam.pop(lay.name, None)
            if coef is None:
                continue
            m = len(lay.b)
            if lay.act == "relu":
                a, dd, alpha = fb.relax[lay.name]
                pos, neg = np.maximum(coef, 0.0), np.minimum(coef, 0.0)
                mu = pos * a[:, None, :] + neg * alpha[:, None, :]  # disjoint supports: exact sum
                shift = np.einsum("brm,bm->br", pos, dd)
                c = c + shift
                zmag = np.maximum(np.abs(fb.zlo[lay.name]), np.abs(fb.zhi[lay.name]))
                mterm = np.einsum("brm,bm->br", np.abs(mu), zmag) + shift + np.abs(c)
                err = np.nextafter(err + fac * mterm + TINY * (2 * m + 2), np.inf)
                zl, zu = fb.zlo[lay.name], fb.zhi[lay.name]
                open_ = ((zl < 0) & (zu > 0))[:, None, :]
                gap = pos * dd[:, None, :] - neg * np.minimum(zu, -zl)[:, None, :] * open_
                smear += np.einsum("brm,bkm->brk", np.where(np.isfinite(gap), gap, 0.0),
                                   fb.share[lay.name])
            else:
                mu = coef
            Ms = fb.mag[lay.src]
            n = Ms.shape[1]
            nu = np.asarray(np.ascontiguousarray(mu).reshape(-1, m) @ lay.W).reshape(B, R, n)
            new = lam[lay.src] + nu if lay.src in lam else nu
            lam[lay.src] = new
            c = c + (np.ascontiguousarray(mu).reshape(-1, m) @ lay.b).reshape(B, R)
            amu = np.abs(mu)
            mterm = (np.einsum("brm,bm->br", amu, np.asarray(Ms @ lay.absWT)) + amu @ lay.absb
                     + np.einsum("brn,bn->br", np.abs(new), Ms) + np.abs(c))
            under = TINY * (m * (n + 4) + 2 + amu.sum(-1) * (Ms.sum(-1)[:, None] + 1.0))
            err = np.nextafter(err + fac * mterm + under, np.inf)
        lx = lam.pop(net.input.name, None)
        if lx is None:
            lx = np.zeros((B, R, d))
        val = (np.einsum("brk,bk->br", np.maximum(lx, 0.0), fb.hi)
               + np.einsum("brk,bk->br", np.minimum(lx, 0.0), fb.lo) + c)
        mterm = np.einsum("brk,bk->br", np.abs(lx), fb.mx) + np.abs(c)
        err = err + fac * mterm + TINY * (2 * d + 2)
        out = np.nextafter(val + err, np.inf)
    out = np.where(np.isfinite(out), out, np.inf)
    smear += np.abs(lx) * (fb.hi - fb.lo)[:, None, :]
    return out, smear
