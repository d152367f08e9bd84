"""The HiGHS backend: solve the MILP lowering of a verify query with highspy.

Tolerances (`milp_tolerances`): HiGHS decides in floating point, so its "infeasible" is not a
proof. To make it robust we (1) tighten HiGHS's `primal_feasibility_tolerance` and
`mip_feasibility_tolerance` to 1e-9 (defaults 1e-7 and 1e-6), and (2) loosen every property and
input-constraint row by an absolute `margin` (1e-6) before solving, far above those tolerances:
an infeasible loosened model means no input meets the property even with slack `margin`, so the
unsat cannot hinge on a rounding error of the size HiGHS makes. The network rows are not
loosened (they define the values). Strict atoms share a maximised slack t (`lower.py`): sat
needs t* > `strict_tol` (1e-7); t* <= `strict_tol` at HiGHS's optimum (absolute gap
`strict_tol`/10) is reported unsat, again resting on tolerances. Every unsat carries these
numbers in `Answer.info` with `exact: False`.

Witnesses: the first solve's point may sit on a loosened boundary and fail exact replay. When it
fails a float64 check, a second solve ("polish") maximises a slack shared by every inequality
atom (`slack="all"`), stopping (a MIP callback) once an incumbent has slack >= `sat_slack`
(1e-5), which survives exact replay. The polish never changes a verdict (one slack for strict and
non-strict atoms would: a tight non-strict atom caps it at 0), it only picks a better point. The
caller replays every witness exactly; `solve_verify(..., margin=0)` solves the unloosened model.
"""
from __future__ import annotations

import time

import numpy as np

from nnir.backends.base import Answer, Backend
from nnir.backends.milp.bound import solve_bound_milp
from nnir.backends.milp.highs import (
    HIGHS_TOLERANCE_OPTIONS,
    build_highs,
    clip_to_box,
    milp_tolerances,
    outcome,
    reset_scheduler,
    status_text,
)
from nnir.backends.milp.lower import to_milp
from nnir.backends.options import HighsOptions
from nnir.backends.train_exact import solve_train_exact
from nnir.ir.evaluate import evaluate, holds


def float_check(problem, x, slack: float = 1e-9) -> bool:
    """Does the float64 point `x` meet the input constraints and property with `slack` to spare?

    (Equalities: within `slack`. A point that passes is very likely to pass exact replay.)
    """
    vals = evaluate(problem.net, x)
    return all(holds(a, vals, -slack) for a in problem.input_constraints) and \
        holds(problem.prop, vals, -slack)


class HighsBackend(Backend):
    """MILP via HiGHS (big-M ReLUs); fast, but its verdicts rest on float tolerances.

    Options: `margin`, `strict_tol`, `sat_slack`, `primal_feasibility_tolerance`,
    `mip_feasibility_tolerance` (see `milp_tolerances`); `strict` ("slack", default: decide strict
    atoms on their maximised slack; "relax": make them non-strict); `polish` (default True:
    re-solve for an interior witness when the first fails a float64 check); `threads`.
    """

    name = "highs"
    description = "HiGHS MILP solver (big-M ReLU encoding; float tolerances)"
    kinds = frozenset({"verify", "train", "bound", "stable", "compress", "equiv"})
    Options = HighsOptions
    logics = frozenset({"MILP"})
    optimizes = True
    exact = False
    modules = ("highspy",)

    def solve_verify(self, problem, timeout: float | None = None,
                     margin: float | None = None) -> Answer:
        """Lower, solve and map HiGHS's status to sat/unsat/timeout/unknown/error.

        Args:
            problem: a `VerifyProblem` (with bound facts).
            timeout: seconds for HiGHS (`time_limit`), for both solves together; None: no limit.
            margin: overrides the `margin` option (0 solves the unloosened model).
        Returns:
            The `Answer`; `inputs` are Python floats clipped into the input box.
        """
        tols = milp_tolerances(self.options)
        if margin is not None:
            tols["margin"] = float(margin)
        strict = self.opts.strict
        if strict not in ("slack", "relax"):
            raise ValueError(f"option strict must be 'slack' or 'relax', not {strict!r}")
        start = time.perf_counter()
        ans = self._solve(problem, "strict" if strict == "slack" else "none", timeout, tols)
        if ans.status != "sat" or not self.opts.polish or \
                float_check(problem, ans.inputs):
            return ans
        left = None if timeout is None else timeout - (time.perf_counter() - start)
        if left is not None and left <= 0:
            return ans
        better = self._solve(problem, "all", left, tols)
        # Its slack may be 0 (a tight non-strict atom): keep it if it meets the property in floats.
        if better.status == "sat" and float_check(problem, better.inputs, slack=0.0):
            better.info["polished"] = True
            return better
        ans.info["polish"] = f"no interior witness ({better.info.get('highs_status')})"
        return ans

    def _solve(self, problem, slack: str, timeout, tols: dict) -> Answer:
        t0 = time.perf_counter()
        model = to_milp(problem, margin=tols["margin"], slack=slack)
        opts = {k: tols[k] for k in HIGHS_TOLERANCE_OPTIONS}
        if timeout is not None:
            opts["time_limit"] = float(timeout)
        if "threads" in self.options:
            opts["threads"] = int(self.options["threads"])
        has_t = model.slack_var is not None
        by_slack = has_t and slack == "strict"  # strict atoms decided on t* (else relaxed)
        if by_slack:  # stop only near the optimum of t, so t* <= strict_tol is meaningful
            opts["mip_abs_gap"] = tols["strict_tol"] / 10
        h = build_highs(model, opts)
        if has_t:
            h.cbMipInterrupt.subscribe(_stop_at(tols["sat_slack"]))
        if "threads" in opts:  # HiGHS's scheduler is global: a new thread count needs a reset,
            reset_scheduler(h)  # else run() fails with model status "Not Set"
        h.run()
        ms, info = outcome(h), h.getInfo()
        details = {"model": model.summary(), "notes": list(model.notes),
                   "highs_status": status_text(h)}
        has_point = info.primal_solution_status == 2  # kSolutionStatusFeasible
        t_star = info.objective_function_value if has_t and has_point else None
        if t_star is not None:
            details["slack"] = t_star
        details["seconds"] = time.perf_counter() - t0
        stopped = ("optimal", "timeout", "interrupted", "solution_limit", "iteration_limit")
        if has_point and ms in stopped and (not by_slack or t_star > tols["strict_tol"]):
            x = np.asarray(h.getSolution().col_value)[model.input_vars]
            return Answer("sat", clip_to_box(problem.net, x), "HiGHS found a point", details)
        if ms == "infeasible" or (by_slack and ms == "optimal"):
            # Every column is bounded, so "unbounded or infeasible" can only be infeasible.
            why = "the model is infeasible" if t_star is None else \
                f"the strict atoms' best slack is {t_star:.3g} <= strict_tol"
            info_d = {"tolerance": "HiGHS floating-point tolerances", "exact": False,
                      **{k: opts[k] for k in HIGHS_TOLERANCE_OPTIONS}, "margin": tols["margin"]}
            if by_slack:
                info_d.update(strict_tol=tols["strict_tol"], mip_dual_bound=info.mip_dual_bound)
            return Answer("unsat", None, f"HiGHS: {why}; this unsat rests on HiGHS's "
                          "floating-point tolerances (not an exact proof)", {**info_d, **details})
        if ms == "timeout":
            return Answer("timeout", None, f"HiGHS hit the time limit ({timeout} s)", details)
        status = "error" if ms == "error" else "unknown"
        return Answer(status, None, f"HiGHS model status: {details['highs_status']}", details)

    def solve_bound(self, problem, timeout: float | None = None, senses=("max", "min"),
                    start: dict | None = None):
        """Max/min of a pre-activation (`BoundProblem`): arg-optima to replay and dual bounds
        widened by option `bound_margin` (float tolerances; `start` is ignored). See
        `backends/milp/bound.py`."""
        return solve_bound_milp(problem, self.options, timeout, senses)

    def solve_train(self, problem, timeout: float | None = None) -> Answer:
        """Find weights fitting every point of `problem`: a sign-normalised big-M MILP (option
        `encoding`: auto, signed, or layerwise for deeper nets; naive is an `error` here).

        Its unsat rests on HiGHS's float tolerances and a finite weight box; its float weights
        are taken as exact rationals and replayed. See `backends/train_exact/`.
        """
        return solve_train_exact(problem, self.name, timeout, self.options)


def _stop_at(target: float):
    """A `cbMipInterrupt` callback that stops HiGHS once the incumbent's slack reaches `target`.

    (`cbMipImprovingSolution` ignores `user_interrupt`; the interrupt callback honours it. With
    no incumbent yet, `mip_primal_bound` is -inf for our maximisation.)
    """
    def callback(event) -> None:
        if event.data_out.mip_primal_bound >= target:
            event.data_in.user_interrupt = True

    return callback
