"""Integer replay (`nnir/ir/intexact.py`) equals exact rational evaluation, sign for sign."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import float_network, networks

import nnir
from nnir.ir.evaluate import evaluate
from nnir.ir.intexact import IntegerReplay, as_integers


def _check(net, x):
    ref = evaluate(net, x, exact=True)
    rep = IntegerReplay(net)
    got, signs = rep.values(x), rep.pre_signs(x)
    for lay in net.layers:
        assert list(got[lay.name + ".pre"]) == list(ref[lay.name + ".pre"])
        assert list(got[lay.name]) == list(ref[lay.name])
        assert list(signs[lay.name]) == [(v > 0) - (v < 0) for v in ref[lay.name + ".pre"]]
    assert list(rep.output(x)) == list(ref[net.output])


@pytest.mark.parametrize("seed", range(12))
def test_float_networks(seed):
    """Full-mantissa float weights; float inputs and non-dyadic rationals (pixel / 255)."""
    net, pts = float_network(seed, 1 + seed % 4)
    rng = np.random.default_rng(seed)
    pts = pts + [[Fraction(int(v), 255) for v in rng.integers(-380, 180, net.input.size)]]
    for x in pts:
        _check(net, x)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_rational_networks(data):
    net = data.draw(networks(max_depth=3, max_width=4, max_inputs=3))
    x = [data.draw(st.fractions(-3, 3, max_denominator=12)) for _ in range(net.input.size)]
    _check(net, x)


def test_as_integers_is_exact_on_extreme_floats():
    a = [0.0, -0.0, 1.0, -3.5, 5e-324, 1.7976931348623157e308, 0.1, Fraction(1, 3)]
    ints, d = as_integers(a)
    assert [Fraction(int(m), d) for m in ints] == [Fraction(v) for v in a]


def test_zero_crossing_sign_is_exact():
    # 0.1 + 0.2 - 0.30000000000000004 is -2.8e-17 in exact arithmetic, 0 in float64
    net = nnir.network("z", [(np.array([[0.1, 0.2]]), np.array([-0.30000000000000004]),
                              "relu"), (np.array([[1.0]]), np.array([0.0]), "linear")], 0, 1)
    x = [1.0, 1.0]
    exact = evaluate(net, x, exact=True)["h1.pre"][0]
    assert exact != 0
    assert IntegerReplay(net).pre_signs(x)["h1"][0] == (exact > 0) - (exact < 0)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_graph_networks_slice_concat_add(data):
    """Tensor-parallel networks (slice, concat, add nodes) replay to the same exact values."""
    net = data.draw(networks(max_depth=3, max_width=4, max_inputs=3, graph=True))
    x = [data.draw(st.fractions(-3, 3, max_denominator=12)) for _ in range(net.input.size)]
    _check(net, x)


@pytest.mark.parametrize("seed", range(4))
def test_sharded_float_networks_wide_layers(seed):
    """Float weights over 100+ binary orders of magnitude and layers wider than a row block
    (the BLAS limb products and the chunked dot both run)."""
    from nnir.passes.shard import shard_network

    rng = np.random.default_rng(seed)
    sizes = [3, 150, 140, 2]
    layers = [(rng.normal(size=(sizes[k + 1], sizes[k])) * 10.0 ** rng.integers(-40, 3, size=(
        sizes[k + 1], sizes[k])), rng.normal(size=sizes[k + 1]), "relu" if k < 2 else "linear")
        for k in range(3)]
    net = nnir.network("w", layers, -1, 1)
    tp = shard_network(net, 3, ("megatron", "gather", "scatter")[seed % 3:] + ("megatron",))
    x = [Fraction(int(v), 7) for v in rng.integers(-7, 8, 3)]
    ref = evaluate(net, x, exact=True)[net.output]
    assert list(IntegerReplay(tp).output(x)) == list(ref)
    _check(net, x)


@pytest.mark.parametrize("W, limbs", [
    ([[2.0 ** 40 + 1, -(2.0 ** -60), 0.0], [-1.0, 1 / 3, 3.0]], True),
    ([[1.7976931348623157e308, -5e-324, 0.0], [-1.0, 2.0 ** -60, 3.0]], False),  # 2100 bits
])
def test_limb_product_is_exact_at_the_edges(W, limbs):
    from nnir.ir.intexact import _Limbs

    W = np.array(W)
    mat, d = _Limbs.of(W)
    assert isinstance(mat, _Limbs) == limbs
    v = np.empty(3, dtype=object)
    v[:] = [3 ** 200, -(2 ** 1100) - 1, 7]
    exact = [sum(Fraction(w) * int(x) for w, x in zip(row, v)) for row in W]
    assert [Fraction(int(g), d) for g in mat.dot(v)] == exact


def test_an_interrupted_replay_stops():
    from nnir.ir.intexact import Interrupted

    net, pts = float_network(0, 3)
    calls = []

    def check():
        calls.append(1)
        raise Interrupted

    with pytest.raises(Interrupted):
        IntegerReplay(net, check=check).output(pts[0])
    assert calls
