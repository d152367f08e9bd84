"""Equivalence on HiGHS: both networks in one MILP (`joint.lower_networks`), and for each output
k the maximum of f_A[k] - f_B[map k] and of its negative.

The numbers rest on HiGHS's float tolerances (tightened as in the verify backend), so a maximum
at most tol is reported as "equivalent up to MILP tolerances", never as a proof; the arg-max of a
larger one is handed back for exact replay, which alone decides a counterexample.
"""
from __future__ import annotations

import time

import numpy as np

from nnir.backends.milp.highs import highs_tolerances, outcome, run_killable, status_text
from nnir.backends.milp.joint import lower_networks
from nnir.ir.nodes import Network

GAP = 1e-9


def max_differences(a: Network, b: Network, mapping, timeout: float | None = None,
                    options: dict | None = None, stop_above: float | None = None) -> dict:
    """Maximise +-(f_A[k] - f_B[mapping[k]]) for every output k.

    Args:
        a, b: networks whose facts are sound over A's domain (B runs on A's input columns).
        mapping: for each output of A, the output of B it is compared with.
        timeout: seconds for all solves together.
        options: HiGHS tolerances (see `highs.milp_tolerances`).
        stop_above: stop at the first solve whose best point differs by more than this.
    Returns:
        {"status": "optimal" | HiGHS's status text, "timeout": whether a solve stopped at the
        time limit, "bound": max over the solves of the dual bound (None when a solve did not
        finish), "points": [(value, input floats, k)] best first, "model": summary}; values
        rest on float tolerances.
    """
    joint = lower_networks([a, b], f"equiv_{a.name}_{b.name}")
    ya, yb = joint.vars[0][a.output], joint.vars[1][b.output]
    model = joint.model
    inputs = joint.vars[0][a.input.name]
    opts = highs_tolerances(options)
    opts.update(mip_rel_gap=GAP, mip_abs_gap=GAP)
    start = time.monotonic()
    status, bound, points, timeout_hit = "optimal", 0.0, [], False
    for k, j in enumerate(mapping):
        for sign in (1.0, -1.0):
            obj = {}
            for col, c in ((int(ya[k]), sign), (int(yb[j]), -sign)):
                if col >= 0:  # -1: a ReLU output fixed at 0
                    obj[col] = obj.get(col, 0.0) + c
            obj = {c: v for c, v in obj.items() if v != 0.0}
            if not obj:
                continue
            model.objective, model.sense = obj, "max"
            left = None
            if timeout is not None:
                left = timeout - (time.monotonic() - start)
                if left <= 0:
                    return {"status": "time limit", "timeout": True, "bound": None,
                            "points": points, "model": model.summary()}
            got = run_killable(model, opts, left, lambda h: _read(h, inputs, model.num_integer))
            if got is None:  # killed at the limit: HiGHS's presolve does not poll it
                return {"status": "time limit (HiGHS killed in presolve)", "timeout": True,
                        "bound": None, "points": sorted(points, key=lambda p: -p[0]),
                        "model": model.summary()}
            ms, value, x, dual, timed_out = got
            timeout_hit |= timed_out
            if x is not None:
                points.append((value, x, k))
            if ms != "optimal":
                status, bound = ms, None
            elif bound is not None:  # an LP (every ReLU stable) has no MIP dual bound
                bound = max(bound, dual)
            if stop_above is not None and points and points[-1][0] > stop_above:
                points.sort(key=lambda p: -p[0])
                return {"status": status, "timeout": timeout_hit, "bound": None,
                        "points": points, "model": model.summary(), "stopped": True}
            if status != "optimal":
                break
        if status != "optimal":
            break
    points.sort(key=lambda p: -p[0])
    return {"status": status, "timeout": timeout_hit, "bound": bound, "points": points,
            "model": model.summary()}


def _read(h, inputs, num_integer: int) -> tuple:
    """(status: "optimal" or HiGHS's text, objective, input values or None, dual bound,
    whether it stopped at the time limit)."""
    ms, info, sol = outcome(h), h.getInfo(), h.getSolution()
    x = np.asarray(sol.col_value)[inputs].tolist() if sol.value_valid else None
    dual = info.mip_dual_bound if num_integer else info.objective_function_value
    status = "optimal" if ms == "optimal" else status_text(h)
    return status, float(info.objective_function_value), x, float(dual), ms == "timeout"


def difference_ranges(f: Network, g: Network, timeout: float | None = None,
                      gap: float = 1e-7) -> dict:
    """Min and max of each `f_k - g_k` over f's domain, both networks in one model.

    The `2 * outputs` solves share `timeout` (None: no limit): each gets the time left divided
    by the solves left, so a hard one cannot starve the others, and what an easy one leaves
    goes to the rest. A solve stopped by its share keeps HiGHS's dual bound, so the result can
    still bound |f - g| while naming the solves that did not finish.

    The verify backend's tight feasibility tolerances are used: with HiGHS's default 1e-6
    integrality tolerance a big-M ReLU may leak u * 1e-6, seen here as a spurious difference.
    `gap` (absolute) only decides when a solve may stop.

    Args:
        f, g: networks with facts sound over f's domain and distinct names (g is put on f's
            input columns).
        timeout: seconds for all solves together.
        gap: HiGHS's `mip_abs_gap`.
    Returns:
        {"max_abs": float or None (None unless every solve finished), "per_output":
        [(min, max), ...] (None where unfinished), "status": text, "unfinished": ["y[k] max",
        ...], "bound_abs": max |f_k - g_k| <= this by the dual bounds (None when a solve has
        none), "solves": n}; the numbers rest on HiGHS's float tolerances.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    joint = lower_networks([f, g], "compress_check")  # g on f's input columns
    fv, gv = joint.vars[0][f.output], joint.vars[1][g.output]
    model = joint.model
    opts = highs_tolerances()
    opts.update(mip_rel_gap=1e-9, mip_abs_gap=gap)
    solves = []
    for k in range(len(fv)):
        obj = {}
        if fv[k] >= 0:
            obj[int(fv[k])] = obj.get(int(fv[k]), 0.0) + 1.0
        if gv[k] >= 0:
            obj[int(gv[k])] = obj.get(int(gv[k]), 0.0) - 1.0
        obj = {c: v for c, v in obj.items() if v != 0.0}
        solves += [(k, sense, obj) for sense in ("min", "max")]
    per = [[0.0, 0.0] for _ in range(len(fv))]
    status, unfinished, bounds = "optimal", [], []
    todo = [s for s in solves if s[2]]
    for n, (k, sense, obj) in enumerate(todo):
        col = 0 if sense == "min" else 1
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0.05:
                per[k][col] = None
                unfinished.append(f"{f.output}[{k}] {sense}")
                bounds.append(None)
                status = "time limit"
                continue
        model.objective, model.sense = obj, sense
        got = run_killable(model, opts, None if deadline is None else left / (len(todo) - n),
                           _read_range)
        if got is None:
            got = ("killed at its time share (HiGHS presolve does not keep its limit)", None,
                   None)
        ms, value, dual = got
        if ms == "optimal":
            per[k][col] = value
        else:
            status = ms
            per[k][col] = None
            unfinished.append(f"{f.output}[{k}] {sense}")
        ok = dual is not None and np.isfinite(dual) and abs(dual) < 1e30
        bounds.append(abs(float(dual)) if ok else None)
    per = [tuple(e) for e in per]
    vals = [abs(v) for e in per for v in e if v is not None]
    return {"max_abs": None if unfinished else max(vals, default=0.0), "per_output": per,
            "status": status if unfinished else "optimal", "unfinished": unfinished,
            "bound_abs": None if None in bounds else max(bounds, default=0.0),
            "solves": len(todo)}


def _read_range(h) -> tuple:
    """(status: "optimal" or HiGHS's text, objective value, dual bound) of a solved HiGHS."""
    info = h.getInfo()
    dual = info.mip_dual_bound if h.getLp().integrality_ else info.objective_function_value
    if outcome(h) == "optimal":
        return "optimal", float(info.objective_function_value), float(dual)
    return status_text(h), None, None if dual is None else float(dual)
