"""One solve of a training encoding on a subset of points, per backend, read back as weights.

SMT scripts (`smtlib/train_lower.py`) are checked by `smtlib/check.py`, as on the verify path:
z3 or cvc5 parse them themselves and model values are read exactly (a z3 algebraic number from
QF_NRA is approximated by a close rational, and exact replay decides). The MILP
(`milp/train_lower.py`) is solved by HiGHS, whose float weights are taken at their exact binary
values, clipped into the normalised box.

**MILP.** Big-M needs finite bounds: a side of the normalised box that is unbounded becomes
`milp_box` (default 100) in absolute value, so a HiGHS `unsat` means "no solution in that box",
and in any case it rests on HiGHS's floating-point tolerances (see `Answer.info`); each point
must clear the margin by `sat_slack` (1e-5) in the model so that its weights survive replay.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from nnir.backends.milp.highs import (
    HIGHS_TOLERANCE_OPTIONS,
    build_highs,
    milp_tolerances,
    outcome,
    reset_scheduler,
    status_text,
)
from nnir.backends.milp.train_lower import signed_milp
from nnir.backends.smtlib.check import check_script
from nnir.backends.smtlib.train_lower import naive_names, naive_script, signed_script
from nnir.backends.train_exact.cegis import Run
from nnir.backends.train_exact.normalise import SignedForm, denormalise
from nnir.ir.const import Const

DEFAULT_MILP_BOX = 100.0


def signed_solve(run: Run, spec: SignedForm, signs, active, warm=None):
    """The signed encoding with fixed `signs` on the points `active`: weights of every layer.

    `warm` (HiGHS only): a `warm.Warm` whose phases restrict the model (the "find" phase: fixed
    activation phases, a box widened to hold the warm start) and which is the MIP start. An
    infeasible restricted model is answered `unknown`, never `unsat`.
    """
    p = run.problem
    sigma = [1 if int(p.y[i]) == 1 else -1 for i in active]
    symmetry = bool(run.opts.get("symmetry", True))
    if run.backend == "highs":
        status, sol, msg, info = _highs_signed(run, spec, signs, p.X[active], sigma, symmetry,
                                               None if warm is None else (warm, active))
        if status != "sat":
            return status, None, msg, info
        return "sat", denormalise(p.net, spec, signs, *sol), "", info

    script = signed_script(spec, signs, p.X_exact[active], sigma, p.margin, symmetry)
    status, values, msg, info = smt_check(run.backend, script, run.left())
    if status != "sat":
        return status, None, msg, info
    h, d = len(signs), spec.d
    flat = [values[n] for n in script.weight_names]
    w = [flat[j * d:(j + 1) * d] for j in range(h)]
    b = flat[h * d:h * d + h]
    c = flat[h * d + h] if spec.c_fixed is None else None
    return "sat", denormalise(p.net, spec, signs, w, b, c), "", info


def naive_solve(run: Run, active):
    """The naive QF_NRA encoding (z3/cvc5) on the points `active`: weights of every layer."""
    p = run.problem
    script = naive_script(p.net, p.X_exact[active], p.y[active], p.margin)
    status, values, msg, info = smt_check(run.backend, script, run.left())
    if status != "sat":
        return status, None, msg, info
    weights = [[t.exact.tolist() if isinstance(t, Const) else
                np.full(t.shape, Fraction(0), dtype=object).tolist()
                for t in (lay.weight, lay.bias)] for lay in p.net.layers]
    for li, part, idx, name in naive_names(p.net):
        if part == "W":
            weights[li][0][idx[0]][idx[1]] = values[name]
        else:
            weights[li][1][idx[0]] = values[name]
    return "sat", [(W, b) for W, b in weights], "", info


def smt_check(backend: str, script, timeout):
    """(status, values of `script.weight_names` or None, message, info) from z3 or cvc5."""
    return check_script(backend, script.text, script.logic, script.weight_names, timeout,
                        title="train", approximate=True, seconds=".3g")


def _highs_signed(run: Run, spec: SignedForm, signs, X, sigma, symmetry, warm=None):
    """HiGHS on the big-M MILP: (status, (w, b, c) normalised and exact, message, info)."""
    tols = milp_tolerances(run.opts)
    B = float(run.opts.get("milp_box", DEFAULT_MILP_BOX))

    def fin(v, default):
        return default if v is None else float(v)

    fixed = start = None
    if warm is not None:  # find phase: an unbounded side may grow to hold the warm start
        warm, act = warm
        B = max(B, 2 * warm.scale)
        fixed, start = warm.phases[act], (warm.w, warm.b, warm.c)
    box = (fin(spec.w_lo, -B), fin(spec.w_hi, B), fin(spec.b_lo, -B), fin(spec.b_hi, B),
           fin(spec.c_lo, -B), fin(spec.c_hi, B))
    sm = signed_milp(spec, signs, X, sigma, float(run.problem.margin), tols["sat_slack"], box,
                     symmetry, fixed, start)
    opts = {k: tols[k] for k in HIGHS_TOLERANCE_OPTIONS}
    left = run.left()
    if left is not None:
        opts["time_limit"] = max(float(left), 1e-3)
    if "threads" in run.opts:
        opts["threads"] = int(run.opts["threads"])
    for k, v in run.opts.items():  # HiGHS's own options, passed through (e.g. presolve)
        if k.startswith("highs_"):
            opts[k[6:]] = v
    hs = build_highs(sm.model, opts)
    if "threads" in opts:  # HiGHS's scheduler is global: a new thread count needs a reset
        reset_scheduler(hs)
    if sm.start is not None:  # a MIP start (HiGHS checks it and drops it when infeasible)
        hs.setSolution(len(sm.start), np.arange(len(sm.start), dtype=np.int32), sm.start)
    hs.run()
    ms, hinfo = outcome(hs), hs.getInfo()
    info = {"model": sm.model.summary(), "highs_status": status_text(hs), "box": box,
            "sat_slack": tols["sat_slack"], **{k: opts[k] for k in HIGHS_TOLERANCE_OPTIONS}}
    if hinfo.primal_solution_status == 2 and ms in ("optimal", "interrupted", "timeout",
                                                    "solution_limit"):
        col = np.asarray(hs.getSolution().col_value)

        def q(i, lo, hi):  # the exact binary value, clipped into the box it must respect
            return min(max(Fraction(float(col[i])), Fraction(lo)), Fraction(hi))

        w = [[q(i, box[0], box[1]) for i in row] for row in sm.w]
        b = [q(i, box[2], box[3]) for i in sm.b]
        c = None if sm.c is None else q(sm.c, box[4], box[5])
        return "sat", (w, b, c), "", info
    if ms == "infeasible":
        if warm is not None:  # a restricted model: its infeasibility proves nothing
            return "unknown", None, "the restricted (find) model is infeasible", info
        return "unsat", None, "", info
    if ms == "timeout":
        return "timeout", None, "HiGHS hit the time limit", info
    return "unknown", None, f"HiGHS model status: {info['highs_status']}", info
