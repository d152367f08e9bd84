"""alpha-CROWN and beta-CROWN bounds on ReLU-split sub-problems, batched, sound in float64.

A sub-problem fixes some ReLUs active (+1, z >= 0) or inactive (-1, z <= 0). Its pre-activation
bounds are the root's (sound on the whole box, so on every part of it) clamped by its splits, and
the upper bound of each row (a linear function of node values, `split.backsub.Rows`) is found by
back-substitution (CROWN, Zhang et al. 2018) with two sets of free parameters:

- alpha in [0, 1]: the lower line alpha z of each unstable ReLU (relu(z) >= alpha z for every
  z, so any alpha is valid), one per sub-problem, row and neuron (alpha-CROWN: Xu et al. 2021,
  "Fast and Complete");
- beta >= 0: a Lagrange multiplier per split neuron and row; on the sub-problem s z >= 0 for a
  neuron split with sign s, so row <= row + beta s z there, and the term is carried into the
  back-substitution with the rest (beta-CROWN: Wang et al. 2021).

The bound is piecewise linear in alpha and beta: at the box corner x* that maximises the final
linear function, d bound / d alpha_j = g_j zhat_j and d bound / d beta_j = s_j zhat_j, where g_j is
the coefficient the back-substitution reached on h_j and zhat_j the pre-activation of the
linearised network (each ReLU replaced by the line the bound used) at x* (Danskin). Both are
minimised by projected Adam steps (`optimise`), in plain float64: the optimisation only picks
parameters, and any alpha in [0, 1], beta >= 0 gives a valid bound.

The bound that closes anything is then evaluated once more with `sound=True`: the same error
terms as `split.backsub.upper_bounds` (a `fac` allowance times the magnitudes of every step's
terms, an underflow allowance, outward `nextafter`), with the beta term's magnitude |beta| added
next to |g * slope| so a cancellation between them cannot hide a rounding error. So an `unsat`
never rests on a tolerance.

Intermediate bounds. At the root the bounds of `forward_bounds` (intersected with the bound
passes' facts) are tightened layer by layer by alpha-CROWN on each unstable neuron's +-z
(`Crown.tighten`, 50 Adam steps per layer; the engine first tries the root without it).
Sub-problems reuse them, clamped by their splits; `Crown.refine` (engine option `refine`) can
recompute them under the splits with the root's optimised alphas. Measured on one core of a
loaded 2-core machine (load 8-12), 64 sub-problems with 4 random splits each
(forward intervals of `bounds.py` against this module on the same batch):

| mnist_fc | forward intervals (d+1 columns) | CROWN, 1 pass | alpha/beta, 20 steps | refine |
|---|---|---|---|---|
| 256x2 prop_6 .03 | 37.6 s, median bound 1.255 | 0.14 s, 0.494 | 4.7 s, 0.055 | +1.5 s, -0.031 |
| 256x4 prop_0 .05 | 56.0 s, median bound 26.87 | 0.21 s, 3.150 | 9.0 s, 2.176 | +5.5 s, 2.110 |

(the median over sub-problems of the largest row bound; a row closes below 0). Root
tightening took 1.3 s (256x2) and 11 s (256x4) and cut the unstable ReLUs from 72 to 47 and
from 426 to 203. So sub-problems never recompute the forward intervals; `refine` pays on
256x2 but not on 256x4, where on the first five eps 0.05 instances (90 s each) it solved fewer
(prop_3: unsat in 57 s without, timeout with), hence off by default.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnir.backends.split.backsub import Rows
from nnir.backends.split.forward import TINY, Prepared, forward_bounds
from nnir.passes.symbolic import relu_relaxation

# Memory for one chunk of the root's intermediate-bound tightening (`Crown._tighten`).
TIGHTEN_BYTES = 512 * 2 ** 20


@dataclass
class Sub:
    """A batch of sub-problems: clamped bounds and the relaxations built on them.

    `zlo`/`zhi`: layer -> (B, m) pre-activation bounds; `relax`: relu layer -> (a, d, alpha0)
    (upper slope, intercept, CROWN's lower slope); `unst`: relu layer -> (B, m) bool;
    `sign`: relu layer -> (B, m) split signs (0 where free); `mag`:
    node -> (B, size) sound bounds of |value|.
    """

    zlo: dict
    zhi: dict
    relax: dict
    unst: dict
    sign: dict
    mag: dict

    def take(self, i: np.ndarray) -> Sub:
        def t(d):
            return {k: v[i] for k, v in d.items()}
        return Sub(t(self.zlo), t(self.zhi), {k: tuple(x[i] for x in v)
                                              for k, v in self.relax.items()},
                   t(self.unst), t(self.sign), t(self.mag))

    def free_unstable(self) -> np.ndarray:
        """Unstable ReLUs per sub-problem (split ones are stable under their clamps)."""
        B = len(next(iter(self.mag.values())))
        return sum((u.sum(1) for u in self.unst.values()), np.zeros(B, dtype=np.int64))


def make_sub(prep: Prepared, zlo: dict, zhi: dict, mx: np.ndarray, fixed_parts: dict) -> Sub:
    """A `Sub` from (B, m) bounds (already clamped) and the split signs per relu layer."""
    relax, unst, sign, mag = {}, {}, {}, {prep.net.input.name: mx}
    for lay in prep.layers:
        lo, hi = zlo[lay.name], zhi[lay.name]
        B = len(lo)
        if lay.act == "relu":
            relax[lay.name] = relu_relaxation(lo, hi)
            unst[lay.name] = (lo < 0) & (hi > 0)
            f = fixed_parts.get(lay.name)
            sign[lay.name] = (np.zeros((B, len(lay.b))) if f is None
                              else f.astype(np.float64))
            mag[lay.name] = np.maximum(hi, 0.0)
        else:
            mag[lay.name] = np.maximum(np.abs(lo), np.abs(hi))
    if mx.ndim == 1:
        B = len(next(iter(zlo.values())))
        mag[prep.net.input.name] = np.broadcast_to(mx, (B, len(mx)))
    return Sub(zlo, zhi, relax, unst, sign, mag)


@dataclass
class Trace:
    """What the gradient needs from a back-substitution: per relu layer the coefficient g on
    its output, the slope and intercept used, and the maximising corner x* (B, R, d)."""

    g: dict
    slope: dict
    icpt: dict
    layers: list  # names of the layers the back-substitution went through, in forward order
    xstar: np.ndarray
    lx: np.ndarray  # (B, R, d) input coefficients of the final linear function


class Crown:
    """alpha/beta-CROWN bounds of `rows` for one network and input box.

    Args:
        prep: the prepared network (float data, root facts).
        lo, hi: (d,) the input box (floats containing the exact box).
        root_iters: Adam steps of alpha-CROWN per layer when tightening the root's
            intermediate bounds (0: keep `forward_bounds`' and the facts').
    """

    def __init__(self, prep: Prepared, lo: np.ndarray, hi: np.ndarray, root_iters: int = 0,
                 deadline_ok=lambda: True):
        self.prep, self.lo, self.hi = prep, lo, hi
        fb = forward_bounds(prep, lo[None], hi[None])
        self.mx = fb.mx[0]
        self.zlo = {k: v[0].copy() for k, v in fb.zlo.items()}
        self.zhi = {k: v[0].copy() for k, v in fb.zhi.items()}
        self.relu = [lay.name for lay in prep.layers if lay.act == "relu"]
        self.cols = {}
        self.tightened = 0
        self.inter = {}  # tightened layer -> (its neurons, their +-z rows, their alphas)
        self._set_cols()
        if root_iters > 0:
            self.tighten(root_iters, deadline_ok)

    def _set_cols(self) -> None:
        for n in self.relu:
            self.cols[n] = np.nonzero((self.zlo[n] < 0) & (self.zhi[n] > 0))[0]

    def tighten(self, iters: int, deadline_ok=lambda: True) -> None:
        """Tighten the root's intermediate bounds layer by layer by alpha-CROWN (`iters` Adam
        steps per layer; the first layer's forward bounds are already exact up to rounding)."""
        for lay in self.prep.layers:
            if lay.act == "relu" and lay.src != self.prep.net.input.name and deadline_ok():
                self._tighten(lay, iters, lambda: not deadline_ok())
        self._set_cols()

    def _tighten(self, lay, iters: int, stop=None) -> None:
        """alpha-CROWN bounds of the layer's unstable neurons' +-z (rows on its source),
        intersected with the bounds known (stable neurons need no tighter bounds)."""
        lo, hi = self.zlo[lay.name], self.zhi[lay.name]
        u_all = np.nonzero((lo < 0) & (hi > 0))[0]
        if not len(u_all):
            return
        self._set_cols()
        sub = self.sub(np.zeros((1, 0), dtype=np.int8), {})
        # each row becomes its own problem in `optimise` (a copy of every layer's bounds, and
        # (rows, width) arrays per layer): chunks of the neurons keep that within TIGHTEN_BYTES
        per = 8.0 * 16 * (len(self.lo) + sum(len(x.b) for x in self.prep.layers))
        step = max(1, int(TIGHTEN_BYTES // (2 * per)))
        parts = []
        for c0 in range(0, len(u_all), step):
            if c0 and stop is not None and stop():
                break
            u = u_all[c0:c0 + step]
            k = len(u)
            W, b = lay.rows(u), lay.b[u]
            rows = Rows({lay.src: np.concatenate([W, -W])}, np.concatenate([b, -b]))
            alpha = self.init_alpha(sub, 2 * k)
            (alpha, _), _ = self.optimise(rows, sub, alpha, {}, iters, done=lambda U: U < 0,
                                          stop=stop)
            U, _ = self.backward(rows, sub, alpha, {}, sound=True)
            parts.append((u, rows, alpha))
            up, dn = U[0, :k], -U[0, k:]
            hi[u] = np.minimum(hi[u], up)
            lo[u] = np.maximum(lo[u], dn)
            self.tightened += int(((up < 0) | (dn > 0)).sum())
        if len(parts) == 1:
            self.inter[lay.name] = parts[0]
        else:  # `refine` reads one set of rows per layer: the chunks joined
            u = np.concatenate([p[0] for p in parts])
            k = [len(p[0]) for p in parts]
            W = np.concatenate([p[1].coef[lay.src][:kk] for p, kk in zip(parts, k)]
                               + [p[1].coef[lay.src][kk:] for p, kk in zip(parts, k)])
            b = np.concatenate([p[1].const[:kk] for p, kk in zip(parts, k)]
                               + [p[1].const[kk:] for p, kk in zip(parts, k)])
            alpha = {n: np.concatenate([p[2][n][:, :kk] for p, kk in zip(parts, k)]
                                       + [p[2][n][:, kk:] for p, kk in zip(parts, k)], axis=1)
                     for n in parts[0][2]}
            self.inter[lay.name] = (u, Rows({lay.src: W}, b), alpha)

    # -- sub-problems --------------------------------------------------------------------------

    def sub(self, fixed: np.ndarray, offsets: dict) -> Sub:
        """The batch of sub-problems `fixed` ((B, N) signs; `offsets`: relu layer -> first
        column in it): root bounds clamped by the splits."""
        B = max(len(fixed), 1)
        zlo, zhi, parts = {}, {}, {}
        for lay in self.prep.layers:
            name, m = lay.name, len(lay.b)
            L = np.broadcast_to(self.zlo[name], (B, m))
            H = np.broadcast_to(self.zhi[name], (B, m))
            if name in offsets:
                f = fixed[:, offsets[name]:offsets[name] + m]
                parts[name] = f
                L = np.where(f > 0, np.maximum(L, 0.0), L)
                H = np.where(f < 0, np.minimum(H, 0.0), H)
            zlo[name], zhi[name] = L, H
        return make_sub(self.prep, zlo, zhi, self.mx, parts)

    def refine(self, fixed: np.ndarray, offsets: dict, budget: float = 4e6, stop=None):
        """The sub-problems with the intermediate bounds of every tightened layer recomputed
        under their splits (CROWN with the root's optimised alphas for that layer's rows, in
        layer order, each on the bounds refined before it; sound, intersected with the
        clamped root bounds), and which sub-problems that shows empty (some lower bound above
        its upper bound: the splits contradict each other).

        Only sub-problems with a split before a layer recompute it; `budget` caps the
        (sub-problems x rows x width) floats of one pass; `stop()` (the deadline) ends the
        refinement early (what is left keeps the clamped root bounds, also sound).
        """
        sub = self.sub(fixed, offsets)
        B = len(fixed)
        zlo = {k: np.array(v) for k, v in sub.zlo.items()}
        zhi = {k: np.array(v) for k, v in sub.zhi.items()}
        parts = {n: fixed[:, o:o + len(zlo[n][0])] for n, o in offsets.items()}
        split_before = np.zeros(B, dtype=bool)
        width = max([len(self.lo)] + [len(v[0]) for v in zlo.values()])
        changed = False
        for lay in self.prep.layers:
            name = lay.name
            if name in self.inter and split_before.any():
                u, rows, alpha = self.inter[name]
                p = np.nonzero(np.isin(u, self.cols[name]))[0]
                k, kk = len(u), len(p)
                if kk:
                    sel = np.concatenate([p, p + k])
                    r = Rows({n: v[sel] for n, v in rows.coef.items()}, rows.const[sel])
                    al = {n: a[:, sel] for n, a in alpha.items()}
                    todo = np.nonzero(split_before)[0]
                    step = max(1, int(budget // (2 * kk * width)))
                    for c0 in range(0, len(todo), step):
                        if stop is not None and stop():
                            break
                        c = todo[c0:c0 + step]
                        s = make_sub(self.prep, {n: v[c] for n, v in zlo.items()},
                                     {n: v[c] for n, v in zhi.items()}, self.mx,
                                     {n: v[c] for n, v in parts.items()})
                        U, _ = self.backward(r, s, al, {}, sound=True)
                        cu = u[p]
                        zhi[name][np.ix_(c, cu)] = np.minimum(zhi[name][np.ix_(c, cu)], U[:, :kk])
                        zlo[name][np.ix_(c, cu)] = np.maximum(zlo[name][np.ix_(c, cu)],
                                                              -U[:, kk:])
                    changed = True
            if name in parts:
                split_before |= (parts[name] != 0).any(axis=1)
        if not changed:
            return sub, np.zeros(B, dtype=bool)
        empty = np.zeros(B, dtype=bool)
        for n in zlo:
            empty |= (zlo[n] > zhi[n]).any(axis=1)
        zhi = {n: np.maximum(v, zlo[n]) for n, v in zhi.items()}  # empty ones: any valid box
        return make_sub(self.prep, zlo, zhi, self.mx, parts), empty

    def init_alpha(self, sub: Sub, R: int) -> dict:
        """CROWN's lower slopes (1 where u >= -l), per row (only unstable neurons read them)."""
        out = {}
        for n in self.relu:
            if len(self.cols[n]):
                out[n] = np.repeat(sub.relax[n][2][:, None, :], R, axis=1)
        return out

    def pack(self, alpha: dict, beta: dict, i: np.ndarray) -> np.ndarray:
        """Sub-problems i's parameters on the root-unstable columns, (len(i), 2, R, K) float32
        (a child's warm start: only those columns can be unstable or split below the root)."""
        out = [np.stack([P[n][i][:, :, self.cols[n]] for P in (alpha, beta)], axis=1)
               for n in self.relu if n in alpha]
        return np.concatenate(out, axis=-1).astype(np.float32)

    def unpack(self, packed: np.ndarray, alpha: dict, beta: dict, i: np.ndarray) -> None:
        """Write `pack`'s output back into sub-problems i of (B, R, m) alpha and beta."""
        o = 0
        for n in self.relu:
            if n not in alpha:
                continue
            c = self.cols[n]
            for q, P in enumerate((alpha, beta)):
                blk = P[n][i]
                blk[:, :, c] = packed[:, q, :, o:o + len(c)]
                P[n][i] = blk
            o += len(c)

    # -- the bound -----------------------------------------------------------------------------

    def backward(self, rows: Rows, sub: Sub, alpha: dict, beta: dict, sound: bool = False,
                 trace: bool = False):
        """Upper bounds (B, R) of the rows on the sub-problems with the given parameters.

        With `sound`, every rounding error is bounded and added (see the module doc; the
        invariant and terms are `split.backsub.upper_bounds`'), and the result rounded up:
        a sound bound. Without it, plain float64 (for the optimisation). With `trace`, also the
        `Trace` the gradient and the branching need.
        """
        prep, fac = self.prep, self.prep.fac
        B = len(next(iter(sub.mag.values())))
        R = rows.const.shape[-1]  # rows: (R, size) for all, or (B, R, size) per sub-problem
        lam = {k: v if v.ndim == 3 else np.broadcast_to(v, (B,) + v.shape)
               for k, v in rows.coef.items()}
        c = np.broadcast_to(rows.const, (B, R)).copy()
        if sound:
            start = np.zeros((B, R))
            for k, v in lam.items():
                start += np.einsum("brs,bs->br", np.abs(v), sub.mag[k])
            err = np.nextafter(fac * (start + np.abs(c)) + TINY * (R + 2), np.inf)
        tr = Trace({}, {}, {}, [], None, None) if trace else None
        with np.errstate(over="ignore", invalid="ignore"):
            for lay in reversed(prep.layers):
                g = lam.pop(lay.name, None)
                if g is None:
                    continue
                m = len(lay.b)
                if tr is not None:
                    tr.layers.append(lay.name)
                if lay.act == "relu":
                    a, d, a0 = sub.relax[lay.name]
                    pos = g > 0
                    low = a0[:, None, :]
                    if lay.name in alpha:
                        low = np.where(sub.unst[lay.name][:, None, :], alpha[lay.name], low)
                    slope = np.where(pos, a[:, None, :], low)
                    gs = g * slope
                    mu = gs
                    if lay.name in beta:
                        bs = beta[lay.name] * sub.sign[lay.name][:, None, :]
                        mu = gs + bs
                    gpos = np.where(pos, g, 0.0)
                    shift = np.einsum("brm,bm->br", gpos, d)
                    c = c + shift
                    if sound:
                        zmag = np.maximum(np.abs(sub.zlo[lay.name]), np.abs(sub.zhi[lay.name]))
                        amag = np.abs(gs)
                        if lay.name in beta:
                            amag += np.abs(bs)
                        mterm = np.einsum("brm,bm->br", amag, zmag) + shift + np.abs(c)
                        err = np.nextafter(err + fac * mterm + TINY * (2 * m + 4), np.inf)
                    if tr is not None:
                        tr.g[lay.name], tr.slope[lay.name] = g, slope
                        tr.icpt[lay.name] = np.where(pos, d[:, None, :], 0.0)
                else:
                    mu = g
                mu = np.ascontiguousarray(mu)
                n = lay.W.shape[1]
                nu = np.asarray(mu.reshape(-1, m) @ lay.W).reshape(B, R, n)
                new = lam[lay.src] + nu if lay.src in lam else nu
                lam[lay.src] = new
                c = c + (mu.reshape(-1, m) @ lay.b).reshape(B, R)
                if sound:
                    Ms = sub.mag[lay.src]
                    amu = np.abs(mu)
                    mterm = (np.einsum("brm,bm->br", amu, np.asarray(Ms @ lay.absWT))
                             + amu @ lay.absb
                             + np.einsum("brn,bn->br", np.abs(new), Ms) + np.abs(c))
                    under = TINY * (m * (n + 4) + 2 + amu.sum(-1) * (Ms.sum(-1)[:, None] + 1.0))
                    err = np.nextafter(err + fac * mterm + under, np.inf)
            d_in = len(self.lo)
            lx = lam.pop(prep.net.input.name, None)
            if lx is None:
                lx = np.zeros((B, R, d_in))
            val = (np.maximum(lx, 0.0) @ self.hi + np.minimum(lx, 0.0) @ self.lo + c)
            if sound:
                mterm = np.abs(lx) @ self.mx + np.abs(c)
                err = err + fac * mterm + TINY * (2 * d_in + 2)
                val = np.nextafter(val + err, np.inf)
        val = np.where(np.isfinite(val), val, np.inf)
        if tr is not None:
            tr.layers.reverse()
            tr.lx = lx
            tr.xstar = np.where(lx > 0, self.hi, self.lo)
        return val, tr

    def gradient(self, tr: Trace, sub: Sub, want_beta: bool):
        """d bound / d alpha and d bound / d beta (dicts like the parameters) at the trace's
        corner: the linearised network's pre-activations zhat, times g (alpha) or s (beta)."""
        prep = self.prep
        h = {prep.net.input.name: tr.xstar}
        ga, gb = {}, {}
        todo = set(tr.layers)
        for lay in prep.layers:
            if lay.name not in todo:
                continue
            src = h[lay.src]
            B, R = src.shape[:2]
            z = np.asarray(src.reshape(B * R, -1) @ lay.W.T).reshape(B, R, -1) + lay.b
            if lay.act == "relu":
                g = tr.g[lay.name]
                ga[lay.name] = np.where(sub.unst[lay.name][:, None, :] & (g < 0), g * z, 0.0)
                if want_beta:
                    gb[lay.name] = sub.sign[lay.name][:, None, :] * z
                h[lay.name] = tr.slope[lay.name] * z + tr.icpt[lay.name]
            else:
                h[lay.name] = z
        return ga, gb

    def optimise(self, rows: Rows, sub: Sub, alpha: dict, beta: dict, iters: int,
                 done=None, stop=None, lr_alpha: float = 0.1, lr_beta: float = 0.05):
        """Projected Adam on alpha in [0, 1] and beta >= 0, minimising every row's bound.

        Each (sub-problem, row) pair is its own problem (its own alphas and betas), so the
        pairs are flattened into one batch of single rows and a pair leaves the batch as soon
        as `done` says its row needs no more work.

        Args:
            alpha, beta: (B, R, m) starting parameters per relu layer (only the unstable
                neurons' alphas and the split neurons' betas matter).
            done: optional callable (B, R) best float bounds -> (B, R) bool: pairs to stop
                (their row is already certainly false, or their sub-problem closed).
            stop: optional callable -> bool, checked every step (the deadline): stop early.
        Returns:
            ((alpha, beta) with the lowest float bound seen per sub-problem and row, and that
            float bound (B, R)).
        """
        B = len(next(iter(sub.mag.values())))
        R = len(rows.const)
        best = np.full((B, R), np.inf)
        best_p = [{k: v.copy() for k, v in alpha.items()}, {k: v.copy() for k, v in beta.items()}]
        bsel, rsel = np.divmod(np.arange(B * R), R)
        P = [{k: v[bsel, rsel][:, None, :] for k, v in d.items()} for d in (alpha, beta)]
        Mo = [{k: np.zeros_like(v) for k, v in d.items()} for d in P]
        Vo = [{k: np.zeros_like(v) for k, v in d.items()} for d in P]
        frows = Rows({k: np.asarray(v)[rsel][:, None, :] for k, v in rows.coef.items()},
                     np.asarray(rows.const)[rsel][:, None])
        s = sub.take(bsel)
        lrs = (lr_alpha, lr_beta)
        for t in range(iters + 1):
            last = t == iters or (stop is not None and stop())
            U, tr = self.backward(frows, s, P[0], P[1], trace=not last)
            u = U[:, 0]
            better = u < best[bsel, rsel]
            if better.any():
                bb, rb = bsel[better], rsel[better]
                best[bb, rb] = u[better]
                for q in range(2):
                    for k, v in P[q].items():
                        best_p[q][k][bb, rb] = v[better, 0]
            if last:
                break
            if done is not None:
                keep = ~done(best)[bsel, rsel]
                if keep.sum() < 0.75 * len(keep):  # compact (done pairs' best is kept)
                    if not keep.any():
                        break
                    bsel, rsel = bsel[keep], rsel[keep]
                    s = s.take(keep)
                    frows = Rows({k: v[keep] for k, v in frows.coef.items()},
                                 frows.const[keep])
                    for d in P + Mo + Vo:
                        for k in d:
                            d[k] = d[k][keep]
                    continue  # recompute on the smaller set (the trace is of the old one)
            grads = self.gradient(tr, s, bool(P[1]))
            c1, c2 = 1 - 0.9 ** (t + 1), 1 - 0.999 ** (t + 1)
            for q in range(2):
                for k, v in P[q].items():
                    if k not in grads[q]:  # a layer the rows do not reach
                        continue
                    g = grads[q][k]
                    g[~np.isfinite(g)] = 0.0
                    M, V = Mo[q][k], Vo[q][k]
                    M *= 0.9
                    M += 0.1 * g
                    V *= 0.999
                    V += 0.001 * g * g
                    v -= lrs[q] * (M / c1) / (np.sqrt(V / c2) + 1e-12)
                    np.clip(v, 0.0, 1.0 if q == 0 else np.inf, out=v)
        return (best_p[0], best_p[1]), best


LOWER_WEIGHT = 0.25  # how much a lower line's gap counts against an upper line's intercept


def crown_branch_scores(cr: Crown, idx, sub: Sub, tr: Trace, keep: np.ndarray, row: np.ndarray):
    """A BaBSR-like score per ReLU (K, N; -inf for split and stable ones), and the input
    coefficients (K, d) of the critical row's final linear function (the attack's start).

    Float heuristics only (never used to close anything): with g the critical row's coefficient
    on a free unstable neuron's output, splitting it removes g d (d the upper line's intercept)
    from the bound where g > 0, and up to |g| times the lower line's gap where g < 0 (weighted
    by `LOWER_WEIGHT`: that gap is often not where the optimum sits).

    Args:
        sub: the kept sub-problems (`Sub.take(keep)`); tr: the trace of the whole batch;
        keep: (K,) their indices in it; row: (K,) each one's critical row.
    """
    K = len(keep)
    score = np.full((K, idx.size), -np.inf)
    with np.errstate(over="ignore", invalid="ignore"):
        for name in cr.relu:
            o = idx.offset[name]
            free = sub.unst[name]
            zl, zu = sub.zlo[name], sub.zhi[name]
            s = np.nan_to_num(zu - zl) * 1e-300  # a tie-breaker for neurons the row skips
            if name in tr.g:
                g = tr.g[name][keep, row]
                low = tr.slope[name][keep, row]
                d = sub.relax[name][1]
                gap = np.maximum(-low * zl, (1.0 - low) * zu)
                s = s + np.nan_to_num(np.where(g > 0, g * d, -g * gap * LOWER_WEIGHT),
                                      posinf=1e300)
            score[:, o:o + free.shape[1]] = np.where(free, s, -np.inf)
    lx = tr.lx[keep, row]
    return score, np.nan_to_num(lx)


def fsb_choice(cr: Crown, offsets: dict, rows: Rows, fixed: np.ndarray, score: np.ndarray,
               row: np.ndarray, alpha: dict, beta: dict, k: int) -> np.ndarray:
    """The split per sub-problem (K,) among its `k` best-scored ReLUs whose worse child has
    the lowest bound on the critical row (filtered smart branching, FSB, cheaply: each child
    is bounded once with the parent's optimised alphas and betas, no optimisation).

    Float heuristics only: the children are bounded soundly when their turn comes.

    Args:
        fixed: (K, N) the sub-problems; score: (K, N) their scores (-inf: not splittable);
        row: (K,) critical rows; alpha, beta: (K, R, m) their optimised parameters.
    """
    K, N = fixed.shape
    k = min(k, N)
    cand = np.argpartition(-score, k - 1, axis=1)[:, :k]  # (K, k)
    ok = np.isfinite(np.take_along_axis(score, cand, axis=1))
    F = np.repeat(fixed[:, None, None, :], k, axis=1).repeat(2, axis=2)  # (K, k, 2, N)
    bi, ci = np.nonzero(np.ones((K, k), dtype=bool))
    F[bi, ci, 0, cand[bi, ci]] = 1
    F[bi, ci, 1, cand[bi, ci]] = -1
    F = F.reshape(K * k * 2, N)
    parent = np.repeat(np.arange(K), 2 * k)
    prow = row[parent]
    sub = cr.sub(F, offsets)
    frows = Rows({n: np.asarray(v)[prow][:, None, :] for n, v in rows.coef.items()},
                 np.asarray(rows.const)[prow][:, None])
    pa = {n: v[parent, prow][:, None, :] for n, v in alpha.items()}
    pb = {n: v[parent, prow][:, None, :] for n, v in beta.items()}
    U, _ = cr.backward(frows, sub, pa, pb)
    worst = U[:, 0].reshape(K, k, 2).max(axis=2)
    worst = np.where(ok, worst, np.inf)
    pick = np.argmin(worst, axis=1)
    best_score = np.argmax(score, axis=1)
    chosen = cand[np.arange(K), pick]
    return np.where(np.isfinite(worst.min(axis=1)), chosen, best_score)
