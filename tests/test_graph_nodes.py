"""Slice, concat and add nodes: syntax, printing, errors, evaluation, bound passes, lowering."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import assert_facts_sound, formulas, networks

import nnir
from nnir.errors import DslError, IrError
from nnir.ir.evaluate import evaluate, evaluate_batch
from nnir.ir.nodes import Add, Concat, Program, Slice, Verify
from nnir.ir.printer import print_network
from nnir.passes.interval import IntervalBounds
from nnir.passes.lp import LpBounds
from nnir.passes.manager import PassContext
from nnir.passes.symbolic import SymbolicBounds
from nnir.queries.run import run_query

GRAPH = """
net g {
  input x[2] in [-1, 1]
  relu h[3] = [[1, -1], [0.5, 2], [-1, -1]] x + [0, 0.5, 0.25]
  slice s = h[1:3]
  concat c = [h, x]
  linear p[2] = [[1, 1], [2, -1]] s + [0.5, 0]
  linear q[2] = [[1, 0, 1, 0, 1], [0, 1, 0, 1, 0]] c
  add y = relu(p + q)
}
"""


def _points(net, n=6, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = net.input.lo.exact, net.input.hi.exact
    pts = [[a + (b - a) * Fraction(int(k), 16) for a, b, k in zip(lo, hi, rng.integers(0, 17,
                                                                                       len(lo)))]
           for _ in range(n)]
    return pts + [list(lo), list(hi)]


def test_syntax_builds_the_nodes_with_sizes():
    net = nnir.parse(GRAPH).network("g")
    kinds = {lay.name: type(lay) for lay in net.layers}
    assert kinds["s"] is Slice and kinds["c"] is Concat and kinds["y"] is Add
    assert net.size_of("s") == 2 and net.size_of("c") == 5 and net.size_of("y") == 2
    assert net.layer("y").act == "relu" and net.layer("y").srcs == ("p", "q")
    assert nnir.parse(print_network(net)).network("g") == net


def test_exact_evaluation_by_hand():
    net = nnir.parse(GRAPH).network("g")
    v = evaluate(net, [Fraction(1, 2), Fraction(-1)], exact=True)
    h = [Fraction(3, 2), Fraction(0), Fraction(3, 4)]  # relu of (1.5, -1.75, 0.75)
    assert list(v["h"]) == h
    assert list(v["s"]) == h[1:] and list(v["c"]) == h + [Fraction(1, 2), Fraction(-1)]
    # p = (0 + 3/4 + 1/2, 0 - 3/4), q = (3/2 + 3/4 - 1, 0 + 1/2), y = relu(p + q)
    assert list(v["y.pre"]) == [Fraction(5, 2), Fraction(-1, 4)]
    assert list(v["y"]) == [Fraction(5, 2), Fraction(0)]


@pytest.mark.parametrize("text, msg", [
    ("slice s = h[2:5]", "out of range"),
    ("slice s[3] = h[0:2]", "declared with 3"),
    ("add s = h + x", "different sizes"),
    ("concat c[4] = [h, x]", "has 5 entries, declared 4"),
    ("concat c = [h, nope]", "'nope' is not defined"),
])
def test_graph_node_errors_point_at_the_node(text, msg):
    src = f"net g {{\n  input x[2] in [-1, 1]\n  relu h[3] = [[1, 1], [1, 0], [0, 1]] x\n" \
          f"  {text}\n}}\n"
    with pytest.raises((DslError, IrError)) as exc:
        nnir.parse(src)
    assert msg in str(exc.value), str(exc.value)
    assert exc.value.span.line == 4


def test_unknown_weights_with_graph_nodes_are_refused():
    src = ("net g {\n  input x[2] in [-1, 1]\n  relu h[2] = unknown x\n  slice s = h[0:1]\n}\n")
    with pytest.raises(IrError, match="training handles chains of dense layers only"):
        nnir.parse(src)


def test_bound_on_a_concat_node_is_refused():
    with pytest.raises(IrError, match="no pre-activation of its own"):
        nnir.parse(GRAPH + "bound g.c[0]\n")


@settings(max_examples=30, deadline=None)
@given(networks(graph=True))
def test_graph_networks_round_trip_and_agree_with_their_dense_chain(net):
    assert nnir.parse(print_network(net)).network(net.name) == net
    for x in _points(net, 3):
        ex = evaluate(net, x, exact=True)[net.output]
        fl = evaluate(net, [float(v) for v in x])[net.output]
        assert np.allclose(np.array(ex, dtype=float), fl, atol=1e-9)
        batch = evaluate_batch(net, np.array([[float(v) for v in x]]))[net.output][0]
        assert np.allclose(batch, fl)


@settings(max_examples=30, deadline=None)
@given(networks(graph=True))
def test_bound_passes_are_sound_on_graph_networks(net):
    ibp = IntervalBounds().run(net, None)
    sym = SymbolicBounds().run(ibp, None)
    for facts in (ibp.facts, sym.facts):
        assert_facts_sound(net, facts, _points(net))


@settings(max_examples=8, deadline=None)
@given(networks(graph=True, max_depth=3))
def test_lp_pass_is_sound_on_graph_networks(net):
    lp = LpBounds(unstable_only=False).run(IntervalBounds().run(net, None), PassContext())
    assert_facts_sound(net, lp.facts, _points(net))


def test_float_rounding_of_a_long_add_is_covered():
    # Ten terms of 0.1 (not a float): the exact sum differs from the float sum.
    terms = " + ".join(f"p{i}" for i in range(10))
    layers = "\n".join(f"  linear p{i}[1] = [[0.1]] x" for i in range(10))
    net = nnir.parse(f"net g {{\n input x[1] in [1, 1]\n{layers}\n  add y = {terms}\n}}\n")\
        .network("g")
    for p in (IntervalBounds(), SymbolicBounds()):
        f = p.run(IntervalBounds().run(net, None), None).facts
        assert Fraction(f.lo["y"][0]) <= 1 <= Fraction(f.hi["y"][0])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_smt_and_milp_agree_on_graph_networks(data):
    net = data.draw(networks(graph=True, max_depth=2, max_width=3))
    q = Verify("q", net.name, (), data.draw(formulas(net, depth=1)))
    prog = Program(networks=(net,), queries=(q,))
    got = {b: run_query(prog, q, b, timeout=60) for b in ("z3", "highs")}
    statuses = {r.status for r in got.values()}
    assert statuses <= {"sat", "unsat"}, {b: r.message for b, r in got.items()}
    assert len(statuses) == 1, {b: (r.status, r.message) for b, r in got.items()}
    for r in got.values():
        if r.status == "sat":
            assert r.replay["exact"]
