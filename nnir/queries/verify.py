"""`verify`: solve on the route `nnir/queries/route.py` picks, replay every witness exactly, and
never report a MILP `unsat` as `unsat` unless an exact method confirmed it (`_settle_unsat`)."""
from __future__ import annotations

from dataclasses import replace

from nnir import proc
from nnir.backends import registry
from nnir.deadline import Deadline
from nnir.errors import UnsupportedQuery
from nnir.ir.nodes import Program, Verify
from nnir.options import parse
from nnir.queries import route as routing
from nnir.queries.options import VerifyOptions
from nnir.queries.problem import VerifyProblem
from nnir.queries.replay import replay_verify
from nnir.queries.result import Result, witness_dict
from nnir.queries.run import count_unstable, prepare

# Below this many seconds left, a further confirmation step is not started.
STEP_MIN_S = 0.05


def run_verify(prog: Program, q: Verify, backend: str, timeout, options: dict) -> Result:
    """Solve with the named backend, or, for `auto`, by the route `route.plan` gives.

    Whatever the route, a MILP `unsat` is never reported as `unsat` unless an exact method
    confirmed it (`_settle_unsat`): HiGHS decides in floating point, and on a property that
    holds by less than its tolerances its "infeasible" is simply wrong.
    """
    deadline = Deadline.of(timeout)
    o = parse(VerifyOptions, options)
    problem = prepare(prog, q)
    unstable = count_unstable(problem.net)
    notes = [f"{unstable} unstable ReLUs after interval bounds"]
    plan = routing.plan("verify", backend, confirm=o.confirm, problem=problem,
                        auto_split=o.auto_split, span=q.span)
    if plan.pre:  # a sound branch-and-bound engine first; if it cannot decide, the plan below
        res = _solve_once(problem, q, plan.pre, deadline, options)
        if res.status not in ("unknown", "error"):
            return res.add_notes(*notes, f"auto picked '{plan.pre}': {plan.why}", first=True)
        notes.append(f"auto tried '{plan.pre}' first ({plan.why}): {res.status}")
        if plan.after == plan.pre:  # it could not decide: not again after the MILP
            plan = replace(plan, after=None)
    if backend == "auto" and plan.first_exact:
        return _solve_guarded(problem, q, plan.first, deadline, options).add_notes(
            *notes, f"auto picked '{plan.first}'", first=True)
    res = _solve_once(problem, q, plan.first, deadline, options)
    if backend == "auto":
        notes.append(f"auto ran '{plan.first}' first")
    if res.status == "unknown" and res.replay and plan.confirm:  # witness failed replay
        # A MILP witness failed exact replay: a close call, settled by an exact solver.
        res = _solve_guarded(problem, q, plan.confirm, deadline, options)
        notes.append(f"{plan.first}'s witness failed exact replay; answered by "
                     f"'{plan.confirm}'")
    elif res.status == "unsat" and not plan.first_exact:
        res = _settle_unsat(problem, q, res, deadline, options, unstable, plan)
    return res.add_notes(*notes, first=True)


def _settle_unsat(problem: VerifyProblem, q: Verify, res: Result, deadline: Deadline, options,
                  unstable: int, plan: routing.Route) -> Result:
    """Confirm a MILP `unsat` by an exact method, or report it as not confirmed.

    Tried in turn, each within the time left: the route's exact SMT solver (while at most
    `route.SMT_MAX_UNSTABLE` ReLUs are unstable: beyond that it rarely finishes), then the
    route's sound branch-and-bound engine (`split` or `bab`: sound float64 bounds, exact
    hand-offs). Each runs in a killable child, so
    one that ignores its limit cannot overrun the query's. A `sat` from either is replayed
    exactly like any witness, and exposes a MILP error. When neither settles it, the status is
    `unknown` (`timeout` when time ran out), never `unsat`: `info["unconfirmed"]` and the
    message say what the MILP found, for a user who accepts tolerances.
    """
    milp = res.backend
    tried = []
    if plan.confirm is not None or plan.after:
        if plan.confirms(unstable):
            res2 = _solve_guarded(problem, q, plan.confirm, deadline, options)
            if res2.status in ("sat", "unsat"):
                return res2.add_notes(f"{milp} said unsat; '{plan.confirm}' answered "
                                      f"{res2.status} exactly")
            tried.append(f"'{plan.confirm}' gave {res2.status}")
        elif plan.confirm is not None:
            tried.append(f"no exact SMT confirmation ({unstable} unstable ReLUs > "
                         f"{plan.max_unstable})")

        if plan.after and not deadline.expired(STEP_MIN_S):
            res3 = _solve_guarded(problem, q, plan.after, deadline, options)
            if res3.status in ("sat", "unsat"):
                return res3.add_notes(f"{milp} said unsat; '{plan.after}' answered "
                                      f"{res3.status} exactly")
            tried.append(f"'{plan.after}' gave {res3.status}")
    return res.unconfirmed_unsat(deadline.expired(STEP_MIN_S), "; ".join(tried) if tried else
                                 "confirmation is off")


def _solve_guarded(problem: VerifyProblem, q: Verify, name: str, deadline: Deadline,
                   options) -> Result:
    """`_solve_once` in a killable child process, stopped at the deadline (plus a second for
    the child to report), so a solver that ignores its own limit cannot overrun the query's."""
    if not deadline.bounded or not proc.available():
        return _solve_once(problem, q, name, deadline, options)
    reply = proc.call(_solve_once, problem, q, name, deadline, options,
                      timeout=deadline.left() + 1.0)
    if isinstance(reply, Result):
        return reply
    if isinstance(reply, proc.Failure):
        if reply.kind == "nnir":
            return Result(q.name, "verify", "error", name, message=reply.message, span=q.span)
        raise RuntimeError(reply.message)
    status = "timeout" if reply is proc.TIMEOUT else "error"
    return Result(q.name, "verify", status, name, span=q.span,
                  message=f"{name} was stopped at the time limit" if status == "timeout" else
                  f"{name}'s process ended unexpectedly (exit status {reply.code})")


def _solve_once(problem: VerifyProblem, q: Verify, name: str, deadline: Deadline,
                options) -> Result:
    """One backend call, with the witness replayed and the verdict's basis stated."""
    solver = registry.get_backend(name, **options)
    if "verify" not in solver.kinds:
        raise UnsupportedQuery(f"backend '{name}' does not answer verify queries", q.span)
    ans = solver.solve_verify(problem, timeout=deadline.left())
    res = Result(q.name, "verify", ans.status, name, message=ans.message, span=q.span)
    if ans.status == "sat":
        rep = replay_verify(problem, ans.inputs, clip=not solver.exact)
        res.replay = rep.to_dict()
        if rep.exact:
            res.witness = witness_dict(problem.net, rep.inputs, rep.vals_exact)
            res.certified = "witness replayed in exact rational arithmetic"
            if not rep.float64:
                res.notes.append(rep.reason)
        else:
            res.status = "unknown"
            res.message = (f"{name} reported sat, but its witness failed replay: "
                           f"{rep.reason} (off by {rep.slack:.3g})")
    elif ans.status == "unsat":
        if solver.exact:
            res.certified = (ans.info.get("certified")
                             or f"exact ({name}, QF_LRA over the rationals)")
        else:
            tols = ", ".join(f"{k} {v}" for k, v in ans.info.items()
                             if k.endswith("_tolerance") or k in ("margin", "strict_tol"))
            res.certified = f"MILP under floating-point tolerances, not an exact proof ({tols})"
            res.exact = False
    return res
