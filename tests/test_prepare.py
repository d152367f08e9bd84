"""`prepare` cuts the input box by one-input `where` bounds and drops the ones the cut box then
enforces exactly (the same feasible set); strict ones and the others stay."""
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import small

from nnir.frontend import parse as loads
from nnir.queries.run import prepare, run_query

NET = ("net n { input x[2] in [-2, 2]\n relu h[2] = [[1, -1], [1, 1]] x\n"
       " linear y[1] = [[1, 1]] h }\n")


def test_box_bounds_leave_the_problem_and_cut_the_box():
    prog = loads(NET + "verify n as q where x[0] >= 0.5, x[0] <= 1, x[1] > -1, "
                 "x[0] + x[1] <= 1: y[0] >= 3\n")
    p = prepare(prog, prog.queries[0])
    assert [float(v) for v in p.net.input.lo.exact] == [0.5, -1.0]
    assert [float(v) for v in p.net.input.hi.exact] == [1.0, 2.0]
    # x[1] > -1 is strict (the box's -1 is not in the set) and x0 + x1 <= 1 reads two inputs
    assert sorted(a.rel for a in p.where) == ["<=", ">"]


@settings(max_examples=40, deadline=None)
@given(a=small, b=small, c=small.filter(lambda v: v != 0), rel=st.sampled_from(
    ["<=", ">=", "<", ">"]), t=small)
def test_same_verdict_with_and_without_the_dropping(a, b, c, rel, t):
    """The verdict equals z3's on the problem as written (z3 keeps every atom as it is)."""
    lo, hi = min(a, b), max(a, b)
    prog = loads(NET + f"verify n as q where x[0] >= {lo}, x[0] <= {hi}, "
                 f"{c} * x[1] {rel} {t}: y[0] >= 1\n")
    got = run_query(prog, prog.queries[0], "split", timeout=60).status
    want = run_query(prog, prog.queries[0], "z3", timeout=60).status
    assert got == want and got in ("sat", "unsat"), (lo, hi, c, rel, t, got)
