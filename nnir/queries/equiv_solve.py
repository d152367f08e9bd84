"""The solver route of `equiv`: SMT (exact) or MILP (float tolerances), every counterexample
replayed exactly in both networks (see `nnir/queries/equiv.py`)."""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from nnir.backends import registry
from nnir.backends.milp.equiv import max_differences
from nnir.backends.smtlib.equiv import solve_equiv_smt
from nnir.deadline import Deadline
from nnir.ir.const import format_number, to_fraction
from nnir.ir.evaluate import evaluate, evaluate_batch, holds
from nnir.ir.nodes import Network
from nnir.options import parse
from nnir.queries import route as routing
from nnir.queries import status as st
from nnir.queries.options import EquivOptions
from nnir.queries.result import Result, witness_dict
from nnir.queries.run import count_unstable
from nnir.queries.status import EquivStatus

MILP_EPS = 1e-6  # a MILP maximum this far above tol is not read as "equivalent"
SAMPLES = 256


def _unstable(*nets: Network) -> int:
    return sum(count_unstable(n) for n in nets)


def solve(res: Result, a: Network, b: Network, mapping, tol: Fraction, backend: str,
          deadline: Deadline, options: dict) -> Result:
    """Decide on the route `route.plan` gives for equiv (auto: HiGHS, an exact solver
    re-deciding what it leaves; z3, cvc5 or highs by name); `a`, `b` carry facts over A's
    domain."""
    o = parse(EquivOptions, options)
    unstable = _unstable(a, b)
    res.notes.append(f"{unstable} unstable ReLUs in the two networks after the bound passes")
    if o.sample:
        found = _sample(res, a, b, mapping, tol)
        if found is not None:
            return found
    plan = routing.plan("equiv", backend, confirm=o.confirm, span=res.span)
    registry.get_backend(plan.first)  # says what is missing when it is not installed
    if plan.first_exact:
        return _smt(res, a, b, mapping, tol, plan.first, deadline, options)
    res = _milp(res, a, b, mapping, tol, deadline, options)
    if res.status in (EquivStatus.EQUIVALENT, EquivStatus.UNKNOWN) and plan.confirms(unstable):
        milp_status = res.status
        res = _smt(res, a, b, mapping, tol, plan.confirm, deadline, options)
        res.notes.append(f"highs said {milp_status}; '{plan.confirm}' answered {res.status} "
                         "exactly")
    return res


def _sample(res: Result, a, b, mapping, tol, n: int = SAMPLES, seed: int = 0):
    """Cheap falsification first: both networks on random points of the box (float64); the
    worst point is replayed exactly and, when it differs by more than tol, reported."""
    lo, hi = a.input.lo.f64, a.input.hi.f64
    X = np.random.default_rng(seed).uniform(lo, hi, size=(n, len(lo)))
    X = np.vstack([X, (lo + hi) / 2, lo, hi])
    ya = evaluate_batch(a, X)[a.output]
    yb = evaluate_batch(b, X)[b.output][:, mapping]
    gap = np.max(np.abs(ya - yb), axis=1)
    for i in np.argsort(-gap)[:3]:
        if gap[i] <= float(tol):
            break
        rep = replay_difference(a, b, mapping, X[i].tolist(), tol)
        if rep["ok"]:
            res.backend = "sampling"
            res.info["proven_by"] = f"sampling ({len(X)} points)"
            return counterexample(res, a, b, mapping, rep, f"sampling {len(X)} domain points")
    return None


def _smt(res: Result, a, b, mapping, tol, solver: str, deadline, options) -> Result:
    deadline = deadline or Deadline.none()

    start = time.perf_counter()
    found, names = solve_equiv_smt(solver, a, b, mapping, tol, deadline.left(), options)
    res.info["solver_s"] = round(time.perf_counter() - start, 4)
    res.backend = solver
    res.info["proven_by"] = f"smt ({solver})"
    if found.status == "sat":
        rep = replay_difference(a, b, mapping, [found.values[n] for n in names], tol)
        if rep["ok"]:
            return counterexample(res, a, b, mapping, rep, f"{solver} (QF_LRA)")
        res.status = EquivStatus.ERROR
        res.message = f"BUG: {solver}'s counterexample does not replay exactly"
        return res
    if found.status == "unsat":
        res.status, res.exact = st.equiv(found.status), True
        res.certified = f"equivalent: exact ({solver}, QF_LRA over the " \
            "rationals: no input of A's domain where an output differs by more than the " \
            "tolerance)"
        res.info["verdict"] = "equivalent"
        res.message = "equivalent"
        return res
    res.status = st.equiv(found.status if found.status in ("timeout", "unknown") else "unknown")
    res.message = found.message or f"{solver}: {found.status}"
    return res


def _milp(res: Result, a, b, mapping, tol, deadline, options) -> Result:
    deadline = deadline or Deadline.none()

    start = time.perf_counter()
    got = max_differences(a, b, mapping, deadline.left(), options,
                          stop_above=float(tol) + MILP_EPS)
    res.info.update(solver_s=round(time.perf_counter() - start, 4), milp_status=got["status"],
                    milp_model=got["model"], proven_by="milp (highs)")
    res.backend = "highs"
    for value, x, _ in got["points"]:
        if value <= float(tol):
            break
        rep = replay_difference(a, b, mapping, x, tol)
        if rep["ok"]:
            return counterexample(res, a, b, mapping, rep, "HiGHS (MILP)")
    bound = got["bound"]
    if bound is not None and bound <= float(tol) + MILP_EPS:
        res.status, res.exact = EquivStatus.EQUIVALENT, False
        res.info.update(verdict="equivalent (up to MILP tolerances)", milp_max_difference=bound)
        res.certified = (f"MILP under floating-point tolerances, not an exact proof: max "
                         f"|f_A - f_B| <= {bound:.3g} (HiGHS dual bound)")
        res.message = "equivalent up to MILP tolerances"
        return res
    if got["timeout"]:
        res.status, res.message = EquivStatus.TIMEOUT, "HiGHS reached the time limit"
    else:
        res.status = EquivStatus.UNKNOWN
        res.message = (f"HiGHS: {got['status']}, max difference bound {bound}, and no "
                       "counterexample survived exact replay")
    return res


def replay_difference(a: Network, b: Network, mapping, x, tol: Fraction) -> dict:
    """Both networks at input `x` (clipped into the box), exactly and in float64.

    Returns:
        {"inputs": exact inputs, "ok": a counterexample in exact arithmetic, "float64": also in
        float64, "diffs": exact f_A[k] - f_B[map k], "worst": k of the largest |diff|, "vals_a",
        "vals_b"}; `ok` is False when x is outside the domain.
    """
    lo, hi = a.input.lo.exact, a.input.hi.exact
    xq = [min(max(to_fraction(v), p), q) for v, p, q in zip(x, lo, hi)]
    va, vb = evaluate(a, xq, exact=True), evaluate(b, xq, exact=True)
    inside = all(holds(c, {a.input.name: xq}) for c in a.input.constraints)
    diffs = [va[a.output][k] - vb[b.output][j] for k, j in enumerate(mapping)]
    worst = max(range(len(diffs)), key=lambda k: abs(diffs[k]))
    xf = [float(v) for v in xq]
    fa, fb = evaluate(a, xf)[a.output], evaluate(b, xf)[b.output]
    fdiff = max(abs(float(fa[k]) - float(fb[j])) for k, j in enumerate(mapping))
    return {"inputs": xq, "ok": inside and abs(diffs[worst]) > tol, "float64": fdiff > tol,
            "diffs": diffs, "worst": worst, "vals_a": va, "vals_b": vb}


def counterexample(res: Result, a: Network, b: Network, mapping, rep: dict, how: str) -> Result:
    """Fill `res` with a replayed counterexample."""
    k = rep["worst"]
    res.status = EquivStatus.DIFFERS
    res.info.update(verdict="not equivalent", max_difference=float(abs(rep["diffs"][k])),
                    differences=[format_number(d) for d in rep["diffs"]])
    res.witness = witness_dict(a, rep["inputs"], rep["vals_a"])
    res.replay = {"exact": True, "float64": rep["float64"], "reason": "", "slack": 0.0}
    res.certified = f"counterexample from {how}, replayed in exact rational arithmetic in both"
    ya, yb = rep["vals_a"][a.output][k], rep["vals_b"][b.output][mapping[k]]
    exact = format_number(ya - yb)
    res.message = (f"not equivalent: {a.name}.{a.output}[{k}] = {float(ya):.9g} but "
                   f"{b.name}.{b.output}[{mapping[k]}] = {float(yb):.9g} "
                   f"(difference {float(ya - yb):.6g}"
                   + (f", exactly {exact})" if len(exact) <= 24 else ")"))
    if not rep["float64"]:
        res.notes.append("the difference is within float64 rounding there (exact replay only)")
    return res
