"""Equivalence on HiGHS: both networks in one MILP (`joint.lower_networks`), and for each output
k the maximum of f_A[k] - f_B[map k] and of its negative.

The numbers rest on HiGHS's float tolerances (tightened as in the verify backend), so a maximum
at most tol is reported as "equivalent up to MILP tolerances", never as a proof; the arg-max of a
larger one is handed back for exact replay, which alone decides a counterexample.
"""
from __future__ import annotations

import time

import numpy as np

from nnir.backends.milp.highs_backend import _HIGHS_TOLS, milp_tolerances
from nnir.backends.milp.joint import lower_networks, run_killable
from nnir.ir.nodes import Network

GAP = 1e-9


def max_differences(a: Network, b: Network, mapping, timeout: float | None = None,
                    options: dict | None = None, stop_above: float | None = None) -> dict:
    """Maximise +-(f_A[k] - f_B[mapping[k]]) for every output k.

    Args:
        a, b: networks whose facts are sound over A's domain (B runs on A's input columns).
        mapping: for each output of A, the output of B it is compared with.
        timeout: seconds for all solves together.
        options: HiGHS tolerances (see `highs_backend.milp_tolerances`).
        stop_above: stop at the first solve whose best point differs by more than this.
    Returns:
        {"status": "optimal" | HiGHS's status text, "bound": max over the solves of the dual
        bound (None when a solve did not finish), "points": [(value, input floats, k)] best
        first, "model": summary}; values rest on float tolerances.
    """
    joint = lower_networks([a, b], f"equiv_{a.name}_{b.name}")
    ya, yb = joint.vars[0][a.output], joint.vars[1][b.output]
    model = joint.model
    inputs = joint.vars[0][a.input.name]
    opts = {k: v for k, v in milp_tolerances(options).items() if k in _HIGHS_TOLS}
    opts.update(mip_rel_gap=GAP, mip_abs_gap=GAP)
    start = time.monotonic()
    status, bound, points = "optimal", 0.0, []
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
                    return {"status": "time limit", "bound": None, "points": points,
                            "model": model.summary()}
            got = run_killable(model, opts, left, lambda h: _read(h, inputs, model.num_integer))
            if got is None:  # killed at the limit: HiGHS's presolve does not poll it
                return {"status": "time limit (HiGHS killed in presolve)", "bound": None,
                        "points": sorted(points, key=lambda p: -p[0]), "model": model.summary()}
            ms, value, x, dual = got
            if x is not None:
                points.append((value, x, k))
            if ms != "optimal":
                status, bound = ms, None
            elif bound is not None:  # an LP (every ReLU stable) has no MIP dual bound
                bound = max(bound, dual)
            if stop_above is not None and points and points[-1][0] > stop_above:
                points.sort(key=lambda p: -p[0])
                return {"status": status, "bound": None, "points": points,
                        "model": model.summary(), "stopped": True}
            if status != "optimal":
                break
        if status != "optimal":
            break
    points.sort(key=lambda p: -p[0])
    return {"status": status, "bound": bound, "points": points, "model": model.summary()}


def _read(h, inputs, num_integer: int) -> tuple:
    """(status: "optimal" or HiGHS's text, objective, input values or None, dual bound)."""
    import highspy

    ms, info, sol = h.getModelStatus(), h.getInfo(), h.getSolution()
    x = np.asarray(sol.col_value)[inputs].tolist() if sol.value_valid else None
    dual = info.mip_dual_bound if num_integer else info.objective_function_value
    status = "optimal" if ms == highspy.HighsModelStatus.kOptimal else h.modelStatusToString(ms)
    return status, float(info.objective_function_value), x, float(dual)
