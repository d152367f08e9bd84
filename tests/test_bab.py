"""The ReLU-split branch-and-bound backend: its sub-problem bounds are sound (exact values of
points that meet the splits lie inside them), its verdicts agree with z3, every witness replays,
and close calls that only exact reasoning decides are never closed by float bounds."""
import gzip
import shutil
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import atoms_over, networks, verify_programs

import nnir
from nnir.backends.bab.bab_backend import BabBackend
from nnir.backends.bab.bounds import ReluIndex, bound_subproblems
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
from nnir.queries.run import run_query

SMALL = {"attack_starts": 0, "sub_steps": 0}  # no attack: the bounds and leaves must decide


def _bab(problem, **opts):
    return Search(problem, Options(**opts), None, "z3").run()


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_subproblem_bounds_contain_exact_values(data):
    """At exact points of the box, the split pattern they realise is a sub-problem whose
    bounds must contain their pre-activations and bound their atoms (also for every coarser
    pattern: some splits left free)."""
    check_split_bounds(data.draw(networks()), data, points=4)


def check_split_bounds(net, data, points: int) -> None:
    """Draw two atoms over `net`'s values; at `points` random exact points of the box, the
    sub-problems fixing all, about half and none of the splits their pattern realises must
    have bounds containing the pre-activations and bounding the atoms."""
    nodes = [net.input.name] + [lay.name for lay in net.layers]
    atoms = [data.draw(atoms_over(net, nodes)) for _ in range(2)]
    problem = VerifyProblem(net, (), nnf(And(tuple(atoms))))
    comp = compile_problem(problem)
    prep = prepare_network(net)
    idx = ReluIndex.of(prep)
    lo0, hi0 = input_box(net)
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    for _ in range(points):
        x = [min(max(Fraction(float(v)), a), b) for v, a, b in
             zip(lo0 + (hi0 - lo0) * rng.random(len(lo0)), net.input.lo.exact,
                 net.input.hi.exact)]
        vals = evaluate(net, x, exact=True)
        pattern = np.concatenate([[1 if v >= 0 else -1 for v in vals[n + ".pre"]]
                                  for n in idx.names] or [np.zeros(0)]).astype(np.int8)
        keep = rng.random((3, idx.size)) < np.array([[1.0], [0.5], [0.0]])
        fixed = np.where(keep, pattern, 0).astype(np.int8)
        U, empty, fb = bound_subproblems(prep, idx, comp.rows, lo0[None].repeat(3, 0),
                                         hi0[None].repeat(3, 0), fixed)
        assert not empty.any()
        for b in range(3):
            for lay in net.layers:
                for i, v in enumerate(vals[lay.name + ".pre"]):
                    assert Fraction(fb.zlo[lay.name][b, i]) <= v <= Fraction(fb.zhi[lay.name][b, i])
            for r, (k, s) in enumerate(zip(comp.row_atom, comp.row_sign)):
                assert int(s) * atom_value(comp.atoms[k], vals) <= Fraction(U[b, r])


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_bab_agrees_with_z3(data):
    """Any NNF formula (And/Or of linear atoms over the network's values) is handled."""
    net = data.draw(networks())
    prog = data.draw(verify_programs(net))
    q = prog.queries[0]
    want = run_query(prog, q, "z3", timeout=60)
    problem = VerifyProblem.from_query(q, default_pipeline().run(prog.network(q.net)))
    got = _bab(problem, lp_leaves=data.draw(st.booleans()), crown=data.draw(st.booleans()),
               fsb=data.draw(st.sampled_from([0, 3])), refine=data.draw(st.booleans()),
               **SMALL)
    assert want.status in ("sat", "unsat")
    assert got.status == want.status, got.message
    if got.status == "sat":
        assert got.inputs is not None


def _problem(text: str) -> VerifyProblem:
    prog = nnir.parse(text)
    q = prog.queries[0]
    return VerifyProblem.from_query(q, default_pipeline().run(prog.network(q.net)))


THIRD = "net t { input x[1] in [0, 1]\n linear y[1] = [[1/3]] x }\n"
TINY = ("net tiny { input x[2] in [0, 1]\n relu h[2] = [[1, -1], [-1, 1]] x\n"
        " linear y[1] = [[1, 1]] h + [-0.5] }\n")
# 8.2 * 15 = 123 exactly, but float(8.2) * 15 rounds to 123 - 1 ulp
ULP = ("net u { input x[1] in [15, 15]\n relu h[1] = [[8.2]] x\n linear y[1] = [[1]] h }\n")


@pytest.mark.parametrize("text, prop, want", [
    (THIRD, "y[0] >= 1/3 + 0.000000000001", "unsat"),
    (THIRD, "y[0] >= 1/3 - 0.000000000001", "sat"),
    (THIRD, "y[0] > 1/3", "unsat"), (THIRD, "y[0] == 1/3", "sat"),
    (TINY, "y[0] < -0.5", "unsat"), (TINY, "y[0] >= 0.5", "sat"), (TINY, "y[0] > 0.5", "unsat"),
    (TINY, "y[0] == 0.25", "sat")])
def test_close_calls(text, prop, want):
    name = text.split()[1]
    ans = _bab(_problem(text + f"verify {name}: {prop}"), **SMALL)
    assert ans.status == want, ans.message


def test_ulp_close_call_and_the_rounding_allowance(monkeypatch):
    """y = 8.2 * 15 = 123 exactly at the only input, so `y >= 123` is sat; the float product is
    one ulp below 123, so a bound without the rounding allowance would close the problem.
    Removing the allowance (u = 0, no underflow terms, no outward `nextafter`) must make the
    answer wrong: the mutation check."""
    problem = _problem(ULP + "verify u: y[0] >= 123")
    assert _bab(problem, **SMALL).status == "sat"
    from nnir.backends.split import backsub

    monkeypatch.setattr(forward, "_U", 0.0)
    monkeypatch.setattr(forward, "TINY", 0.0)
    monkeypatch.setattr(backsub, "TINY", 0.0)
    monkeypatch.setattr(np, "nextafter", lambda a, b: np.asarray(a, dtype=np.float64) + 0.0)
    assert _bab(problem, **SMALL).status == "unsat"  # wrong: the mutation is caught


def test_timeout_and_queue_cap_are_reported():
    problem = _problem(TINY + "verify tiny: y[0] > 0.5")
    ans = Search(problem, Options(**SMALL), time.monotonic() - 1.0, "z3").run()
    assert ans.status == "timeout" and "sub-problems open" in ans.message
    ans = _bab(problem, max_queue=0, root_iters=0, **SMALL)  # (no root bound before the loop)
    assert ans.status == "unknown" and "max_queue" in ans.message


def test_unsat_says_how_it_was_closed():
    ans = BabBackend(input_split=False).solve_verify(_problem(TINY + "verify tiny: y[0] > 0.5"))
    assert ans.status == "unsat" and ans.info["certified"].startswith("exact (")
    assert "input splitting" not in ans.message


def test_small_inputs_split_the_box():
    """On at most 8 inputs the backend splits the input box (the split engine), unless told
    not to; both answers are exact."""
    problem = _problem(TINY + "verify tiny: y[0] > 0.5")
    ans = BabBackend().solve_verify(problem)
    assert ans.status == "unsat" and ans.message.startswith("bab (input splitting, 2 inputs)")
    assert ans.info["certified"].startswith("exact (")


BENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "vnncomp2022" / "mnist_fc"


def _gunzip(src: Path, tmp_path: Path) -> str:
    dst = tmp_path / src.name[:-3]
    with gzip.open(src, "rb") as f, open(dst, "wb") as g:
        shutil.copyfileobj(f, g)
    return str(dst)


@pytest.mark.parametrize("prop, want", [("prop_1_0.03", "sat"), ("prop_4_0.03", "unsat")])
def test_mnist_fc_256x2(tmp_path, prop, want):
    """Two VNN-COMP 2022 mnist_fc instances (784 inputs), official verdicts: a replayed witness,
    and an unsat closed by ReLU splits and safe LP bounds (a few seconds each here)."""
    from nnir.formats.vnncomp import read_network
    from nnir.formats.vnnlib import read_vnnlib

    onnx = BENCH / "onnx" / "mnist-net_256x2.onnx.gz"
    vnn = BENCH / "vnnlib" / f"{prop}.vnnlib.gz"
    if not onnx.exists() or not vnn.exists():
        pytest.skip("mnist_fc benchmark absent")
    net = read_network(_gunzip(onnx, tmp_path))
    (problem,) = read_vnnlib(_gunzip(vnn, tmp_path), net)
    problem = VerifyProblem(default_pipeline().run(problem.net), problem.where, problem.prop,
                            problem.name)
    ans = BabBackend().solve_verify(problem, timeout=120)
    assert ans.status == want, ans.message
