"""Interval bound propagation is sound: exact pre-activations of sampled inputs lie inside."""
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st
from strategies import assert_facts_sound, float_network, networks

import nnir
from nnir.passes.interval import IntervalBounds, round_down, round_up
from nnir.passes.manager import PassContext, PassManager


def _samples(net, draw_fracs):
    lo, hi = net.input.lo.exact, net.input.hi.exact
    return [a + (b - a) * t for a, b, t in zip(lo, hi, draw_fracs)]


def _check_sound(net, points):
    out = PassManager([IntervalBounds()]).run(net, PassContext(check=True))
    assert_facts_sound(net, out.facts, points)
    return out


unit = st.fractions(min_value=0, max_value=1, max_denominator=1000)


@given(networks(), st.data())
def test_ibp_contains_sampled_values(net, data):
    pts = [_samples(net, [data.draw(unit) for _ in range(net.input.size)]) for _ in range(5)]
    corners = [list(net.input.lo.exact), list(net.input.hi.exact)]
    _check_sound(net, pts + corners)


@given(st.integers(0, 2**31), st.integers(1, 3))
def test_ibp_sound_with_float_weights(seed, depth):
    """Weights with full float64 mantissas and nasty magnitudes still give sound bounds."""
    net, points = float_network(seed, depth)
    _check_sound(net, points)


def test_outward_rounding_of_box():
    q = Fraction(1, 10)
    assert Fraction(round_down(q)) <= q <= Fraction(round_up(q))
    assert round_down(q) < round_up(q)
    assert round_down(Fraction(1, 2)) == round_up(Fraction(1, 2)) == 0.5


def test_ibp_marks_stable_relus():
    prog = nnir.parse("""net n { input x[2] in [0, 1]
        relu h[3] = [[1, 1], [-1, -1], [1, -1]] x + [0.5, -0.5, 0] }""")
    out = IntervalBounds().run(prog.networks[0], PassContext())
    assert list(out.facts.stable["h"]) == [1, -1, 0]
    assert out.facts.origin["h"] == "ibp"


def test_exact_zero_bound_is_stable_despite_rounding_allowance():
    prog = nnir.parse("""net n { input x[2] in [-1, 1]
        relu h[2] = [[1, 0], [0.1, 0.2]] x + [1, 0.3] }""")
    out = IntervalBounds().run(prog.networks[0], PassContext())
    assert out.facts.lo["h"][0] == 0.0 and out.facts.lo["h"][1] >= 0.0
    assert list(out.facts.stable["h"]) == [1, 1]
