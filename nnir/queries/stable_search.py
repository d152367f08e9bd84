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

from nnir.ir.evaluate import evaluate_batch
from nnir.ir.nodes import Network

STEPS = 40


def applies(net: Network) -> bool:
    """The search runs on chains of dense layers (its gradients are written for them)."""
    return net.is_dense_only


def search_inputs(net: Network, states: list, lo: np.ndarray, hi: np.ndarray,
                  steps: int = STEPS, seed: int = 0) -> np.ndarray:
    """One candidate input per state (rows in the order of `states`), inside the box [lo, hi].

    Args:
        net: a network of dense layers.
        states: (layer, index, col) triples, col 0 the active state, 1 the inactive one.
        lo, hi: float64 box (inside the exact box).
        steps: gradient steps; the step shrinks linearly from a quarter of the box width.
    """
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
        back = g @ lay.weight.f64
        g_post[lay.src] = g_post[lay.src] + back if lay.src in g_post else back
    return g_post.get(net.input.name, np.zeros((n, net.input.size)))
