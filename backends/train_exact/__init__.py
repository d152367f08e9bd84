"""Exact training: find weights fitting every training point, or prove none exist (z3/cvc5/HiGHS).

`solve_train_exact` picks an encoding (option `encoding`, reported in `Answer.info["encoding"]`):

- "signed" (`normalise.py`, `routes.signed_route`): input -> relu hidden -> linear output, 2
  classes, hidden weights/biases and output weights unknown. Sign-normalised: QF_LRA for z3/cvc5,
  big-M MILP for HiGHS. Exact both ways (HiGHS's unsat rests on its tolerances and `milp_box`).
- "naive" (`routes.naive_route`): every weight a real unknown, QF_NRA, any architecture; z3/cvc5
  only (HiGHS answers `error`). Correct, but practical only up to ~12 unknown weights.
- "layerwise" (`layerwise.py`): two or more hidden layers, 2 classes: early layers fixed from a
  warm start, the last hidden layer and the output solved by the signed encoding. Its `sat` is
  genuine; it never proves `unsat` (it answers `unknown`) unless the early layers are known.
- "auto" (default): signed when it applies; else layerwise when it applies and the backend is
  HiGHS or the network has more than `NAIVE_MAX_UNKNOWNS` unknown weights; else naive (z3/cvc5).
  More than two classes always go to naive (see `normalise.py` for why).

The signed route starts from an sgd warm start (`warm.py`, option `warm_start`: "sgd" | "none"):
a "find" phase (the warm network if it replays exactly; for HiGHS a restricted MILP with the warm
start as MIP start), then the full model ("prove"); only the full model answers `unsat`.
`info` reports `warm_start`, `phase` and `found_by`. Every route selects points by CEGIS
(`cegis.py`). Options (all optional): encoding, cegis (bool),
init_points, per_round, symmetry (bool), milp_box, sat_slack, threads and HiGHS's tolerances;
layerwise: warm ("sgd" | "random"), warm_epochs, warm_bits, restarts, seed, attempt_timeout.
`info` reports the encoding, `encoding_reason`, `rounds`, `active_points` and
`sign_counts_tried` (signed and layerwise routes).
"""
from __future__ import annotations

import time

from nnir.backends.base import Answer
from nnir.backends.train_exact.cegis import Run
from nnir.backends.train_exact.layerwise import layerwise_form, layerwise_route
from nnir.backends.train_exact.normalise import signed_form
from nnir.backends.train_exact.routes import naive_route, signed_route
from nnir.ir.nodes import Network, Unknown

ENCODINGS = ("auto", "signed", "naive", "layerwise")
ALIASES = {"normalized": "signed", "normalised": "signed"}
SMT_BACKENDS = ("z3", "cvc5")
NAIVE_MAX_UNKNOWNS = 12  # the naive encoding timed out at 14 weights on 200 points (issue 3)

__all__ = ["ENCODINGS", "choose_encoding", "solve_train_exact"]


def count_unknowns(net: Network) -> int:
    """The number of unknown weights and biases of `net`."""
    return sum(int(t.shape[0] * (t.shape[1] if len(t.shape) > 1 else 1))
               for lay in net.layers for t in (lay.weight, lay.bias) if isinstance(t, Unknown))


def choose_encoding(net: Network, backend: str, requested: str = "auto"):
    """(encoding or None, its signed form or None, why) for `requested` on `backend`."""
    spec, why_s = signed_form(net)
    lw, why_l = layerwise_form(net)
    if requested == "signed":
        return ("signed", spec, "requested") if spec else (None, None, f"signed: {why_s}")
    if requested == "layerwise":
        return ("layerwise", lw, "requested") if lw else (None, None, f"layerwise: {why_l}")
    if requested == "naive":
        if backend == "highs":
            return None, None, ("HiGHS has no naive encoding (products of unknown weights and "
                                "activations need QF_NRA): use z3 or cvc5, or encoding signed "
                                "or layerwise")
        return "naive", None, "requested"
    if spec:
        return "signed", spec, "one hidden layer, two classes"
    n = count_unknowns(net)
    if lw and (backend == "highs" or n > NAIVE_MAX_UNKNOWNS):
        return "layerwise", lw, f"{len(net.layers) - 1} hidden layers, {n} unknown weights"
    if backend != "highs":
        return "naive", None, f"signed: {why_s}; layerwise: {why_l or f'{n} unknowns are few'}"
    return None, None, (f"HiGHS trains only with the signed or layerwise encodings; signed: "
                        f"{why_s}; layerwise: {why_l}")


def solve_train_exact(problem, backend_name: str, timeout: float | None = None,
                      options: dict | None = None) -> Answer:
    """Train `problem` (a `TrainProblem`) exactly with z3, cvc5 (SMT) or highs (MILP).

    Args:
        problem: the training problem.
        backend_name: "z3", "cvc5" or "highs".
        timeout: seconds for the whole search (all rounds, sign counts and warm starts).
        options: see the module docstring; unknown keys are ignored (a backend's option bag).
    Returns:
        `Answer` with status sat (and `weights`: one (W, b) per layer, Fractions, replayed
        exactly on every point), unsat, timeout, unknown or error; `info` says the encoding,
        rounds, active points and, for HiGHS, the tolerances an unsat rests on.
    """
    opts = dict(options or {})
    requested = ALIASES.get(opts.get("encoding", "auto"), opts.get("encoding", "auto"))
    if requested not in ENCODINGS:
        return Answer("error", message=f"unknown train encoding {requested!r}; use one of "
                      f"{', '.join(ENCODINGS)}", info={"encoding": "none"})
    if backend_name not in SMT_BACKENDS + ("highs",):
        return Answer("error", message=f"backend '{backend_name}' cannot train exactly; use "
                      "z3, cvc5 or highs", info={"encoding": "none"})
    start = time.perf_counter()
    enc, spec, why = choose_encoding(problem.net, backend_name, requested)
    if enc is None:
        return Answer("error", message=f"{backend_name}: no exact encoding for this network "
                      f"({why})", info={"encoding": "none", "requested": requested})
    run = Run(problem, backend_name, opts, None if timeout is None else start + timeout)
    if enc == "signed":
        status, weights, msg, info = signed_route(run, spec)
    elif enc == "layerwise":
        status, weights, msg, info = layerwise_route(run, spec)
    else:
        status, weights, msg, info = naive_route(run)
    if status == "sat" and enc != "layerwise":
        msg = f"{backend_name}: {msg}"
    info = {**info, "encoding": enc, "encoding_reason": why, "backend": backend_name,
            "time_s": time.perf_counter() - start}
    if status == "unsat":
        msg = _unsat_message(backend_name, enc, msg, info)
        if backend_name == "highs":
            info.update(exact=False, tolerance="HiGHS floating-point tolerances")
    return Answer(status, message=msg, info=info, weights=weights)


def _unsat_message(backend: str, enc: str, why: str, info: dict) -> str:
    if backend == "highs":
        msg = ("HiGHS: no weights in the box fit the points; this unsat rests on HiGHS's "
               "floating-point tolerances and its weight box (not an exact proof)")
    else:
        msg = (f"{backend}: no weights fit the points ({info['active_points']} active points "
               "suffice)")
    if enc == "layerwise":
        msg += " with the known early layers"
    return msg + (f"; {why}" if why else "")
