"""`train` queries: build the problem from the dataset, replay the trained network, write it out.

A trained network is reported only after it classifies every training point with the margin in
exact rational arithmetic (the float64 result is reported beside it).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from nnir.data import load_dataset
from nnir.errors import DslError
from nnir.ir.const import Const
from nnir.ir.evaluate import evaluate, evaluate_batch
from nnir.ir.nodes import Network, Program, Train, Unknown
from nnir.queries.problem import TrainProblem


def prepare_train(prog: Program, q: Train) -> TrainProblem:
    """The problem of a `train` query; raises `DslError` at the query for unusable data."""
    net = prog.network(q.net)
    if not net.has_unknowns:
        raise DslError(f"network '{net.name}' has no unknown weights to train", q.span,
                       "write `unknown` for the weights to be found, e.g. `relu h[4] = unknown x`")
    data = load_dataset(prog.dataset(q.data), prog.base_dir)
    if data.dim != net.input.size:
        raise DslError(f"dataset '{q.data}' has points of dimension {data.dim}, but network "
                       f"'{net.name}' takes {net.input.size} inputs", q.span)
    k = net.output_size
    if k < 2:
        raise DslError(f"network '{net.name}' has {k} output; training needs one logit per "
                       "class (at least 2)", q.span)
    if int(data.y.max()) >= k:
        raise DslError(f"dataset '{q.data}' has label {int(data.y.max())}, but network "
                       f"'{net.name}' has only {k} outputs (labels must be 0..{k - 1})", q.span)
    if q.weights is not None:  # the query's box applies to every tensor without its own
        lo, hi = q.weights
        net = replace(net, layers=tuple(
            replace(lay, weight=_boxed(lay.weight, lo, hi), bias=_boxed(lay.bias, lo, hi))
            for lay in net.layers))
    margin = q.margin if q.margin is not None else Fraction(0)
    return TrainProblem(net, data.X, data.exact, data.y, margin, q.name)


def _boxed(t, lo, hi):
    return replace(t, lo=lo, hi=hi) if isinstance(t, Unknown) and t.lo is None else t


def with_weights(net: Network, weights) -> Network:
    """`net` with every layer's (W, b) replaced by the given values (floats taken exactly)."""
    layers = []
    for lay, (W, b) in zip(net.layers, weights, strict=True):
        layers.append(replace(lay, weight=_const(W), bias=_const(b)))
    return replace(net, layers=tuple(layers))


def _const(a) -> Const:
    if isinstance(a, Const):
        return a
    arr = np.asarray(a, dtype=object)
    if all(isinstance(v, Fraction) for v in arr.reshape(-1)):
        return Const.exact_of(arr)
    return Const.of_floats(np.asarray(a, dtype=np.float64))


def test_accuracy(net: Network, prog: Program, test: str) -> tuple[float, int]:
    """Float64 accuracy (strict arg-max) of a trained network on the held-out dataset `test`."""
    data = load_dataset(prog.dataset(test), prog.base_dir)
    if data.dim != net.input.size:
        raise DslError(f"test dataset '{test}' has points of dimension {data.dim}, but network "
                       f"'{net.name}' takes {net.input.size} inputs")
    z = evaluate_batch(net, data.X)[net.output]
    lab = z[np.arange(len(z)), data.y] if data.y.max() < z.shape[1] else None
    if lab is None:
        raise DslError(f"test dataset '{test}' has labels beyond the network's outputs")
    zo = z.copy()
    zo[np.arange(len(z)), data.y] = -np.inf
    return float(np.mean(lab > zo.max(axis=1))), len(z)


@dataclass
class TrainReplay:
    net: Network
    exact_ok: int  # points whose label wins by the margin, in exact arithmetic
    float_ok: int  # the same in float64
    n: int
    worst: list[int]  # indices of failing points (exact), worst first
    min_margin: Fraction | None  # smallest label-vs-best-other gap over all points (exact)

    @property
    def ok(self) -> bool:
        return self.exact_ok == self.n


def replay_train(problem: TrainProblem, weights) -> TrainReplay:
    """Check trained weights on every training point, exactly and in float64."""
    net = with_weights(problem.net, weights)
    m = problem.margin
    gaps = []
    for x, label in zip(problem.X_exact, problem.y):
        out = evaluate(net, list(x), exact=True)[net.output]
        others = [v for j, v in enumerate(out) if j != label]
        gaps.append(out[label] - max(others))
    good = [(g > 0) if m == 0 else (g >= m) for g in gaps]
    zf = evaluate_batch(net, problem.X)[net.output]
    lab = zf[np.arange(len(zf)), problem.y]
    zo = zf.copy()
    zo[np.arange(len(zf)), problem.y] = -np.inf
    gf = lab - zo.max(axis=1)
    mf = float(m)
    float_ok = int(np.sum(gf > 0 if m == 0 else gf >= mf))
    bad = sorted((i for i, g in enumerate(good) if not g), key=lambda i: gaps[i])
    return TrainReplay(net, sum(good), float_ok, len(gaps), bad, min(gaps) if gaps else None)
