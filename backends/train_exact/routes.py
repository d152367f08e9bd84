"""The exact routes on one problem: the signed encoding over its sign counts, and the naive one.

**Sign counts.** In the signed encoding units of equal sign are interchangeable, so only the
number k of positive units matters: k = 0..h are all tried (a preferred k first: the balanced
h // 2, which finds solutions fastest, or the count of a warm start). `sat` under one count is a
real solution; `unsat` is claimed only when every count is unsat.

Each route returns (status, weights or None, message, info) with `info` holding `rounds`,
`solves`, `active_points` and, for the signed route, `sign_counts_tried` (and `signs` on sat).
"""
from __future__ import annotations

import numpy as np

from nnir.backends.train_exact.cegis import Run, cegis, initial
from nnir.backends.train_exact.normalise import SignedForm
from nnir.backends.train_exact.solve import naive_solve, signed_solve
from nnir.backends.train_exact.warm import seed_points, sgd_warm


def _stats(run: Run, active: list[int], last: dict | None) -> dict:
    return {**(last or {}), "rounds": run.rounds, "solves": run.solves,
            "active_points": len(active)}


def signed_route(run: Run, spec: SignedForm, first_k: int | None = None,
                 warm_start: bool = True):
    """Every sign count k (positive units) of the signed encoding, `first_k` first, with CEGIS.

    With `warm_start` and option `warm_start` "sgd" (the default; "none" turns it off) a
    "find" phase comes first (`warm.py`); the full model over every sign count follows when it
    finds nothing ("prove" phase). `info["phase"]` says which phase answered.
    """
    h = spec.h
    active = initial(run.problem, run.opts)
    pre: dict = {}
    if warm_start and run.opts.get("warm_start", "sgd") != "none":
        status, weights, msg, pre, k_warm = _find(run, spec, active)
        if status == "sat":
            return status, weights, msg, pre
        first_k = k_warm if first_k is None else first_k
    k0 = h // 2 if first_k is None else first_k
    order = [k0] + [k for k in range(h + 1) if k != k0]
    tried: list[int] = []
    info: dict = {}
    for k in order:
        signs = tuple([1] * k + [-1] * (h - k))
        tried.append(k)

        def solve_on(act, signs=signs):
            return signed_solve(run, spec, signs, act)

        status, weights, msg, last = cegis(run, solve_on, active)
        info = {**_stats(run, active, last), **pre, "sign_counts_tried": list(tried),
                "phase": "prove"}
        if status != "unsat":
            if status == "sat":
                info["signs"] = list(signs)
            return status, weights, msg, info
    return "unsat", None, f"all {h + 1} sign counts refuted", info


def _find(run: Run, spec: SignedForm, active: list[int]):
    """The find phase: (status, weights, message, info, warm sign count or None).

    `active` grows in place with the points the phase selected (kept for the prove phase).
    """
    ws = sgd_warm(run, spec)
    if ws is None:
        return "unknown", None, "", {"warm_start": "none (no time)"}, None
    pre = {"warm_start": "sgd", "warm": ws.how, "warm_k": ws.k,
           "warm_min_margin": float(ws.margins.min(initial=np.inf))}
    n = len(run.problem.y)
    if ws.weights is not None:
        return "sat", ws.weights, f"the sgd warm start fits all {n} points (replayed exactly)", \
            {**pre, "phase": "find", "found_by": "warm start", "rounds": 0, "solves": 0,
             "active_points": 0, "signs": list(ws.signs), "sign_counts_tried": [ws.k]}, ws.k
    if run.backend != "highs":
        return "unknown", None, "", pre, ws.k
    left = run.left()
    share = float(run.opts.get("find_share", 0.5))
    sub = run.on(run.problem, None if left is None else left * share)
    seeded = seed_points(ws, active, int(run.opts.get("per_round", 20)))
    status, weights, msg, last = cegis(
        sub, lambda act: signed_solve(sub, spec, ws.signs, act, warm=ws), seeded)
    run.rounds += sub.rounds
    run.solves += sub.solves
    active[:] = seeded
    pre = {**pre, "find_status": status}
    if status == "sat":
        return "sat", weights, msg, {**_stats(run, seeded, last), **pre, "phase": "find",
                                     "found_by": "restricted model", "signs": list(ws.signs),
                                     "sign_counts_tried": [ws.k]}, \
            ws.k
    return status, None, msg, pre, ws.k


def naive_route(run: Run):
    """The naive QF_NRA encoding with CEGIS (z3/cvc5 only)."""
    active = initial(run.problem, run.opts)
    status, weights, msg, last = cegis(run, lambda act: naive_solve(run, act), active)
    return status, weights, msg, _stats(run, active, last)
