"""The cvc5 backend: cvc5's own SMT-LIB parser reads the emitted script; models are read exactly.

Commands are replayed through `cvc5.InputParser`, except `check-sat` and `get-value`, which are
done through the API so that the answer and the values (`Term.getRealValue`, a `Fraction`) are
read without printing and re-parsing.
"""
from __future__ import annotations

import time
from fractions import Fraction

from nnir.backends.base import Answer, Backend
from nnir.backends.smtlib.lower import check_options, script_for, timeout_ms

_SKIPPED = ("check-sat", "get-value")


class Cvc5Backend(Backend):
    """QF_LRA verification with cvc5 (in process). Options: relu ("ite"|"or"), hints (bool)."""

    name = "cvc5"
    description = "cvc5 SMT solver (Python API), exact QF_LRA"
    kinds = frozenset({"verify", "train"})
    logics = frozenset({"QF_LRA", "QF_NRA"})
    optimizes = False
    exact = True
    modules = ("cvc5",)

    def __init__(self, **options):
        check_options(self.name, options)
        super().__init__(**options)

    def solve_verify(self, problem, timeout: float | None = None) -> Answer:
        import cvc5

        script = script_for(problem, self.options)
        info = {"solver": "cvc5", "logic": script.logic, "relu": self.options.get("relu", "ite")}
        start = time.perf_counter()
        try:
            tm = cvc5.TermManager()
            solver = cvc5.Solver(tm)
            solver.setOption("produce-models", "true")
            ms = timeout_ms(timeout)
            if ms is not None:
                solver.setOption("tlimit-per", str(ms))
            version = solver.getVersion()  # bytes in some releases
            info["solver"] = "cvc5 " + (version.decode() if isinstance(version, bytes) else version)
            symbols = cvc5.SymbolManager(tm)
            parser = cvc5.InputParser(solver, symbols)
            parser.setStringInput(cvc5.InputLanguage.SMT_LIB_2_6, script.text, problem.name)
            while True:
                cmd = parser.nextCommand()
                if cmd.isNull():
                    break
                if cmd.getCommandName() not in _SKIPPED:
                    cmd.invoke(solver, symbols)
            result = solver.checkSat()
            info["time_s"] = time.perf_counter() - start
            if result.isUnsat():
                return Answer("unsat", info=info)
            if result.isSat():
                terms = {t.getSymbol(): t for t in symbols.getDeclaredTerms() if t.hasSymbol()}
                return _witness(solver, terms, script.input_names, info)
            why = result.getUnknownExplanation()
        except RuntimeError as exc:  # cvc5 reports parse and API errors as RuntimeError
            info["time_s"] = time.perf_counter() - start
            return Answer("error", message=f"cvc5 failed: {exc}", info=info)
        if timeout is not None and (why == cvc5.UnknownExplanation.TIMEOUT
                                    or info["time_s"] >= timeout):
            return Answer("timeout", message=f"cvc5 stopped after {timeout} s ({why.name})",
                          info=info)
        return Answer("unknown", message=f"cvc5 answered unknown: {why.name}", info=info)

    def solve_train(self, problem, timeout: float | None = None) -> Answer:
        """Find weights fitting every point of `problem` (option `encoding`: auto, signed
        QF_LRA, naive QF_NRA, or layerwise for deeper nets; see `backends/train_exact/`).

        The weights returned are replayed exactly on every point.
        """
        from nnir.backends.train_exact import solve_train_exact

        return solve_train_exact(problem, self.name, timeout, self.options)


def _witness(solver, terms: dict, names: list[str], info: dict) -> Answer:
    inputs = []
    for name in names:
        value = solver.getValue(terms[name])
        if not value.isRealValue():
            return Answer("error", message=f"cvc5 gave a non-rational value {value} for {name}",
                          info=info)
        q = value.getRealValue()  # a fractions.Fraction, exact
        inputs.append(Fraction(q.numerator, q.denominator))
    return Answer("sat", inputs=inputs, info=info)
