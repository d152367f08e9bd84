"""Shared pieces of the numeric trainers: options, seeded init, box projection, margin check.

Both trainers hold one `[W, b]` float64 pair per layer of the network (known `Const` tensors as
their float copies, never changed) and a mask of which tensors are unknown; a trained network is
accepted only after a float64 forward pass of the network built from those weights (through
`nnir.ir.evaluate.evaluate_batch`) meets the margin on every point. The caller replays it exactly.
"""
from __future__ import annotations

import time
from dataclasses import fields, replace

import numpy as np

from nnir.backends.base import Answer, Backend
from nnir.ir.const import Const
from nnir.ir.evaluate import evaluate_batch
from nnir.ir.nodes import Network, Unknown

# The float64 check asks for this much more than the margin, so that rounding differences
# between the float forward pass and the caller's exact replay (~1e-15 relative) cannot flip it.
CHECK_TOL = 1e-9


class NumericTrainer(Backend):
    """What the numeric trainers share: their capabilities, and options checked against the
    subclass's `Options` dataclass (`self.opts`: a dict of every option's value)."""

    kinds = frozenset({"train"})
    logics = frozenset({"numeric"})
    optimizes = False
    exact = False
    modules = ("numpy",)

    def __init__(self, **options):
        super().__init__(**options)  # UsageError on an unknown or ill-typed option
        self.opts = {f.name: getattr(self.opts, f.name) for f in fields(self.opts)}


def defaults(cls) -> dict:
    """Option name -> default of an options dataclass."""
    return {f.name: f.default for f in fields(cls)}


def init_params(net: Network, rng: np.random.Generator) -> list[list[np.ndarray]]:
    """One `[W, b]` per layer: known tensors copied, unknown ones He-initialised and boxed.

    He et al. (2015): W ~ N(0, 2 / fan_in) under a ReLU (1 / fan_in for a linear layer), b = 0.
    """
    params = []
    for lay in net.layers:
        fan_in = net.size_of(lay.src)
        scale = np.sqrt((2.0 if lay.act == "relu" else 1.0) / fan_in)
        W = (rng.normal(0.0, scale, (lay.size, fan_in)) if isinstance(lay.weight, Unknown)
             else np.array(lay.weight.f64, dtype=np.float64))
        b = (np.zeros(lay.size) if isinstance(lay.bias, Unknown)
             else np.array(lay.bias.f64, dtype=np.float64))
        params.append([W, b])
    project(net, params)
    return params


def unknown_mask(net: Network) -> list[tuple[bool, bool]]:
    """Per layer: (weight is unknown, bias is unknown)."""
    return [(isinstance(lay.weight, Unknown), isinstance(lay.bias, Unknown))
            for lay in net.layers]


def project(net: Network, params) -> None:
    """Clip every unknown tensor into its box [lo, hi] in place (projected gradient step)."""
    for lay, pair in zip(net.layers, params, strict=True):
        project_layer(lay, pair)


def boxed(lay) -> bool:
    """True when one of the layer's unknown tensors has a box."""
    return any(isinstance(t, Unknown) and (t.lo is not None or t.hi is not None)
               for t in (lay.weight, lay.bias))


def project_layer(lay, pair) -> None:
    """Clip the layer's unknown tensors (`pair` = [W, b]) into their boxes, in place."""
    for i, t in enumerate((lay.weight, lay.bias)):
        if isinstance(t, Unknown) and (t.lo is not None or t.hi is not None):
            lo = -np.inf if t.lo is None else float(t.lo)
            hi = np.inf if t.hi is None else float(t.hi)
            # float(Fraction) rounds to nearest and may leave the box; step inside it.
            if t.lo is not None and lo < t.lo:
                lo = np.nextafter(lo, np.inf)
            if t.hi is not None and hi > t.hi:
                hi = np.nextafter(hi, -np.inf)
            np.clip(pair[i], lo, hi, out=pair[i])


def build(net: Network, params) -> Network:
    """`net` with each unknown tensor replaced by `Const.of_floats` of its current value."""
    layers = []
    for lay, (W, b) in zip(net.layers, params, strict=True):
        if isinstance(lay.weight, Unknown):
            lay = replace(lay, weight=Const.of_floats(W))
        if isinstance(lay.bias, Unknown):
            lay = replace(lay, bias=Const.of_floats(b))
        layers.append(lay)
    return replace(net, layers=tuple(layers))


def answer_weights(net: Network, params) -> list:
    """`Answer.weights`: trained tensors as float arrays, known ones as their exact Fractions."""
    out = []
    for lay, (W, b) in zip(net.layers, params, strict=True):
        out.append(tuple(t.exact.tolist() if isinstance(t, Const) else a.copy()
                         for t, a in ((lay.weight, W), (lay.bias, b))))
    return out


def gaps(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per row of logits `Z`: the label's logit minus the largest other logit."""
    rows = np.arange(len(Z))
    others = Z.copy()
    others[rows, y] = -np.inf
    return Z[rows, y] - others.max(axis=1)


def meets(problem, params) -> tuple[bool, float]:
    """Float64 forward pass of the built network: (every point meets the margin, min gap)."""
    if not all(np.all(np.isfinite(a)) for pair in params for a in pair):
        return False, float("nan")
    net = build(problem.net, params)
    g = gaps(evaluate_batch(net, problem.X)[net.output], problem.y)
    need = float(problem.margin) + CHECK_TOL
    return bool(np.all(g >= need)), float(g.min()) if len(g) else float("inf")


def finish(problem, params, ok: bool, min_gap: float, info: dict, start: float,
           why: str) -> Answer:
    """The trainer's `Answer`: sat with weights, or unknown saying which budget ran out."""
    info["time_s"] = time.perf_counter() - start
    info["min_gap_float"] = min_gap
    if ok:
        return Answer("sat", weights=answer_weights(problem.net, params), info=info,
                      message=f"all {len(problem.y)} points meet margin {problem.margin} "
                              "in float64")
    return Answer("unknown", info=info,
                  message=f"no weights found ({why}); a numeric trainer proves nothing, try "
                          "more epochs, another seed, or an exact backend")


def sequential(net: Network) -> bool:
    """True when each layer reads the one before it and the output is the last layer."""
    prev = net.input.name
    for lay in net.layers:
        if lay.src != prev:
            return False
        prev = lay.name
    return net.output == prev
