"""A numeric warm start for the signed encoding: an sgd network in sign-normalised form.

The sgd trainer (`backends/train/sgd.py`) runs briefly (`warm_time` s, default a quarter of the
time left, at most 10 s, shared by up to `warm_restarts` seeds (default 3: `seed`, `seed` + 1,
...) until one fits in float; else the one with the largest least margin; `warm_epochs`,
default 5000 each). Its network is normalised exactly as
`normalise.py` describes: unit j's outgoing difference u_j = V[1, j] - V[0, j] gives the sign
s_j, and |u_j| (w_j, b_j) the normalised incoming weights; positive units come first, so the
signs are those of sign count k = #{u_j > 0}. Normalised values are rounded to multiples of
2**-`warm_bits` (default 16) so that exact replay stays cheap.

What the route does with it (`routes.signed_route`): if the warm start, de-normalised, already
fits every point in exact replay (and its boxes), it is the answer; else (HiGHS) a *restricted*
model is solved first ("find" phase): the signs of the warm start, each (point, helping unit)
phase fixed where the warm pre-activation is clearly nonzero (`warm_tau`, relative), a binary
only where it is near 0, the CEGIS active set seeded with the points of smallest warm margin,
and the warm start as MIP start. A restricted model can only miss solutions, so its failure
leads to the full model ("prove" phase, every sign count, the warm count first); `unsat` only
ever comes from the full model.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from nnir.backends.train.sgd import SgdBackend
from nnir.backends.train_exact.cegis import Run, box_violations
from nnir.backends.train_exact.normalise import SignedForm, denormalise
from nnir.queries.train import replay_train


@dataclass
class Warm:
    """A warm start in normalised form (floats, units ordered positive first)."""

    signs: tuple
    w: np.ndarray  # (h, d)
    b: np.ndarray  # (h,)
    c: float
    margins: np.ndarray  # per point: sigma * logit difference - margin (float64)
    phases: np.ndarray  # (n, h): +1 / -1 fixed active / inactive, 0 free (helping side only)
    scale: float  # the largest |normalised value|
    weights: list | None  # exact de-normalised weights when they fit every point, else None
    how: str

    @property
    def k(self) -> int:
        return sum(s > 0 for s in self.signs)


def _clip(a, lo, hi):
    return np.clip(a, -np.inf if lo is None else float(lo), np.inf if hi is None else float(hi))


def sgd_warm(run: Run, spec: SignedForm) -> Warm | None:
    """Run sgd briefly on the problem; its network in normalised form (None if it had no time)."""
    p, o = run.problem, run.opts
    left = run.left()
    budget = float(o.get("warm_time", 10.0 if left is None else min(10.0, left / 4)))
    if budget <= 0:
        return None
    tries = max(1, int(o.get("warm_restarts", 3)))
    best = None
    for s in range(int(o.get("seed", 0)), int(o.get("seed", 0)) + tries):
        live: dict = {}
        sgd = SgdBackend(seed=s, max_epochs=int(o.get("warm_epochs", 5000)),
                         callback=lambda _e, _t, ps, live=live: live.update(p=ps))
        ans = sgd.solve_train(p, timeout=budget / tries)
        params = ans.weights if ans.status == "sat" else live.get("p")
        if params is None:
            continue
        gap = float(ans.info.get("min_gap_float", float("-inf")))
        if best is None or ans.status == "sat" or gap > best[0]:
            best = (gap, s, ans, params)
        if ans.status == "sat":
            break
    if best is None:
        return None
    _, seed, ans, params = best
    (W1, b1), (V, cb) = [(np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64))
                         for W, b in params]
    u = V[1] - V[0]
    order = np.concatenate([np.flatnonzero(u > 0), np.flatnonzero(u <= 0)])
    signs = tuple(1 if u[j] > 0 else -1 for j in order)
    q = 2.0 ** int(o.get("warm_bits", 16))
    w = _clip(np.round(np.abs(u[order])[:, None] * W1[order] * q) / q, spec.w_lo, spec.w_hi)
    b = _clip(np.round(np.abs(u[order]) * b1[order] * q) / q, spec.b_lo, spec.b_hi)
    c = float(spec.c_fixed) if spec.c_fixed is not None else \
        float(_clip(np.round((cb[1] - cb[0]) * q) / q, spec.c_lo, spec.c_hi))
    X = np.asarray(p.X, dtype=np.float64)
    sigma = np.where(np.asarray(p.y) == 1, 1.0, -1.0)
    pre = X @ w.T + b
    margins = sigma * (np.maximum(pre, 0.0) @ np.asarray(signs, dtype=np.float64) + c) \
        - float(p.margin)
    tau = float(o.get("warm_tau", 0.05)) * max(float(np.abs(pre).max(initial=0.0)), 1e-12)
    helps = sigma[:, None] * np.asarray(signs)[None, :] > 0
    phases = np.where(pre > tau, 1, np.where(pre < -tau, -1, 0)) * helps
    how = f"sgd seed {seed}, {'fits' if ans.status == 'sat' else 'not fitting'} " \
          f"in float ({ans.info.get('epochs', '?')} epochs)"
    weights = None
    if margins.min(initial=np.inf) >= 0:
        ex = denormalise(p.net, spec, signs, [[Fraction(v) for v in row] for row in w],
                         [Fraction(v) for v in b], None if spec.c_fixed is not None
                         else Fraction(c))
        if not box_violations(p.net, ex) and replay_train(p, ex).ok:
            weights = ex
    scale = float(max(np.abs(w).max(initial=0.0), np.abs(b).max(initial=0.0), abs(c)))
    return Warm(signs, w, b, c, margins, phases.astype(np.int8), scale, weights, how)


def seed_points(warm: Warm, active: list[int], count: int) -> list[int]:
    """`active` plus up to `count` points of smallest warm margin (misfits first)."""
    have = set(active)
    extra = [int(i) for i in np.argsort(warm.margins, kind="stable") if int(i) not in have]
    return list(active) + extra[:count]
