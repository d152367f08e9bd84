"""Symbolic (back-substitution) bounds are sound, never looser than IBP, and often tighter."""
from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from strategies import assert_facts_sound, float_network, networks

import nnir
from nnir.ir.const import Const
from nnir.ir.nodes import Dense, Input, Network
from nnir.passes.interval import IntervalBounds
from nnir.passes.manager import PassContext, PassManager
from nnir.passes.symbolic import SymbolicBounds, relu_relaxation

unit = st.fractions(min_value=0, max_value=1, max_denominator=1000)


def _corners_and(net, fracs):
    lo, hi = net.input.lo.exact, net.input.hi.exact
    pts = [[a + (b - a) * t for a, b, t in zip(lo, hi, ts)] for ts in fracs]
    return pts + [list(lo), list(hi)]


def _check(net, points):
    """Run IBP then symbolic (and symbolic alone); check soundness and containment in IBP."""
    ibp = PassManager([IntervalBounds()]).run(net, PassContext(check=True)).facts
    both = PassManager([IntervalBounds(), SymbolicBounds()]).run(net, PassContext(check=True))
    raw = PassManager([SymbolicBounds()]).run(net, PassContext(check=True)).facts
    facts = both.facts
    for lay in net.layers:
        assert np.all(facts.lo[lay.name] >= ibp.lo[lay.name])
        assert np.all(facts.hi[lay.name] <= ibp.hi[lay.name])
    for f in (facts, raw):
        assert_facts_sound(net, f, points)
    return both


@given(networks(), st.data())
def test_symbolic_contains_sampled_values(net, data):
    fracs = [[data.draw(unit) for _ in range(net.input.size)] for _ in range(4)]
    _check(net, _corners_and(net, fracs))


@st.composite
def dag_networks(draw):
    """Random networks where each layer reads any earlier node (input included)."""
    n_in = draw(st.integers(1, 3))
    inp = Input("x", n_in, Const.exact_of([-1] * n_in), Const.exact_of([2] * n_in))
    sizes, layers = {"x": n_in}, []
    small = st.fractions(min_value=-3, max_value=3, max_denominator=4)
    for k in range(draw(st.integers(1, 5))):
        src = draw(st.sampled_from(list(sizes)))
        size = draw(st.integers(1, 4))
        W = [[draw(small) for _ in range(sizes[src])] for _ in range(size)]
        b = [draw(small) for _ in range(size)]
        act = draw(st.sampled_from(["relu", "relu", "linear"]))
        layers.append(Dense(f"h{k}", size, src, Const.exact_of(W), Const.exact_of(b), act))
        sizes[f"h{k}"] = size
    return Network("d", inp, tuple(layers), layers[-1].name)


@given(dag_networks(), st.data())
def test_symbolic_sound_on_dags(net, data):
    fracs = [[data.draw(unit) for _ in range(net.input.size)] for _ in range(4)]
    _check(net, _corners_and(net, fracs))


@given(st.integers(0, 2**31), st.integers(1, 4))
def test_symbolic_sound_with_float_weights(seed, depth):
    """Weights with full float64 mantissas and nasty magnitudes still give sound bounds."""
    net, points = float_network(seed, depth)
    _check(net, points)


@given(st.lists(st.tuples(st.floats(1e-300, 1e6), st.floats(1e-300, 1e6)), min_size=1,
                max_size=4))
def test_relaxation_lines_are_valid_exactly(ends):
    """The float upper line is above ReLU at both ends of [l, u] in exact arithmetic."""
    lo, hi = np.array([-n for n, _ in ends]), np.array([p for _, p in ends])
    a, d, alpha = relu_relaxation(lo, hi)
    for i in range(len(ends)):
        al, ad, l_, u_ = (Fraction(float(v)) for v in (a[i], d[i], lo[i], hi[i]))
        assert al * l_ + ad >= 0 and al * u_ + ad >= u_
        assert alpha[i] in (0.0, 1.0) and 0 <= a[i] <= 1


def test_symbolic_tighter_than_ibp_on_abs():
    """y = relu(x) + relu(-x) = |x| on [-1, 1]: IBP gives [0, 2], the triangle gives [0, 1]."""
    net = nnir.network("a", [([[1], [-1]], [0, 0], "relu"), ([[1, 1]], [0], "linear")],
                       lo=-1, hi=1)
    out = _check(net, [[Fraction(t, 4)] for t in range(-4, 5)])
    assert out.facts.hi["y"][0] < 1 + 1e-12 and out.facts.lo["y"][0] > -1e-12
    assert out.facts.origin["y"] == "symbolic"


def test_linear_cancellation_through_skip_connection():
    """h = relu(x), s = h + x (reads h), y = s - 2x (reads h via s, and x directly)."""
    inp = Input("x", 1, Const.exact_of([1]), Const.exact_of([2]))
    layers = (
        Dense("h", 2, "x", Const.exact_of([[1], [1]]), Const.exact_of([0, 0]), "relu"),
        Dense("s", 1, "h", Const.exact_of([[1, -1]]), Const.exact_of([0]), "linear"),
        Dense("t", 1, "x", Const.exact_of([[3]]), Const.exact_of([1]), "linear"),
        Dense("y", 1, "s", Const.exact_of([[5]]), Const.exact_of([0]), "linear"),
    )
    net = Network("dag", inp, layers, "y")
    out = _check(net, [[Fraction(1)], [Fraction(3, 2)], [Fraction(2)]])
    ibp = IntervalBounds().run(net, PassContext()).facts
    assert ibp.hi["y"][0] >= 5  # IBP: s in [-1, 1]
    assert abs(out.facts.lo["y"][0]) < 1e-12 and abs(out.facts.hi["y"][0]) < 1e-12


def test_symbolic_proves_stability_ibp_cannot():
    """g = relu(|x| - 1.5) is stably inactive: IBP sees [-1.5, 0.5], symbolic [-1.5, -0.5]."""
    net = nnir.network("s", [([[1], [-1]], [0, 0], "relu"),
                             ([[1, 1]], [Fraction(-3, 2)], "relu"),
                             ([[1]], [0], "linear")], lo=-1, hi=1)
    ibp = IntervalBounds().run(net, PassContext()).facts
    out = _check(net, [[Fraction(t, 4)] for t in range(-4, 5)])
    assert ibp.stable["h2"][0] == 0
    assert out.facts.stable["h2"][0] == -1 and out.facts.origin["h2"] == "symbolic"
