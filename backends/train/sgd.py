"""The backpropagation baseline: full-batch Adam on a multi-class hinge loss with the margin.

Loss (Crammer-Singer style, summed over wrong classes): mean over points of
`sum_{j != y} relu(t - (z_y - z_j))` with target `t = margin + pad`, so the strict case
(margin 0) is met with room and float/exact rounding cannot flip a point. Only unknown tensors
move; after each step they are clipped into their boxes (projected gradient). Any layer graph
is supported (a layer may read any earlier node): gradients are accumulated per node in reverse
layer order.
"""
from __future__ import annotations

import time

import numpy as np

from nnir.backends.options import SgdOptions
from nnir.backends.train.common import (
    NumericTrainer,
    defaults,
    finish,
    init_params,
    meets,
    project,
    unknown_mask,
)

OPTIONS = defaults(SgdOptions)


class SgdBackend(NumericTrainer):
    """Gradient-descent trainer (numpy, Adam). Options: seed, max_epochs, lr, pad, beta1, beta2,
    eps, batch_size (None: full batch; else shuffled minibatches of that size, one epoch a pass
    over the data), callback (`callback(epoch, seconds, params)` after each epoch, `params` the
    live `[W, b]` per layer; for benchmarks). Answers sat (weights meeting the margin in float64)
    or unknown, never unsat.
    """

    name = "sgd"
    description = "backpropagation baseline: full-batch Adam on a margin hinge loss (numpy)"
    Options = SgdOptions

    def solve_train(self, problem, timeout: float | None = None):
        o = self.opts
        start = time.perf_counter()
        net = problem.net
        params = init_params(net, np.random.default_rng(o["seed"]))
        adam = Adam(net, params, o)
        info = {"optimizer": "adam", "lr": o["lr"], "seed": o["seed"]}
        if o["batch_size"]:
            info["batch_size"] = o["batch_size"]
        X, y = np.asarray(problem.X, dtype=np.float64), np.asarray(problem.y)
        rng = np.random.default_rng(o["seed"] + 1)
        why = f"{o['max_epochs']} epochs"
        ok, min_gap = False, float("nan")
        for epoch in range(o["max_epochs"] + 1):
            info["epochs"] = epoch
            vals, pres = _forward(net, params, X)
            dZ = hinge_grad(vals[net.output], y, float(problem.margin) + o["pad"])
            if dZ is None:  # every point clears the target: confirm on the built network
                ok, min_gap = meets(problem, params)
                if ok:
                    break
            if epoch == o["max_epochs"]:
                break
            if timeout is not None and time.perf_counter() - start > timeout:
                why = f"timeout {timeout} s"
                break
            if not o["batch_size"]:
                if dZ is not None:
                    adam.step(_backward(net, params, vals, pres, dZ))
            else:
                adam.epoch(X, y, float(problem.margin) + o["pad"], int(o["batch_size"]), rng)
            if o["callback"] is not None:
                o["callback"](epoch + 1, time.perf_counter() - start, params)
        if not ok:
            ok, min_gap = meets(problem, params)
        return finish(problem, params, ok, min_gap, info, start, why)


def hinge_grad(Z, y, target):
    """Gradient of the mean multi-class hinge `sum_{j != y} relu(target - (z_y - z_j))` at the
    logits `Z`, or None when every point clears the target (the loss is 0).
    """
    rows = np.arange(len(y))
    G = Z[rows, y][:, None] - Z  # label logit minus each logit
    H = target - G > 0
    H[rows, y] = False
    if not H.any():
        return None
    dZ = H.astype(np.float64) / len(y)
    dZ[rows, y] = -dZ.sum(axis=1)
    return dZ


class Adam:
    """Adam (Kingma & Ba 2015) on the unknown tensors of `params`, in place, projected into
    their boxes after each step. Shared with the admm trainer's warm start.
    """

    def __init__(self, net, params, o):
        self.net, self.params, self.o = net, params, o
        self.mask = unknown_mask(net)
        self.m = [[np.zeros_like(a) for a in pair] for pair in params]
        self.v = [[np.zeros_like(a) for a in pair] for pair in params]
        self.t = 0

    def step(self, grads) -> None:
        o, self.t = self.o, self.t + 1
        c1, c2 = 1 - o["beta1"] ** self.t, 1 - o["beta2"] ** self.t
        for i, (gw, gb) in enumerate(grads):
            for k, g in enumerate((gw, gb)):
                if not self.mask[i][k]:
                    continue
                self.m[i][k] = o["beta1"] * self.m[i][k] + (1 - o["beta1"]) * g
                self.v[i][k] = o["beta2"] * self.v[i][k] + (1 - o["beta2"]) * g * g
                self.params[i][k] -= (o["lr"] * (self.m[i][k] / c1)
                                      / (np.sqrt(self.v[i][k] / c2) + o["eps"]))
        project(self.net, self.params)

    def epoch(self, X, y, target, batch_size: int, rng) -> None:
        """One pass over shuffled minibatches of (X, y)."""
        order = rng.permutation(len(y))
        for s in range(0, len(y), batch_size):
            idx = order[s:s + batch_size]
            vals, pres = _forward(self.net, self.params, X[idx])
            dZ = hinge_grad(vals[self.net.output], y[idx], target)
            if dZ is not None:
                self.step(_backward(self.net, self.params, vals, pres, dZ))


def _forward(net, params, X):
    vals, pres = {net.input.name: X}, {}
    for lay, (W, b) in zip(net.layers, params, strict=True):
        pre = vals[lay.src] @ W.T + b
        pres[lay.name] = pre
        vals[lay.name] = np.maximum(pre, 0.0) if lay.act == "relu" else pre
    return vals, pres


def _backward(net, params, vals, pres, dZ):
    """Gradients of the loss for every layer's (W, b), given its gradient dZ at the output."""
    dpost = {name: None for name in vals}
    dpost[net.output] = dZ
    grads = [None] * len(net.layers)
    for i in reversed(range(len(net.layers))):
        lay, (W, b) = net.layers[i], params[i]
        d = dpost[lay.name]
        if d is None:  # not upstream of the output: no gradient
            grads[i] = (np.zeros_like(W), np.zeros_like(b))
            continue
        if lay.act == "relu":
            d = d * (pres[lay.name] > 0)
        grads[i] = (d.T @ vals[lay.src], d.sum(axis=0))
        if lay.src != net.input.name:
            back = d @ W
            dpost[lay.src] = back if dpost[lay.src] is None else dpost[lay.src] + back
    return grads
