"""The solver route of `equiv`: random sampling, input splitting (`equiv_search`, few inputs),
SMT (exact) or MILP (float tolerances); every counterexample replayed exactly in both networks
(`equiv_replay`, integer arithmetic; see `nnir/queries/equiv.py`)."""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from nnir.backends import registry
from nnir.backends.milp.equiv import max_differences
from nnir.backends.smtlib.equiv import solve_equiv_smt
from nnir.deadline import Deadline
from nnir.ir.const import format_number
from nnir.ir.evaluate import evaluate_batch
from nnir.ir.nodes import Network
from nnir.options import parse
from nnir.queries import route as routing
from nnir.queries import status as st
from nnir.queries.equiv_replay import replay_difference
from nnir.queries.equiv_search import applies as search_applies
from nnir.queries.equiv_search import search_equiv
from nnir.queries.options import EquivOptions
from nnir.queries.result import Result, witness_dict
from nnir.queries.run import count_unstable
from nnir.queries.status import EquivStatus

MILP_EPS = 1e-6  # a MILP maximum this far above tol is not read as "equivalent"
SAMPLES = 256
# input splitting may take this share of the time left (without a limit: SEARCH_S seconds);
# an undecided search leaves the rest to the solver route
SEARCH_SHARE = 0.75
SEARCH_S = 300.0


def _unstable(*nets: Network) -> int:
    return sum(count_unstable(n) for n in nets)


def solve(res: Result, a: Network, b: Network, mapping, tol: Fraction, backend: str,
          deadline: Deadline, options: dict, search: float | None = None) -> Result:
    """Decide on the route `route.plan` gives for equiv (auto: HiGHS, an exact solver
    re-deciding what it leaves; z3, cvc5 or highs by name), after random sampling and, when
    `search` is a share of the time left (1.0: all of it), input splitting (`equiv_search`)
    where it applies; `a`, `b` carry facts over A's domain."""
    o = parse(EquivOptions, options)
    unstable = _unstable(a, b)
    res.notes.append(f"{unstable} unstable ReLUs in the two networks after the bound passes")
    if o.sample:
        found = _sample(res, a, b, mapping, tol, deadline)
        if found is not None:
            return found
    if search:
        why = search_applies(a, b)
        if why is None:
            found = _search(res, a, b, mapping, tol, deadline, search)
            if found is not None:
                return found
        else:
            res.notes.append(f"input splitting not tried: {why}")
    if deadline.expired():
        res.status, res.message = EquivStatus.TIMEOUT, "time limit reached"
        return res
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


def _search(res: Result, a, b, mapping, tol, deadline: Deadline, share: float):
    """Input splitting (`equiv_search`): a decided answer fills `res`; otherwise None (the
    solver route goes on with the time left, a note says why)."""
    own = deadline.share(share) if deadline.bounded else (None if share >= 1 else SEARCH_S)
    out = search_equiv(a, b, mapping, tol, deadline.cap(own))
    res.info["search"] = out.stats
    if out.status == "differs":
        res.backend = "splitting"
        res.info["proven_by"] = "input splitting"
        return counterexample(res, a, b, mapping, out.rep, out.how)
    if out.status == "equivalent":
        res.status, res.exact, res.backend = EquivStatus.EQUIVALENT, True, "splitting"
        res.info.update(verdict="equivalent", proven_by="input splitting")
        res.certified = f"equivalent: exact ({out.how})"
        res.message = "equivalent"
        return res
    res.notes.append(f"input splitting: {out.status}: {out.how}")
    return None


def _sample(res: Result, a, b, mapping, tol, deadline: Deadline | None = None,
            n: int = SAMPLES, seed: int = 0):
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
        rep = replay_difference(a, b, mapping, X[i].tolist(), tol, deadline)
        if rep is not None and rep["ok"]:
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
        rep = replay_difference(a, b, mapping, [found.values[n] for n in names], tol, deadline)
        if rep is None:
            res.status, res.message = EquivStatus.TIMEOUT, "time limit reached in the replay"
            return res
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
        rep = replay_difference(a, b, mapping, x, tol, deadline)
        if rep is not None and rep["ok"]:
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


def counterexample(res: Result, a: Network, b: Network, mapping, rep: dict, how: str) -> Result:
    """Fill `res` with a replayed counterexample."""
    k = rep["worst"]
    res.status = EquivStatus.DIFFERS
    res.info.update(verdict="not equivalent", max_difference=float(abs(rep["diffs"][k])),
                    differences=[format_number(d) for d in rep["diffs"]])
    res.witness = witness_dict(a, rep["inputs"], rep["vals_a"])
    res.replay = {"exact": True, "float64": rep["float64"], "reason": "", "slack": 0.0}
    res.certified = (f"counterexample from {how}, replayed in exact arithmetic in both "
                     "(integers over a common denominator)")
    ya, yb = rep["vals_a"][a.output][k], rep["vals_b"][b.output][mapping[k]]
    exact = format_number(ya - yb)
    res.message = (f"not equivalent: {a.name}.{a.output}[{k}] = {float(ya):.9g} but "
                   f"{b.name}.{b.output}[{mapping[k]}] = {float(yb):.9g} "
                   f"(difference {float(ya - yb):.6g}"
                   + (f", exactly {exact})" if len(exact) <= 24 else ")"))
    if not rep["float64"]:
        res.notes.append("the difference is within float64 rounding there (exact replay only)")
    return res
