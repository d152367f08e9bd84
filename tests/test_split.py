"""The input-splitting backend: its box bounds are sound (exact evaluation inside them), its
verdicts agree with an exact SMT solver, every witness replays, and close calls that only exact
reasoning decides are never closed by float bounds."""
import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import atoms_over, float_network, networks, verify_programs

import nnir
from nnir.backends.split.backsub import upper_bounds
from nnir.backends.split.engine import Options, Search
from nnir.backends.split.forward import forward_bounds, prepare_network
from nnir.backends.split.props import closed_and_critical, compile_problem
from nnir.ir.evaluate import atom_value, evaluate
from nnir.ir.formula import nnf
from nnir.ir.nodes import And
from nnir.passes.manager import default_pipeline
from nnir.queries.problem import VerifyProblem
from nnir.queries.run import run_query

# Bounding and hand-over both exercised: no hand-over by ReLU count, only past depth 8.
EAGER = {"handoff_unstable": 0, "max_depth": 8, "attack_starts": 16, "attack_steps": 5}


def _boxes(net, fracs):
    """Float sub-boxes of the network's box from pairs of fractions in [0, 1] per dimension."""
    lo0 = np.array([float(v) for v in net.input.lo.exact])
    hi0 = np.array([float(v) for v in net.input.hi.exact])
    f = np.sort(np.asarray(fracs, dtype=float).reshape(-1, net.input.size, 2), axis=2)
    return lo0 + (hi0 - lo0) * f[:, :, 0], lo0 + (hi0 - lo0) * f[:, :, 1]


def _points(lo, hi, rng, n=6):
    """Exact points of the box [lo, hi]: corners and random ones."""
    pts = [lo, hi] + [lo + (hi - lo) * rng.random(len(lo)) for _ in range(n)]
    return [[min(max(Fraction(float(v)), Fraction(float(a))), Fraction(float(b)))
             for v, a, b in zip(p, lo, hi)] for p in pts]


def _check_sound(net, atoms, lo, hi, rng):
    """Exact pre-activations and atom values at points of each box lie within the bounds."""
    problem = VerifyProblem(net, (), nnf(And(tuple(atoms))))
    comp = compile_problem(problem)
    prep = prepare_network(net)
    fb = forward_bounds(prep, lo, hi)
    U, _ = upper_bounds(prep, fb, comp.rows)
    for b in range(len(lo)):
        for x in _points(lo[b], hi[b], rng):
            vals = evaluate(net, x, exact=True)
            for lay in net.layers:
                for i, v in enumerate(vals[lay.name + ".pre"]):
                    assert Fraction(fb.zlo[lay.name][b, i]) <= v <= Fraction(fb.zhi[lay.name][b, i])
            for r, (k, s) in enumerate(zip(comp.row_atom, comp.row_sign)):
                assert int(s) * atom_value(comp.atoms[k], vals) <= Fraction(U[b, r])


@given(st.data())
def test_box_bounds_contain_exact_values(data):
    net = data.draw(networks())
    nodes = [net.input.name] + [lay.name for lay in net.layers]
    atoms = [data.draw(atoms_over(net, nodes)) for _ in range(2)]
    fracs = data.draw(st.lists(st.floats(0, 1), min_size=2 * net.input.size,
                               max_size=2 * net.input.size))
    lo, hi = _boxes(net, [fracs])
    _check_sound(net, atoms, lo, hi, np.random.default_rng(0))


@pytest.mark.parametrize("seed", range(12))
def test_box_bounds_sound_with_full_mantissa_weights(seed):
    """Weights of magnitude 1e-3 .. 1e3 with full mantissas: rounding must be accounted for."""
    from nnir.ir.nodes import Atom, Ref

    net, _ = float_network(seed, depth=2 + seed % 3)
    rng = np.random.default_rng(seed)
    d = net.input.size
    atoms = [Atom(((Ref(net.output, 0), Fraction(1)),), ">=", Fraction(0))]
    lo, hi = _boxes(net, rng.random((5, d, 2)))
    # point boxes and boxes 1e-12 wide: there the rounding error is all of the bound's width
    p = lo + (hi - lo) * rng.random(lo.shape)
    lo = np.vstack([lo, p, p, p * (1 - 1e-12) - 1e-300])
    hi = np.vstack([hi, p, p * (1 + 1e-12) + 1e-300, p * (1 + 1e-12) + 1e-300])
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    _check_sound(net, atoms, lo, hi, rng)


def _split(problem, **opts):
    return Search(problem, Options(**opts), None, "z3").run()


@settings(max_examples=30)
@given(st.data())
def test_split_agrees_with_z3(data):
    net = data.draw(networks())
    prog = data.draw(verify_programs(net))
    q = prog.queries[0]
    want = run_query(prog, q, "z3", timeout=60)
    got = run_query(prog, q, "split", timeout=60, **EAGER)
    assert want.status in ("sat", "unsat")
    assert got.status == want.status, got.render()
    if got.status == "sat":
        assert got.replay["exact"]


def _problem(text: str) -> VerifyProblem:
    prog = nnir.parse(text)
    q = prog.queries[0]
    return VerifyProblem.from_query(q, default_pipeline().run(prog.network(q.net)))


THIRD = "net t { input x[1] in [0, 1]\n linear y[1] = [[1/3]] x }\n"
SUM = "net s { input x[2] in [0, 1]\n linear y[1] = [[0.1, 0.2]] x }\n"
TINY = ("net tiny { input x[2] in [0, 1]\n relu h[2] = [[1, -1], [-1, 1]] x\n"
        " linear y[1] = [[1, 1]] h + [-0.5] }\n")


def test_float_rounding_never_closes_a_box_that_holds_exactly():
    """1/3 as a float is below 1/3: a naive float bound of y - 1/3 would be < 0 and close the
    box, calling `y >= 1/3` unsat; it is sat (x = 1) and the sound bound must stay >= 0."""
    problem = _problem(THIRD + "verify t: y[0] >= 1/3")
    comp = compile_problem(problem)
    prep = prepare_network(problem.net)
    lo, hi = np.array([[0.0]]), np.array([[1.0]])
    U, _ = upper_bounds(prep, forward_bounds(prep, lo, hi), comp.rows)
    assert U[0, 0] >= 0
    assert not closed_and_critical(comp, U)[0][0]
    assert _split(problem, **EAGER).status == "sat"


@pytest.mark.parametrize("prop, want", [
    ("y[0] >= 1/3 + 0.000000000001", "unsat"), ("y[0] >= 1/3 - 0.000000000001", "sat"),
    ("y[0] > 1/3", "unsat"), ("y[0] == 1/3", "sat")])
def test_close_calls_at_1e_12(prop, want):
    assert _split(_problem(THIRD + f"verify t: {prop}"), **EAGER).status == want


def test_float_evaluation_that_lies_is_not_a_witness():
    """0.1 + 0.2 > 0.3 in float64, not exactly: `y > 0.3` is unsat, decided exactly at the
    corner that no bound can close."""
    ans = _split(_problem(SUM + "verify s: y[0] > 0.3"), **EAGER)
    assert ans.status == "unsat", ans.message
    assert ans.info.get("failed_replays", 0) >= 1 or ans.info.get("handed_off", 0) >= 1


@pytest.mark.parametrize("prop, want", [("y[0] < -0.5", "unsat"), ("y[0] >= 0.5", "sat"),
                                        ("y[0] > 0.5", "unsat"), ("y[0] == 0.25", "sat")])
def test_ties_on_relu_kinks_are_settled_exactly(prop, want):
    """The minimum -0.5 is attained along the whole diagonal, where both ReLUs stay unstable:
    the bounds never close those boxes, the exact hand-over does."""
    ans = _split(_problem(TINY + f"verify tiny: {prop}"), **EAGER)
    assert ans.status == want, ans.message


def test_unsat_says_how_every_box_was_closed():
    res = run_query(nnir.parse(TINY + "verify tiny as q: y[0] > 0.5"),
                    nnir.parse(TINY + "verify tiny as q: y[0] > 0.5").queries[0], "split")
    assert res.status == "unsat"
    assert res.certified.startswith("exact (split")
    assert "closed" in res.message


def test_sharded_networks_are_taken_and_unknown_weights_declined():
    from dataclasses import replace

    from nnir.backends.split.split_backend import SplitBackend
    from nnir.ir.nodes import Unknown
    from nnir.passes.shard import shard_network

    prop = nnf(nnir.parse(TINY + "verify tiny: y[0] > 0.5").queries[0].prop)
    net = nnir.parse(TINY + "verify tiny: y[0] > 0.5").network("tiny")
    sharded = shard_network(net, 2, ("megatron",), name="tiny")  # slice/add/concat nodes
    want = SplitBackend().solve_verify(VerifyProblem(net, (), prop)).status
    assert want == "unsat"
    assert SplitBackend().solve_verify(VerifyProblem(sharded, (), prop)).status == want
    lay = net.layers[0]
    unknown = replace(net, layers=(replace(lay, weight=Unknown(lay.weight.shape)),
                                   *net.layers[1:]))
    ans = SplitBackend().solve_verify(VerifyProblem(unknown, (), prop))
    assert ans.status == "unknown" and "unsupported" in ans.message


def test_timeout_is_reported():
    """Past its deadline the search stops with `timeout` (never a guess), saying what is left."""
    problem = _problem(TINY + "verify tiny: y[0] > 0.5")
    opts = Options(attack_starts=0, handoff_unstable=0)
    ans = Search(problem, opts, time.monotonic() - 1.0, "z3").run()
    assert ans.status == "timeout" and "sub-boxes left" in ans.message


def test_auto_verifies_few_inputs_by_splitting_first():
    prog = nnir.parse(TINY + "verify tiny as q: y[0] > 0.5\nverify tiny as r: y[0] >= 0.4")
    res = run_query(prog, prog.query("q"), "auto")
    assert res.status == "unsat" and res.backend == "split"
    assert any(n.startswith("auto picked 'split'") for n in res.notes)
    sat = run_query(prog, prog.query("r"), "auto")
    assert sat.status == "sat" and sat.replay["exact"] and sat.backend == "split"
    old = run_query(prog, prog.query("q"), "auto", auto_split=False)
    assert old.status == "unsat" and old.backend != "split"


def test_auto_verifies_many_inputs_by_relu_splitting_first():
    """Above AUTO_SPLIT_MAX_INPUTS inputs, auto goes to the ReLU-split engine (exact answers),
    not input splitting; without `auto_split` it keeps the MILP plan."""
    rng = np.random.default_rng(1)
    net = nnir.network("wide", [(rng.normal(size=(3, 12)), rng.normal(size=3), "relu"),
                                (rng.normal(size=(1, 3)), np.zeros(1), "linear")], lo=0, hi=1)
    prog = nnir.program(net, queries="verify wide as q: y[0] >= 1000")
    res = run_query(prog, prog.queries[0], "auto")
    assert res.status == "unsat" and res.backend == "bab"
    assert any(n.startswith("auto picked 'bab'") for n in res.notes)
    old = run_query(prog, prog.queries[0], "auto", auto_split=False)
    assert old.status == "unsat" and old.backend not in ("split", "bab")
