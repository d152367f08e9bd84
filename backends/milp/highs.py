"""The HiGHS helper library: every use of highspy goes through here (the backend, bounds, ISA,
equivalence, training, the LP tightening pass, the `.mps`/`.lp` writer).

highspy is imported inside the functions, so importing this module never loads the solver.

What it holds: `new_highs` (a silent `Highs`), `build_highs` (a `MilpModel` into HiGHS),
`DualLp` (an LP whose objective changes between solves, for the LP bound pass), the tolerances
(`DEFAULT_TOLERANCES`, `milp_tolerances`, `HIGHS_TOLERANCE_OPTIONS`, `highs_tolerances`), the
model statuses as data (`STATUS_MAP`, read with `outcome`), `run_killable` (a solve in a
killable child) and `clip_to_box` (a solver's float point into the exact input box).
"""
from __future__ import annotations

import numpy as np

from nnir import proc
from nnir.backends.milp.model import MilpModel
from nnir.errors import BackendError
from nnir.passes.interval import inner_box
from nnir.proc import quiet_fds

DEFAULT_TOLERANCES = {
    "primal_feasibility_tolerance": 1e-9,
    "mip_feasibility_tolerance": 1e-9,
    "margin": 1e-6,
    "strict_tol": 1e-7,
    "sat_slack": 1e-5,
}
# The entries of `DEFAULT_TOLERANCES` that are HiGHS options (the others are nnir's own).
HIGHS_TOLERANCE_OPTIONS = ("primal_feasibility_tolerance", "mip_feasibility_tolerance")

# HiGHS's model status (the `HighsModelStatus` member's name) -> what it means to nnir. Not
# listed (not set, empty model, memory limit, objective bound/target, unknown): "unknown".
# "kUnboundedOrInfeasible" is infeasible for nnir's models: every column has finite bounds.
STATUS_MAP = {
    "kOptimal": "optimal",
    "kInfeasible": "infeasible",
    "kUnboundedOrInfeasible": "infeasible",
    "kUnbounded": "unbounded",
    "kTimeLimit": "timeout",
    "kInterrupt": "interrupted",
    "kSolutionLimit": "solution_limit",
    "kIterationLimit": "iteration_limit",
    "kLoadError": "error",
    "kModelError": "error",
    "kPresolveError": "error",
    "kSolveError": "error",
    "kPostsolveError": "error",
}
GRACE = 0.5  # seconds a killed HiGHS child may run past its limit to report


def milp_tolerances(options: dict | None = None) -> dict:
    """The tolerances a solve uses: `DEFAULT_TOLERANCES` overridden by `options`.

    primal_feasibility_tolerance / mip_feasibility_tolerance go to HiGHS (row and integrality
    violations it accepts); `margin` loosens property rows; `strict_tol` is the least slack t*
    on strict atoms that counts as sat; `sat_slack` is the slack at which the search stops.

    Args:
        options: backend options; keys of `DEFAULT_TOLERANCES` override the defaults.
    Returns:
        Every key of `DEFAULT_TOLERANCES` with its float value.
    """
    opts = options or {}
    return {k: float(opts.get(k, v)) for k, v in DEFAULT_TOLERANCES.items()}


def highs_tolerances(options: dict | None = None) -> dict:
    """The HiGHS options among `milp_tolerances(options)` (its feasibility tolerances).

    Args:
        options: backend options, as for `milp_tolerances`.
    Returns:
        {option name: value} for each of `HIGHS_TOLERANCE_OPTIONS`.
    """
    tols = milp_tolerances(options)
    return {k: tols[k] for k in HIGHS_TOLERANCE_OPTIONS}


def new_highs():
    """A `highspy.Highs` with its output off.

    highspy 1.16 prints a banner to stdout from the constructor, before `output_flag` can be
    set, so the constructor runs with fds 1 and 2 pointed at /dev/null (`nnir.proc.quiet_fds`).

    Returns:
        The silent `Highs` instance.
    """
    import highspy

    with quiet_fds():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    return h


def build_highs(model: MilpModel, options: dict | None = None):
    """A silent `highspy.Highs` holding `model` (rowwise arrays passed in one `passModel`).

    Args:
        model: the MILP model.
        options: HiGHS option values to set (e.g. tolerances, `time_limit`).
    Returns:
        The `Highs` instance, ready to `run()` or `writeModel()`.
    Raises:
        BackendError: HiGHS rejected the model.
    """
    import highspy

    h = new_highs()
    for k, v in (options or {}).items():
        h.setOptionValue(k, v)
    col_lo, col_hi, integ, col_names = model.col_arrays()
    start, index, value, row_lo, row_hi, row_names = model.csr()
    lp = highspy.HighsLp()
    lp.model_name_ = model.name
    lp.num_col_, lp.num_row_ = len(col_lo), len(row_lo)
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = model.cost(), col_lo, col_hi
    lp.row_lower_, lp.row_upper_ = row_lo, row_hi
    lp.sense_ = highspy.ObjSense.kMaximize if model.sense == "max" else highspy.ObjSense.kMinimize
    a = lp.a_matrix_
    a.format_ = highspy.MatrixFormat.kRowwise
    a.num_col_, a.num_row_ = lp.num_col_, lp.num_row_
    a.start_, a.index_, a.value_ = start.astype(np.int32), index.astype(np.int32), value
    if integ.any():
        kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
        lp.integrality_ = [kinds[i] for i in integ]
    lp.col_names_, lp.row_names_ = col_names, row_names
    status = h.passModel(lp)
    if status == highspy.HighsStatus.kError:
        raise BackendError(f"HiGHS rejected the MILP model ({model.summary()})")
    return h


def outcome(h) -> str:
    """What the model status of a solved `Highs` means: a value of `STATUS_MAP` or "unknown".

    Args:
        h: a `highspy.Highs` after `run()`.
    Returns:
        "optimal", "infeasible", "timeout", "interrupted", "error", ... (see `STATUS_MAP`).
    """
    return STATUS_MAP.get(h.getModelStatus().name, "unknown")


def status_text(h) -> str:
    """HiGHS's own words for the model status of `h` (e.g. "Time limit reached"), for messages.

    Args:
        h: a `highspy.Highs` after `run()`.
    Returns:
        The text of `Highs.modelStatusToString`.
    """
    return h.modelStatusToString(h.getModelStatus())


def mip_solution(values: np.ndarray):
    """A `highspy.HighsSolution` of column values, for `Highs.setSolution` (a MIP start).

    Args:
        values: one float per column.
    Returns:
        The solution object, marked valid.
    """
    import highspy

    s = highspy.HighsSolution()
    s.col_value = values.tolist()
    s.value_valid = True
    return s


def minimize_sense(h) -> None:
    """Set the objective sense of `h` to minimisation.

    Args:
        h: a `highspy.Highs`.
    """
    import highspy

    h.changeObjectiveSense(highspy.ObjSense.kMinimize)


def reset_scheduler(h=None, blocking: bool = True) -> None:
    """Restart HiGHS's global thread pool (needed after a fork, or for a new thread count).

    Args:
        h: a `Highs` to call it on (None: the class method, e.g. in a forked child).
        blocking: passed to `resetGlobalScheduler`.
    """
    import highspy

    (h if h is not None else highspy.Highs).resetGlobalScheduler(blocking)


class DualLp:
    """min c^T x over rl <= A x <= ru, cl <= x <= cu in HiGHS, built once, objective swapped.

    Presolve is off so the basis carries over between objectives (warm starts). Only the dual
    row values are handed back: the caller turns them into a rigorous bound itself (the LP
    tightening pass, `nnir.passes.lp`), so nothing here needs to be exact.

    Args:
        A: the constraint matrix (scipy CSC, float64).
        rl, ru: row bounds (+-inf allowed); cl, cu: column bounds.
        options: extra HiGHS options (e.g. tolerances).
    """

    def __init__(self, A, rl, ru, cl, cu, options: dict | None = None):
        import highspy

        n, m = A.shape[1], A.shape[0]
        self.m = m
        self.h = new_highs()  # silent, whatever the highspy version prints
        self.h.setOptionValue("presolve", "off")  # keep the basis between objectives
        for key, val in (options or {}).items():
            self.h.setOptionValue(key, val)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n, m
        lp.col_cost_ = np.zeros(n)
        lp.col_lower_, lp.col_upper_ = cl, cu
        lp.row_lower_, lp.row_upper_ = rl, ru
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = A.indptr.astype(np.int32)
        lp.a_matrix_.index_ = A.indices.astype(np.int32)
        lp.a_matrix_.value_ = A.data
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, m
        self.h.passModel(lp)

    def set_time_limit(self, seconds: float) -> None:
        """Give the following solves `seconds` each (HiGHS's `time_limit`)."""
        self.h.setOptionValue("time_limit", float(seconds))

    def duals(self, idx: np.ndarray, costs: np.ndarray) -> np.ndarray:
        """Minimise sum_k costs[k] x[idx[k]] (the other columns cost 0); its row duals.

        Args:
            idx: int32 column indices whose cost is set (the same columns on every call).
            costs: their costs.
        Returns:
            The row dual values (zeros when HiGHS has no valid dual, e.g. after a time limit
            hit before any basis); any values are safe for the caller's bound.
        """
        self.h.changeColsCost(len(idx), idx, costs)
        self.h.run()
        sol = self.h.getSolution()
        return np.array(sol.row_dual) if sol.dual_valid else np.zeros(self.m)


def run_killable(model: MilpModel, options: dict, timeout: float | None, read):
    """Solve `model` with HiGHS (`options`, `time_limit` = `timeout`) and return `read(h)`,
    in a killable child (`nnir.proc.call`) when there is a limit; None when it was killed.

    Why: HiGHS's presolve does not poll its time limit. On the joint model of two MNIST 2x50
    networks (820 rows, 86k nonzeros, 200 binaries) presolve alone ran 4.7 s under a 1.5 s
    `time_limit`. The child resets HiGHS's thread pool first: a pool inherited by fork from a
    parent that ran HiGHS has no threads behind it, and the solve would hang.

    Args:
        model: the MILP model (objective and sense set).
        options: HiGHS options.
        timeout: seconds (None: no limit, solved in this process).
        read: `read(h)` of the solved `highspy.Highs`, a picklable value (status, objective,
            dual bound, the columns needed).
    Returns:
        `read(h)`, or None when the child was killed at `timeout` + `GRACE`.
    Raises:
        BackendError: the child failed.
    """
    opts = dict(options)
    if timeout is not None:
        opts["time_limit"] = float(max(timeout, 0.01))

    def solve(child: bool):
        if child:
            reset_scheduler(None, False)
        h = build_highs(model, opts)
        h.run()
        return read(h)

    if timeout is None or not proc.available():
        return solve(False)
    reply = proc.call(solve, True, timeout=max(timeout, 0.01) + GRACE)
    if reply is proc.TIMEOUT or isinstance(reply, proc.Gone):
        return None
    if isinstance(reply, proc.Failure):
        raise BackendError(f"HiGHS failed: {reply.message.splitlines()[0]}")
    return reply


def clip_to_box(net, x: np.ndarray, box=None) -> list[float]:
    """A solver's float input point clipped into the exact input box of `net`.

    Uses float bounds rounded inward (so they lie inside the box); where no float lies inside
    a coordinate's interval, the float nearest its lower end.

    Args:
        net: the network whose input box is used.
        x: the float point.
        box: `inner_box(net)` when the caller has it already (it clips many points).
    Returns:
        The clipped point as Python floats.
    """
    a, b = box if box is not None else inner_box(net)
    nearest = np.array([float(v) for v in net.input.lo.exact])  # where no float lies inside
    return np.where(a > b, nearest, np.clip(np.asarray(x, dtype=np.float64), a, b)).tolist()
