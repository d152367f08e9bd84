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
