"""LP bound tightening is sound (safe dual bounds, even from sloppy LPs), within symbolic bounds."""
from dataclasses import replace
from fractions import Fraction

import highspy
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import assert_facts_sound, atoms_over, float_network, networks

import nnir
from nnir.ir.evaluate import evaluate
from nnir.ir.printer import print_network
from nnir.passes.interval import IntervalBounds
from nnir.passes.lp import LpBounds, exact_dot, safe_lower_bound
from nnir.passes.manager import PassContext, PassManager, registered_passes
from nnir.passes.symbolic import SymbolicBounds

unit = st.fractions(min_value=0, max_value=1, max_denominator=1000)
SLOPPY = {"dual_feasibility_tolerance": 1e-3, "primal_feasibility_tolerance": 1e-3}


def _holds(atom, x) -> bool:
    v = sum(c * x[r.index] for r, c in atom.terms)
    return {"<=": v <= atom.rhs, "<": v < atom.rhs, ">=": v >= atom.rhs, ">": v > atom.rhs,
            "==": v == atom.rhs}[atom.rel]


def _points(net, fracs):
    lo, hi = net.input.lo.exact, net.input.hi.exact
    pts = [[a + (b - a) * t for a, b, t in zip(lo, hi, ts)] for ts in fracs]
    pts += [list(lo), list(hi)]
    return [x for x in pts if all(_holds(a, x) for a in net.input.constraints)]


def _check(net, points, lp=None):
    """IBP + symbolic, then LP: sound on the points, contained in the symbolic bounds."""
    base = PassManager([IntervalBounds(), SymbolicBounds()]).run(net, PassContext(check=True))
    out = PassManager([lp or LpBounds()]).run(base, PassContext(check=True))
    f, g = out.facts, base.facts
    for lay in net.layers:
        assert np.all(f.lo[lay.name] >= g.lo[lay.name])
        assert np.all(f.hi[lay.name] <= g.hi[lay.name])
    assert_facts_sound(net, f, points)  # bounds and stable marks, exactly
    return base, out


def _tiny_lp(cost):
    """min cost.x over x0 + x1 >= 1, x0 - x1 <= 0.5, 0 <= x <= 10 (optimum 1.25 for (1, 2))."""
    A = sp.csc_matrix(np.array([[1.0, 1.0], [1.0, -1.0]]))
    rl, ru = np.array([1.0, -np.inf]), np.array([np.inf, 0.5])
    cl, cu = np.zeros(2), np.full(2, 10.0)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = 2, 2
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = np.array(cost), cl, cu
    lp.row_lower_, lp.row_upper_ = rl, ru
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_ = A.indptr, A.indices
    lp.a_matrix_.value_ = A.data
    h.passModel(lp)
    h.run()
    return A, rl, ru, cl, cu, np.array(h.getSolution().row_dual)


def test_highs_row_dual_sign_convention():
    """For a minimisation HiGHS's row duals are our multipliers: y > 0 on a binding lower row."""
    A, rl, ru, cl, cu, y = _tiny_lp([1.0, 2.0])
    assert y[0] > 0 and y[1] < 0
    bound = safe_lower_bound(A, np.array([1.0, 2.0]), rl, ru, cl, cu, y)
    assert bound <= Fraction(5, 4) and float(bound) == pytest.approx(1.25, abs=1e-12)


@given(st.lists(st.floats(-5, 5), min_size=2, max_size=2),
       st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=2),
       st.lists(st.tuples(unit, unit), min_size=1, max_size=6))
def test_any_multipliers_give_a_lower_bound(c, y, samples):
    """The safe bound holds for arbitrary (even wrong-signed) multipliers, checked exactly."""
    A, rl, ru, cl, cu, _ = _tiny_lp([1.0, 2.0])
    bound = safe_lower_bound(A, np.array(c), rl, ru, cl, cu, np.array(y))
    for s in samples:
        x = [10 * t for t in s]
        if x[0] + x[1] >= 1 and x[0] - x[1] <= Fraction(1, 2):
            assert bound <= Fraction(c[0]) * x[0] + Fraction(c[1]) * x[1]


@given(st.lists(st.floats(-1e300, 1e300) | st.floats(-1e-300, 1e-300), min_size=1,
                max_size=20), st.data())
def test_exact_dot(a, data):
    b = data.draw(st.lists(st.floats(-1e5, 1e5) | st.floats(-1e-300, 1e-300),
                           min_size=len(a), max_size=len(a)))
    want = sum((Fraction(x) * Fraction(y) for x, y in zip(a, b)), Fraction(0))
    assert exact_dot(np.array(a), np.array(b)) == want


@given(networks(), st.data(), st.booleans())
def test_lp_sound_and_within_symbolic(net, data, unstable_only):
    fracs = [[data.draw(unit) for _ in range(net.input.size)] for _ in range(4)]
    _check(net, _points(net, fracs), LpBounds(unstable_only=unstable_only))


@given(st.integers(0, 2**31), st.integers(1, 4))
def test_lp_sound_with_float_weights(seed, depth):
    net, points = float_network(seed, depth)
    _check(net, points)


@given(st.integers(0, 2**31), st.integers(1, 3))
def test_lp_sound_with_sloppy_tolerances(seed, depth):
    """Duals from an LP solved to 1e-3 (or stopped early) still give sound, certified bounds."""
    net, points = float_network(seed, depth)
    _check(net, points, LpBounds(unstable_only=False, options=SLOPPY))
    _check(net, points, LpBounds(options={"simplex_iteration_limit": 1}))


@st.composite
def constrained(draw):
    """A network with `where` constraints on its input, built by printing and re-parsing."""
    net = draw(networks())
    atoms = tuple(draw(atoms_over(net, [net.input.name])) for _ in range(draw(st.integers(1, 3))))
    text = print_network(replace(net, input=replace(net.input, constraints=atoms)))
    parsed = nnir.parse(text).networks[0]
    assert parsed.input.constraints
    return parsed


@given(constrained(), st.data())
def test_lp_sound_with_input_constraints(net, data):
    fracs = [[data.draw(unit) for _ in range(net.input.size)] for _ in range(12)]
    _check(net, _points(net, fracs), LpBounds(unstable_only=data.draw(st.booleans())))


TIGHT = """
net t {
  input x[2] in [-1, 1]
  relu h[2] = [[-2, 1], [-2, -1]] x + [0, 0]
  linear y[1] = [[-2, 2]] h
}
"""


def test_lp_strictly_tighter_than_symbolic():
    """Symbolic bounds give y in [-6, 6]; the LP over the triangle relaxation gives [-5, 5]."""
    net = nnir.parse(TIGHT).networks[0]
    pts = [[Fraction(a, 4), Fraction(b, 4)] for a in range(-4, 5) for b in range(-4, 5)]
    base, out = _check(net, pts)
    assert base.facts.hi["y"][0] >= 6 - 1e-9 and base.facts.lo["y"][0] <= -6 + 1e-9
    assert out.facts.hi["y"][0] <= 5 + 1e-9 and out.facts.lo["y"][0] >= -5 - 1e-9
    assert out.facts.origin["y"] == "lp"


def test_input_constraints_tighten_and_prove_stability():
    """x0 + x1 <= 1 on [0, 1]^2: the LP sees the constraint (y <= 1 - 1.5 < 0: stably off)."""
    text = """
    net c {
      input x[2] in [0, 1]
      where x[0] + x[1] <= 1
      relu h[1] = [[1, 1]] x + [-1.5]
      linear y[1] = [[1]] h
    }
    """
    net = nnir.parse(text).networks[0]
    pts = [[Fraction(a, 4), Fraction(b, 4)] for a in range(5) for b in range(5)]
    base, out = _check(net, _points(net, pts))
    assert base.facts.stable["h"][0] == 0
    assert out.facts.stable["h"][0] == -1 and out.facts.hi["h"][0] <= -0.5 + 1e-12


def test_registered_but_not_default():
    assert isinstance(registered_passes()["lp"], LpBounds)


@example(0)
@given(st.integers(0, 2**31))
def test_lp_runs_without_prior_facts(seed):
    net, points = float_network(seed, 2)
    out = LpBounds().run(net, PassContext(check=True))
    for x in points:
        vals = evaluate(net, x, exact=True)
        for lay in net.layers:
            for i, v in enumerate(vals[lay.name + ".pre"]):
                lo, hi = out.facts.lo[lay.name][i], out.facts.hi[lay.name][i]
                assert Fraction(lo) <= v <= Fraction(hi)
