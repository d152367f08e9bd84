"""No backend gives a wrong verdict when a property's threshold sits within 1e-9 of the exact
optimum: below every float tolerance, where a MILP's "infeasible" can simply be wrong.

The exact maximum M of an output over the domain comes from z3 (`bound ... exact`, replayed).
Then `y > M - eps` and `y >= M` are sat, `y > M` and `y >= M + eps` unsat, for eps 1e-9 and
1e-12. An exact backend must give the true verdict; any backend may say `unknown`/`timeout`
(a MILP infeasibility no exact method confirmed is reported so), none may say the opposite.
"""
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from strategies import float_network, networks

from nnir.backends import registry
from nnir.ir.const import parse_number
from nnir.ir.nodes import Atom, Bound, Program, Ref, Verify
from nnir.queries.run import run_query

VERIFY = [n for n in registry.names_for("verify") if registry.backend_class(n).available()]
BACKENDS = ["auto", *VERIFY]
EXACT = {n for n in VERIFY if registry.backend_class(n).exact}

pytestmark = pytest.mark.skipif("z3" not in VERIFY, reason="z3 computes the exact optimum")


def exact_max(net, out: str):
    """The exact max of `out[0]` over the network's domain (z3 Optimize, replayed)."""
    res = run_query(Program(networks=(net,)), Bound("m", net.name, out, 0, None), "z3",
                    timeout=60)
    if res.status not in ("optimal", "bounded") or not res.bounds["exact_sides"]["max"]:
        return None
    return parse_number(res.bounds["max_exact"])


def check_near(net, eps: Fraction, backends=BACKENDS) -> None:
    out = net.output
    m = exact_max(net, out)
    if m is None:
        pytest.skip("z3 gave no exact optimum in time")
    cases = ((">", m - eps, "sat"), (">=", m, "sat"), (">", m, "unsat"),
             (">=", m + eps, "unsat"))
    for rel, thr, truth in cases:
        q = Verify("q", net.name, (), Atom(((Ref(out, 0), Fraction(1)),), rel, thr))
        prog = Program(networks=(net,), queries=(q,))
        for backend in backends:
            res = run_query(prog, q, backend, timeout=120)
            what = (backend, f"{out}[0] {rel} M{'-' if thr < m else '+' if thr > m else ''}eps",
                    res.status, res.message, res.notes)
            assert res.status != {"sat": "unsat", "unsat": "sat"}[truth], what
            assert res.status != "error", what
            if backend in EXACT and backend != "portfolio":
                assert res.status == truth, what
            if res.status == "unsat":
                assert "not an exact proof" not in res.certified, what


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_wrong_verdict_within_1e9_of_the_optimum(data):
    net = data.draw(networks(max_depth=2, max_width=3, max_inputs=2))
    eps = data.draw(st.sampled_from([Fraction(1, 10**9), Fraction(1, 10**12)]))
    check_near(net, eps)


@pytest.mark.parametrize("seed", [0, 1])
def test_float_weights_near_the_optimum(seed):
    """Full float64 mantissas: the case where HiGHS's tolerances bite (55 of 60 wrong before)."""
    net, _ = float_network(seed, depth=2)
    check_near(net, Fraction(1, 10**9), [b for b in BACKENDS if b != "portfolio"])


@example(0)
@settings(max_examples=1, deadline=None)
@given(st.just(0))
def test_highs_alone_never_says_unsat_below_its_tolerance(_):
    if "highs" not in VERIFY:
        pytest.skip("highspy not installed")
    net, _ = float_network(3, depth=2)
    m = exact_max(net, net.output)
    q = Verify("q", net.name, (), Atom(((Ref(net.output, 0), Fraction(1)),), ">",
                                       m - Fraction(1, 10**9)))
    res = run_query(Program(networks=(net,), queries=(q,)), q, "highs", timeout=120,
                    confirm=False)
    assert res.status in ("sat", "unknown"), res.render()
    if res.status == "unknown":
        assert res.info.get("unconfirmed") == "unsat" and "tolerances" in res.message
