"""Running a query: its options checked, then its kind's runner (`RUNNERS`), and a `Result`
that says it all; `prepare` runs the bound passes for a verify query."""
from __future__ import annotations

import importlib
import time

import numpy as np

from nnir.deadline import Deadline
from nnir.errors import BackendError, NnirError, UnsupportedQuery
from nnir.ir.const import Const
from nnir.ir.formula import nnf
from nnir.ir.nodes import Program, Verify
from nnir.passes.manager import PassContext, default_pipeline
from nnir.queries import status as st
from nnir.queries.problem import VerifyProblem
from nnir.queries.result import Result
from nnir.queries.route import check_options


def prepare(prog: Program, q: Verify, ctx: PassContext | None = None) -> VerifyProblem:
    """Run the bound passes on the query's network and build the backend's problem.

    Single-coordinate `where` bounds (e.g. a VNN-LIB property's box) first cut the input box,
    so the passes bound the network over the query's region. The non-strict ones the cut box
    now enforces exactly are then dropped from the problem (the same feasible set): kept, they
    looked to the split engine like atoms always about to close, so it split the box along
    them alone (ACAS Xu 1_1 prop 1 from a `.nnir` file: 0 of 34k sub-boxes closed in 20 s,
    against a proof in under 2 s without them).
    """
    net = box_from_where(prog.network(q.net), q.where)
    where = tuple(a for a in q.where if not _enforced_by_box(a, net))
    net = default_pipeline().run(net, ctx)
    return VerifyProblem(net, where, nnf(q.prop), q.name)


def _enforced_by_box(a, net) -> bool:
    """Does the box of `net` imply atom `a` exactly (a non-strict one-input bound it holds)?"""
    if len(a.terms) != 1 or a.terms[0][0].node != net.input.name or a.rel in ("<", ">"):
        return False
    (ref, c), = a.terms
    lo, hi = net.input.lo.exact[ref.index], net.input.hi.exact[ref.index]
    # c x REL rhs over x in [lo, hi]: c x ranges over [min(c lo, c hi), max(c lo, c hi)]
    low, high = min(c * lo, c * hi), max(c * lo, c * hi)
    return {"<=": high <= a.rhs, ">=": low >= a.rhs, "==": low == high == a.rhs}[a.rel]


def box_from_where(net, where):
    """`net` with its box cut by the one-variable bounds in `where` (the same feasible set)."""
    from dataclasses import replace

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


# Query kind -> (module, function): each kind's runner (its prepare, solve and check), imported
# on use, since each pulls in its solvers. Runners take (prog, q, backend, timeout, options);
# timeout is seconds or a `Deadline`.
RUNNERS = {"verify": ("nnir.queries.verify", "run_verify"),
           "train": ("nnir.queries.train", "run_train"),
           "bound": ("nnir.queries.bound", "run_bound"),
           "stable": ("nnir.queries.stable", "run_stable"),
           "compress": ("nnir.queries.compress", "run_compress"),
           "equiv": ("nnir.queries.equiv", "run_equiv")}


def run_query(prog: Program, q, backend: str = "auto", timeout: float | None = None,
              **options) -> Result:
    """Answer one query; never raises for solver trouble (that is an `error` result).

    Raises:
        UsageError: an option that neither the query kind nor a backend the run involves
            declares, or one of the wrong type (the message names the valid options).
    """
    start = time.perf_counter()
    deadline = Deadline.after(timeout)
    if q.kind in RUNNERS:
        try:
            check_options(q.kind, backend, options)
        except BackendError:
            pass  # an unknown backend: the runner reports it as this query's error
    try:
        if q.kind not in RUNNERS:
            raise UnsupportedQuery(
                f"'{q.kind}' queries are not supported by backend '{backend}' yet",
                q.span, "this build answers " + ", ".join(RUNNERS) + " queries")
        module, fn = RUNNERS[q.kind]
        res = getattr(importlib.import_module(module), fn)(prog, q, backend, deadline, options)
    except NnirError as exc:
        res = Result(q.name, q.kind, "error", backend, message=exc.render(), span=q.span)
    if res.status in st.NO_SOLUTION and not res.exact:
        # The last line of defence of "no wrong unsat": whatever the query kind, a verdict
        # that rests on a MILP's tolerances and was not confirmed is not reported as one.
        res.unconfirmed_unsat(deadline.expired())
    res.seconds = time.perf_counter() - start
    return res
