"""Running a query: passes, backend choice, solve, replay, and a `Result` that says it all."""
from __future__ import annotations

import time

import numpy as np

from nnir.errors import NnirError, UnsupportedQuery
from nnir.ir.nodes import Program, Verify
from nnir.passes.manager import PassContext, default_pipeline
from nnir.queries.problem import VerifyProblem
from nnir.queries.replay import replay_verify
from nnir.queries.result import Result, witness_dict


def prepare(prog: Program, q: Verify, ctx: PassContext | None = None) -> VerifyProblem:
    """Run the bound passes on the query's network and build the backend's problem."""
    net = default_pipeline().run(prog.network(q.net), ctx)
    return VerifyProblem.from_query(q, net)


def count_unstable(net) -> int:
    if net.facts is None:
        return sum(lay.size for lay in net.layers if lay.act == "relu")
    return sum(int(np.sum(net.facts.stable[lay.name] == 0)) for lay in net.layers
               if lay.act == "relu")


def run_query(prog: Program, q, backend: str = "auto", timeout: float | None = None,
              **options) -> Result:
    """Answer one query; never raises for solver trouble (that is an `error` result)."""
    start = time.perf_counter()
    try:
        if not isinstance(q, Verify):
            raise UnsupportedQuery(
                f"'{q.kind}' queries are not supported by backend '{backend}' yet",
                q.span, "this build answers verify queries; "
                "train, bound, stable, compress and equiv are coming")
        res = _verify(prog, q, backend, timeout, options)
    except NnirError as exc:
        res = Result(q.name, q.kind, "error", backend, message=exc.render(), span=q.span)
    res.seconds = time.perf_counter() - start
    return res


def _verify(prog: Program, q: Verify, backend: str, timeout, options) -> Result:
    from nnir.backends import registry

    problem = prepare(prog, q)
    unstable = count_unstable(problem.net)
    notes = [f"{unstable} unstable ReLUs after interval bounds"]
    name = backend
    if backend == "auto":
        name = registry.choose("verify", "QF_LRA", unstable)
        notes.append(f"auto picked '{name}'")
    solver = registry.get_backend(name, **options)
    if "verify" not in solver.kinds:
        raise UnsupportedQuery(f"backend '{name}' does not answer verify queries", q.span)
    ans = solver.solve_verify(problem, timeout=timeout)
    res = Result(q.name, "verify", ans.status, name, message=ans.message, notes=notes,
                 span=q.span)
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
            if not solver.exact and options.get("confirm", True):
                return _confirm_exact(prog, q, problem, res, timeout)
    elif ans.status == "unsat":
        if solver.exact:
            res.certified = f"exact ({name}, QF_LRA over the rationals)"
        else:
            res.certified = "MILP infeasibility under floating-point tolerances (not exact): " \
                + ", ".join(f"{k}={v}" for k, v in ans.info.items() if "tol" in k)
    return res


def _confirm_exact(prog, q, problem, res: Result, timeout) -> Result:
    """A MILP witness failed exact replay: settle the close call with an exact SMT solver."""
    from nnir.backends import registry

    exact = [n for n in ("z3", "cvc5") if registry.backend_class(n).available()]
    if not exact:
        return res
    res2 = _verify(prog, q, exact[0], timeout, {"confirm": False})
    res2.notes = res.notes + [f"MILP witness failed replay; answer confirmed by {exact[0]}"]
    return res2
