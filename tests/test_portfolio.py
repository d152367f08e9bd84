"""The portfolio backend: the same verdicts as its members, the winner named, and no member's
float-tolerance unsat ever passed off as an answer."""
import pytest
from problems import PROBLEMS, source_of

import nnir

CASES = [p for p in PROBLEMS if p[0] in ("reach", "cap", "ramp_second_over", "hidden_one",
                                         "third_above")]


@pytest.mark.parametrize("problem", CASES, ids=[p[0] for p in CASES])
def test_portfolio_agrees_with_its_members(problem):
    prog = nnir.parse(source_of(problem))
    got = nnir.solve(prog, backend="portfolio", timeout=60, members="split,z3")
    assert got.status == problem[3], got.render()
    for member in ("split", "z3"):
        assert nnir.solve(prog, backend=member, timeout=60).status == got.status
    assert "answered first" in got.message
    winner = got.message.split("'")[1]
    assert winner in ("split", "z3")
    if got.status == "sat":
        assert got.replay["exact"]
    else:
        assert got.certified == f"exact (portfolio: won by '{winner}')"


def test_portfolio_default_members_include_auto():
    prog = nnir.parse(source_of(PROBLEMS[0]))
    res = nnir.solve(prog, backend="portfolio", timeout=60)
    assert res.status == "sat" and res.replay["exact"]


def test_a_tolerance_based_unsat_never_wins():
    """HiGHS alone on a 1e-12 close call: its unsat rests on tolerances (or its witness fails
    exact replay), so the portfolio has no definite answer."""
    third_above = next(p for p in PROBLEMS if p[0] == "third_above")
    res = nnir.solve(nnir.parse(source_of(third_above)), backend="portfolio", timeout=30,
                     members="highs")
    assert res.status == "unknown", res.render()
    assert "no definite answer" in res.message


def test_unknown_member_is_a_clear_error():
    res = nnir.solve(nnir.parse(source_of(PROBLEMS[0])), backend="portfolio",
                     members="split,nosuch")
    assert res.status == "error" and "nosuch" in res.message
