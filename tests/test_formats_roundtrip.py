"""Hypothesis round trips: networks through ONNX, verify problems through VNN-LIB."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from strategies import atoms_over, formulas, networks

from nnir.formats import read_onnx, read_vnnlib, write_onnx, write_vnnlib
from nnir.ir.evaluate import evaluate_batch
from nnir.ir.formula import nnf
from nnir.queries.problem import VerifyProblem


@given(net=networks(max_depth=3, max_width=4, max_inputs=3))
def test_onnx_round_trip(tmp_path_factory, net):
    path = str(tmp_path_factory.mktemp("onnx") / "n.onnx")
    rep = write_onnx(net, path, dtype="float64")
    back = read_onnx(path)
    if rep.exact:
        assert back == net
    else:  # thirds are rounded to the nearest float64, and the export says so
        assert rep.notes and back.input == net.input
        X = np.random.default_rng(0).uniform(-3, 4, size=(8, net.input.size))
        a, b = evaluate_batch(net, X)[net.output], evaluate_batch(back, X)[back.output]
        assert np.allclose(a, b, rtol=1e-12, atol=1e-12)


@st.composite
def problems(draw):
    net = draw(networks(max_depth=2, max_width=3, max_inputs=3))
    where = ()
    if net.input.size > 1:  # one-variable bounds would become the box: use two variables
        pair = atoms_over(net, [net.input.name]).filter(lambda a: len(a.terms) == 2)
        where = tuple(draw(st.lists(pair, max_size=2)))
    return VerifyProblem(net, where, nnf(draw(formulas(net))), "q")


@given(problem=problems())
def test_vnnlib_round_trip(tmp_path_factory, problem):
    path = str(tmp_path_factory.mktemp("vnnlib") / "q.vnnlib")
    write_vnnlib(problem, path)
    assert read_vnnlib(path, problem.net) == [problem]
