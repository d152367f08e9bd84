"""The numeric trainers (sgd, admm): trained networks meet the margin on every point, checked by
an independent float64 forward pass and by exact rational replay; known tensors stay fixed,
boxes hold, and an impossible problem gives "unknown" (a numeric trainer never says unsat).
"""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

import nnir
from nnir.backends.train.admm import AdmmBackend
from nnir.backends.train.sgd import SgdBackend
from nnir.errors import UnsupportedQuery, UsageError
from nnir.ir.const import Const
from nnir.ir.evaluate import evaluate
from nnir.ir.nodes import Unknown
from nnir.queries.problem import TrainProblem

BACKENDS = [SgdBackend, AdmmBackend]
# Trainers stop at their iteration budgets (max_epochs, max_iter), which decide the outcome; the
# time limit is only a safety net far above what they need, so a loaded machine cannot fail a
# test by running fewer iterations (a 10 s limit did, for admm with boxes, issue 11).
SAFETY_S = 600


def problem(text: str, X, y, margin: str = "0") -> TrainProblem:
    net = nnir.parse(text).networks[0]
    X = np.asarray(X, dtype=np.float64)
    Xe = np.array([[Fraction(float(v)) for v in row] for row in X], dtype=object)
    return TrainProblem(net, X, Xe, np.asarray(y, dtype=int), Fraction(margin))


def mlp(hidden: int, classes: int, box: str = "") -> str:
    return (f"net n {{ input x[2] in [-1, 1]\n"
            f"  relu h[{hidden}] = unknown {box} x + unknown {box}\n"
            f"  linear y[{classes}] = unknown {box} h + unknown {box} }}")


def xor_data(n: int = 40, seed: int = 1):
    X = np.random.default_rng(seed).uniform(-1, 1, (n, 2))
    X = X[np.abs(X[:, 0] * X[:, 1]) > 0.05]
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def trained(p: TrainProblem, weights):
    """The network with the answer's weights, built here (not by the backend)."""
    layers = []
    for lay, (W, b) in zip(p.net.layers, weights, strict=True):
        def const(t, a):
            if not isinstance(t, Unknown):
                return Const.exact_of(a)
            return Const.of_floats(np.asarray(a, dtype=np.float64))
        layers.append(replace(lay, weight=const(lay.weight, W), bias=const(lay.bias, b)))
    return replace(p.net, layers=tuple(layers))


def assert_meets_margin(p: TrainProblem, ans):
    assert ans.status == "sat", ans.message
    net = trained(p, ans.weights)
    # independent float64 forward pass (plain numpy, sequential or not)
    vals = {net.input.name: p.X}
    for lay in net.layers:
        pre = vals[lay.src] @ np.asarray(lay.weight.f64).T + lay.bias.f64
        vals[lay.name] = np.maximum(pre, 0) if lay.act == "relu" else pre
    Z = vals[net.output]
    for z, label in zip(Z, p.y):
        gap = z[label] - max(v for j, v in enumerate(z) if j != label)
        assert gap > 0 and gap >= float(p.margin)
    # exact replay on every point
    for x, label in zip(p.X_exact, p.y):
        z = evaluate(net, list(x), exact=True)[net.output]
        gap = z[label] - max(v for j, v in enumerate(z) if j != label)
        assert gap > 0 and gap >= p.margin
    return net


@pytest.mark.parametrize("cls", BACKENDS)
@pytest.mark.parametrize("margin", ["0", "0.1"])
def test_xor_with_margin(cls, margin):
    X, y = xor_data()
    p = problem(mlp(16, 2), X, y, margin)
    assert_meets_margin(p, cls().solve_train(p, timeout=SAFETY_S))


@pytest.mark.parametrize("cls", BACKENDS)
def test_two_hidden_layers(cls):
    text = """net n { input x[2] in [-1, 1]
      relu h[16] = unknown x + unknown
      relu g[16] = unknown h + unknown
      linear y[2] = unknown g + unknown }"""
    X, y = xor_data()
    p = problem(text, X, y, "0.1")
    assert_meets_margin(p, cls().solve_train(p, timeout=SAFETY_S))


@pytest.mark.parametrize("cls", BACKENDS)
def test_three_classes(cls):
    X = np.random.default_rng(2).uniform(-1, 1, (30, 2))
    X = X[np.abs(np.abs(X[:, 0]) - 0.3) > 0.05]
    y = np.where(X[:, 0] > 0.3, 2, np.where(X[:, 0] < -0.3, 0, 1))
    p = problem(mlp(8, 3), X, y, "0.05")
    assert_meets_margin(p, cls().solve_train(p, timeout=SAFETY_S))


@pytest.mark.parametrize("cls", BACKENDS)
def test_known_layer_unchanged(cls):
    text = """net n { input x[2] in [-1, 1]
      relu h[3] = [[1, -1], [-1, 1], [0.1, 0.1]] x + [0, 0, 1/3]
      linear y[2] = unknown h + unknown }"""
    X = np.random.default_rng(3).uniform(-1, 1, (30, 2))
    X = X[np.abs(X[:, 0] - X[:, 1]) > 0.1]
    p = problem(text, X, (X[:, 0] > X[:, 1]).astype(int), "0.05")
    net = assert_meets_margin(p, cls().solve_train(p, timeout=SAFETY_S))
    assert net.layers[0] == p.net.layers[0]  # exact values, 0.1 and 1/3 included


@pytest.mark.parametrize("cls", BACKENDS)
def test_boxes_respected(cls):
    X, y = xor_data()
    p = problem(mlp(16, 2, "in [-0.75, 0.75]"), X, y, "0.01")
    net = assert_meets_margin(p, cls().solve_train(p, timeout=SAFETY_S))
    for lay in net.layers:
        for t in (lay.weight, lay.bias):
            assert all(Fraction(-3, 4) <= v <= Fraction(3, 4) for v in t.exact.reshape(-1))


@pytest.mark.parametrize("cls,opts", [(SgdBackend, {"max_epochs": 300}),
                                      (AdmmBackend, {"max_iter": 100})])
def test_impossible_is_unknown(cls, opts):
    text = "net n { input x[2] in [-1, 1]\n  linear y[2] = unknown x + unknown }"
    p = problem(text, [[0, 0], [1, 1], [0, 1], [1, 0]], [0, 0, 1, 1])
    ans = cls(**opts).solve_train(p, timeout=SAFETY_S)
    assert ans.status == "unknown" and ans.weights is None


def test_sgd_layer_graph_and_admm_refuses_it():
    text = """net n { input x[2] in [-1, 1]
      relu h[8] = unknown x + unknown
      relu g[8] = unknown h + unknown
      linear y[2] = unknown h + unknown }"""  # y reads h, skipping g
    X, y = xor_data()
    p = problem(text, X, y, "0.1")
    assert_meets_margin(p, SgdBackend().solve_train(p, timeout=SAFETY_S))
    with pytest.raises(UnsupportedQuery):
        AdmmBackend().solve_train(p)


def test_unknown_option():
    with pytest.raises(UsageError, match="max_epochs"):  # the message names the valid ones
        SgdBackend(epochs=3)


@pytest.mark.parametrize("cls,opts", [(SgdBackend, {"batch_size": 16, "lr": 0.01}),
                                      (AdmmBackend, {"warm_epochs": 5, "warm_lr": 0.01}),
                                      (AdmmBackend, {"schedule": 1.01})])
def test_options_callback_and_variants(cls, opts):
    """The benchmark options: callback(iteration, seconds, params) with the live weights,
    minibatch sgd, the admm warm start and penalty schedule still give replayable answers.
    """
    calls = []

    def callback(it, seconds, params):
        calls.append((it, seconds, [w.shape for w, _ in params]))

    X, y = xor_data()
    p = problem(mlp(16, 2), X, y, "0.05")
    ans = cls(callback=callback, **opts).solve_train(p, timeout=SAFETY_S)
    assert_meets_margin(p, ans)
    assert calls and calls[0][0] == 1 and calls[0][2] == [(16, 2), (2, 16)]
    assert all(a[1] <= b[1] for a, b in zip(calls, calls[1:]))


def test_admm_workers_match_one_process():
    """workers=2 splits the points over two processes: the same iterations give the same
    weights as one process, up to the rounding of sums taken in another order."""
    X, y = xor_data(60)
    p = problem(mlp(8, 2), X, y, "0.5")  # too much margin for 30 iterations: compare weights
    seen = {}

    def record(name):
        return lambda it, s, params: seen.__setitem__(name, [[a.copy() for a in pr]
                                                             for pr in params])

    for name, workers in (("one", 1), ("two", 2)):
        b = AdmmBackend(max_iter=30, restarts=1, workers=workers, callback=record(name))
        assert b.solve_train(p, timeout=SAFETY_S).info["iterations"] == 30
    for (W1, b1), (W2, b2) in zip(seen["one"], seen["two"], strict=True):
        assert np.allclose(W1, W2, rtol=1e-8, atol=1e-10) and np.allclose(b1, b2, atol=1e-10)


def test_admm_workers_solve_and_stop():
    X, y = xor_data()
    p = problem(mlp(16, 2), X, y, "0.05")
    assert_meets_margin(p, AdmmBackend(workers=2).solve_train(p, timeout=SAFETY_S))
    import multiprocessing
    assert not multiprocessing.active_children()  # the worker processes were stopped
