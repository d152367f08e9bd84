"""The `portfolio` backend: several backends race in parallel processes; the first definite
answer wins and the others are stopped.

Definite means `sat` with a witness that the member's process has already replayed in exact
rational arithmetic, or `unsat` from an exact member (split, z3, cvc5, ...). The member `auto`
runs HiGHS and, for an unsat with at most `AUTO_SMT_MAX_UNSTABLE` unstable ReLUs, confirms it
with an exact solver, as `--backend auto` does; a HiGHS `unsat` that no exact solver confirmed
rests on float tolerances and never wins. Options: `members` (comma-separated, default
"split,auto"), `start` (multiprocessing start method, default fork where available).
"""
from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.connection import wait

from nnir import options as option_types
from nnir.backends import registry
from nnir.backends.base import Answer, Backend
from nnir.backends.options import PortfolioOptions
from nnir.deadline import Deadline
from nnir.errors import BackendError
from nnir.proc import after_fork, silence_solvers
from nnir.queries import route as routing
from nnir.queries.replay import replay_verify
from nnir.queries.run import count_unstable

DEFAULT_MEMBERS = PortfolioOptions.members
GRACE = 1.0  # seconds past the limit before a member's process is killed


def _auto(problem, timeout, options) -> Answer:
    """The route of `--backend auto` without input splitting (`route.plan`): HiGHS, then an
    exact re-decision of a small unsat or unknown."""
    deadline = Deadline.after(timeout)
    plan = routing.plan("verify", "auto", auto_split=False)
    ans = registry.get_backend(plan.first, **options).solve_verify(problem, timeout)
    ans.info["exact"] = plan.first_exact
    if ans.status in ("unsat", "unknown") and plan.confirms(count_unstable(problem.net)):
        ans = registry.get_backend(plan.confirm, **options).solve_verify(problem,
                                                                         deadline.left())
        ans.info["exact"] = True
        ans.message = f"{plan.first} then {plan.confirm}: {ans.message}"
    return ans


def _member(conn, name: str, problem, timeout, options) -> None:
    """In a member's process: solve, replay a witness exactly, send (status, inputs, msg, exact)."""
    after_fork()  # a killed nnirc takes its members with it; HiGHS gets a fresh thread pool
    silence_solvers()
    try:
        if name == "auto":
            ans = _auto(problem, timeout, options)
            exact = ans.info.get("exact", False)
        else:
            ans = registry.get_backend(name, **options).solve_verify(problem, timeout)
            exact = registry.backend_class(name).exact and ans.info.get("exact", True)
        inputs = None
        if ans.status == "sat":
            rep = replay_verify(problem, ans.inputs, clip=True)
            if rep.exact:
                inputs = rep.inputs
            else:
                ans.status, ans.message = "unknown", f"witness failed exact replay: {rep.reason}"
        conn.send((ans.status, inputs, ans.message, bool(exact)))
    except Exception as exc:  # reported as this member's answer; the race goes on
        conn.send(("error", None, f"{type(exc).__name__}: {exc}", False))
    finally:
        conn.close()


class PortfolioBackend(Backend):
    """Race several backends in processes; the first definite answer wins (see module doc)."""

    name = "portfolio"
    description = ("runs several backends in parallel processes (default split, auto) and takes "
                   "the first exact answer")
    kinds = frozenset({"verify"})
    Options = PortfolioOptions
    forwards_options = True  # the other options are the members'
    logics = frozenset({"QF_LRA", "MILP"})
    exact = True  # only exact unsats and exactly replayed witnesses are ever returned
    modules = ("multiprocessing",)  # the members' own modules are checked when they start

    def members(self) -> list[str]:
        names = [m.strip() for m in self.opts.members.split(",")]
        bad = [m for m in names if m != "auto" and (m not in registry.names() or m == self.name)]
        if bad or not names:
            raise BackendError(f"portfolio: unknown members {', '.join(bad) or '(none)'}",
                               hint="members are verify backends or auto, e.g. split,auto,z3")
        return [m for m in names if m == "auto" or registry.backend_class(m).available()]

    def solve_verify(self, problem, timeout: float | None = None) -> Answer:
        names = self.members()
        if mp.current_process().daemon:
            raise BackendError("portfolio: a daemonic process (e.g. a pool worker) cannot start "
                               "the member processes", hint="run the portfolio from a "
                               "non-daemonic process, or pick one backend")
        own = option_types.names(PortfolioOptions)
        opts = {k: v for k, v in self.options.items() if k not in own}
        method = self.opts.start or (
            "fork" if "fork" in mp.get_all_start_methods() else "spawn")
        ctx = mp.get_context(method)
        start = time.monotonic()
        running = {}
        for name in names:
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_member, args=(child, name, problem, timeout, opts),
                               daemon=True)
            proc.start()
            child.close()
            running[parent] = (name, proc)
        heard = []
        try:
            while running:
                left = None if timeout is None else timeout + GRACE - (time.monotonic() - start)
                if left is not None and left <= 0:
                    break
                for conn in wait(list(running), timeout=left):
                    name, proc = running.pop(conn)
                    try:
                        status, inputs, msg, exact = conn.recv()
                    except EOFError:
                        status, inputs, msg, exact = "error", None, "process died", False
                    heard.append(f"{name}: {status}")
                    if status == "sat" or (status == "unsat" and exact):
                        took = time.monotonic() - start
                        info = {"winner": name, "members": ",".join(names)}
                        if status == "unsat":
                            info["certified"] = f"exact (portfolio: won by '{name}')"
                        return Answer(status, inputs, f"portfolio: '{name}' answered first "
                                      f"({took:.2f} s; {', '.join(heard)}): {msg}", info)
        finally:
            for _, proc in running.values():
                proc.terminate()
            for _, proc in running.values():
                proc.join(1.0)
                if proc.is_alive():
                    proc.kill()
        heard += [f"{name}: stopped" for name, _ in running.values()]
        timed = any(h.endswith(("timeout", "stopped")) for h in heard)
        return Answer("timeout" if timed else "unknown", None,
                      f"portfolio: no definite answer ({', '.join(heard)})",
                      {"members": ",".join(names)})
