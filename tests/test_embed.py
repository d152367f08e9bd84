"""`nnir.embed`: a network inside the user's own HiGHS model, z3 solver, PySMT formula or plain
MILP data.

What is checked, on random small networks (dense chains, their tensor-parallel graph forms, and
conv/add/gather nets):
- with the inputs fixed in the user's model, every neuron's embedded pre- and post-activation
  (addressed by (layer, index)) equals nnir's exact evaluation: z3 and PySMT exactly, HiGHS and
  the MILP data within HiGHS's feasibility tolerance (1e-9 per row, so a few 1e-9 times the
  values' scale after a few layers: `HIGHS_TOL` below);
- maximising an output over the box in the user's model agrees with `bound ... method exact`;
- user-supplied input variables are used, not duplicated, and cut to the box;
- the example script runs.
"""
from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import z3
from helpers import EXAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import networks
from test_conv_analyses import conv_networks

import nnir
from nnir.backends.milp.highs import build_highs, new_highs
from nnir.errors import UnsupportedQuery
from nnir.ir.evaluate import evaluate

HIGHS_TOL = 1e-6  # relative to max(1, |value|): HiGHS rows hold to 1e-9, errors add up a little
any_network = st.one_of(networks(), networks(graph=True), conv_networks())


def _point(draw, net) -> list[Fraction]:
    """A random exact point of the box (ends included)."""
    return [a + (b - a) * Fraction(draw(st.integers(0, 8)), 8)
            for a, b in zip(net.input.lo.exact, net.input.hi.exact)]


def _pairs(net, emb, x):
    """(embedded pre, embedded post, exact pre, exact post) of every neuron at input x."""
    vals = evaluate(net, x, exact=True)
    for lay in net.layers:
        pre_key = lay.name + ".pre" if lay.kind in ("dense", "add", "conv") else lay.name
        for j in range(lay.size):
            p, q = emb.neuron(lay.name, j)
            yield p, q, vals[pre_key][j], vals[lay.name][j]


def _near(got: float, want: Fraction) -> bool:
    return abs(got - float(want)) <= HIGHS_TOL * max(1.0, abs(float(want)))


# ----------------------------------------------------------------------------- values
@settings(max_examples=25)
@given(net=any_network, data=st.data(), relu=st.sampled_from(["ite", "or", "hull"]),
       bounds=st.sampled_from(["none", "ibp", "symbolic", "lp"]))
def test_z3_embedding_is_exact(net, data, relu, bounds):
    x = _point(data.draw, net)
    s = z3.Solver()
    xs = [z3.Real(f"user_{i}") for i in range(net.input.size)]
    emb = nnir.embed(net, s, xs, relu=relu, bounds=bounds)
    assert emb.inputs == xs and emb.exact
    s.add(*[v == z3.RealVal(str(q)) for v, q in zip(xs, x)])
    assert s.check() == z3.sat
    m = s.model()
    for p, q, wp, wq in _pairs(net, emb, x):
        assert _z3_value(m.eval(p, model_completion=True)) == wp
        assert _z3_value(m.eval(q, model_completion=True)) == wq


@settings(max_examples=25)
@given(net=any_network, data=st.data(), bounds=st.sampled_from(["ibp", "symbolic", "lp"]))
def test_highs_embedding_matches_exact_values_within_tolerance(net, data, bounds):
    x = _point(data.draw, net)
    h = new_highs()
    n = net.input.size
    h.addVars(n, np.full(n, -100.0), np.full(n, 100.0))  # the user's own columns
    fx = np.array([float(v) for v in x])
    h.changeColsBounds(n, np.arange(n, dtype=np.int32), fx, fx)
    emb = nnir.embed(net, h, inputs=list(range(n)), bounds=bounds)
    assert emb.inputs == list(range(n)) and not emb.exact
    assert h.getNumCol() == n + len(emb.model.vars) - n  # input columns not duplicated
    h.run()
    assert h.getModelStatus().name == "kOptimal"
    v = np.array(h.getSolution().col_value)
    for p, q, wp, wq in _pairs(net, emb, [Fraction(f) for f in fx]):
        assert _near(v[p], wp) and _near(v[q], wq)
    for (layer, j), b in emb.binaries.items():  # each binary belongs to an unstable ReLU
        lo, hi = emb.bounds[layer]
        assert lo[j] < 0 < hi[j]
        assert h.getColIntegrality(b)[1].name == "kInteger"


@settings(max_examples=8)
@given(net=st.one_of(networks(), conv_networks()), data=st.data(),
       relu=st.sampled_from(["ite", "or", "hull"]))
def test_pysmt_embedding_is_exact(net, data, relu):
    from pysmt.environment import Environment
    from pysmt.logics import QF_LRA

    x = _point(data.draw, net)
    env = Environment()
    mgr = env.formula_manager
    emb = nnir.embed(net, "pysmt", relu=relu, env=env)
    fixed = mgr.And([mgr.Equals(v, mgr.Real(q)) for v, q in zip(emb.inputs, x)])
    with env.factory.Solver(name="z3", logic=QF_LRA) as s:
        s.add_assertion(mgr.And(emb.formula, fixed))
        assert s.solve()
        for p, q, wp, wq in _pairs(net, emb, x):
            assert s.get_value(p).constant_value() == wp
            assert s.get_value(q).constant_value() == wq


@settings(max_examples=15)
@given(net=any_network, data=st.data())
def test_milp_data_with_a_name_map(net, data):
    emb = nnir.embed(net, "milp")
    mat = emb.matrix()
    assert mat.A.shape == (len(emb.model.rows), len(emb.model.vars))
    names = mat.col_index
    for i, c in enumerate(emb.inputs):
        assert names[f"n_x_{i}"] == c
    assert {j for (_, _), j in emb.binaries.items()} == set(np.flatnonzero(mat.integrality))
    # solve the plain data with the inputs fixed: the neurons' columns carry the exact values
    x = _point(data.draw, net)
    fx = [float(v) for v in x]
    for c, f in zip(emb.inputs, fx):
        emb.model.vars[c].lo = emb.model.vars[c].hi = f
    h = build_highs(emb.model)
    h.run()
    v = np.array(h.getSolution().col_value)
    for p, q, wp, wq in _pairs(net, emb, [Fraction(f) for f in fx]):
        assert _near(v[p], wp) and _near(v[q], wq)


# ----------------------------------------------------------------------------- optimisation
def _exact_max(net, index: int) -> Fraction:
    prog = nnir.program(net, queries=f"bound {net.name}.{net.output}[{index}] method exact")
    res = nnir.solve(prog, backend="z3")
    assert res.bounds["exact"], res.message
    return Fraction(res.bounds["max_exact"])


@settings(max_examples=12)
@given(net=st.one_of(networks(), networks(graph=True)))
def test_maximising_an_output_agrees_with_exact_bound(net):
    want = _exact_max(net, 0)
    # HiGHS: the user maximises the embedded output in their own model
    import highspy

    h = new_highs()
    emb = nnir.embed(net, h)
    h.changeColCost(emb.outputs[0], 1.0)
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    h.run()
    got = h.getInfo().objective_function_value
    assert _near(got, want), (got, float(want))
    # ... and its arg-max replays exactly to (nearly) the optimum
    x = np.array(h.getSolution().col_value)[emb.inputs]
    assert _near(float(emb.replay(np.clip(x, *_box(net)))[0]), want)
    # z3 Optimize: the same optimum, exactly
    opt = z3.Optimize()
    emb = nnir.embed(net, opt)
    handle = opt.maximize(emb.outputs[0])
    assert opt.check() == z3.sat
    assert _z3_value(opt.upper(handle)) == want
    # the triangle relaxation over-approximates it
    h = new_highs()
    emb = nnir.embed(net, h, relu="triangle")
    assert not emb.binaries and any("relaxed" in n for n in emb.notes)
    h.changeColCost(emb.outputs[0], 1.0)
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    h.run()
    assert h.getInfo().objective_function_value >= float(want) - 1e-7


def _z3_value(v) -> Fraction:
    """A z3 numeral as a Fraction (z3 may simplify a real optimum to an integer numeral)."""
    return Fraction(v.as_long()) if z3.is_int_value(v) else v.as_fraction()


def _box(net):
    return ([float(v) for v in net.input.lo.exact], [float(v) for v in net.input.hi.exact])


# ----------------------------------------------------------------------------- the user's model
def _tiny():
    return nnir.network("tiny", [(np.array([[1., -1.], [-1., 1.]]), np.zeros(2), "relu"),
                                 (np.array([[1., 1.]]), np.array([-0.5]), "linear")],
                        lo=0, hi=1)


def test_user_columns_are_reused_and_cut_to_the_box():
    net = _tiny()
    h = new_highs()
    h.addVars(3, np.array([-5.0, 0.25, 7.0]), np.array([5.0, 0.5, 8.0]))  # col 2: not an input
    emb = nnir.embed(net, h, inputs=[1, 0])
    assert emb.inputs == [1, 0]
    _, _, _, lo, hi, _ = h.getCols(2, np.array([0, 1], dtype=np.int32))
    assert list(lo) == [0.0, 0.25] and list(hi) == [1.0, 0.5]  # intersected with [0, 1]
    assert set(emb.neurons) == {"h1", "y"} and emb.neuron("y", 0)[0] == emb.outputs[0]
    assert any("box" in n for n in emb.notes)
    with pytest.raises(ValueError, match="2 inputs"):
        nnir.embed(net, new_highs(), inputs=[0])
    with pytest.raises(ValueError, match="column indices"):
        nnir.embed(net, new_highs(), inputs=[0, 1])  # an empty model has no column 0


def test_box_option_tightens_the_bounds_and_prefix_names_copies():
    net = _tiny()
    wide = nnir.embed(net, "milp")
    narrow = nnir.embed(net, "milp", box=([0, 0], [Fraction(1, 2), Fraction(1, 4)]))
    assert np.all(narrow.bounds["h1"][1] <= wide.bounds["h1"][1])
    assert narrow.net.input.hi.exact[1] == Fraction(1, 4)
    s = z3.Solver()
    a, b = (nnir.embed(net, s, prefix=p) for p in ("a", "b"))
    assert not any(u.eq(v) for u, v in zip(a.inputs, b.inputs))


def test_options_are_checked():
    net = _tiny()
    with pytest.raises(UnsupportedQuery, match="bound facts"):
        nnir.embed(net, "milp", bounds="none")
    with pytest.raises(ValueError, match="relu encoding"):
        nnir.embed(net, "milp", relu="ite")
    with pytest.raises(ValueError, match="relu encoding"):
        nnir.embed(net, "z3", relu="bigm")
    with pytest.raises(ValueError, match="bounds"):
        nnir.embed(net, "z3", bounds="exact")
    with pytest.raises(ValueError, match="cannot embed"):
        nnir.embed(net, object())


def test_without_bounds_the_smt_embedding_holds_outside_the_box():
    net = _tiny()
    s = z3.Solver()
    emb = nnir.embed(net, s, bounds="none")
    s.add(emb.inputs[0] == 3, emb.inputs[1] == -2)  # far outside [0, 1]^2
    assert s.check() == z3.sat
    assert _z3_value(s.model().eval(emb.outputs[0])) == evaluate(net, [3, -2], exact=True)[
        "y"][0]


# ----------------------------------------------------------------------------- the example
def test_embed_mnist_example_runs():
    script = os.path.join(EXAMPLES, "embed_mnist.py")
    out = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(EXAMPLES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "confirmed by exact replay" in out.stdout or "skipped" in out.stdout, out.stdout
