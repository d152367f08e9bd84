"""The PySMT backend: PySMT's `SmtLibParser` reads the emitted script; any PySMT solver solves it.

Each solve uses its own PySMT `Environment` (never the global one), so symbols and formulas from
one problem never leak into the next. Options: solver (a name from PySMT's factory, default
"z3"), relu ("ite"|"or"), hints (bool).
"""
from __future__ import annotations

import io
import time
from fractions import Fraction

from nnir.backends.base import Answer, Backend
from nnir.backends.options import PysmtOptions
from nnir.backends.smtlib.check import killable
from nnir.backends.smtlib.lower import check_options, script_for, timeout_ms

# How to pass a time limit in milliseconds to the solvers PySMT wraps (its options are per solver).
_TIMEOUT_OPTION = {"z3": "timeout", "cvc5": "tlimit-per"}


class PysmtBackend(Backend):
    """QF_LRA verification through PySMT's solver layer (default solver: z3)."""

    name = "pysmt"
    description = "PySMT SmtLibParser + a PySMT solver (option solver=, default z3), exact QF_LRA"
    kinds = frozenset({"verify"})
    Options = PysmtOptions
    logics = frozenset({"QF_LRA"})
    optimizes = False
    exact = True
    modules = ("pysmt",)

    def __init__(self, **options):
        check_options(self.name, options)
        super().__init__(**options)

    def solve_verify(self, problem, timeout: float | None = None) -> Answer:
        """Parse and solve in a killable child when there is a limit (`check.killable`): PySMT's
        parser is pure Python, so only the solve itself would otherwise keep the limit (a 3 s
        limit on ACAS Xu ran 6.7 s)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        name = f"PySMT ({self.opts.solver})"
        return killable(self._solve, problem, timeout, deadline, timeout=timeout,
                        stopped=lambda how: Answer("timeout", message=f"{name} {how} after "
                                                   f"{timeout} s"))

    def _solve(self, problem, timeout: float | None, deadline: float | None) -> Answer:
        from pysmt.environment import Environment
        from pysmt.exceptions import PysmtException, SolverReturnedUnknownResultError
        from pysmt.smtlib.parser import SmtLibParser

        script = script_for(problem, self.options)
        solver_name = self.opts.solver
        info = {"solver": f"pysmt/{solver_name}", "logic": script.logic,
                "relu": self.opts.relu}
        env = Environment()
        installed = sorted(env.factory.all_solvers())
        if solver_name not in installed:
            return Answer("error", message=f"PySMT has no solver '{solver_name}'; installed: "
                          f"{', '.join(installed) or 'none'}", info=info)
        solver_options = {}
        start = time.perf_counter()
        try:
            parsed = SmtLibParser(environment=env).get_script(io.StringIO(script.text))
            formula = parsed.get_last_formula()
            # the solver gets what parsing left of the limit
            ms = None if deadline is None else timeout_ms(max(0.001, deadline - time.monotonic()))
            if ms is not None:
                if solver_name in _TIMEOUT_OPTION:
                    solver_options[_TIMEOUT_OPTION[solver_name]] = ms
                else:
                    info["timeout_enforced"] = False  # no known option: the child is killed
            with env.factory.Solver(name=solver_name, logic=script.logic,
                                    solver_options=solver_options) as solver:
                solver.add_assertion(formula)
                try:
                    is_sat = solver.solve()
                except SolverReturnedUnknownResultError:
                    info["time_s"] = time.perf_counter() - start
                    return _unknown(solver, solver_name, timeout, info, deadline)
                info["time_s"] = time.perf_counter() - start
                if not is_sat:
                    return Answer("unsat", info=info)
                mgr = env.formula_manager
                values = [solver.get_value(mgr.get_symbol(n)) for n in script.input_names]
        except PysmtException as exc:
            info["time_s"] = time.perf_counter() - start
            return Answer("error", message=f"PySMT ({solver_name}) failed: "
                          f"{type(exc).__name__}: {exc}", info=info)
        inputs = []
        for name, v in zip(script.input_names, values):
            if not v.is_real_constant():
                return Answer("error", message=f"PySMT gave a non-rational value {v} for {name}",
                              info=info)
            q = v.constant_value()  # Fraction or gmpy2 mpq, both exact
            inputs.append(Fraction(int(q.numerator), int(q.denominator)))
        return Answer("sat", inputs=inputs, info=info)


def _unknown(solver, solver_name: str, timeout: float | None, info: dict,
             deadline: float | None = None) -> Answer:
    reason = ""
    if solver_name == "z3":  # only z3 keeps the reason where PySMT lets us see it
        reason = solver.z3.reason_unknown()
    # the solver's limit was the time left at the deadline (a few ms of slack for its clock)
    late = deadline is not None and time.monotonic() >= deadline - 0.005
    if timeout is not None and (reason in ("timeout", "canceled") or late
                                or info["time_s"] >= timeout):
        return Answer("timeout", message=f"PySMT ({solver_name}) stopped after {timeout} s",
                      info=info)
    return Answer("unknown", message=f"PySMT ({solver_name}) answered unknown"
                  + (f": {reason}" if reason else ""), info=info)
