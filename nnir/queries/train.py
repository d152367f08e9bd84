"""`train` queries: build the problem from the dataset, replay the trained network, write it out.

A trained network is reported only after it classifies every training point with the margin in
exact rational arithmetic (the float64 result is reported beside it).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from nnir import proc
from nnir.backends import registry
from nnir.backends.base import Answer
from nnir.data import load_dataset
from nnir.deadline import Deadline
from nnir.errors import DslError
from nnir.ir.const import Const
from nnir.ir.evaluate import evaluate, evaluate_batch
from nnir.ir.nodes import Network, Program, Train, Unknown
from nnir.options import parse
from nnir.queries import route as routing
from nnir.queries import status as st
from nnir.queries.options import TrainOptions
from nnir.queries.problem import TrainProblem
from nnir.queries.result import Result


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


def run_train(prog: Program, q: Train, backend: str, timeout, options: dict):
    """Train on the route `route.plan` gives, then replay the network on every training point
    before reporting it; a float (MILP) `unsat` is handed to an exact solver to confirm."""
    deadline = Deadline.of(timeout)
    o = parse(TrainOptions, options)
    problem = prepare_train(prog, q)
    notes = [f"{len(problem.y)} points, {problem.n_classes} classes, margin {problem.margin}"]
    plan = routing.plan("train", backend, confirm=o.confirm, problem=problem, span=q.span)
    name = plan.first
    if backend == "auto":
        notes.append(f"auto picked '{name}': {plan.why}")
    solver = registry.get_backend(name, **options)
    ans = solver.solve_train(problem, timeout=deadline.left())
    if ans.status == "unsat" and plan.confirm:
        # HiGHS's infeasibility rests on tolerances: let an exact solver prove it, if it can
        # (in a child stopped at the deadline); unconfirmed, `run_query` reports it `unknown`.
        ans2 = _guarded_call(registry.get_backend(plan.confirm, **options).solve_train, problem,
                             deadline.left())
        if ans2.status in ("sat", "unsat"):
            notes.append(f"{name} said unsat; '{plan.confirm}' answered {ans2.status} exactly")
            name, ans, solver = (plan.confirm, ans2,
                                 registry.get_backend(plan.confirm, **options))
        else:
            notes.append(f"exact confirmation by '{plan.confirm}' gave {ans2.status}; "
                         f"the {name} verdict stands")
    res = Result(q.name, "train", st.train(ans.status), name, message=ans.message, notes=notes,
                 span=q.span)
    res.info = {k: v for k, v in ans.info.items() if isinstance(v, (int, float, str, bool))}
    if ans.status == "sat":
        rep = replay_train(problem, ans.weights)
        res.replay = {"exact": rep.ok, "float64": rep.float_ok == rep.n, "points": rep.n,
                      "exact_correct": rep.exact_ok, "float64_correct": rep.float_ok,
                      "min_margin": float(rep.min_margin)}
        if q.test is not None:
            acc, n_test = test_accuracy(rep.net, prog, q.test)
            res.replay.update(test_accuracy=acc, test_points=n_test)
        if rep.ok:
            res.trained = rep.net
            res.certified = (f"all {rep.n} training points classified with margin "
                             f"{problem.margin} in exact rational arithmetic")
            if rep.float_ok < rep.n:
                res.notes.append(f"float64 evaluation misclassifies {rep.n - rep.float_ok} "
                                 "points (exact arithmetic classifies all)")
        else:
            res.status = "unknown"
            res.message = (f"{name} returned weights that fail {rep.n - rep.exact_ok} of "
                           f"{rep.n} training points in exact replay")
    elif ans.status == "unsat":
        res.certified = (f"exact ({name})" if solver.exact else
                         "MILP under floating-point tolerances, not an exact proof")
        res.exact = solver.exact
    return res


def _guarded_call(solve, problem, timeout):
    """`solve(problem, timeout=timeout)` (an `Answer`) in a child stopped a second past the
    limit, where fork is available and a limit is set."""
    if timeout is None or not proc.available():
        return solve(problem, timeout=timeout)
    reply = proc.call(solve, problem, timeout=timeout + 1.0)
    if isinstance(reply, Answer):
        return reply
    if reply is proc.TIMEOUT:
        return Answer("timeout", message="stopped at the time limit")
    return Answer("error", message=getattr(reply, "message", f"process ended ({reply})"))
