"""Candidate witnesses: float64 search for points where the formula holds, replayed exactly.

Projected gradient ascent on the formula's objective (`props.objective`: >= 0 where the formula
holds in floats; the gradient by back-propagation through the ReLUs at the point) in the box,
from box centres or random starts, with sign steps that shrink geometrically (in the manner of
PGD attacks, Madry et al. 2018). Nothing found here is believed until `replay_verify` checks it
in exact rational arithmetic.
"""
from __future__ import annotations

import numpy as np

from nnir.backends.split.forward import linear_map
from nnir.backends.split.props import Compiled, atom_values, objective
from nnir.ir.evaluate import evaluate_batch
from nnir.ir.nodes import Network
from nnir.queries.replay import replay_verify


def margins(net: Network, comp: Compiled, X: np.ndarray):
    """The objective at each row of X (`props.objective`), its weights on the atoms, and every
    node's values."""
    vals = evaluate_batch(net, X)
    m, w = objective(comp, atom_values(comp, vals))
    return m, w, vals


def gradient(net: Network, comp: Compiled, vals: dict, w: np.ndarray):
    """d objective / d x at each point: back-propagate the atoms' weighted coefficients."""
    B = len(w)
    grad = {node: w @ Gn for node, Gn in comp.G.items()}
    for lay in reversed(net.layers):
        g = grad.pop(lay.name, None)
        if g is None:
            continue
        if lay.act == "relu":
            g = g * (vals[lay.name + ".pre"] > 0)
        for src, back in _backward(net, lay, g):
            grad[src] = grad[src] + back if src in grad else back
    return grad.get(net.input.name, np.zeros((B, net.input.size)))


def _backward(net: Network, lay, g: np.ndarray):
    """(source, g's share on it) for each source of the node (add and concat read several)."""
    if lay.kind == "add":
        return [(src, g) for src in lay.srcs]
    if lay.kind == "concat":
        out, o = [], 0
        for src in lay.srcs:
            k = net.size_of(src)
            out.append((src, g[:, o:o + k]))
            o += k
        return out
    return [(lay.src, np.asarray(g @ linear_map(net, lay)[0]))]


def ascend(net: Network, comp: Compiled, lo: np.ndarray, hi: np.ndarray, X: np.ndarray,
           steps: int, step0: float = 0.25):
    """Projected sign-gradient ascent from X inside [lo, hi] (all (B, d)); the best point per row.

    Returns:
        (best X, best margin) per row.
    """
    width = hi - lo
    m, w, vals = margins(net, comp, X)
    best, bm = X.copy(), m.copy()
    step = step0
    for _ in range(steps):
        g = gradient(net, comp, vals, w)
        X = np.clip(X + step * width * np.sign(g), lo, hi)
        m, w, vals = margins(net, comp, X)
        better = m > bm
        best[better], bm[better] = X[better], m[better]
        step *= 0.75
    return best, bm


def random_starts(lo: np.ndarray, hi: np.ndarray, n: int, rng) -> np.ndarray:
    """n uniform points of the box (1-D lo, hi), its centre and its corners' nearest samples."""
    X = lo + (hi - lo) * rng.random((n, len(lo)))
    X[0] = lo + (hi - lo) / 2
    return X


class Witnesses:
    """The witness search both engines share (`split.engine.Search`, `bab.engine.Search`): a
    gradient search from random starts on a box, and exact replay of the most promising points.
    Needs `problem`, `net`, `comp`, `opts` (attack_starts, attack_steps, max_failed_replays),
    `rng`, `stats` and `answer(status, why, inputs)` on the engine."""

    def root_attack(self, lo, hi):
        o = self.opts
        if o.attack_starts <= 0:
            return None
        X = random_starts(lo, hi, o.attack_starts, self.rng)
        L, H = np.broadcast_to(lo, X.shape), np.broadcast_to(hi, X.shape)
        best, bm = ascend(self.net, self.comp, L, H, X, o.attack_steps)
        return self.try_points(best, bm, "gradient search on the whole box")

    def try_points(self, X, m, how: str, limit: int = 8):
        """Replay the most promising points exactly; a witness that passes is the answer."""
        x = first_witness(self.problem, X, m, self.stats, self.opts.max_failed_replays, limit)
        return None if x is None else self.answer("sat", f"witness from {how}", x)


def first_witness(problem, X, m, stats, max_failed: int, limit: int = 8):
    """The exact inputs of the first of the `limit` most promising points (float objective `m`
    >= 0) that replays exactly on `problem`, or None. Counts `replays` and `failed_replays` in
    `stats` and stops once `max_failed` replays have failed (`Witnesses.try_points`)."""
    for i in np.argsort(-m)[:limit]:
        if not m[i] >= -1e-9 or stats["failed_replays"] >= max_failed:
            break
        rep = replay_verify(problem, [float(v) for v in X[i]], clip=True)
        stats["replays"] += 1
        if rep.exact:
            return rep.inputs
        stats["failed_replays"] += 1
    return None

