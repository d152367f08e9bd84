"""The z3 backend: solves the emitted SMT-LIB text with z3's Python API, reading models exactly.

The script is parsed by z3 itself (`Solver.from_string`), so what is solved is exactly the text
`nnirc emit` would write; `check-sat`/`get-value` in it are ignored there and done through the API.
"""
from __future__ import annotations

import time
from fractions import Fraction

from nnir.backends.base import Answer, Backend
from nnir.backends.smtlib.lower import check_options, script_for, timeout_ms


class Z3Backend(Backend):
    """QF_LRA verification with z3 (in process). Options: relu ("ite"|"or"), hints (bool)."""

    name = "z3"
    description = "z3 SMT solver (Python API), exact QF_LRA"
    kinds = frozenset({"verify", "train"})
    logics = frozenset({"QF_LRA", "QF_NRA"})
    optimizes = True
    exact = True
    modules = ("z3",)

    def __init__(self, **options):
        check_options(self.name, options)
        super().__init__(**options)

    def solve_verify(self, problem, timeout: float | None = None) -> Answer:
        import z3

        script = script_for(problem, self.options)
        info = {"solver": f"z3 {z3.get_version_string()}", "logic": script.logic,
                "relu": self.options.get("relu", "ite")}
        start = time.perf_counter()
        try:
            ctx = z3.Context()  # a fresh context per solve: no state shared between problems
            solver = z3.Solver(ctx=ctx)
            ms = timeout_ms(timeout)
            if ms is not None:
                solver.set("timeout", ms)
            solver.from_string(script.text)
            result = solver.check()
            info["time_s"] = time.perf_counter() - start
            if result == z3.unsat:
                return Answer("unsat", info=info)
            if result == z3.sat:
                return _witness(z3, ctx, solver.model(), script.input_names, info)
            reason = solver.reason_unknown()
        except z3.Z3Exception as exc:
            info["time_s"] = time.perf_counter() - start
            return Answer("error", message=f"z3 failed: {_text(exc)}", info=info)
        if timeout is not None and (reason in ("timeout", "canceled")
                                    or info["time_s"] >= timeout):
            return Answer("timeout", message=f"z3 stopped after {timeout} s ({reason})",
                          info=info)
        return Answer("unknown", message=f"z3 answered unknown: {reason}", info=info)

    def solve_train(self, problem, timeout: float | None = None) -> Answer:
        """Find weights fitting every point of `problem` (option `encoding`: auto, signed
        QF_LRA, naive QF_NRA, or layerwise for deeper nets; see `backends/train_exact/`).

        The weights returned are replayed exactly on every point.
        """
        from nnir.backends.train_exact import solve_train_exact

        return solve_train_exact(problem, self.name, timeout, self.options)


def _witness(z3, ctx, model, names: list[str], info: dict) -> Answer:
    """The model's input values as exact Fractions, or an error for a non-rational value."""
    inputs = []
    for name in names:
        v = model.eval(z3.Real(name, ctx), model_completion=True)
        if not z3.is_rational_value(v):
            return Answer("error", message=f"z3 gave a non-rational value {v} for {name}",
                          info=info)
        inputs.append(Fraction(v.numerator_as_long(), v.denominator_as_long()))
    return Answer("sat", inputs=inputs, info=info)


def _text(exc: Exception) -> str:
    msg = exc.args[0] if exc.args else exc
    return msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
