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
- restarts after the first start from a few epochs of Adam (`restart_warm`), not at random.
The weight updates need only sums over points ([A | 1]^T [A | 1], [A | 1]^T Z); every other step is
per point. With `workers=N` the points are split into N shards held by worker processes, which do
the per-point steps and return their partial sums, as in the paper's data-parallel scheme.
"""
from __future__ import annotations

import multiprocessing as mp
import time
import traceback

import numpy as np

from nnir import progress
from nnir.backends.options import AdmmOptions
from nnir.backends.train.common import (
    CHECK_TOL,
    NumericTrainer,
    boxed,
    defaults,
    finish,
    gaps,
    init_params,
    meets,
    project_layer,
    sequential,
    unknown_mask,
)
from nnir.backends.train.sgd import OPTIONS as SGD
from nnir.backends.train.sgd import Adam
from nnir.errors import BackendError, UnsupportedQuery

OPTIONS = defaults(AdmmOptions)


class AdmmBackend(NumericTrainer):
    """ADMM trainer (Taylor et al. 2016), numpy. Options: seed, max_iter (in all), restarts
    (fresh seeds seed, seed+1, ... sharing max_iter), beta, gamma, loss ("hinge" | "square"),
    target (output scale c, default max(1, margin)), ridge; warm_epochs (epochs of minibatch
    Adam, batch warm_batch, step warm_lr, before ADMM starts: 0 = none), schedule (beta and
    gamma are multiplied by this each iteration, up to schedule_max times their start: 1 = fixed
    penalties, as in the paper), callback (`callback(iteration, seconds, params)` after each
    iteration, `params` the live `[W, b]` per layer; for benchmarks), workers (processes the
    points are split over: 1 = this process), restart_warm, restart_lr (epochs and step of the
    Adam start of every restart after the first, when warm_epochs is 0). Answers sat (weights
    meeting the margin in float64) or unknown, never unsat.
    """

    name = "admm"
    description = "gradient-free ADMM trainer (Taylor et al. 2016), closed-form layer updates"
    Options = AdmmOptions

    def __init__(self, **options):
        super().__init__(**options)
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
        cache = {}
        with _shards(problem, o) as shards:
            for r in range(restarts):
                info["seed"] = o["seed"] + r
                params, ok, min_gap, its = _attempt(problem, o, o["seed"] + r, per, deadline,
                                                    start, shards, cache)
                info["iterations"] += its
                if ok or (deadline is not None and time.perf_counter() > deadline):
                    break
        if not ok and deadline is not None and time.perf_counter() > deadline:
            why = f"timeout {timeout} s"
        return finish(problem, params, ok, min_gap, info, start, why)


def _attempt(problem, o, seed, iters, deadline, start, shards, cache):
    """One ADMM run from a seeded random network: (params, ok, min gap, iterations used).

    `shards` hold the per-point variables (a_l, z_l, lam) of disjoint sets of points and do the
    per-point steps; the weight updates here solve with the sums they return. `cache` keeps the
    first trained layer's Gram matrix and factor across restarts (its a_l is data).
    """
    net = problem.net
    beta, gamma = float(o["beta"]), float(o["gamma"])
    beta_max, gamma_max = beta * o["schedule_max"], gamma * o["schedule_max"]
    params = init_params(net, np.random.default_rng(seed))
    mask = unknown_mask(net)
    L = len(net.layers)
    if o["warm_epochs"]:
        _warm_start(problem, params, o["warm_epochs"], o["warm_lr"], o, seed, deadline)
    elif seed != o["seed"] and o["restart_warm"]:
        # A restart: a random start stalled; start from a few epochs of Adam instead.
        _warm_start(problem, params, o["restart_warm"], o["restart_lr"], o, seed, deadline)
    # Leading layers with no unknowns compute fixed features: their a_l stay data.
    first = next(i for i, mk in enumerate(mask) if any(mk))
    sums = shards.call("reset", params, "gram" not in cache)
    ok, min_gap = meets(problem, params)
    need = float(problem.margin) + CHECK_TOL
    it = 0
    while not ok and it < iters:
        if deadline is not None and time.perf_counter() > deadline:
            break
        it += 1
        progress.show(f"admm: seed {seed}, iteration {it} of {iters}")
        for li in range(first, L):
            _fit(net.layers[li], *_total(sums), params[li], mask[li], o["ridge"],
                 cache if li == first else None)
            if li < L - 1:
                sums = shards.call("hidden", li, params[li], params[li + 1], beta, gamma)
        out = shards.call("output", params, beta)
        sums = [s for s, _ in out]
        min_gap = min(g for _, g in out)
        if min_gap >= need - 1e-7:  # the shards' plain forward pass; confirm as documented
            ok, min_gap = meets(problem, params)
        if o["callback"] is not None:
            o["callback"](it, time.perf_counter() - start, params)
        if o["schedule"] != 1.0:
            # Growing penalties (as in many ADMM schemes for non-convex problems) force the
            # layer variables to agree with the network's forward pass as iterations go on.
            beta, gamma = min(beta * o["schedule"], beta_max), min(gamma * o["schedule"], gamma_max)
    return params, ok, min_gap, it


def _total(parts):
    """Sum the shards' (Gram matrix or None, cross term) pairs, in shard order."""
    G = None if parts[0][0] is None else sum(p[0] for p in parts)
    return G, sum(p[1] for p in parts)


class _Shard:
    """The ADMM variables of one set of points (rows): activations a_l, pre-activations z_l and
    the output multiplier lam. Every step here is per point, or a sum over this shard's points.
    """

    def __init__(self, net, X, y, n_classes, c, loss):
        self.net, self.mask, self.c, self.loss = net, unknown_mask(net), c, loss
        self.first = next(i for i, mk in enumerate(self.mask) if any(mk))
        self.X, self.y = X, y
        self.S = -np.ones((len(y), n_classes))  # one-vs-rest signs
        self.S[np.arange(len(y)), y] = 1.0

    def reset(self, params, gram):
        """Start: a forward pass of the network; the first trained layer's sums."""
        self.A, self.Z = self._forward(params)
        self.lam = np.zeros_like(self.Z[-1])
        return self._sums(self.first, params, gram)

    def _forward(self, params):
        A, Z = [self.X], []
        for lay, (W, b) in zip(self.net.layers, params, strict=True):
            Z.append(A[-1] @ W.T + b)
            A.append(np.maximum(Z[-1], 0.0) if lay.act == "relu" else Z[-1].copy())
        return A, Z

    def _sums(self, li, params, gram):
        """This shard's part of layer li's least squares: ([A | 1]^T [A | 1] or None, [A | 1]^T R),
        R = z_li less its known tensors' part. Both are sums over points.
        """
        A, (W, b), (w_unk, b_unk) = self.A[li], params[li], self.mask[li]
        R = self.Z[li].copy()
        if not w_unk:
            R -= A @ W.T
        if not b_unk:
            R -= b
        # without forming [A | 1] (a copy of the data per call)
        BR = np.vstack(([A.T @ R] if w_unk else []) + ([R.sum(axis=0)[None, :]] if b_unk else []))
        return (_gram(A, w_unk, b_unk) if gram else None), BR

    def hidden(self, li, pair, nxt, beta, gamma):
        """a_{li+1} by its linear solve, z_li by the ReLU step; then layer li+1's sums."""
        lay = self.net.layers[li]
        (W, b), (W1, b1) = pair, nxt
        M = beta * W1.T @ W1 + gamma * np.eye(lay.size)
        h = np.maximum(self.Z[li], 0.0) if lay.act == "relu" else self.Z[li]
        self.A[li + 1] = np.linalg.solve(M, (beta * (self.Z[li + 1] - b1) @ W1 + gamma * h).T).T
        self.Z[li] = _z_step(self.A[li + 1], self.A[li] @ W.T + b, beta, gamma, lay.act)
        return self._sums(li + 1, [None] * (li + 1) + [nxt], True)

    def output(self, params, beta):
        """z_L by the loss step, the multiplier update; the first trained layer's sums for the
        next iteration and this shard's least gap of the network's forward pass.
        """
        W, b = params[-1]
        mo = self.A[-2] @ W.T + b
        self.Z[-1] = _out_step(self.S, self.c, self.lam, mo, beta, self.loss)
        self.lam += beta * (self.Z[-1] - mo)
        logits = self._forward(params)[1][-1]
        g = gaps(logits, self.y) if len(self.y) else np.array([np.inf])
        return self._sums(self.first, params, False), float(np.min(g))


def _shards(problem, o):
    """The points split into `workers` contiguous shards: in this process for one worker, else
    one worker process per shard (a context manager that stops them)."""
    X = np.asarray(problem.X, dtype=np.float64)
    y = np.asarray(problem.y)
    c = float(o["target"]) if o["target"] is not None else max(1.0, float(problem.margin))
    workers = max(1, min(int(o["workers"]), len(y)))
    parts = [(problem.net, X[s], y[s], problem.n_classes, c, o["loss"])
             for s in np.array_split(np.arange(len(y)), workers)]
    return _Local(parts) if workers == 1 else _Workers(parts)


class _Local:
    """One shard, in this process."""

    def __init__(self, parts):
        self.shard = _Shard(*parts[0])

    def call(self, method, *args):
        return [getattr(self.shard, method)(*args)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Workers:
    """One worker process per shard, each holding its shard's variables between calls; `call`
    sends a step to all of them and gathers their answers in shard order. The processes are
    spawned (not forked: safe beside threads), sent their points once, and stopped on exit
    (terminated if they do not stop within a second), also after an error or a timeout.
    """

    def __init__(self, parts):
        ctx = mp.get_context("spawn")
        self.procs, self.conns = [], []
        try:
            for _ in parts:
                here, there = ctx.Pipe()
                p = ctx.Process(target=_serve, args=(there,), daemon=True)
                p.start()
                there.close()
                self.procs.append(p)
                self.conns.append(here)
            for conn, part in zip(self.conns, parts, strict=True):
                conn.send(part)
        except BaseException:
            self.close()
            raise

    def call(self, method, *args):
        for conn in self.conns:
            conn.send((method, args))
        out = []
        for conn in self.conns:
            try:
                ok, val = conn.recv()
            except EOFError:
                raise BackendError("admm: a worker process died") from None
            if not ok:
                raise BackendError(f"admm: a worker process failed:\n{val}")
            out.append(val)
        return out

    def close(self):
        for conn in self.conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for p in self.procs:
            p.join(1.0)
            if p.is_alive():
                p.terminate()
                p.join(1.0)
        for conn in self.conns:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _serve(conn):
    """A worker process: build its shard from the first message, then run steps until None."""
    try:
        shard = _Shard(*conn.recv())
        while (msg := conn.recv()) is not None:
            try:
                conn.send((True, getattr(shard, msg[0])(*msg[1])))
            except Exception:
                conn.send((False, traceback.format_exc()))
    except (EOFError, OSError, KeyboardInterrupt):
        pass
    finally:
        conn.close()


def _warm_start(problem, params, epochs, lr, o, seed, deadline):
    """`epochs` epochs of minibatch Adam (the sgd trainer's) on the margin hinge, in place."""
    adam = Adam(problem.net, params, {**SGD, "lr": lr})
    X, y = np.asarray(problem.X, dtype=np.float64), np.asarray(problem.y)
    rng = np.random.default_rng(seed + 7919)
    for _ in range(int(epochs)):
        if deadline is not None and time.perf_counter() > deadline:
            break
        adam.epoch(X, y, float(problem.margin) + SGD["pad"], int(o["warm_batch"]), rng)


def _fit(lay, G, BR, pair, mask, ridge, cache, box_steps=50):
    """Least-squares update of one layer's unknown tensors so that A W^T + b ~ Z (ridge-damped),
    from the sums over points G = [A | 1]^T [A | 1] and BR = [A | 1]^T R (see `_Shard._sums`).

    A constant-1 column carries the bias; known tensors are held and were subtracted out of R.
    `cache` (a dict, first trained layer only, whose A never changes) keeps the Gram matrix and
    its Cholesky factor (G is None once it is there). With a box, the unconstrained solution is
    clipped and then improved by `box_steps` accelerated projected-gradient (FISTA) steps on the
    same quadratic: an approximate box-constrained least squares, not the paper's exact update.
    """
    W, b = pair
    w_unk, b_unk = mask
    if not (w_unk or b_unk):
        return
    if cache:
        G, C = cache["gram"], cache["chol"]
    else:
        G = G + ridge * (1.0 + np.trace(G) / len(G)) * np.eye(len(G))
        C = np.linalg.cholesky(G)
        if cache is not None:
            cache.update(gram=G, chol=C)
    sol = np.linalg.solve(C.T, np.linalg.solve(C, BR))  # (cols, size)

    def put(x):
        if w_unk:
            W[...] = x[:W.shape[1]].T
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
