"""The layer-wise route for two or more hidden layers: fix the early layers, solve the rest exactly.

For `input -> relu ... -> relu h_{L-1} -> relu h_L -> linear` (2 classes), every layer before
h_L is fixed from a warm start, its features (the values of h_{L-1}) are computed EXACTLY in
rationals, and what is left (features -> relu h_L -> linear) is the one-hidden-layer problem of
the signed encoding (`routes.signed_route`: QF_LRA for z3/cvc5, big-M MILP for HiGHS, CEGIS).
The naive QF_NRA encoding fails even on 3-2-2-2; this route trains 3-4-4-2 on 200 points.

Warm starts (`warm`): "sgd" (default) runs the gradient baseline (`backends/train/sgd.py`) with
`warm_epochs` (default 500) on the whole problem and keeps its early layers, also when it does
not fit every point (read through sgd's `callback`; such seeds are tried after the fitting ones);
"random" uses the He initialisation of `backends/train/common.init_params`. Seeds `seed`,
`seed + 1`, ... for `restarts` (default 5) attempts; each exact solve of a tail gets at most
`attempt_timeout` s (default 30). Warm starts are clipped into the weight boxes; the signed part
enforces its own boxes. Warm weights are rounded to multiples of 2**-`warm_bits` (default 12).
The sign count of the sgd solution's last hidden layer is tried first.

A `sat` is a genuine network (replayed exactly by the caller). With fixed early layers the route
proves nothing when it fails: it answers `unknown` after the last warm start, saying why. Only
when every early layer is *known* (no warm start needed) is its `unsat` a verdict on the query.
"""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np

from nnir.backends.train.common import init_params, sequential
from nnir.backends.train.sgd import OPTIONS, SgdBackend
from nnir.backends.train_exact.cegis import Run, box_violations
from nnir.backends.train_exact.normalise import SignedForm, signed_form
from nnir.backends.train_exact.routes import signed_route
from nnir.ir.const import Const
from nnir.ir.evaluate import evaluate
from nnir.ir.nodes import Input, Network, Unknown
from nnir.queries.problem import TrainProblem
from nnir.queries.train import replay_train, with_weights


def tail_network(net: Network, hi=None) -> Network:
    """The last hidden layer and the output layer, reading the features as their input."""
    feat = net.layers[-3]
    hi = [0] * feat.size if hi is None else hi
    inp = Input(feat.name, feat.size, Const.exact_of([0] * feat.size), Const.exact_of(hi))
    return replace(net, input=inp, layers=net.layers[-2:], facts=None)


def layerwise_form(net: Network) -> tuple[SignedForm | None, str]:
    """The signed form of the tail of `net`, or None and why the layer-wise route does not apply."""
    if len(net.layers) < 3:
        return None, "fewer than two hidden layers (use the signed encoding)"
    if not sequential(net) or any(lay.act != "relu" for lay in net.layers[:-1]) or \
            net.layers[-1].act != "linear":
        return None, "not a chain input -> relu ... -> relu -> linear output"
    spec, why = signed_form(tail_network(net))
    return spec, "" if spec is not None else f"its last two layers: {why}"


def _exact(t, a, bits: int) -> list:
    """A tensor's exact values: a known one's own; an unknown one's floats rounded to multiples
    of 2**-bits (short rationals keep the SMT tail small) and clipped into its box."""
    if isinstance(t, Const):
        return t.exact.tolist()

    def q(v):
        r = Fraction(round(float(v) * 2 ** bits), 2 ** bits)
        r = r if t.lo is None else max(r, t.lo)
        return r if t.hi is None else min(r, t.hi)

    return np.vectorize(q, otypes=[object])(np.asarray(a)).tolist()


def warm_starts(run: Run):
    """Yield (description, exact (W, b) of every early layer, preferred sign count or None)."""
    p, o = run.problem, run.opts
    early = p.net.layers[:-2]
    if not any(isinstance(t, Unknown) for lay in early for t in (lay.weight, lay.bias)):
        yield "known early layers", [(lay.weight.exact.tolist(), lay.bias.exact.tolist())
                                     for lay in early], None
        return

    seed0, warm = int(o.get("seed", 0)), o.get("warm", "sgd")
    if warm not in ("sgd", "random"):
        raise ValueError(f"layerwise: option warm must be 'sgd' or 'random', not {warm!r}")
    later: list = []
    for s in range(seed0, seed0 + int(o.get("restarts", 5))):
        left = run.left()
        if left is not None and left <= 0:
            return
        how = f"random seed {s}"
        if warm == "sgd":
            live: dict = {}
            extra = {"callback": lambda _e, _t, ps, live=live: live.update(p=ps)} \
                if "callback" in OPTIONS else {}
            sgd = SgdBackend(seed=s, max_epochs=int(o.get("warm_epochs", 500)), **extra)
            ans = sgd.solve_train(p, timeout=None if left is None else left / 2)
            if ans.status != "sat":  # tried after every fitting seed (its tail may not fit)
                if "p" in live:
                    later.append((f"sgd seed {s} (not fitting)", live["p"]))
                continue
            params, how = ans.weights, f"sgd seed {s}"
        else:
            params = init_params(p.net, np.random.default_rng(s))
        yield _fixed(early, how, params, o)
    for how, params in later:
        if run.left() is None or run.left() > 0:
            yield _fixed(early, how, params, o)


def _fixed(early, how: str, params, o: dict):
    """(how, exact early weights, the sign count of the warm start's last hidden layer)."""
    bits = int(o.get("warm_bits", 12))
    V = np.asarray(params[-1][0], dtype=np.float64)
    return how, [(_exact(lay.weight, W, bits), _exact(lay.bias, b, bits))
                 for lay, (W, b) in zip(early, params)], int(np.sum(V[1] - V[0] > 0))


def features(net: Network, fixed: list) -> Network:
    """The early layers of `net` with `fixed` weights, as a network whose output is the features."""
    k = len(fixed)
    head = replace(net, layers=net.layers[:k], output=net.layers[k - 1].name, facts=None)
    return with_weights(head, fixed)


def layerwise_route(run: Run, spec: SignedForm):
    """Try warm starts until the tail fits exactly; (status, weights, message, info)."""
    p = run.problem
    tried, last = [], ("unknown", None, "no warm start was tried", {})
    for how, fixed, k in warm_starts(run):
        head = features(p.net, fixed)
        F = np.array([evaluate(head, list(x), exact=True)[head.output] for x in p.X_exact],
                     dtype=object).reshape(len(p.y), -1)
        hi = [max(col) for col in F.T] if len(F) else None
        sub = TrainProblem(tail_network(p.net, hi), F.astype(np.float64), F, p.y, p.margin,
                           p.name)
        status, weights, msg, info = signed_route(
            run.on(sub, float(run.opts.get("attempt_timeout", 30))), spec, k, warm_start=False)
        tried.append(how)
        info = {**info, "warm_starts": len(tried), "warm": how}
        if status == "sat":
            full = fixed + list(weights)
            bad = box_violations(p.net, full)
            if bad or not replay_train(p, full).ok:
                return "error", None, f"layerwise: the composed network fails its own check " \
                    f"({bad[0] if bad else 'exact replay'})", info
            return "sat", full, f"{run.backend}: {msg} (layer-wise, early layers from {how})", info
        last = (status, None, msg, info)
        if how == "known early layers" or status == "error" or \
                (status == "timeout" and run.left() is not None and run.left() <= 0):
            return last
    status, _, msg, info = last
    if run.left() is not None and run.left() <= 0:
        return "timeout", None, f"layerwise: time limit reached after {len(tried)} warm starts " \
            f"({', '.join(tried)})", info
    return "unknown", None, (f"layerwise: no exact fit of the last two layers for {len(tried)} "
                             f"warm starts ({', '.join(tried)}; last: {status} {msg}); fixing "
                             "the early layers cannot prove unsat. Try more `restarts`, "
                             "another `seed`, or encoding naive"), info
