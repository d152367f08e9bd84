"""One check of an SMT-LIB script with z3 or cvc5 in process, its model values read exactly.

Both the verify backends (`z3_backend`, `cvc5_backend`: the input values are the witness) and
exact training (`train_exact/solve.py`: the weight values) solve through `check_script`.
z3 parses the script itself (`Solver.from_string`); cvc5 replays its commands through
`cvc5.InputParser`, except `check-sat` and `get-value`, which are done through the API so that
the answer and the values (`Term.getRealValue`, a `Fraction`) are read without printing and
re-parsing.

Time limits: the solver gets the time left after parsing (z3 `timeout`, cvc5 `tlimit-per`), and
with a limit the check runs in a killable child process (`killable`, `nnir.proc`): cvc5 does not
poll its limit in every phase (an ACAS Xu check ran 4.5 s past a 3 s limit, a QF_NRA one on a
2-2-2-2 network past a 3 s `tlimit`), and z3 cannot be stopped while it parses (1.8 s for the
equivalence script of two MNIST 2x50 networks).
"""
from __future__ import annotations

import time
from fractions import Fraction
from typing import NamedTuple

from nnir import proc
from nnir.backends.base import Answer
from nnir.backends.smtlib.lower import script_for, timeout_ms
from nnir.errors import BackendError

_SKIPPED = ("check-sat", "get-value")
GRACE = 0.5  # seconds a killable child may run past its limit to report what it found


class Check(NamedTuple):
    """What one check found: `values` (name -> Fraction) only when `status` is "sat"."""

    status: str  # sat, unsat, unknown, timeout or error
    values: dict[str, Fraction] | None
    message: str
    info: dict


def check_script(solver: str, text: str, logic: str, names: list[str],
                 timeout: float | None, *, title: str = "query", approximate: bool = False,
                 seconds: str = "", info: dict | None = None) -> Check:
    """Check the SMT-LIB `text` with z3 or cvc5 and read the values of `names` exactly.

    cvc5 on QF_NRA with a time limit runs in a forked child killed from outside, since its
    nonlinear procedures do not poll that limit.

    Args:
        solver: "z3" or "cvc5".
        text: the whole script; its `check-sat`/`get-value` are done through the API.
        logic: the script's logic, reported in `info` (and QF_NRA picks cvc5's child process).
        names: the real-valued symbols to read from a model, unquoted.
        timeout: seconds, or None for no limit.
        title: the input's name in cvc5's parse errors.
        approximate: take a close rational for a z3 algebraic number (QF_NRA) and mark
            `info["approximated"]`; otherwise any non-rational value is an error.
        seconds: format spec for the time limit in timeout messages ("" prints it as given).
        info: extra entries for the result's `info`, after "solver" and "logic".
    Returns:
        a `Check`; `info` holds "solver" (with its version), "logic" and "time_s".
    """
    info = {"solver": solver, "logic": logic, **(info or {})}
    deadline = None if timeout is None else time.monotonic() + timeout
    if solver == "z3":
        fn, args = _z3_check, (text, names, timeout, approximate, seconds, info, deadline)
    else:
        fn, args = _cvc5_check, (text, names, timeout, title, seconds, info, deadline)
    return killable(fn, *args, timeout=timeout,
                    stopped=lambda how: Check("timeout", None, f"{solver} {how} after "
                                          f"{format(timeout, seconds)} s", info))


def killable(fn, *args, timeout: float | None, stopped):
    """`fn(*args)` in a killable child (`nnir.proc.call`), stopped `GRACE` s after `timeout`.

    For solvers that do not keep their own limit in every phase. In-process when there is no
    limit or no fork (`nnir.proc.available`).

    Args:
        fn, args: the call; its value must pickle.
        timeout: seconds, or None.
        stopped: `stopped(how)` makes the answer when the child was killed at the limit or
            ended without a reply; `how` says which ("was stopped at the time limit ...").
    Raises:
        BackendError: the child raised (with its message).
    """
    if timeout is None or not proc.available():
        return fn(*args)
    reply = proc.call(fn, *args, timeout=max(0.0, timeout) + GRACE)
    if reply is proc.TIMEOUT:
        return stopped("was stopped at the time limit (killed: it did not keep its own limit)")
    if isinstance(reply, proc.Gone):
        return stopped(f"ended unexpectedly (exit status {reply.code})")
    if isinstance(reply, proc.Failure):
        raise BackendError(reply.message.splitlines()[0] if reply.message else "failed")
    return reply


def verify_with(solver: str, problem, options: dict, timeout: float | None) -> Answer:
    """Solve the verify `problem` as the SMT-LIB script `nnirc emit` writes, with z3 or cvc5
    (writing the script counts against `timeout`).

    Returns:
        the `Answer`, its witness the exact input values; a non-rational value is an error.
    """
    end = None if timeout is None else time.monotonic() + timeout
    script = script_for(problem, options)
    names = script.input_names
    left = None if end is None else max(0.01, end - time.monotonic())
    found = check_script(solver, script.text, script.logic, names, left, title=problem.name,
                         info={"relu": options.get("relu", "ite")})
    if found.status == "sat":
        return Answer("sat", inputs=[found.values[n] for n in names], info=found.info)
    return Answer(found.status, message=found.message, info=found.info)


def _stopped(name: str, timeout, seconds: str, why: str, timed_out: bool, info) -> Check:
    """A check that ended without sat/unsat: timeout when the limit was hit, else unknown."""
    if timeout is not None and (timed_out or info["time_s"] >= timeout):
        return Check("timeout", None, f"{name} stopped after {format(timeout, seconds)} s "
                     f"({why})", info)
    return Check("unknown", None, f"{name} answered unknown: {why}", info)


def _left_ms(deadline) -> int | None:
    """The time left before `deadline` in milliseconds (at least 1), or None."""
    return None if deadline is None else timeout_ms(max(0.001, deadline - time.monotonic()))


def _z3_check(text, names, timeout, approximate, seconds, info, deadline=None) -> Check:
    import z3

    info["solver"] = f"z3 {z3.get_version_string()}"
    start = time.perf_counter()
    try:
        ctx = z3.Context()  # a fresh context per check: no state shared between problems
        solver = z3.Solver(ctx=ctx)
        solver.from_string(text)
        ms = _left_ms(deadline)  # parsing counts against the limit
        if ms is not None:
            solver.set("timeout", ms)
        result = solver.check()
        info["time_s"] = time.perf_counter() - start
        if result == z3.unsat:
            return Check("unsat", None, "", info)
        if result == z3.sat:
            model, values = solver.model(), {}
            for name in names:
                v = model.eval(z3.Real(name, ctx), model_completion=True)
                if not z3.is_rational_value(v):
                    if not approximate:
                        return Check("error", None,
                                     f"z3 gave a non-rational value {v} for {name}", info)
                    # an algebraic number (QF_NRA): take a close rational; replay decides
                    info["approximated"] = True
                    v = v.approx(40)
                values[name] = Fraction(v.numerator_as_long(), v.denominator_as_long())
            return Check("sat", values, "", info)
        reason = solver.reason_unknown()
    except z3.Z3Exception as exc:
        info["time_s"] = time.perf_counter() - start
        return Check("error", None, f"z3 failed: {error_text(exc)}", info)
    return _stopped("z3", timeout, seconds, reason, reason in ("timeout", "canceled"), info)


def _cvc5_check(text, names, timeout, title, seconds, info, deadline=None) -> Check:
    import cvc5

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
        parser.setStringInput(cvc5.InputLanguage.SMT_LIB_2_6, text, title)
        while True:
            cmd = parser.nextCommand()
            if cmd.isNull():
                break
            if cmd.getCommandName() not in _SKIPPED:
                cmd.invoke(solver, symbols)
        ms = _left_ms(deadline)  # parsing counted: the check gets what is left
        if ms is not None:
            solver.setOption("tlimit-per", str(ms))
        result = solver.checkSat()
        info["time_s"] = time.perf_counter() - start
        if result.isUnsat():
            return Check("unsat", None, "", info)
        if result.isSat():
            terms = {t.getSymbol(): t for t in symbols.getDeclaredTerms() if t.hasSymbol()}
            values = {}
            for name in names:
                value = solver.getValue(terms[name])
                if not value.isRealValue():
                    return Check("error", None,
                                 f"cvc5 gave a non-rational value {value} for {name}", info)
                q = value.getRealValue()  # a fractions.Fraction, exact
                values[name] = Fraction(q.numerator, q.denominator)
            return Check("sat", values, "", info)
        why = result.getUnknownExplanation()
    except RuntimeError as exc:  # cvc5 reports parse and API errors as RuntimeError
        info["time_s"] = time.perf_counter() - start
        return Check("error", None, f"cvc5 failed: {exc}", info)
    return _stopped("cvc5", timeout, seconds, why.name,
                    why == cvc5.UnknownExplanation.TIMEOUT, info)


def error_text(exc: Exception) -> str:
    """An exception's message as text (z3 carries its messages as bytes)."""
    msg = exc.args[0] if exc.args else exc
    return msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
