"""Convolution nodes: geometry, evaluation (float, batch, exact, integer), bound passes, text.

The reference is a direct loop over output positions and kernel taps (the definition of ONNX's
Conv), independent of `nnir.ir.conv`'s index tables.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nnir import parse as parse_program
from nnir.ir import conv
from nnir.ir.const import Const
from nnir.ir.evaluate import evaluate, evaluate_batch
from nnir.ir.intexact import IntegerReplay
from nnir.ir.nodes import Conv, Dense, Gather, Input, Network
from nnir.ir.printer import print_program
from nnir.ir.verifier import verify_network
from nnir.passes.interval import IntervalBounds
from nnir.passes.symbolic import SymbolicBounds


def reference_conv(x, w, b, stride, pads, dil, groups):
    """ONNX Conv of one (C, H, W) image by loops."""
    C, H, W = x.shape
    CO, Cg, KH, KW = w.shape
    OH, OW = conv.output_hw((H, W), (KH, KW), stride, pads, dil)
    out = np.zeros((CO, OH, OW))
    og = CO // groups
    for o in range(CO):
        for i in range(OH):
            for j in range(OW):
                s = b[o]
                for c in range(Cg):
                    for p in range(KH):
                        for q in range(KW):
                            ii = i * stride[0] - pads[0] + p * dil[0]
                            jj = j * stride[1] - pads[1] + q * dil[1]
                            if 0 <= ii < H and 0 <= jj < W:
                                s += w[o, c, p, q] * x[(o // og) * Cg + c, ii, jj]
                out[o, i, j] = s
    return out


@st.composite
def conv_nets(draw):
    groups = draw(st.sampled_from([1, 2]))
    C = groups * draw(st.integers(1, 2))
    CO = groups * draw(st.integers(1, 2))
    H, W = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    OH, OW = conv.output_hw((H, W), (KH, KW), stride, pads, dil)
    if OH < 1 or OW < 1:
        OH, OW, pads, dil = H + 2 - KH + 1, W + 2 - KW + 1, (1, 1, 1, 1), (1, 1)
        stride = (1, 1)
        OH, OW = conv.output_hw((H, W), (KH, KW), stride, pads, dil)
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    w = np.round(rng.normal(size=(CO, C // groups, KH, KW)), 3)
    b = np.round(rng.normal(size=CO), 3)
    act = draw(st.sampled_from(["relu", "linear"]))
    n = C * H * W
    inp = Input("x", n, Const.of_floats(-np.ones(n)), Const.of_floats(np.ones(n)))
    lay = Conv("c", CO * OH * OW, "x", (C, H, W), (CO, OH, OW), Const.of_floats(w),
               Const.of_floats(b), stride, pads, dil, groups, act)
    out = Dense("y", 2, "g", Const.of_floats(np.round(rng.normal(size=(2, 3)), 2)),
                Const.zeros((2,)), "linear")
    idx = tuple(int(i) for i in rng.integers(0, lay.size, size=3))
    net = Network("n", inp, (lay, Gather("g", 3, "c", idx), out), "y")
    verify_network(net)
    return net, w, b, rng


@settings(max_examples=40, deadline=None)
@given(conv_nets())
def test_conv_matches_reference_in_every_evaluation(case):
    net, w, b, rng = case
    lay = net.layers[0]
    xs = rng.uniform(-1, 1, size=(4, net.input.size))
    for x in xs:
        ref = reference_conv(x.reshape(lay.in_shape), w, b, lay.stride, lay.pads,
                             lay.dilation, lay.groups).reshape(-1)
        got = evaluate(net, x)["c.pre"]
        assert np.allclose(got, ref, atol=1e-12)
        exact = evaluate(net, x, exact=True)
        assert np.allclose([float(v) for v in exact["c.pre"]], ref, atol=1e-12)
        ints = IntegerReplay(net).values(x)
        assert all(ints[k][i] == exact[k][i] for k in ("c.pre", "g", "y")
                   for i in range(len(exact[k])))
    batch = evaluate_batch(net, xs)
    for i, x in enumerate(xs):
        assert np.allclose(batch["y"][i], evaluate(net, x)["y"], atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(conv_nets())
def test_conv_bounds_contain_sampled_values(case):
    net, _, _, rng = case
    for p in (IntervalBounds(), SymbolicBounds()):
        bnd = p.run(net, None)
        xs = rng.uniform(-1, 1, size=(50, net.input.size))
        xs[:8] = np.sign(xs[:8])  # corners
        vals = evaluate_batch(net, xs)
        for lay in net.layers:
            pre = vals[lay.name + ".pre"]
            assert np.all(pre >= bnd.facts.lo[lay.name] - 0.0)
            assert np.all(pre <= bnd.facts.hi[lay.name] + 0.0)


@settings(max_examples=25, deadline=None)
@given(conv_nets())
def test_conv_text_round_trip(case):
    net = case[0]
    from nnir.ir.nodes import Program
    text = print_program(Program(networks=(net,)))
    back = parse_program(text).networks[0]
    assert back == net, text


def test_conv_matrix_is_sparse_with_one_entry_per_tap():
    # 16 channels of 32x32 from 3x32x32 with 3x3 kernels: the taps, never 16k x 3k dense
    lay = Conv("c", 16 * 32 * 32, "x", (3, 32, 32), (16, 32, 32),
               Const.of_floats(np.ones((16, 3, 3, 3))), Const.zeros((16,)), (1, 1),
               (1, 1, 1, 1))
    M = conv.matrix(lay)
    border = 16 * 3 * (4 * 32 * 3 - 4)  # taps falling on the padding
    assert M.nnz == 16 * 32 * 32 * 27 - border
    assert M.nnz < lay.size * 27


def test_conv_text_errors_point_at_the_source():
    import pytest

    from nnir.errors import NnirError
    bad = """net n {
  input x[8] in [0, 1]
  conv c [1, 2, 2] = conv(x [2, 2, 2], [[1, 2, 3, 4]], kernel [2, 2], pads 0)
}
"""
    with pytest.raises(NnirError) as e:
        parse_program(bad)
    assert "channels" in str(e.value) or "kernel" in str(e.value)


def test_exact_weights_that_are_not_floats():
    # an average pool's 1/9 kept exact; bounds stay sound with the rounded float matrix
    k = np.full((1, 1, 3, 3), Fraction(1, 9), dtype=object)
    lay = Conv("p", 1, "x", (1, 3, 3), (1, 1, 1), Const(exact=k), Const.zeros((1,)))
    inp = Input("x", 9, Const.exact_of([Fraction(1, 3)] * 9), Const.exact_of([Fraction(1, 3)] * 9))
    net = Network("n", inp, (lay,), "p")
    assert evaluate(net, [Fraction(1, 3)] * 9, exact=True)["p"][0] == Fraction(1, 3)
    f = SymbolicBounds().run(IntervalBounds().run(net, None), None).facts
    assert f.lo["p"][0] <= 1 / 3 <= f.hi["p"][0]


def test_weights_to_npz_print_round_trip(tmp_path):
    """`print_network(store=)`: large float kernels go to an .npz the text loads; rational
    weights stay inline (exact); parsing the pair back gives the same network."""
    from nnir.ir.printer import WeightStore, print_network

    rng = np.random.default_rng(3)
    n = 2 * 8 * 8
    inp = Input("x", n, Const.of_floats(np.zeros(n)), Const.of_floats(np.ones(n)))
    c1 = Conv("c1", 4 * 4 * 4, "x", (2, 8, 8), (4, 4, 4),
              Const.of_floats(rng.normal(size=(4, 2, 3, 3))), Const.of_floats(rng.normal(size=4)),
              (2, 2), (1, 1, 1, 1), act="relu")
    pool = Conv("p", 16, "c1", (4, 4, 4), (4, 2, 2),
                Const(exact=np.full((4, 1, 3, 3), Fraction(1, 9), dtype=object)),
                Const.zeros((4,)), groups=4)
    out = Dense("y", 2, "p", Const.of_floats(rng.normal(size=(2, 16))), Const.zeros((2,)),
                "linear")
    net = Network("n", inp, (c1, pool, out), "y")
    verify_network(net)
    store = WeightStore("n.npz", threshold=8)
    text = print_network(net, store=store)
    # 72 and 32 floats go out; the pool's 1/9 (no float) and the 4 biases stay inline
    assert set(store.arrays) == {"c1.weight", "y.weight"}
    assert "1/9" in text
    np.savez(tmp_path / "n.npz", **store.arrays)
    (tmp_path / "n.nnir").write_text(text)
    assert len(text) < 2000
    back = parse_program(text, str(tmp_path / "n.nnir")).networks[0]
    assert back == net
