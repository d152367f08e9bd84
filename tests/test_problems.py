"""Every installed backend gives the known verdict on the shared problem library, and the
`where` clause and `auto` choice behave the same way across them."""
import pytest
from problems import PROBLEMS, TINY, source_of

import nnir
from nnir.backends import registry

BACKENDS = [n for n in registry.names_for("verify") if registry.backend_class(n).available()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("problem", PROBLEMS, ids=[p[0] for p in PROBLEMS])
def test_known_verdicts(problem, backend):
    res = nnir.solve(nnir.parse(source_of(problem)), backend=backend, timeout=60)
    assert res.status == problem[3], res.render()
    if res.status == "sat":
        assert res.replay["exact"] and res.witness is not None
    else:
        assert res.certified


@pytest.mark.parametrize("backend", BACKENDS)
def test_where_clause(backend):
    prog = nnir.parse(TINY + "verify tiny as a where x[0] - x[1] == 0: y[0] >= -0.4\n"
                             "verify tiny as b where x[0] == x[1]: y[0] >= -0.5\n")
    assert nnir.solve(prog, "a", backend=backend).status == "unsat"
    assert nnir.solve(prog, "b", backend=backend).status == "sat"


def test_milp_unsat_is_never_plain_unsat_unless_confirmed():
    """HiGHS's infeasibility rests on tolerances: an exact method confirms it (here: few
    unstable ReLUs, so an SMT solver), or the status is `unknown`, which no script reads as
    unsat, with what the MILP found in the message and `info`."""
    if "highs" not in BACKENDS:
        pytest.skip("highspy not installed")
    prog = nnir.parse(source_of(PROBLEMS[1]))
    res = nnir.solve(prog, backend="highs")
    assert res.status == "unsat" and res.certified.startswith("exact"), res.render()
    assert any("highs said unsat" in n for n in res.notes)
    res = nnir.solve(prog, backend="highs", confirm=False)
    assert res.status == "unknown" and res.info["unconfirmed"] == "unsat", res.render()
    assert "tolerances" in res.message and "not reported as unsat" in res.certified
    exact = nnir.solve(prog, backend="z3")
    assert exact.certified.startswith("exact")


def test_auto_says_what_it_ran_and_proves_small_unsat_exactly():
    res = nnir.solve(nnir.parse(source_of(PROBLEMS[0])))
    assert res.status == "sat" and res.replay["exact"]
    assert any(n.startswith("auto ") for n in res.notes)
    res = nnir.solve(nnir.parse(source_of(PROBLEMS[1])))
    assert res.status == "unsat" and res.certified.startswith("exact"), res.render()


@pytest.mark.parametrize("problem", [p for p in PROBLEMS if p[0].startswith("third")],
                         ids=lambda p: p[0])
def test_close_calls_are_settled_exactly(problem):
    """A 1e-12 gap is below HiGHS's tolerances: its answer must not stand unchecked."""
    for backend in ("auto", "highs"):
        res = nnir.solve(nnir.parse(source_of(problem)), backend=backend)
        assert res.status == problem[3], (backend, res.render())


def test_unsupported_query_is_an_error_result_not_a_crash():
    prog = nnir.parse(TINY + "equiv tiny tiny as b\n")
    res = nnir.solve(prog, "b", backend="pysmt", method="solver")
    assert res.status == "error"
    assert "equiv queries run on z3, cvc5 or highs, not 'pysmt'" in res.message
    assert "<string>:6:7" in res.message
