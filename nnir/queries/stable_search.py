"""A cheap search for inputs that show the activation states still unobserved, before any MILP.

For every open state (neuron i of some layer, active or inactive) a projected signed-gradient
ascent on s * pre_i (s = +1 for the active state, -1 for the inactive one) runs from a random
point of the box, all states at once as the rows of one batch (numpy, float64). The inputs found
are only candidates: the caller replays them exactly, and only an exact `pre > 0` / `pre < 0`
marks a state observed, so nothing here can make a verdict wrong; it only leaves the MILP fewer
states to look for (on MNIST networks over an L-infinity ball most unstable neurons are shown
here in a fraction of a second, and the ISA MILP is left to prove the stable ones).
"""
from __future__ import annotations

import numpy as np

from nnir.ir import conv
from nnir.ir.evaluate import evaluate_batch
from nnir.ir.nodes import Network

STEPS = 40
CHUNK = 256  # states searched at once: a batch is CHUNK x input size floats


def applies(net: Network) -> bool:
    """The search runs on any network of known weights (every node kind has a backward rule)."""
    return not net.has_unknowns and all(lay.kind in BACKWARD for lay in net.layers)


def search_inputs(net: Network, states: list, lo: np.ndarray, hi: np.ndarray,
                  steps: int = STEPS, seed: int = 0) -> np.ndarray:
    """One candidate input per state (rows in the order of `states`), inside the box [lo, hi].

    Args:
        net: a network of known weights.
        states: (layer, index, col) triples, col 0 the active state, 1 the inactive one.
        lo, hi: float64 box (inside the exact box).
        steps: gradient steps; the step shrinks linearly from a quarter of the box width.
    """
    if len(states) > CHUNK:  # bounded memory on wide inputs (3072-pixel images)
        return np.concatenate([search_inputs(net, states[k:k + CHUNK], lo, hi, steps, seed + k)
                               for k in range(0, len(states), CHUNK)])
    rng = np.random.default_rng(seed)
    n = len(states)
    X = rng.uniform(lo, hi, size=(n, len(lo)))
    sign = np.array([1.0 if c == 0 else -1.0 for _, _, c in states])
    by_layer: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for layer in {s[0] for s in states}:
        r = np.array([k for k, s in enumerate(states) if s[0] == layer])
        by_layer[layer] = (r, np.array([states[k][1] for k in r]))
    width = hi - lo
    for t in range(steps):
        vals = evaluate_batch(net, X)
        grad = _gradient(net, vals, by_layer, sign, n)
        step = width * (0.25 * (1.0 - t / steps) + 0.01)
        X = np.clip(X + step * np.sign(grad), lo, hi)
    return X


def _gradient(net: Network, vals: dict, by_layer: dict, sign: np.ndarray, n: int) -> np.ndarray:
    """d(s_r * pre of row r's neuron) / dx for every row r, by backpropagation."""
    g_post = {}  # node -> (n, size) gradient w.r.t. the node's output
    for lay in reversed(net.layers):
        g = g_post.pop(lay.name, None)
        if g is not None and lay.act == "relu":
            g = g * (vals[lay.name + ".pre"] > 0)
        if lay.name in by_layer:
            r, i = by_layer[lay.name]
            if g is None:
                g = np.zeros((n, lay.size))
            g[r, i] += sign[r]
        if g is None:
            continue
        for src, back in BACKWARD[lay.kind](lay, g, net):
            g_post[src] = g_post[src] + back if src in g_post else back
    return g_post.get(net.input.name, np.zeros((n, net.input.size)))


# Per node kind: the gradient w.r.t. each source from the gradient g (n x size) w.r.t. the
# node's pre-activation (or value): [(source, n x source size)].
def _back_dense(lay, g, net):
    return [(lay.src, g @ lay.weight.f64)]


def _back_conv(lay, g, net):
    return [(lay.src, np.asarray((conv.matrix(lay).T @ g.T).T))]


def _back_gather(lay, g, net):
    back = np.zeros((g.shape[0], net.size_of(lay.src)))
    np.add.at(back.T, np.asarray(lay.index), g.T)  # repeated entries add up
    return [(lay.src, back)]


def _back_slice(lay, g, net):
    back = np.zeros((g.shape[0], net.size_of(lay.src)))
    back[:, lay.start:lay.start + lay.size] = g
    return [(lay.src, back)]


def _back_concat(lay, g, net):
    out, k = [], 0
    for s in lay.srcs:
        m = net.size_of(s)
        out.append((s, g[:, k:k + m].copy()))  # copies: a reader adds to its own in place
        k += m
    return out


def _back_add(lay, g, net):
    return [(s, g.copy()) for s in lay.srcs]


BACKWARD = {"dense": _back_dense, "conv": _back_conv, "gather": _back_gather,
            "slice": _back_slice, "concat": _back_concat, "add": _back_add}
