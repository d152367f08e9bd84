"""Gradient-free training by ADMM, after Taylor et al., "Training Neural Networks Without
Gradients: A Scalable ADMM Approach" (ICML 2016).

Each layer l has weights W_l, pre-activations z_l and activations a_l = h(z_l) as separate
variables, coupled by penalties: minimise
    loss(z_L, y) + <z_L, lam> + beta |z_L - W_L a_{L-1}|^2
      + sum_{l<L} gamma |a_l - h(z_l)|^2 + beta |z_l - W_l a_{l-1}|^2.
One iteration updates, for l = 1 .. L-1: W_l by least squares (Algorithm 1, eq. "W_l <- z_l
a_{l-1}^+"), a_l by a linear solve, z_l by the closed-form ReLU step; then W_L, z_L by the
closed-form hinge (or square) step, and the Bregman/Lagrange multiplier lam on the output only.

Departures from the paper, on purpose:
- the start is a random (He-initialised) network's forward pass, not Gaussian noise, which would
  leave every unit active;
- biases are weights on a constant-1 column appended to each layer's input; the first layer's
  Gram matrix X^T X (+ a small ridge, as it may be singular) is factored once;
- weights with a box are clipped into it after their least-squares update, then improved by a
  few projected-gradient steps on that least squares (see `_fit`): an approximation of the
  box-constrained update, not the exact ADMM step of the constrained problem;
- leading layers with no unknown tensors are fixed features: their activations stay data;
- known (`Const`) tensors are never updated; the least squares fits the unknown part only;
- the multi-class hinge is one-vs-rest per logit: z_label >= c, z_other <= -c (c >= margin / 2).
Every matrix formed is a sum over data points (A^T A, A^T Z, (Z - b) W, ...), so the updates can
later be split over data-parallel workers that each sum their shard, as in the paper; this
version runs in one process.
"""
from __future__ import annotations

import time

import numpy as np

from nnir.backends.base import Backend
from nnir.backends.train.common import (
    boxed,
    check_options,
    finish,
    init_params,
    meets,
    project_layer,
    sequential,
    unknown_mask,
)
from nnir.errors import UnsupportedQuery

OPTIONS = {"seed": 0, "max_iter": 2000, "restarts": 4, "beta": 1.0, "gamma": 10.0, "loss": "hinge",
           "target": None, "ridge": 1e-6, "warm_epochs": 0, "warm_batch": 128, "warm_lr": 1e-3,
           "schedule": 1.0, "schedule_max": 100.0, "callback": None}


class AdmmBackend(Backend):
    """ADMM trainer (Taylor et al. 2016), numpy. Options: seed, max_iter (in all), restarts
    (fresh seeds seed, seed+1, ... sharing max_iter), beta, gamma, loss ("hinge" | "square"),
    target (output scale c, default max(1, margin)), ridge; warm_epochs (epochs of minibatch
    Adam, batch warm_batch, step warm_lr, before ADMM starts: 0 = none), schedule (beta and
    gamma are multiplied by this each iteration, up to schedule_max times their start: 1 = fixed
    penalties, as in the paper), callback (`callback(iteration, seconds, params)` after each
    iteration, `params` the live `[W, b]` per layer; for benchmarks). Answers sat (weights
    meeting the margin in float64) or unknown, never unsat.
    """

    name = "admm"
    description = "gradient-free ADMM trainer (Taylor et al. 2016), closed-form layer updates"
    kinds = frozenset({"train"})
    logics = frozenset({"numeric"})
    optimizes = False
    exact = False
    modules = ("numpy",)

    def __init__(self, **options):
        super().__init__(**options)
        self.opts = check_options(self.name, options, OPTIONS)
        if self.opts["loss"] not in ("hinge", "square"):
            raise UnsupportedQuery(f"admm: unknown loss {self.opts['loss']!r}",
                                   hint="use loss=hinge or loss=square")

    def solve_train(self, problem, timeout: float | None = None):
        net, o = problem.net, self.opts
        if not sequential(net):
            raise UnsupportedQuery(f"admm trains only a chain of layers, each reading the one "
                                   f"before, ending at the output; network '{net.name}' is not",
                                   hint="use the sgd backend for other layer graphs")
        start = time.perf_counter()
        deadline = None if timeout is None else start + timeout
        info = {"beta": o["beta"], "gamma": o["gamma"], "loss": o["loss"], "iterations": 0}
        # ADMM stalls from some starts (Taylor et al. report the same sensitivity); the
        # iteration budget is split over restarts from fresh seeds.
        restarts = max(1, int(o["restarts"]))
        per = max(1, o["max_iter"] // restarts)
        why = f"{o['max_iter']} iterations over {restarts} starts"
        for r in range(restarts):
            info["seed"] = o["seed"] + r
            params, ok, min_gap, its = _attempt(problem, o, o["seed"] + r, per, deadline, start)
            info["iterations"] += its
            if ok or (deadline is not None and time.perf_counter() > deadline):
                break
        if not ok and deadline is not None and time.perf_counter() > deadline:
            why = f"timeout {timeout} s"
        return finish(problem, params, ok, min_gap, info, start, why)


def _attempt(problem, o, seed, iters, deadline, start):
    """One ADMM run from a seeded random network: (params, ok, min gap, iterations used)."""
    net = problem.net
    beta, gamma = float(o["beta"]), float(o["gamma"])
    beta_max, gamma_max = beta * o["schedule_max"], gamma * o["schedule_max"]
    params = init_params(net, np.random.default_rng(seed))
    mask = unknown_mask(net)
    L = len(net.layers)
    X = np.asarray(problem.X, dtype=np.float64)
    n, k = len(X), problem.n_classes
    c = float(o["target"]) if o["target"] is not None else max(1.0, float(problem.margin))
    if o["warm_epochs"]:
        _warm_start(problem, params, o, seed, deadline)
    S = -np.ones((n, k))  # one-vs-rest signs
    S[np.arange(n), problem.y] = 1.0
    # Start: a forward pass of the random network.
    A, Z = [X], []
    for lay, (W, b) in zip(net.layers, params, strict=True):
        Z.append(A[-1] @ W.T + b)
        A.append(np.maximum(Z[-1], 0.0) if lay.act == "relu" else Z[-1].copy())
    lam = np.zeros((n, k))
    # Leading layers with no unknowns compute fixed features: their a_l stay data.
    first = next(i for i, mk in enumerate(mask) if any(mk))
    gram0 = {}  # the first trained layer's Gram matrix and factor, computed once
    ok, min_gap = meets(problem, params)
    it = 0
    while not ok and it < iters:
        if deadline is not None and time.perf_counter() > deadline:
            break
        it += 1
        for li in range(first, L - 1):
            lay = net.layers[li]
            _fit(lay, A[li], Z[li], params[li], mask[li], o["ridge"],
                 gram0 if li == first else None)
            W1, b1 = params[li + 1]
            M = beta * W1.T @ W1 + gamma * np.eye(lay.size)
            h = np.maximum(Z[li], 0.0) if lay.act == "relu" else Z[li]
            A[li + 1] = np.linalg.solve(M, (beta * (Z[li + 1] - b1) @ W1 + gamma * h).T).T
            W, b = params[li]
            Z[li] = _z_step(A[li + 1], A[li] @ W.T + b, beta, gamma, lay.act)
        _fit(net.layers[-1], A[L - 1], Z[L - 1], params[L - 1], mask[L - 1], o["ridge"],
             gram0 if first == L - 1 else None)
        W, b = params[L - 1]
        mo = A[L - 1] @ W.T + b
        Z[L - 1] = _out_step(S, c, lam, mo, beta, o["loss"])
        lam += beta * (Z[L - 1] - mo)
        ok, min_gap = meets(problem, params)
        if o["callback"] is not None:
            o["callback"](it, time.perf_counter() - start, params)
        if o["schedule"] != 1.0:
            # Growing penalties (as in many ADMM schemes for non-convex problems) force the
            # layer variables to agree with the network's forward pass as iterations go on.
            beta, gamma = min(beta * o["schedule"], beta_max), min(gamma * o["schedule"], gamma_max)
    return params, ok, min_gap, it


def _warm_start(problem, params, o, seed, deadline):
    """A few epochs of minibatch Adam (the sgd trainer's) on the margin hinge, in place."""
    from nnir.backends.train.sgd import OPTIONS as SGD
    from nnir.backends.train.sgd import Adam

    adam = Adam(problem.net, params, {**SGD, "lr": o["warm_lr"]})
    X, y = np.asarray(problem.X, dtype=np.float64), np.asarray(problem.y)
    rng = np.random.default_rng(seed + 7919)
    for _ in range(int(o["warm_epochs"])):
        if deadline is not None and time.perf_counter() > deadline:
            break
        adam.epoch(X, y, float(problem.margin) + SGD["pad"], int(o["warm_batch"]), rng)


def _fit(lay, A, Z, pair, mask, ridge, cache, box_steps=50):
    """Least-squares update of one layer's unknown tensors so that A W^T + b ~ Z (ridge-damped).

    A constant-1 column carries the bias; known tensors are held and subtracted out. `cache`
    (a dict, first trained layer only, whose A never changes) keeps the Gram matrix and its
    Cholesky factor. With a box, the unconstrained solution is clipped and then improved by
    `box_steps` accelerated projected-gradient (FISTA) steps on the same quadratic: an
    approximate box-constrained least squares, not the paper's exact update.
    """
    W, b = pair
    w_unk, b_unk = mask
    if not (w_unk or b_unk):
        return
    R = Z.copy()
    if not w_unk:
        R -= A @ W.T
    if not b_unk:
        R -= b
    # [A | 1]^T R and its Gram matrix, without forming [A | 1] (a copy of the data per call).
    parts = ([A.T @ R] if w_unk else []) + ([R.sum(axis=0)[None, :]] if b_unk else [])
    BR = np.vstack(parts)  # a sum over points: shardable
    if cache:
        G, C = cache["gram"], cache["chol"]
    else:
        G = _gram(A, w_unk, b_unk)  # a sum over points: shardable
        G += ridge * (1.0 + np.trace(G) / len(G)) * np.eye(len(G))
        C = np.linalg.cholesky(G)
        if cache is not None:
            cache.update(gram=G, chol=C)
    sol = np.linalg.solve(C.T, np.linalg.solve(C, BR))  # (cols, size)

    def put(x):
        if w_unk:
            W[...] = x[:A.shape[1]].T
        if b_unk:
            b[...] = x[-1]
        project_layer(lay, pair)
        return np.vstack(([W.T] if w_unk else []) + ([b[None, :]] if b_unk else []))

    sol = put(sol)
    if not boxed(lay):
        return
    step = 1.0 / np.linalg.eigvalsh(G)[-1]
    x, yk, t = sol, sol, 1.0
    for _ in range(box_steps):
        x_new = put(yk - step * (G @ yk - BR))
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        yk = x_new + ((t - 1) / t_new) * (x_new - x)
        x, t = x_new, t_new
    put(x)


def _gram(A, w_unk, b_unk):
    """[A | 1]^T [A | 1], restricted to the unknown parts (weights A, bias the 1 column)."""
    if not w_unk:
        return np.array([[float(len(A))]])
    s = A.sum(axis=0)
    if not b_unk:
        return A.T @ A
    d = A.shape[1]
    G = np.empty((d + 1, d + 1))
    G[:d, :d] = A.T @ A
    G[:d, d] = G[d, :d] = s
    G[d, d] = len(A)
    return G


def _z_step(a, m, beta, gamma, act):
    """argmin_z gamma (a - h(z))^2 + beta (z - m)^2, elementwise (h = ReLU or identity)."""
    mix = (gamma * a + beta * m) / (gamma + beta)
    if act != "relu":
        return mix
    zp = np.maximum(mix, 0.0, out=mix)  # branch z >= 0
    # Branch z <= 0 is zn = min(m, 0), where h(z) = 0. Compare the two objectives without
    # forming both: f(zp) - f(zn) = gamma zp (zp - 2a) + beta ((zp - m)^2 - max(m, 0)^2),
    # in place, as these arrays are (points x units) and the step is memory-bound.
    d = zp - 2.0 * a
    d *= zp
    d *= gamma
    e = zp - m
    e *= e
    d += beta * e
    np.maximum(m, 0.0, out=e)
    e *= e
    e *= beta
    d -= e
    return np.where(d <= 0, zp, np.minimum(m, 0.0))


def _out_step(S, c, lam, m, beta, loss):
    """argmin_z loss(z) + lam z + beta (z - m)^2, elementwise; loss is max(c - s z, 0) (hinge)
    or (z - s c)^2 (square), with s = +1 on the label's logit and -1 elsewhere.
    """
    if loss == "square":
        return (2 * S * c - lam + 2 * beta * m) / (2 + 2 * beta)
    z1 = m - lam / (2 * beta)  # hinge inactive (s z >= c)
    z2 = m + (S - lam) / (2 * beta)  # hinge active (s z <= c)
    return np.where(S * z1 >= c, z1, np.where(S * z2 <= c, z2, S * c))
