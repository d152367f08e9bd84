"""Running a query: passes, backend choice, solve, replay, and a `Result` that says it all."""
from __future__ import annotations

import importlib
import time

import numpy as np

from nnir.errors import NnirError, UnsupportedQuery
from nnir.ir.nodes import Bound, Compress, Equiv, Program, Stable, Train, Verify
from nnir.passes.manager import PassContext, default_pipeline
from nnir.queries import status as st
from nnir.queries.problem import VerifyProblem
from nnir.queries.replay import replay_verify
from nnir.queries.result import Result, witness_dict


def prepare(prog: Program, q: Verify, ctx: PassContext | None = None) -> VerifyProblem:
    """Run the bound passes on the query's network and build the backend's problem.

    Single-coordinate `where` bounds (e.g. a VNN-LIB property's box) first cut the input box,
    so the passes bound the network over the query's region; the constraints stay in the problem.
    """
    net = default_pipeline().run(box_from_where(prog.network(q.net), q.where), ctx)
    return VerifyProblem.from_query(q, net)


def box_from_where(net, where):
    """`net` with its box cut by the one-variable bounds in `where` (the same feasible set)."""
    from dataclasses import replace

    from nnir.ir.const import Const

    lo, hi = list(net.input.lo.exact), list(net.input.hi.exact)
    for a in where:
        if len(a.terms) != 1 or a.terms[0][0].node != net.input.name:
            continue
        (ref, c), = a.terms
        v, rel = a.rhs / c, a.rel if c > 0 else {"<=": ">=", "<": ">", ">=": "<=", ">": "<"}.get(
            a.rel, a.rel)
        if rel in ("<=", "<", "=="):
            hi[ref.index] = min(hi[ref.index], v)
        if rel in (">=", ">", "=="):
            lo[ref.index] = max(lo[ref.index], v)
    if any(a > b for a, b in zip(lo, hi)):
        return net  # an empty region: left to the solver, which finds it infeasible
    if lo == list(net.input.lo.exact) and hi == list(net.input.hi.exact):
        return net
    return replace(net, input=replace(net.input, lo=Const.exact_of(lo), hi=Const.exact_of(hi)))


def count_unstable(net) -> int:
    if net.facts is None:
        return sum(lay.size for lay in net.layers if lay.act == "relu")
    return sum(int(np.sum(net.facts.stable[lay.name] == 0)) for lay in net.layers
               if lay.act == "relu")


_RUNNERS = {Bound: ("nnir.queries.bound", "run_bound"),
            Stable: ("nnir.queries.stable", "run_stable"),
            Compress: ("nnir.queries.compress", "run_compress"),
            Equiv: ("nnir.queries.equiv", "run_equiv")}


def run_query(prog: Program, q, backend: str = "auto", timeout: float | None = None,
              **options) -> Result:
    """Answer one query; never raises for solver trouble (that is an `error` result)."""
    start = time.perf_counter()
    try:
        if isinstance(q, Verify):
            res = _verify(prog, q, backend, timeout, options)
        elif isinstance(q, Train):
            res = _train(prog, q, backend, timeout, options)
        elif type(q) in _RUNNERS:  # imported on use: each pulls in its solvers
            module, fn = _RUNNERS[type(q)]
            res = getattr(importlib.import_module(module), fn)(prog, q, backend, timeout, options)
        else:
            raise UnsupportedQuery(
                f"'{q.kind}' queries are not supported by backend '{backend}' yet",
                q.span, "this build answers verify, train, bound, stable, compress and "
                "equiv queries")
    except NnirError as exc:
        res = Result(q.name, q.kind, "error", backend, message=exc.render(), span=q.span)
    if res.status in st.NO_SOLUTION and not res.exact:
        # The last line of defence of "no wrong unsat": whatever the query kind, a verdict
        # that rests on a MILP's tolerances and was not confirmed is not reported as one.
        res.unconfirmed_unsat(timeout is not None and time.perf_counter() - start >= timeout)
    res.seconds = time.perf_counter() - start
    return res


def _verify(prog: Program, q: Verify, backend: str, timeout, options) -> Result:
    """Solve with the named backend, or, for `auto`, by the plan in `registry.auto_plan`.

    Whatever the route, a MILP `unsat` is never reported as `unsat` unless an exact method
    confirmed it (`_settle_unsat`): HiGHS decides in floating point, and on a property that
    holds by less than its tolerances its "infeasible" is simply wrong.
    """
    from nnir.backends import registry

    deadline = None if timeout is None else time.monotonic() + timeout
    problem = prepare(prog, q)
    unstable = count_unstable(problem.net)
    notes = [f"{unstable} unstable ReLUs after interval bounds"]
    if backend != "auto":
        res = _solve_once(problem, q, backend, deadline, options)
        if res.status == "unknown" and res.replay and not registry.backend_class(backend).exact \
                and options.get("confirm", True):
            # A MILP witness failed exact replay: a close call, settled by an exact solver.
            exact = registry.exact_backends()
            if exact:
                res = _solve_guarded(problem, q, exact[0], deadline, options).add_notes(
                    f"{backend}'s witness failed exact replay; answered by {exact[0]}")
        elif res.status == "unsat" and not registry.backend_class(backend).exact:
            res = _settle_unsat(problem, q, res, deadline, options, unstable)
        return res.add_notes(*notes, first=True)
    why = registry.auto_split(problem) if options.get("auto_split", True) else None
    if why:  # few inputs: input splitting first; if it cannot decide, the MILP/SMT plan below
        res = _solve_once(problem, q, "split", deadline, options)
        if res.status not in ("unknown", "error"):
            return res.add_notes(*notes, f"auto picked 'split': {why}", first=True)
        notes.append(f"auto tried 'split' first ({why}): {res.status}")
    milp, exact = registry.auto_plan("verify", unstable)
    if milp is None:
        return _solve_guarded(problem, q, exact, deadline, options).add_notes(
            *notes, f"auto picked '{exact}'", first=True)
    res = _solve_once(problem, q, milp, deadline, options)
    notes.append(f"auto ran '{milp}' first")
    if res.status == "unknown" and res.replay and exact:  # witness failed replay
        res = _solve_guarded(problem, q, exact, deadline, options)
        notes.append(f"{milp}'s witness failed exact replay; answered by '{exact}'")
    elif res.status == "unsat":
        res = _settle_unsat(problem, q, res, deadline, options, unstable)
    return res.add_notes(*notes, first=True)


def _settle_unsat(problem: VerifyProblem, q: Verify, res: Result, deadline, options,
                  unstable: int) -> Result:
    """Confirm a MILP `unsat` by an exact method, or report it as not confirmed.

    Tried in turn, each within the time left: an exact SMT solver (while at most
    `AUTO_SMT_MAX_UNSTABLE` ReLUs are unstable: beyond that it rarely finishes), then the `split`
    engine (sound float64 bounds, exact hand-offs). Each runs in a killable child, so one that
    ignores its limit cannot overrun the query's. A `sat` from either is replayed exactly like
    any witness, and exposes a MILP error. When neither settles it, the status is `unknown`
    (`timeout` when time ran out), never `unsat`: `info["unconfirmed"]` and the message say what
    the MILP found, for a user who accepts tolerances.
    """
    from nnir.backends import registry

    milp = res.backend
    tried = []
    if options.get("confirm", True):
        exact = registry.exact_backends()
        if exact and unstable <= registry.AUTO_SMT_MAX_UNSTABLE:
            res2 = _solve_guarded(problem, q, exact[0], deadline, options)
            if res2.status in ("sat", "unsat"):
                return res2.add_notes(f"{milp} said unsat; '{exact[0]}' answered "
                                      f"{res2.status} exactly")
            tried.append(f"'{exact[0]}' gave {res2.status}")
        elif exact:
            tried.append(f"no exact SMT confirmation ({unstable} unstable ReLUs > "
                         f"{registry.AUTO_SMT_MAX_UNSTABLE})")
        from nnir.backends.split.props import supported

        if "split" in registry.names() and supported(problem.net) is None and \
                (deadline is None or deadline - time.monotonic() > 0.05):
            res3 = _solve_guarded(problem, q, "split", deadline, options)
            if res3.status in ("sat", "unsat"):
                return res3.add_notes(f"{milp} said unsat; 'split' answered {res3.status} "
                                      "exactly")
            tried.append(f"'split' gave {res3.status}")
    out_of_time = deadline is not None and deadline - time.monotonic() <= 0.05
    return res.unconfirmed_unsat(out_of_time, "; ".join(tried) if tried else
                                 "confirmation is off")


def _solve_guarded(problem: VerifyProblem, q: Verify, name: str, deadline, options) -> Result:
    """`_solve_once` in a killable child process, stopped at the deadline (plus a second for
    the child to report), so a solver that ignores its own limit cannot overrun the query's."""
    from nnir import proc

    if deadline is None or not proc.available():
        return _solve_once(problem, q, name, deadline, options)
    reply = proc.call(_solve_once, problem, q, name, deadline, options,
                      timeout=_remaining(deadline) + 1.0)
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


def _guarded_call(solve, problem, timeout):
    """`solve(problem, timeout=timeout)` (an `Answer`) in a child stopped a second past the
    limit, where fork is available and a limit is set."""
    from nnir import proc
    from nnir.backends.base import Answer

    if timeout is None or not proc.available():
        return solve(problem, timeout=timeout)
    reply = proc.call(solve, problem, timeout=timeout + 1.0)
    if isinstance(reply, Answer):
        return reply
    if reply is proc.TIMEOUT:
        return Answer("timeout", message="stopped at the time limit")
    return Answer("error", message=getattr(reply, "message", f"process ended ({reply})"))


def _remaining(deadline):
    return None if deadline is None else max(0.01, deadline - time.monotonic())


def _solve_once(problem: VerifyProblem, q: Verify, name: str, deadline, options) -> Result:
    """One backend call, with the witness replayed and the verdict's basis stated."""
    from nnir.backends import registry

    solver = registry.get_backend(name, **options)
    if "verify" not in solver.kinds:
        raise UnsupportedQuery(f"backend '{name}' does not answer verify queries", q.span)
    ans = solver.solve_verify(problem, timeout=_remaining(deadline))
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


def _train(prog: Program, q: Train, backend: str, timeout, options) -> Result:
    """Train, then replay the network on every training point before reporting it."""
    from nnir.backends import registry
    from nnir.queries.train import prepare_train, replay_train, test_accuracy

    problem = prepare_train(prog, q)
    notes = [f"{len(problem.y)} points, {problem.n_classes} classes, margin {problem.margin}"]
    name = backend
    if backend == "auto":
        name, why = registry.auto_train(problem)
        notes.append(f"auto picked '{name}': {why}")
    solver = registry.get_backend(name, **options)
    if "train" not in solver.kinds:
        raise UnsupportedQuery(f"backend '{name}' does not answer train queries", q.span,
                               "train backends: " + ", ".join(registry.names_for("train")))
    start = time.monotonic()
    ans = solver.solve_train(problem, timeout=timeout)
    if ans.status == "unsat" and not solver.exact and options.get("confirm", True):
        # HiGHS's infeasibility rests on tolerances: let an exact solver prove it, if it can
        # (in a child stopped at the deadline); unconfirmed, `run_query` reports it `unknown`.
        exact = [n for n in registry.exact_backends() if "train" in registry.backend_class(n).kinds]
        if exact:
            left = None if timeout is None else max(0.01, timeout - (time.monotonic() - start))
            ans2 = _guarded_call(registry.get_backend(exact[0], **options).solve_train, problem,
                                 left)
            if ans2.status in ("sat", "unsat"):
                notes.append(f"{name} said unsat; '{exact[0]}' answered {ans2.status} exactly")
                name, ans, solver = exact[0], ans2, registry.get_backend(exact[0], **options)
            else:
                notes.append(f"exact confirmation by '{exact[0]}' gave {ans2.status}; "
                             f"the {name} verdict stands")
    res = Result(q.name, "train", st.train(ans.status), name, message=ans.message, notes=notes,
                 span=q.span)
    res.info = {k: v for k, v in ans.info.items() if isinstance(v, (int, float, str, bool))}
    if ans.status == "sat":
        rep = replay_train(problem, ans.weights)
        res.replay = {"exact": rep.ok, "float64": rep.float_ok == rep.n, "points": rep.n,
                      "exact_correct": rep.exact_ok, "float64_correct": rep.float_ok,
                      "min_margin": float(rep.min_margin)}
        if q.test is not None:
            acc, n_test = test_accuracy(rep.net, prog, q.test)
            res.replay.update(test_accuracy=acc, test_points=n_test)
        if rep.ok:
            res.trained = rep.net
            res.certified = (f"all {rep.n} training points classified with margin "
                             f"{problem.margin} in exact rational arithmetic")
            if rep.float_ok < rep.n:
                res.notes.append(f"float64 evaluation misclassifies {rep.n - rep.float_ok} "
                                 "points (exact arithmetic classifies all)")
        else:
            res.status = "unknown"
            res.message = (f"{name} returned weights that fail {rep.n - rep.exact_ok} of "
                           f"{rep.n} training points in exact replay")
    elif ans.status == "unsat":
        res.certified = (f"exact ({name})" if solver.exact else
                         "MILP under floating-point tolerances, not an exact proof")
        res.exact = solver.exact
    return res
