"""The Python API: networks from arrays, queries attached in text, solve, lower, print."""
from fractions import Fraction

import numpy as np
import pytest
from helpers import EXAMPLES

import nnir


def _tiny():
    return nnir.network("tiny", [(np.array([[1., -1.], [-1., 1.]]), np.zeros(2), "relu"),
                                 (np.array([[1., 1.]]), np.array([-0.5]), "linear")], lo=0, hi=1)


def test_network_from_arrays_equals_parsed_network():
    parsed = nnir.load(str(EXAMPLES / "tiny.nnir")).network("tiny")
    built = _tiny()
    assert [lay.name for lay in built.layers] == ["h1", "y"]
    built = nnir.network("tiny", [(lay.weight.f64, lay.bias.f64, lay.act)
                                  for lay in parsed.layers], lo=0, hi=1, layer_names=["h", "y"])
    assert built == parsed


@pytest.mark.parametrize("backend", ["z3", "cvc5", "highs"])
def test_solve_program_built_in_python(backend):
    prog = nnir.program(_tiny(), queries="verify tiny as reach: y[0] >= 0.4\n"
                                         "verify tiny as cap: y[0] > 0.5")
    res = nnir.solve(prog, "reach", backend=backend)
    assert res.status == "sat" and res.replay["exact"]
    x = [Fraction(v) for v in res.witness["inputs"]]
    assert abs(x[0] - x[1]) >= Fraction(9, 10)
    assert nnir.solve(prog, "cap", backend=backend).status == "unsat"
    with pytest.raises(nnir.NnirError, match="name one with query="):
        nnir.solve(prog)


def test_lowering_entry_points():
    prog = nnir.program(_tiny(), queries="verify tiny: y[0] >= 0.4")
    text = nnir.to_smtlib(prog)
    assert "(set-logic QF_LRA)" in text and "|tiny.x[0]|" in text
    model = nnir.to_milp(prog)
    assert model.num_integer == 2  # two unstable ReLUs, one binary each
    assert "net tiny {" in nnir.print_program(prog)


def test_api_errors_are_nnir_errors():
    with pytest.raises(nnir.DslError):
        nnir.parse("net {")
    with pytest.raises(nnir.IrError, match="network 'nope' is not defined"):
        nnir.program(_tiny(), queries="verify nope: y[0] >= 0")
    with pytest.raises(nnir.IrError, match="shape mismatch"):
        nnir.network("bad", [(np.ones((2, 3)), np.zeros(2), "relu"),
                             (np.ones((1, 3)), np.zeros(1), "linear")], lo=0, hi=1)


def test_float_weights_are_taken_exactly():
    net = nnir.network("f", [(np.array([[0.1]]), np.array([0.0]), "linear")], lo=0, hi=1)
    assert net.layers[0].weight.exact[0, 0] == Fraction(0.1) != Fraction(1, 10)
    prog = nnir.program(net, queries="verify f: y[0] >= 0.1")  # 0.1 here is 1/10 exactly
    # Fraction(0.1) > 1/10, so y = Fraction(0.1) * x reaches 1/10 at x just below 1.
    res = nnir.solve(prog, backend="z3")
    assert res.status == "sat"
    assert Fraction(res.witness["inputs"][0]) * Fraction(0.1) >= Fraction(1, 10)
