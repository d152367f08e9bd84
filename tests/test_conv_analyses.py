"""Conv and gather nodes in every analysis: LP tightening, relations, SMT-LIB and MILP lowering
(verify and bound through HiGHS, z3 and cvc5 agree with the equivalent dense network), stable
(per neuron and per channel) and compress (inactive channels removed, all-stable conv layers
folded; exact replay)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import assert_facts_sound, small, verify_programs

from nnir.backends.milp.lower import to_milp
from nnir.backends.smtlib.lower import to_smtlib
from nnir.ir import conv
from nnir.ir.const import Const
from nnir.ir.evaluate import evaluate
from nnir.ir.nodes import Add, Bound, Compress, Conv, Dense, Gather, Input, Network, Program, Stable
from nnir.ir.verifier import verify_network
from nnir.passes.compress import compress_with_report
from nnir.passes.interval import IntervalBounds
from nnir.passes.lp import LpBounds
from nnir.passes.manager import PassContext, default_pipeline
from nnir.passes.relations import infer
from nnir.queries.problem import VerifyProblem
from nnir.queries.run import run_query


def _conv(name, src, in_shape, rng_or_w, n_out, k, stride=1, pad=0, act="relu", groups=1, b=None):
    C, H, W = in_shape
    OH, OW = conv.output_hw((H, W), (k, k), (stride, stride), (pad,) * 4, (1, 1))
    w = rng_or_w
    if b is None:
        b = [Fraction(0)] * n_out
    return Conv(name, n_out * OH * OW, src, in_shape, (n_out, OH, OW), Const.exact_of(w),
                Const.exact_of(b), (stride, stride), (pad,) * 4, (1, 1), groups, act)


@st.composite
def conv_networks(draw):
    """Small conv nets with exact rational weights: conv relu, optionally a residual conv and
    add, optionally a gather, then a dense linear output."""
    C, H, W = draw(st.integers(1, 2)), draw(st.integers(2, 3)), draw(st.integers(2, 3))
    n = C * H * W
    lo = [draw(st.integers(-2, 0)) for _ in range(n)]
    inp = Input("x", n, Const.exact_of(lo), Const.exact_of([a + draw(st.integers(0, 2))
                                                           for a in lo]))
    O_, k = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    stride, pad = draw(st.integers(1, 2)), draw(st.integers(0, 1))

    def kernel(o, c, kk):
        return [[[[draw(small) for _ in range(kk)] for _ in range(kk)] for _ in range(c)]
                for _ in range(o)]
    c1 = _conv("c1", "x", (C, H, W), kernel(O_, C, k), O_, k, stride, pad,
               b=[draw(small) for _ in range(O_)])
    layers, last = [c1], c1
    if draw(st.booleans()):  # residual: a 1x1 or 3x3 same-shape conv added back
        kk = draw(st.sampled_from([1, 3]))
        r = _conv("r", "c1", c1.out_shape, kernel(O_, O_, kk), O_, kk, 1, kk // 2, act="linear",
                  b=[draw(small) for _ in range(O_)])
        a = Add("a", c1.size, ("c1", "r"), "relu")
        layers += [r, a]
        last = a
    if draw(st.booleans()):
        idx = tuple(draw(st.lists(st.integers(0, last.size - 1), min_size=1, max_size=4)))
        g = Gather("g", len(idx), last.name, idx)
        layers.append(g)
        last = g
    m = draw(st.integers(1, 2))
    y = Dense("y", m, last.name, Const.exact_of([[draw(small) for _ in range(last.size)]
                                                 for _ in range(m)]),
              Const.exact_of([draw(small) for _ in range(m)]), "linear")
    net = Network("n", inp, tuple(layers) + (y,), "y")
    verify_network(net)
    return net


def exact_matrix(lay) -> np.ndarray:
    """A conv node's exact weights as a dense matrix of Fractions (tests only)."""
    indptr, cols, widx = conv.taps_of(lay)
    M = np.empty((lay.size, int(np.prod(lay.in_shape))), dtype=object)
    M[:] = Fraction(0)
    w = lay.weight.exact.reshape(-1)
    for r in range(lay.size):
        for t in range(indptr[r], indptr[r + 1]):
            M[r, cols[t]] += w[widx[t]]
    return M


def dense_equivalent(net: Network) -> Network:
    """The same network with every conv a dense layer and every gather a 0/1 linear layer."""
    out = []
    for lay in net.layers:
        if lay.kind == "conv":
            M = exact_matrix(lay)
            assert np.array_equal(M.astype(float), conv.dense_matrix(lay))
            out.append(Dense(lay.name, lay.size, lay.src, Const.exact_of(M),
                             Const.exact_of(conv.bias_vector(lay, exact=True)), lay.act))
        elif lay.kind == "gather":
            P = np.zeros((lay.size, net.size_of(lay.src)))
            P[np.arange(lay.size), list(lay.index)] = 1.0
            out.append(Dense(lay.name, lay.size, lay.src, Const.of_floats(P),
                             Const.zeros((lay.size,)), "linear"))
        else:
            out.append(lay)
    return Network(net.name, net.input, tuple(out), net.output)


def _points(net, n=6, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = net.input.lo.exact, net.input.hi.exact
    pts = [[a + (b - a) * Fraction(int(t), 8) for a, b, t in zip(lo, hi, rng.integers(0, 9,
                                                                                     len(lo)))]
           for _ in range(n)]
    return pts + [list(lo), list(hi)]


# ----------------------------------------------------------------------------- LP, relations
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_networks())
def test_lp_pass_is_sound_and_no_looser(net):
    base = default_pipeline().run(net)
    lp = LpBounds(unstable_only=False).run(base, PassContext())
    assert_facts_sound(net, lp.facts, _points(net))
    for lay in net.layers:
        assert np.all(lp.facts.lo[lay.name] >= base.facts.lo[lay.name])
        assert np.all(lp.facts.hi[lay.name] <= base.facts.hi[lay.name])


def test_lp_rows_use_taps_only():
    """A conv layer's LP rows have one entry per tap (plus its own column), no dense matrix."""
    from nnir.passes.lp import ROW_RULES

    rng = np.random.default_rng(1)
    lay = _conv("c", "x", (2, 5, 5), rng.integers(-2, 3, size=(3, 2, 3, 3)).tolist(), 3, 3)
    post = {"x": np.arange(50)}
    rows = []
    z = ROW_RULES["conv"](lay, post, lambda: np.arange(50, 50 + lay.size),
                          lambda c, v, lo, hi: rows.append((c, v)))
    assert len(z) == lay.size == len(rows)
    indptr, cols, widx = conv.taps_of(lay)
    nz = lay.weight.f64.reshape(-1)[widx] != 0
    assert sum(len(c) - 1 for c, _ in rows) == int(nz.sum())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_networks())
def test_relations_prove_conv_equal_to_its_dense_equivalent(net):
    dense = dense_equivalent(net)
    res = infer(net, dense)
    assert res.equivalent, res.stuck.describe("B") if res.stuck else res.note
    res = infer(dense, net)
    assert res.equivalent, res.stuck.describe("B") if res.stuck else res.note


def test_relations_find_a_changed_weight():
    rng = np.random.default_rng(3)
    w = rng.integers(-2, 3, size=(2, 1, 2, 2)).astype(object)
    inp = Input("x", 9, Const.exact_of([-1] * 9), Const.exact_of([1] * 9))
    a = Network("a", inp, (_conv("c", "x", (1, 3, 3), w.tolist(), 2, 2),
                           Dense("y", 1, "c", Const.exact_of([[1] * 8]), Const.zeros((1,)),
                                 "linear")), "y")
    w2 = w.copy()
    w2[0, 0, 0, 0] += 1
    b = Network("b", inp, (_conv("c", "x", (1, 3, 3), w2.tolist(), 2, 2),) + a.layers[1:], "y")
    assert not infer(a, b).equivalent


# ----------------------------------------------------------------------------- lowering
def test_smtlib_has_one_term_per_tap():
    w = [[[[1, Fraction(1, 3)], [0, -2]]]]
    inp = Input("x", 4, Const.exact_of([0] * 4), Const.exact_of([1] * 4))
    c = _conv("c", "x", (1, 2, 2), w, 1, 2, act="linear", b=[Fraction(1, 2)])
    g = Gather("g", 2, "c", (0, 0))
    y = Dense("y", 1, "g", Const.exact_of([[1, 1]]), Const.zeros((1,)), "linear")
    net = Network("n", inp, (c, g, y), "y")
    verify_network(net)
    prog = Program((net,), (), ())
    from nnir.ir.nodes import Atom, Ref

    problem = VerifyProblem(net, (), Atom(((Ref("y", 0), Fraction(1)),), ">", Fraction(0)), "q")
    text = to_smtlib(problem).text if hasattr(to_smtlib(problem), "text") else to_smtlib(problem)
    assert "(* (/ 1 3) |n.x[1]|)" in text and "(* (- 2.0) |n.x[3]|)" in text
    assert "(/ 1 2)" in text
    # the gather's two entries are the conv's one symbol
    assert "|n.c.pre[0]| |n.c.pre[0]|" in text
    del prog


def test_milp_rows_are_sparse():
    rng = np.random.default_rng(2)
    inp = Input("x", 2 * 6 * 6, Const.exact_of([0] * 72), Const.exact_of([1] * 72))
    c = _conv("c", "x", (2, 6, 6), rng.integers(-2, 3, size=(4, 2, 3, 3)).tolist(), 4, 3)
    y = Dense("y", 1, "c", Const.of_floats(rng.normal(size=(1, c.size))), Const.zeros((1,)),
              "linear")
    net = Network("n", inp, (c, y), "y")
    from nnir.ir.nodes import Atom, Ref

    net = IntervalBounds().run(net, None)
    model = to_milp(VerifyProblem(net, (), Atom(((Ref("y", 0), Fraction(1)),), ">",
                                                Fraction(0)), "q"))
    defs = [r for r in model.rows if r.name.startswith("def_n_c")]
    assert len(defs) == c.size and max(len(r.index) for r in defs) <= 2 * 9 + 1


BACKENDS = ["z3", "cvc5", "highs"]


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_verify_agrees_with_the_dense_equivalent(data):
    net = data.draw(conv_networks())
    prog = data.draw(verify_programs(net))
    q = prog.queries[0]
    dense_prog = Program((dense_equivalent(net),), (), prog.queries)
    want = run_query(dense_prog, q, "z3", timeout=60)
    assert want.status in ("sat", "unsat"), want.message
    for backend in BACKENDS:
        got = run_query(prog, q, backend, timeout=60)
        if backend == "highs" and got.status not in ("sat", "unsat"):
            continue  # near-boundary: HiGHS may decline, never answer wrongly
        assert got.status == want.status, (backend, got.message)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_networks(), st.data())
def test_bound_agrees_with_the_dense_equivalent(net, data):
    layer = data.draw(st.sampled_from([lay.name for lay in net.layers
                                       if lay.kind in ("conv", "dense")]))
    idx = data.draw(st.integers(0, net.layer(layer).size - 1))
    q = Bound("b", net.name, layer, idx, "exact")
    want = run_query(Program((dense_equivalent(net),), (), (q,)), q, "z3", timeout=60)
    assert want.status.startswith("sat") or want.bounds, want.message
    for backend in BACKENDS:
        got = run_query(Program((net,), (), (q,)), q, backend, timeout=60)
        assert got.bounds, (backend, got.message)
        for side in ("min", "max"):
            if got.bounds["exact"] and want.bounds["exact"]:
                assert got.bounds[f"{side}_exact"] == want.bounds[f"{side}_exact"], backend
            else:
                assert abs(got.bounds[side] - want.bounds[side]) <= 1e-5, backend


# ----------------------------------------------------------------------------- stable, compress
def _channel_net():
    """3 channels on [0, 1]^(1x3x3): channel 0 = sum x (active), channel 1 = -sum x - 1
    (inactive), channel 2 = x00 - x11 (unstable); then a dense output."""
    w = [[[[1, 1], [1, 1]]], [[[-1, -1], [-1, -1]]], [[[1, 0], [0, -1]]]]
    inp = Input("x", 9, Const.exact_of([0] * 9), Const.exact_of([1] * 9))
    c = _conv("c", "x", (1, 3, 3), w, 3, 2, b=[Fraction(1, 4), -1, 0])
    d = _conv("d", "c", (3, 2, 2), [[[[1]], [[2]], [[Fraction(1, 3)]]],
                                    [[[-1]], [[1]], [[1]]]], 2, 1)
    rng = np.random.default_rng(0)
    y = Dense("y", 2, "d", Const.exact_of(rng.integers(-3, 4, size=(2, 8)).tolist()),
              Const.exact_of([1, -1]), "linear")
    net = Network("n", inp, (c, d, y), "y")
    verify_network(net)
    return net


def test_stable_reports_channels():
    net = _channel_net()
    res = run_query(Program((net,), (), (Stable("s", "n"),)), Stable("s", "n"), "auto",
                    timeout=60)
    ch = res.info["stable"]["c"]["channels"]
    assert ch == {"channels": 3, "active": [0], "inactive": [1]}
    assert "stable channels" in res.message


def test_compress_removes_inactive_channels_exactly():
    net = _channel_net()
    stable = {"c": np.array([1] * 4 + [-1] * 4 + [0] * 4, dtype=np.int8)}
    small_net, changes = compress_with_report(net, stable)
    c = small_net.layer("c")
    assert c.out_shape == (2, 2, 2) and small_net.layer("d").in_shape == (2, 2, 2)
    for x in _points(net, 10):
        assert evaluate(net, x, exact=True)["y"].tolist() == \
            evaluate(small_net, x, exact=True)["y"].tolist()
    assert changes[0].neurons_removed == 4


def test_compress_folds_an_all_stable_conv_into_a_dense_reader():
    w = [[[[1, 1], [1, 1]]], [[[-1, -1], [-1, -1]]]]
    inp = Input("x", 9, Const.exact_of([0] * 9), Const.exact_of([1] * 9))
    c = _conv("c", "x", (1, 3, 3), w, 2, 2, b=[Fraction(1, 4), -1])
    y = Dense("y", 2, "c", Const.exact_of(np.arange(16).reshape(2, 8).tolist()),
              Const.exact_of([1, -1]), "linear")
    net = Network("n", inp, (c, y), "y")
    q = Compress("k", "n", "small")
    res = run_query(Program((net,), (), (q,)), q, "auto", timeout=60)
    assert res.status == "compressed", res.message
    got, changes = compress_with_report(net, {"c": np.array([1] * 4 + [-1] * 4, np.int8)})
    assert [lay.kind for lay in got.layers] == ["dense"] and changes[0].folded
    for x in _points(net, 10):
        assert evaluate(net, x, exact=True)["y"].tolist() == \
            evaluate(got, x, exact=True)["y"].tolist()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_networks())
def test_compress_query_on_random_conv_nets(net):
    if any(lay.kind not in ("conv", "dense") for lay in net.layers):
        net = Network(net.name, net.input, (net.layers[0], Dense(
            "y", 1, net.layers[0].name, Const.exact_of([[1] * net.layers[0].size]),
            Const.zeros((1,)), "linear")), "y")
    q = Compress("k", "n", "small")
    res = run_query(Program((net,), (), (q,)), q, "auto", timeout=60)
    assert res.status in ("compressed", "unchanged"), res.message
    assert res.status == "unchanged" or res.info["exact_points"] > 0


@pytest.mark.parametrize("kind", ["slice"])
def test_compress_still_refuses_other_graph_nodes(kind):
    from nnir.errors import UnsupportedQuery
    from nnir.ir.nodes import Slice

    inp = Input("x", 2, Const.exact_of([0, 0]), Const.exact_of([1, 1]))
    net = Network("n", inp, (Dense("h", 2, "x", Const.exact_of([[1, 0], [0, 1]]),
                                   Const.zeros((2,)), "relu"), Slice("s", 1, "h", 0)), "s")
    with pytest.raises(UnsupportedQuery):
        compress_with_report(net, {})
