"""The exact routes on one problem: the signed encoding over its sign counts, and the naive one.

**Sign counts.** In the signed encoding units of equal sign are interchangeable, so only the
number k of positive units matters: k = 0..h are all tried (a preferred k first: the balanced
h // 2, which finds solutions fastest, or the count of a warm start). `sat` under one count is a
real solution; `unsat` is claimed only when every count is unsat.

Each route returns (status, weights or None, message, info) with `info` holding `rounds`,
`solves`, `active_points` and, for the signed route, `sign_counts_tried` (and `signs` on sat).
"""
from __future__ import annotations

from nnir.backends.train_exact.cegis import Run, cegis, initial
from nnir.backends.train_exact.normalise import SignedForm
from nnir.backends.train_exact.solve import naive_solve, signed_solve


def _stats(run: Run, active: list[int], last: dict | None) -> dict:
    return {**(last or {}), "rounds": run.rounds, "solves": run.solves,
            "active_points": len(active)}


def signed_route(run: Run, spec: SignedForm, first_k: int | None = None):
    """Every sign count k (positive units) of the signed encoding, `first_k` first, with CEGIS."""
    h = spec.h
    k0 = h // 2 if first_k is None else first_k
    order = [k0] + [k for k in range(h + 1) if k != k0]
    active = initial(run.problem, run.opts)
    tried: list[int] = []
    info: dict = {}
    for k in order:
        signs = tuple([1] * k + [-1] * (h - k))
        tried.append(k)

        def solve_on(act, signs=signs):
            return signed_solve(run, spec, signs, act)

        status, weights, msg, last = cegis(run, solve_on, active)
        info = {**_stats(run, active, last), "sign_counts_tried": list(tried)}
        if status != "unsat":
            if status == "sat":
                info["signs"] = list(signs)
            return status, weights, msg, info
    return "unsat", None, f"all {h + 1} sign counts refuted", info


def naive_route(run: Run):
    """The naive QF_NRA encoding with CEGIS (z3/cvc5 only)."""
    active = initial(run.problem, run.opts)
    status, weights, msg, last = cegis(run, lambda act: naive_solve(run, act), active)
    return status, weights, msg, _stats(run, active, last)
