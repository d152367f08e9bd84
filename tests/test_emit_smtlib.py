"""Emitted SMT-LIB scripts run cleanly in outside solvers: the z3 binary and cvc5 (its own
SMT-LIB parser, through the Python module's InputParser, in a child process) answer every verify
query of the examples with nnir's verdict and exit 0 on sat and on unsat; with `--model` the
witness read from `get-value` replays.

Each solver run gets a CPU-time limit (RLIMIT_CPU), so a busy machine slows the tests but does
not change what they see; a query a solver cannot answer within it fails the test.

No ACAS Xu instance is run here: with every ReLU encoding both z3 and cvc5 needed over 30 CPU
seconds even on the sat instance 1_7 / prop_3 (benchmarks/emit_relu.py); the MILP files of two
ACAS Xu instances are solved in test_emit_milp.py.
"""
from __future__ import annotations

import resource
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from test_emit_cases import example_cases, problem, smtlib_text, verdict

from nnir.backends.smtlib.external_backend import read_answer
from nnir.backends.smtlib.lower import RELU_ENCODINGS, to_smtlib
from nnir.ir.evaluate import evaluate, holds

CPU_LIMIT = 60  # CPU seconds per solver run; the slowest example (class1_wins) takes ~10 in z3
CVC5_RUN = ("import sys, cvc5\n"
            "tm = cvc5.TermManager(); s = cvc5.Solver(tm); sm = cvc5.SymbolManager(tm)\n"
            "p = cvc5.InputParser(s, sm)\n"
            "p.setFileInput(cvc5.InputLanguage.SMT_LIB_2_6, sys.argv[1])\n"
            "while not (c := p.nextCommand()).isNull():\n"
            "    sys.stdout.write(c.invoke(s, sm)); sys.stdout.flush()\n")


def z3_binary() -> str | None:
    """The z3 binary of the z3-solver wheel (next to this Python), else one on PATH."""
    here = Path(sys.executable).parent / "z3"
    return str(here) if here.exists() else shutil.which("z3")


def cvc5_command() -> list[str]:
    """A `cvc5` binary on PATH, else cvc5's SMT-LIB front end through the Python module."""
    if shutil.which("cvc5"):
        return [shutil.which("cvc5")]
    pytest.importorskip("cvc5")
    return [sys.executable, "-c", CVC5_RUN]


def run_solver(argv: list[str], path) -> subprocess.CompletedProcess:
    def cap():
        resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT, CPU_LIMIT + 1))

    return subprocess.run(argv + [str(path)], capture_output=True, text=True,
                          timeout=20 * CPU_LIMIT, preexec_fn=cap)


def solver_argv(solver: str) -> list[str]:
    if solver == "z3":
        z3 = z3_binary()
        if z3 is None:
            pytest.skip("no z3 binary (it comes with the z3-solver wheel)")
        return [z3]
    return cvc5_command()


@pytest.mark.parametrize("solver", ["z3", "cvc5"])
@pytest.mark.parametrize("case", example_cases())
def test_solvers_give_nnirs_verdict_and_exit_0(tmp_path, case, solver):
    path = tmp_path / "q.smt2"
    path.write_text(smtlib_text(case))
    r = run_solver(solver_argv(solver), path)
    assert r.returncode == 0, (r.returncode, r.stdout[-500:], r.stderr[-500:])
    assert r.stdout.split() == [verdict(case)], r.stdout[-500:]  # the answer and nothing else


@pytest.mark.parametrize("relu", RELU_ENCODINGS)
def test_every_encoding_in_both_solvers(tmp_path, relu):
    """The non-default encodings give the same verdicts (on quick queries)."""
    for case in ("tiny:reach", "tiny:cap", "mlp_npz:leaves_box", "queries:reach"):
        path = tmp_path / "q.smt2"
        path.write_text(to_smtlib(problem(case), relu=relu, get_values=False).text)
        for solver in ("z3", "cvc5"):
            r = run_solver(solver_argv(solver), path)
            assert r.returncode == 0 and r.stdout.split() == [verdict(case)], (case, solver)


@pytest.mark.parametrize("solver", ["z3", "cvc5"])
def test_model_option_gives_a_witness_that_replays(tmp_path, solver):
    case = "queries:reach"
    text = smtlib_text(case, model=True)
    names = to_smtlib(problem(case), get_values=True).input_names
    assert "(set-option :produce-models true)" in text
    assert text.rstrip().endswith("(get-value (" + " ".join(f"|{n}|" for n in names) + "))")
    path = tmp_path / "q.smt2"
    path.write_text(text)
    r = run_solver(solver_argv(solver), path)
    assert r.returncode == 0 and r.stdout.split()[0] == "sat", r.stdout[-500:]
    ans = read_answer(r.stdout, r.stderr, names, solver, {})
    assert ans.status == "sat", ans.message
    pb = problem(case)  # the witness is exact: it replays in rational arithmetic
    assert all(lo <= v <= hi for v, lo, hi in zip(ans.inputs, pb.net.input.lo.exact,
                                                   pb.net.input.hi.exact))
    assert holds(pb.prop, evaluate(pb.net, [Fraction(v) for v in ans.inputs], exact=True))


@pytest.mark.parametrize("solver", ["z3", "cvc5"])
def test_model_option_after_unsat_is_an_error_as_documented(tmp_path, solver):
    path = tmp_path / "q.smt2"
    path.write_text(smtlib_text("tiny:cap", model=True))
    r = run_solver(solver_argv(solver), path)
    assert r.stdout.split()[0] == "unsat" and "error" in r.stdout  # get-value has no model
    if solver == "z3":
        assert r.returncode == 1
