"""Emitted `.mps` and `.lp` files read the same way by every MILP solver: HiGHS (highspy), CBC
(the binary shipped in `pulp`) and GLPK (`swiglpk`) solve the file of every example query and a
few ACAS Xu instances, and feasible/infeasible agrees with nnir's sat/unsat; the numbers in the
files read back as exactly the model's floats.

CBC and GLPK come with the `test` extra; a missing one is skipped with the reason.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from test_emit_cases import acas_cases, example_cases, milp_text, problem, verdict

from nnir.backends.milp.highs import new_highs
from nnir.backends.milp.lower import to_milp
from nnir.backends.milp.model import MilpModel
from nnir.backends.milp.writer import STRICT_MARGIN, emit_text, feasibility_form, model_text

TIMEOUT = 60  # seconds per solve; each takes well under a second here
CASES = example_cases() + acas_cases()


def cbc_path() -> str | None:
    """The CBC binary in the `pulp` wheel (pulp 3; pulp 4 ships none), else `cbc` on PATH."""
    try:
        from pulp.apis.coin_api import pulp_cbc_path
    except ImportError:
        pulp_cbc_path = None
    for path in (pulp_cbc_path, shutil.which("cbc")):
        if path and os.path.isfile(path):
            if not os.access(path, os.X_OK):  # some installs drop the execute bit
                os.chmod(path, os.stat(path).st_mode | 0o111)
            return os.path.realpath(path)
    return None


def solve_highs(path) -> str:
    h = new_highs()
    h.setOptionValue("time_limit", float(TIMEOUT))
    assert h.readModel(str(path)).name == "kOk", f"HiGHS cannot read {path}"
    h.run()
    return {"kOptimal": "sat", "kInfeasible": "unsat"}.get(h.getModelStatus().name, "unknown")


def solve_cbc(path) -> str:
    cbc = cbc_path()
    if cbc is None:
        pytest.skip("CBC not installed (pip install 'pulp<4', in the test extra)")
    sol = f"{path}.sol"
    r = subprocess.run([cbc, str(path), "sec", str(TIMEOUT), "solve", "solu", sol],
                       capture_output=True, text=True, timeout=TIMEOUT + 30)
    assert r.returncode == 0 and "Bad image" not in r.stdout, r.stdout[-2000:]
    assert not re.search(r"read with [1-9][0-9]* errors", r.stdout), r.stdout[-2000:]
    with open(sol) as fh:
        first = fh.readline()
    if first.startswith("Optimal"):
        return "sat"
    if first.startswith(("Infeasible", "Integer infeasible")):
        return "unsat"
    return "unknown"


def solve_glpk(path) -> str:
    glpk = pytest.importorskip("swiglpk", reason="GLPK not installed (pip install swiglpk, in "
                               "the test extra)")
    glpk.glp_term_out(glpk.GLP_OFF)
    lp = glpk.glp_create_prob()
    try:
        read = (glpk.glp_read_mps(lp, glpk.GLP_MPS_FILE, None, str(path))
                if str(path).endswith(".mps") else glpk.glp_read_lp(lp, None, str(path)))
        assert read == 0, f"GLPK cannot read {path}"
        parm = glpk.glp_iocp()
        glpk.glp_init_iocp(parm)
        parm.presolve, parm.tm_lim = glpk.GLP_ON, TIMEOUT * 1000
        glpk.glp_intopt(lp, parm)
        status = glpk.glp_mip_status(lp)
        return {glpk.GLP_OPT: "sat", glpk.GLP_FEAS: "sat",
                glpk.GLP_NOFEAS: "unsat"}.get(status, "unknown")
    finally:
        glpk.glp_delete_prob(lp)


SOLVERS = {"highs": solve_highs, "cbc": solve_cbc, "glpk": solve_glpk}


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("fmt", ["mps", "lp"])
@pytest.mark.parametrize("case", CASES)
def test_every_solver_gives_nnirs_verdict(tmp_path, case, fmt, solver):
    path = tmp_path / f"{case.replace(':', '_')}.{fmt}"
    path.write_text(milp_text(case, fmt))
    assert SOLVERS[solver](path) == verdict(case)


# ----------------------------------------------------------------------------- the file's text
def test_sections_every_reader_understands():
    mps, lp = milp_text("mlp_npz:leaves_box", "mps"), milp_text("mlp_npz:leaves_box", "lp")
    assert "OBJSENSE" not in mps and "OBJSENSE" not in lp  # GLPK rejects the section
    assert "MARKER 'MARKER' 'INTORG'" in mps and "MARKER 'MARKER' 'INTEND'" in mps
    assert "\nBinaries\n" in lp and "\nbin\n" not in lp.lower()  # CBC ignores `bin`
    assert "\n obj: 0.0 " in lp  # never an empty objective (GLPK rejects one)
    body = [line for line in mps.splitlines() if not line.startswith("*")]
    assert body[0].startswith("NAME ") and body[-1] == "ENDATA"
    # every line of the body fits the readers' line limits
    assert max(map(len, lp.splitlines())) < 256


def test_numbers_read_back_exactly(tmp_path):
    """HiGHS reads back exactly the model's float64 bounds and coefficients (repr, never 15
    digits: highspy 1.15.1's own writer wrote -0.500000000000004 for -0.50000000000000433)."""
    model = feasibility_form(to_milp(problem("mlp_npz:leaves_box")))
    assert any(len(repr(v.lo)) > 17 for v in model.vars)  # numbers that need all 17 digits
    lo, hi, _, col_names = model.col_arrays()
    want = {(r.name, col_names[j]): v for r in model.rows for j, v in zip(r.index, r.value)}
    for fmt in ("mps", "lp"):
        path = tmp_path / f"q.{fmt}"
        path.write_text(model_text(model, fmt))
        h = new_highs()
        assert h.readModel(str(path)).name == "kOk"
        got = h.getLp()
        order = [list(got.col_names_).index(n) for n in col_names]
        assert np.array_equal(np.asarray(got.col_lower_)[order], lo)
        assert np.array_equal(np.asarray(got.col_upper_)[order], hi)
        rows = {n: k for k, n in enumerate(got.row_names_)}
        for r in model.rows:  # one-sided or equality rows: kept as they are
            assert (got.row_lower_[rows[r.name]], got.row_upper_[rows[r.name]]) == (r.lo, r.hi)
        a, names = got.a_matrix_, list(got.row_names_)
        entries = {}
        for j in range(got.num_col_):  # HiGHS holds the matrix column-wise after reading
            for k in range(a.start_[j], a.start_[j + 1]):
                entries[(names[a.index_[k]], got.col_names_[j])] = a.value_[k]
        assert entries == want


def test_ranged_rows_become_two_rows_and_a_maximised_objective_is_negated(tmp_path):
    m = MilpModel(name="m")
    x = m.add_var("x", -1.0, 1.0)
    y = m.add_var("y", 0.0, 1.0, integer=True)
    m.add_row([x, y], [0.1, 1.0], 0.1, 0.30000000000000004, "r")
    m.objective, m.sense = {x: 1.0}, "max"
    mps = model_text(m, "mps", ["a comment"])
    assert "G r_lo" in mps and "L r_hi" in mps and "RANGES" not in mps
    assert " x obj -1.0" in mps and "holds its negation" in mps
    assert mps.startswith("* a comment\n")
    lp = model_text(m, "lp")
    assert "Maximize\n obj: 1.0 x" in lp and "r_hi: 0.1 x + 1.0 y <= 0.30000000000000004" in lp
    for fmt, text in (("mps", mps), ("lp", lp)):
        path = tmp_path / f"m.{fmt}"
        path.write_text(text)
        h = new_highs()
        assert h.readModel(str(path)).name == "kOk"
        h.run()
        # max x with 0.1 x + y in [0.1, 0.3]: y = 0, x = 1 (the MPS objective is -x, minimised)
        assert h.getSolution().col_value[0] == pytest.approx(1.0)


def test_strict_margin_is_written():
    model = feasibility_form(to_milp(problem("tiny:cap")))
    t = next(v for v in model.vars if v.name == "prop_slack")
    assert t.lo == t.hi == STRICT_MARGIN and not model.objective
    assert f"prop_slack = {STRICT_MARGIN!r}" in milp_text("tiny:cap", "lp")
    assert f"FX BND prop_slack {STRICT_MARGIN!r}" in milp_text("tiny:cap", "mps")
    with pytest.raises(ValueError):
        feasibility_form(model, 0.0)


@pytest.mark.parametrize("value,want", [(False, "unsat"), (True, "sat")])
def test_constant_properties(tmp_path, value, want):
    """`false` becomes the empty row `0 >= 1` (LP: `0.0 x >= 1.0`), `true` no row at all."""
    from nnir.ir.nodes import BoolConst
    from nnir.queries.problem import VerifyProblem

    pb = VerifyProblem(problem("tiny:cap").net, (), BoolConst(value), "const")
    for fmt in ("mps", "lp"):
        path = tmp_path / f"c.{fmt}"
        path.write_text(emit_text(pb, fmt))
        for name, solve in SOLVERS.items():
            assert solve(path) == want, (fmt, name)
