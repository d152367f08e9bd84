"""alpha/beta-CROWN bounds of the `bab` backend (`backends/bab/crown.py`): the sound bound holds
at exact points of every sub-problem for any alpha in [0, 1] and beta >= 0 (random or optimised),
the root's tightened intermediate bounds hold, and removing the rounding allowance makes a
verdict wrong (the mutation check)."""
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import atoms_over, float_network, networks

import nnir
from nnir.backends.bab import crown as crown_mod
from nnir.backends.bab.bounds import ReluIndex
from nnir.backends.bab.crown import Crown
from nnir.backends.bab.engine import Options, Search
from nnir.backends.split import forward
from nnir.backends.split.forward import prepare_network
from nnir.backends.split.props import compile_problem
from nnir.ir.evaluate import atom_value, evaluate
from nnir.ir.formula import nnf
from nnir.ir.nodes import And
from nnir.passes.interval import input_box
from nnir.passes.manager import default_pipeline
from nnir.queries.problem import VerifyProblem

SMALL = {"attack_starts": 0, "sub_steps": 0}


def _points(net, rng, n):
    lo0, hi0 = input_box(net)
    for _ in range(n):
        yield [min(max(Fraction(float(v)), a), b) for v, a, b in
               zip(lo0 + (hi0 - lo0) * rng.random(len(lo0)), net.input.lo.exact,
                   net.input.hi.exact)]


def _check(net, atoms, data, rng, points):
    problem = VerifyProblem(net, (), nnf(And(tuple(atoms))))
    comp = compile_problem(problem)
    prep = prepare_network(net)
    idx = ReluIndex.of(prep)
    lo0, hi0 = input_box(net)
    cr = Crown(prep, lo0, hi0, root_iters=data.draw(st.integers(0, 8)))
    # where the root leaves nothing unstable, tighten anyway so `refine` has rows to redo
    if not cr.inter and data.draw(st.booleans()):
        cr.tighten(2)
    R = len(comp.rows.const)
    for x in points:
        vals = evaluate(net, x, exact=True)
        for lay in net.layers:  # the root's (tightened) bounds
            for i, v in enumerate(vals[lay.name + ".pre"]):
                assert Fraction(cr.zlo[lay.name][i]) <= v <= Fraction(cr.zhi[lay.name][i])
        pattern = np.concatenate([[1 if v >= 0 else -1 for v in vals[n + ".pre"]]
                                  for n in idx.names] or [np.zeros(0)]).astype(np.int8)
        keep = rng.random((3, idx.size)) < np.array([[1.0], [0.5], [0.0]])
        fixed = np.where(keep, pattern, 0).astype(np.int8)
        if data.draw(st.booleans()):  # intermediate bounds recomputed under the splits
            sub, empty = cr.refine(fixed, idx.offset)
            assert not empty.any()
            for b in range(3):
                for lay in net.layers:
                    for i, v in enumerate(vals[lay.name + ".pre"]):
                        assert (Fraction(sub.zlo[lay.name][b, i]) <= v
                                <= Fraction(sub.zhi[lay.name][b, i]))
        else:
            sub = cr.sub(fixed, idx.offset)
        width = {lay.name: lay.size for lay in net.layers}
        alpha = {n: rng.random((3, R, width[n])) for n in cr.cols}
        scale = 10.0 ** data.draw(st.integers(-3, 3))
        beta = {n: rng.exponential(scale, (3, R, width[n])) for n in cr.cols}
        if data.draw(st.booleans()):
            (alpha, beta), _ = cr.optimise(comp.rows, sub, alpha, beta, 5)
        U, _ = cr.backward(comp.rows, sub, alpha, beta, sound=True)
        for b in range(3):
            for r, (k, s) in enumerate(zip(comp.row_atom, comp.row_sign)):
                assert int(s) * atom_value(comp.atoms[k], vals) <= Fraction(U[b, r])


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_crown_bounds_contain_exact_values(data):
    """At exact points, the split pattern they realise (and coarser ones) is a sub-problem
    whose sound alpha/beta-CROWN bound holds, for random and for optimised parameters."""
    net = data.draw(networks())
    nodes = [net.input.name] + [lay.name for lay in net.layers]
    atoms = [data.draw(atoms_over(net, nodes)) for _ in range(2)]
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    _check(net, atoms, data, rng, list(_points(net, rng, 3)))


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_crown_bounds_on_full_mantissa_weights(data):
    """The same on networks whose weights have full float64 mantissas and magnitudes up to 1e3,
    where rounding matters, at random points and the box's corners."""
    net, points = float_network(data.draw(st.integers(0, 10 ** 6)), data.draw(st.integers(2, 4)))
    net = default_pipeline().run(net)
    atoms = [data.draw(atoms_over(net, [net.output])) for _ in range(2)]
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    _check(net, atoms, data, rng, points)


# 8.2 * 15 = 123 exactly, but float(8.2) * 15 rounds to 123 - 1 ulp; the unstable neuron g
# makes the root a real sub-problem (alpha and beta apply) without changing y on the box.
ULP = ("net u { input x[1] in [15, 15]\n relu h[1] = [[8.2]] x\n linear y[1] = [[1]] h }\n"
       "verify u: y[0] >= 123")


def _problem(text: str) -> VerifyProblem:
    prog = nnir.parse(text)
    q = prog.queries[0]
    return VerifyProblem.from_query(q, default_pipeline().run(prog.network(q.net)))


def test_removing_the_rounding_allowance_makes_crown_wrong(monkeypatch):
    """y = 123 exactly at the only input, so `y >= 123` is sat. The float bound is one ulp
    below 123: with the allowance (u, the underflow terms, outward `nextafter`) removed from
    the CROWN evaluation, the root bound closes the problem and the answer is wrong."""
    problem = _problem(ULP)
    ok = Search(problem, Options(lp_leaves=False, **SMALL), None, "z3").run()
    assert ok.status == "sat", ok.message
    monkeypatch.setattr(forward, "_U", 0.0)
    monkeypatch.setattr(crown_mod, "TINY", 0.0)
    monkeypatch.setattr(np, "nextafter", lambda a, b: np.asarray(a, dtype=np.float64) + 0.0)
    bad = Search(problem, Options(lp_leaves=False, **SMALL), None, "z3")
    ans = bad.run()
    assert ans.status == "unsat" and bad.stats["closed_by_bounds"] >= 1  # caught


def test_progress_callback_and_line():
    """`Search.on_progress` gets dicts; `Options.progress` alone writes a line to stderr."""
    text = ("net tiny { input x[2] in [0, 1]\n relu h[2] = [[1, -1], [-1, 1]] x\n"
            " linear y[1] = [[1, 1]] h + [-0.5] }\nverify tiny: y[0] > 0.5")
    s = Search(_problem(text), Options(**SMALL), None, "z3")
    seen = []
    s.on_progress = seen.append
    s.last_report = -1e9  # report at the first chance
    assert s.run().status == "unsat"
    assert seen and {"open", "closed", "bounded", "depth", "best", "elapsed"} <= set(seen[0])
