"""Time limits kept in-process (issue 11): the mechanisms, checked without tight clocks.

Wall-clock bounds here are generous (a limit of 1-2 s must return within 15-30 s, on a loaded
2-core machine too); what is checked closely is the status and what the result says.
"""
import random
import time
from fractions import Fraction

import pytest

from nnir import proc
from nnir.backends.base import Answer
from nnir.backends.milp.highs import run_killable
from nnir.backends.milp.joint import lower_networks
from nnir.backends.smtlib.check import killable
from nnir.backends.split.relax import contradictory
from nnir.frontend import parse
from nnir.ir.const import Const
from nnir.ir.nodes import And, Atom, Dense, Input, Network, Ref
from nnir.passes.lp import LpBounds
from nnir.passes.manager import PassManager, default_pipeline
from nnir.queries.compress import milp_max_difference
from nnir.queries.problem import VerifyProblem
from nnir.queries.run import prepare, run_query
from nnir.queries.stable import analyse

needs_fork = pytest.mark.skipif(not proc.available(), reason="no fork here")


def _net(n_in=3, width=12, depth=2, seed=0, lo=-1, hi=1) -> Network:
    rng = random.Random(seed)
    layers, src, n = [], "x", n_in
    for d in range(depth):
        w = [[rng.choice([-3, -2, -1, 1, 2, 3]) for _ in range(n)] for _ in range(width)]
        b = [rng.choice([-1, 0, 1]) for _ in range(width)]
        layers.append(Dense(f"h{d}", width, src, Const.exact_of(w), Const.exact_of(b), "relu"))
        src, n = f"h{d}", width
    w = [[rng.choice([-1, 1]) for _ in range(n)] for _ in range(2)]
    layers.append(Dense("y", 2, src, Const.exact_of(w), Const.exact_of([0, 0]), "linear"))
    return Network("n", Input("x", n_in, Const.exact_of([lo] * n_in), Const.exact_of([hi] * n_in)),
                   tuple(layers), "y")


def _atom(terms, rel, rhs):
    return Atom(tuple((Ref(n, i), Fraction(c)) for n, i, c in terms), rel, Fraction(rhs))


# ----------------------------------------------------------------------------- killable children
def _sleep(s):
    time.sleep(s)
    return "done"


@needs_fork
def test_killable_stops_a_call_that_ignores_its_limit():
    start = time.monotonic()
    got = killable(_sleep, 60, timeout=0.3, stopped=lambda how: ("stopped", how))
    assert got[0] == "stopped" and "time limit" in got[1]
    assert time.monotonic() - start < 15


def test_killable_returns_the_value_and_runs_in_process_without_a_limit():
    assert killable(_sleep, 0, timeout=5, stopped=lambda how: None) == "done"
    assert killable(_sleep, 0, timeout=None, stopped=lambda how: None) == "done"


@needs_fork
def test_highs_in_a_child_after_highs_ran_here():
    """A fork inherits HiGHS's thread pool without its threads; run_killable resets it (before,
    the child's solve hung until killed)."""
    net = default_pipeline().run(_net(width=8))
    model = lower_networks([net], "t").model
    out = lower_networks([net], "t").vars[0]["y"]
    model.objective, model.sense = {int(out[0]): 1.0}, "max"
    read = lambda h: h.modelStatusToString(h.getModelStatus())  # noqa: E731
    assert run_killable(model, {}, None, read) == "Optimal"  # HiGHS's threads start here
    assert run_killable(model, {}, 60.0, read) == "Optimal"  # and in a forked child


# ---------------------------------------------------------------- split: contradictions
def test_relaxation_finds_contradictory_where_and_output_atoms():
    net = default_pipeline().run(_net())
    slab = (_atom([("x", 0, 1), ("x", 1, 1)], ">=", "3/10"),
            _atom([("x", 0, 1), ("x", 1, 1)], "<=", "29999/100000"))
    p = VerifyProblem(net, slab, _atom([("y", 0, 1)], ">=", 0))
    assert contradictory(p)
    both = And((_atom([("y", 0, 1), ("y", 1, -1)], ">=", "1/1000000"),
                _atom([("y", 1, 1), ("y", 0, -1)], ">=", 0)))
    assert contradictory(VerifyProblem(net, (), both))
    # satisfiable with the network cut out: no verdict (whatever the network does)
    assert not contradictory(VerifyProblem(net, (), _atom([("y", 0, 1)], ">=", 0)))


@pytest.mark.parametrize("backend", ["split", "auto"])
def test_split_answers_a_thin_slab_instead_of_timing_out(backend):
    prog = parse("""
net n {
  input x[3] in [-1, 1]
  relu h[12] = [[1, -2, 3], [-1, 1, 2], [2, 2, -1], [-3, 1, 1], [1, 1, 1], [-1, -2, 1],
                [2, -1, -1], [1, 3, -2], [-2, 1, 3], [3, -1, 2], [-1, -1, -1], [1, -3, 1]] x
                + [0, 1, -1, 0, 1, 0, -1, 1, 0, 0, 1, -1]
  linear y[2] = [[1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1],
                 [-1, 1, 1, 1, -1, -1, 1, 1, -1, 1, 1, -1]] h
}
verify n as slab where x[0] + x[1] >= 0.3, x[0] + x[1] <= 0.29999: y[0] >= y[1]
verify n as contra: y[0] >= y[1] + 0.000001 and y[1] >= y[0]
""")
    for q in prog.queries:
        res = run_query(prog, q, backend, timeout=30)
        assert res.status == "unsat", res.message
        assert "network cut out" in res.message


# ----------------------------------------------------------------------------- LP pass, stable
def test_lp_pass_past_its_deadline_keeps_sound_bounds():
    net = default_pipeline().run(_net(width=10))
    lp = LpBounds(deadline=time.monotonic() - 1)
    out = PassManager([lp]).run(net)
    assert lp.stopped
    for name in net.facts.lo:  # nothing tightened, nothing lost
        assert (out.facts.lo[name] >= net.facts.lo[name]).all()
        assert (out.facts.hi[name] <= net.facts.hi[name]).all()


def test_stable_with_no_time_left_reports_undecided_not_a_guess():
    net = _net(width=16, depth=3)
    st, _, _, notes = analyse(net, None, "auto", 0.0, {"method": "isa"})
    assert any("time limit" in n for n in notes)
    for lay in st.relus:  # only bound passes could decide: every verdict is theirs
        for i in range(lay.size):
            if st.stable[lay.name][i] != 0:
                assert st.how[lay.name][i] in ("ibp", "symbolic", "lp")


# ----------------------------------------------------------------------------- compress
def _compress_pair():
    from nnir.passes.compress import compress_network

    net = _net(n_in=3, width=5, depth=2, seed=3, lo=0, hi=1)
    stable = default_pipeline().run(net).facts.stable
    return net, compress_network(net, stable, "small")


def test_compress_check_shares_time_and_names_unfinished_solves():
    net, small = _compress_pair()
    out = milp_max_difference(net, small, 0.0)  # no time at all: nothing finishes
    assert out["max_abs"] is None and out["status"] != "optimal"
    assert len(out["unfinished"]) == out["solves"] > 0
    assert all(u.startswith("y[") for u in out["unfinished"])
    full = milp_max_difference(net, small, None)
    assert full["unfinished"] == [] and full["max_abs"] < 1e-6


def test_compress_query_under_a_limit_says_what_it_checked():
    prog = parse("""
net n {
  input x[2] in [0, 1]
  relu h1[3] = [[1, 1], [-1, -1], [1, -1]] x + [1, -1, 0]
  relu h2[3] = [[1, 0, 1], [1, 5, 0], [0.5, 0, -1]] h1 + [0, -7, 2]
  linear y[1] = [[1, 1, 1]] h2
}
compress n as c -> small
""")
    res = run_query(prog, prog.queries[0], "auto", timeout=20)
    assert res.status == "compressed"
    assert res.info["milp_status"] in ("optimal", "skipped") or res.info.get("milp_unfinished")
    assert res.trained is not None


def test_compress_of_an_unchanged_network_needs_no_check():
    prog = parse("""
net n {
  input x[2] in [-1, 1]
  relu h[2] = [[1, 1], [1, -1]] x
  linear y[1] = [[1, 1]] h
}
compress n as c
""")
    res = run_query(prog, prog.queries[0], "auto", timeout=10)
    assert res.status == "unchanged" and res.info["milp_status"] == "not needed"
    assert "unchanged" in res.certified


# ----------------------------------------------------------------------------- SMT under limits
def _hard_verify():
    net = _net(n_in=6, width=20, depth=3, seed=0)
    return prepare_problem(net)


def prepare_problem(net):
    from nnir.ir.nodes import Program, Verify

    q = Verify("hard", "n", (), _atom([("y", 0, 1)], ">=", 1000))
    return prepare(Program((net,), (), (q,)), q)


@needs_fork
@pytest.mark.parametrize("name", ["z3", "cvc5", "pysmt"])
def test_smt_backends_stop_at_the_limit(name):
    from nnir.backends import registry

    if not registry.backend_class(name).available():
        pytest.skip(f"{name} not installed")
    problem = _hard_verify()
    start = time.monotonic()
    ans = registry.get_backend(name).solve_verify(problem, timeout=1.0)
    assert isinstance(ans, Answer)
    assert ans.status in ("timeout", "unsat"), ans  # unsat: a fast machine finished
    assert time.monotonic() - start < 15


@needs_fork
def test_cvc5_bound_stops_at_the_limit():
    from nnir.backends import registry
    from nnir.queries.bound import BoundProblem

    if not registry.backend_class("cvc5").available():
        pytest.skip("cvc5 not installed")
    net = default_pipeline().run(_net(n_in=6, width=20, depth=3, seed=0))
    problem = BoundProblem(net, "y", 0, "b")
    start = time.monotonic()
    ans = registry.get_backend("cvc5").solve_bound(problem, timeout=1.0)
    assert all(s.status in ("timeout", "sat") for s in ans.sides.values())
    assert time.monotonic() - start < 15
