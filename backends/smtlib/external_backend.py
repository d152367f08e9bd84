"""The external backend: any SMT-LIB 2 solver binary over a pipe (in the manner of PySMT's).

The emitted script is written to the command's stdin unchanged; its answer (`sat`/`unsat`/
`unknown`) and the `get-value` response are read back with a tiny S-expression reader, and the
values (`0.5`, `(/ 1 3)`, `(- 2)`, `(- (/ 1.0 3.0))` ...) are evaluated exactly as Fractions.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from fractions import Fraction

from nnir.backends.base import Answer, Backend
from nnir.backends.options import ExternalOptions
from nnir.backends.smtlib.lower import check_options, script_for, unquote
from nnir.proc import die_with_parent

DEFAULT_CMD = "z3 -in"
_TOKEN = re.compile(r'\s+|;[^\n]*|(\()|(\))|(\|[^|]*\||"(?:[^"]|"")*"|[^\s()|";]+)')
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def default_cmd() -> str:
    """The command used when none is given: $NNIR_SMT_CMD, else `z3 -in`."""
    return os.environ.get("NNIR_SMT_CMD") or DEFAULT_CMD


class ExternalBackend(Backend):
    """QF_LRA verification by an SMT-LIB binary. Options: cmd, relu ("ite"|"or"), hints."""

    name = "external"
    description = "any SMT-LIB 2 solver binary over a pipe (option cmd=, default $NNIR_SMT_CMD " \
                  "or 'z3 -in')"
    kinds = frozenset({"verify"})
    Options = ExternalOptions
    logics = frozenset({"QF_LRA"})
    optimizes = False
    exact = True
    modules = ()

    def __init__(self, **options):
        check_options(self.name, options)
        super().__init__(**options)

    @classmethod
    def available(cls) -> bool:
        argv = _split(default_cmd())
        return bool(argv) and shutil.which(argv[0]) is not None

    @classmethod
    def missing(cls) -> list[str]:
        return [] if cls.available() else [f"executable of '{default_cmd()}'"]

    def solve_verify(self, problem, timeout: float | None = None) -> Answer:
        cmd = self.opts.cmd or default_cmd()
        info = {"solver": cmd, "relu": self.opts.relu}
        argv = _split(cmd)
        if not argv:
            return Answer("error", message=f"cannot parse solver command {cmd!r}", info=info)
        if shutil.which(argv[0]) is None:
            return Answer("error", message=f"solver executable '{argv[0]}' not found (command "
                          f"{cmd!r}); install it or set option cmd / $NNIR_SMT_CMD", info=info)
        script = script_for(problem, self.options)  # always ends with get-value
        info["logic"] = script.logic
        start = time.perf_counter()
        try:
            # check=False: a non-zero exit is judged from the output (z3 exits 1 after unsat
            # because get-value then fails); on timeout run() kills the process.
            # die_with_parent: a killed nnir (or its query process) takes the solver along.
            proc = subprocess.run(argv, input=script.text, capture_output=True, text=True,
                                  timeout=timeout, check=False, preexec_fn=die_with_parent)
        except subprocess.TimeoutExpired:
            info["time_s"] = time.perf_counter() - start
            return Answer("timeout", message=f"'{cmd}' killed after {timeout} s", info=info)
        except OSError as exc:
            return Answer("error", message=f"cannot run {cmd!r}: {exc}", info=info)
        info["time_s"] = time.perf_counter() - start
        info["returncode"] = proc.returncode
        return read_answer(proc.stdout, proc.stderr, script.input_names, cmd, info)


def read_answer(stdout: str, stderr: str, names: list[str], cmd: str, info: dict) -> Answer:
    """Turn a solver's output for our script into an Answer (values exact, by symbol name)."""
    try:
        exprs = parse_sexprs(stdout)
    except ValueError as exc:
        return Answer("error", message=f"'{cmd}' printed unreadable output ({exc}): "
                      f"{_excerpt(stdout, stderr)}", info=info)
    for k, e in enumerate(exprs):  # noqa: B007 (k is the answer's position, used below)
        if isinstance(e, list) and e and e[0] == "error":
            # An error before the answer means part of the script was not read: trust nothing.
            return Answer("error", message=f"'{cmd}' reported {_show(e)}", info=info)
        if e in ("sat", "unsat", "unknown"):
            break
    else:
        return Answer("error", message=f"'{cmd}' gave no sat/unsat/unknown answer (exit code "
                      f"{info.get('returncode')}): {_excerpt(stdout, stderr)}", info=info)
    if e == "unsat":
        return Answer("unsat", info=info)
    if e == "unknown":
        return Answer("unknown", message=f"'{cmd}' answered unknown", info=info)
    rest = exprs[k + 1:k + 2]
    try:
        if not rest or not isinstance(rest[0], list) or rest[0][:1] == ["error"]:
            raise ValueError(f"no model after sat: {_excerpt(stdout, stderr)}")
        values = {}
        for pair in rest[0]:
            if not isinstance(pair, list) or len(pair) != 2 or isinstance(pair[0], list):
                raise ValueError(f"malformed get-value entry {_show(pair)}")
            values[unquote(pair[0])] = sexpr_value(pair[1])
        inputs = [values[n] for n in names]
    except KeyError as exc:
        return Answer("error", message=f"'{cmd}' gave no value for {exc}", info=info)
    except (ValueError, ZeroDivisionError) as exc:
        return Answer("error", message=f"cannot read the model from '{cmd}': {exc}", info=info)
    return Answer("sat", inputs=inputs, info=info)


def parse_sexprs(text: str) -> list:
    """Every top-level S-expression of `text`: atoms as strings, lists as Python lists."""
    stack: list[list] = [[]]
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"unexpected character {text[pos]!r} at offset {pos}")
        pos = m.end()
        if m.group(1):
            stack.append([])
        elif m.group(2):
            if len(stack) == 1:
                raise ValueError("unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
        elif m.group(3):
            stack[-1].append(m.group(3))
    if len(stack) != 1:
        raise ValueError("unbalanced '('")
    return stack[0]


def sexpr_value(e) -> Fraction:
    """The exact value of a real constant term: numerals, decimals, `-`, `/`, `+`, `*`."""
    if isinstance(e, str):
        if _DECIMAL.match(e):
            return Fraction(e)  # decimals are exact in SMT-LIB, and so is Fraction("0.1")
        raise ValueError(f"not an exact rational constant: {e!r}")
    if not e or not isinstance(e[0], str):
        raise ValueError(f"not a constant term: {_show(e)}")
    op, args = e[0], [sexpr_value(a) for a in e[1:]]
    if op == "-" and len(args) == 1:
        return -args[0]
    if op == "-" and len(args) >= 2:
        return args[0] - sum(args[1:], Fraction(0))
    if op == "/" and len(args) >= 2:
        out = args[0]
        for a in args[1:]:
            out /= a
        return out
    if op == "+" and args:
        return sum(args, Fraction(0))
    if op == "*" and args:
        out = Fraction(1)
        for a in args:
            out *= a
        return out
    raise ValueError(f"not an exact rational constant: {_show(e)}")


def _split(cmd: str) -> list[str]:
    try:
        return shlex.split(cmd)
    except ValueError:
        return []


def _show(e) -> str:
    return e if isinstance(e, str) else "(" + " ".join(_show(a) for a in e) + ")"


def _excerpt(stdout: str, stderr: str, limit: int = 300) -> str:
    text = (stdout.strip() + ("\n" + stderr.strip() if stderr.strip() else "")).strip()
    return repr(text[:limit] + ("..." if len(text) > limit else "")) if text else "(no output)"
