"""Bound queries on HiGHS: the verify lowering (property `true`) with an objective on one
pre-activation column, maximised and minimised in the same `Highs` instance.

Soundness. HiGHS decides in floating point: measured with HiGHS 1.15.1 (issue 4), per-neuron
optima were off by up to 3.5e-3 in default settings and by 0.0345 with presolve off and 1e-9
tolerances. So nothing HiGHS says is taken as exact: the arg-optimum is replayed by the caller
(its exact value is certainly attained), and the dual bound is widened by a safety margin,
`max(bound_margin, bound_margin * |dual|)` (default 1e-6), and reported as resting on HiGHS's
tolerances. The query layer tightens a wide interval with an exact backend when it can.
"""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from nnir.backends.milp.highs import (
    build_highs,
    clip_to_box,
    highs_tolerances,
    outcome,
    reset_scheduler,
    status_text,
)
from nnir.backends.milp.lower import legal_name, to_milp
from nnir.errors import BackendError
from nnir.queries.bound import SENSES, BoundAnswer, BoundProblem, Side

BOUND_MARGIN = 1e-6
GAP = 1e-9  # mip_rel_gap and mip_abs_gap: solve to (near) optimality, not HiGHS's 1e-4


def pre_column(model, problem: BoundProblem) -> int:
    """The column of the bounded neuron's pre-activation, found by the name `lower.py` gives it."""
    lay = problem.net.layer(problem.layer)
    base = legal_name(f"{problem.net.name}_{lay.name}")
    want = f"{base}_pre_{problem.index}" if lay.act == "relu" else f"{base}_{problem.index}"
    cols = [k for k, v in enumerate(model.vars) if v.name == want]
    if len(cols) != 1:
        raise BackendError(f"cannot find the MILP column '{want}' of {problem.pre_symbol} "
                           f"({len(cols)} columns have that name)")
    return cols[0]


def solve_bound_milp(problem: BoundProblem, options: dict, timeout: float | None = None,
                     senses=tuple(SENSES)) -> BoundAnswer:
    """Maximise and/or minimise the neuron's pre-activation with HiGHS.

    Args:
        problem: the bound problem (its facts give the big-M constants and the column's box).
        options: backend options: the HiGHS tolerances of `milp_tolerances`, `bound_margin`,
            `threads`.
        timeout: seconds for all solves together.
        senses: "max" and/or "min".
    Returns:
        One `Side` per sense: `arg` (floats clipped into the box) and `hi` = dual bound + margin,
        on `s * pre`; `lo` is left for the caller's exact replay.
    """
    rel = float(options.get("bound_margin", BOUND_MARGIN))
    model = to_milp(problem.verify_problem(), margin=0.0, slack="none")
    col = pre_column(model, problem)
    model.objective, model.sense = {col: 1.0}, "max"
    opts = highs_tolerances(options)
    opts.update(mip_rel_gap=GAP, mip_abs_gap=GAP)
    if "threads" in options:
        opts["threads"] = int(options["threads"])
    h = build_highs(model, opts)
    if "threads" in opts:
        reset_scheduler(h)
    start = time.perf_counter()
    sides, info = {}, {"model": model.summary(), "margin": rel, **opts}
    for sense in senses:
        s = SENSES[sense]
        h.changeColCost(col, float(s))
        if timeout is not None:
            left = timeout - (time.perf_counter() - start)
            if left <= 0:
                sides[sense] = Side("timeout", message=f"HiGHS: time limit ({timeout} s)")
                continue
            h.setOptionValue("time_limit", float(left))
        h.run()
        ms, hinfo = outcome(h), h.getInfo()
        info[f"{sense}_status"] = status_text(h)
        if ms == "optimal" and hinfo.primal_solution_status == 2:
            x = np.asarray(h.getSolution().col_value)[model.input_vars]
            dual = hinfo.mip_dual_bound if model.num_integer else hinfo.objective_function_value
            dual = max(dual, hinfo.objective_function_value)
            if not np.isfinite(dual):
                sides[sense] = Side("unknown", message=f"HiGHS gave no dual bound ({dual})")
                continue
            margin = max(rel, rel * abs(dual))
            info[f"{sense}_dual_bound"] = dual
            sides[sense] = Side("sat", None, Fraction(dual) + Fraction(margin),
                                clip_to_box(problem.net, x), False,
                                f"HiGHS dual bound {s * dual:.12g} widened by {margin:g} (rests "
                                "on float tolerances, not a proof)")
        elif ms == "infeasible":
            sides[sense] = Side("unsat", message="HiGHS: the input domain is infeasible (float "
                                "tolerances)")
        elif ms == "timeout":
            sides[sense] = Side("timeout", message=f"HiGHS hit the time limit ({timeout} s)")
        else:
            sides[sense] = Side("unknown", message="HiGHS model status: "
                                + info[f"{sense}_status"])
    info["seconds"] = time.perf_counter() - start
    return BoundAnswer(sides, info)
