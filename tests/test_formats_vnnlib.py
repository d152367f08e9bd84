"""VNN-LIB properties: every ACAS Xu property parses, numbers stay exact, input disjunctions split
into regions, writing round-trips, and malformed files are reported at file:line:col."""
from fractions import Fraction

import numpy as np
import pytest
from helpers import EXAMPLES, SHARED

import nnir
from nnir.errors import InputFileError
from nnir.formats import read_onnx, read_vnnlib, write_vnnlib
from nnir.formats.vnnlib import vnnlib_text
from nnir.ir.formula import atoms
from nnir.ir.nodes import And, Atom, Or, Ref
from nnir.queries.problem import VerifyProblem

ACAS = SHARED / "acasxu"
needs_acas = pytest.mark.skipif(not (ACAS / "vnnlib").is_dir(),
                                reason="../shared/benchmarks/acasxu is not here")
REGIONS = {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 2, 7: 1, 8: 1, 9: 1, 10: 1}


def _net(n_in=5, n_out=5):
    rng = np.random.default_rng(0)
    return nnir.network("n", [(rng.normal(size=(4, n_in)), np.zeros(4), "relu"),
                              (rng.normal(size=(n_out, 4)), np.zeros(n_out), "linear")],
                        lo=0, hi=0)


@needs_acas
@pytest.mark.parametrize("k", range(1, 11))
def test_every_acas_property_parses(k):
    net = read_onnx(str(ACAS / "onnx/ACASXU_run2a_1_1_batch_2000.onnx"))
    problems = read_vnnlib(str(ACAS / f"vnnlib/prop_{k}.vnnlib"), net)
    assert len(problems) == REGIONS[k]
    for p in problems:
        assert all(a <= b for a, b in zip(p.net.input.lo.exact, p.net.input.hi.exact))
        assert {r.node for r in (ref for a in atoms(p.prop) for ref in a.refs())} == {net.output}
        assert p.net.layers == net.layers and not p.where
    if k == 1:  # exact decimals, as written
        p = problems[0]
        assert p.net.input.lo.exact[0] == Fraction("0.6")
        assert p.net.input.hi.exact[0] == Fraction("0.679857769")
        assert p.prop == Atom(((Ref(net.output, 0), Fraction(1)),), ">=",
                              Fraction("3.991125645861615"))
    if k == 6:
        assert [p.name for p in problems] == ["prop_6_1", "prop_6_2"]
        assert problems[0].net.input.lo.exact[1] == Fraction("0.11140846")
        assert problems[1].net.input.hi.exact[1] == Fraction("-0.11140846")


HEADER = "".join(f"(declare-const X_{i} Real)\n" for i in range(2)) + \
    "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
BOX = "(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (>= X_1 -1))\n(assert (<= X_1 0.5))\n"


def _read(tmp_path, text, net=None):
    path = tmp_path / "p.vnnlib"
    path.write_text(text)
    return read_vnnlib(str(path), net or _net(2, 2))


def test_terms_strict_and_general_constraints(tmp_path):
    box = BOX.replace("0.5", "(/ 1 2)")
    text = HEADER + box + "(assert (< (+ X_0 X_1) 1.25))\n(assert (> X_1 (- 0.5)))\n" + \
        "(assert (or (<= (* 2 Y_0) (- Y_1 3e-1)) (and (= Y_1 -4) (>= Y_0 X_0))))\n"
    (p,) = _read(tmp_path, text)
    assert list(p.net.input.lo.exact) == [0, Fraction(-1, 2)]
    assert list(p.net.input.hi.exact) == [1, Fraction(1, 2)]
    assert len(p.where) == 2  # the sum and the strict bound (the box is closed)
    y0, y1 = Ref("y", 0), Ref("y", 1)
    assert p.prop == Or((Atom(((y0, Fraction(2)), (y1, Fraction(-1))), "<=", Fraction(-3, 10)),
                         And((Atom(((y1, Fraction(1)),), "==", Fraction(-4)),
                              Atom(((y0, Fraction(1)), (Ref("x", 0), Fraction(-1))), ">=", 0)))))


def test_input_disjunctions_split_and_empty_regions_drop(tmp_path):
    text = HEADER + "(assert (or (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1))\n" + \
        "            (and (>= X_0 2) (<= X_0 3) (>= X_1 0) (<= X_1 1))\n" + \
        "            (and (>= X_0 5) (<= X_0 4) (>= X_1 0) (<= X_1 1))))\n(assert (>= Y_0 1))\n"
    problems = _read(tmp_path, text)
    assert [p.name for p in problems] == ["p_1", "p_2"]  # region 3 is empty
    assert [p.net.input.lo.exact[0] for p in problems] == [0, 2]


def test_write_then_read_round_trips(tmp_path):
    net = _net(3, 2)
    header = HEADER.replace("X_1 Real)\n", "X_1 Real)\n(declare-const X_2 Real)\n")
    text = header + BOX + "(assert (>= X_2 (/ 1 3)))\n(assert (<= X_2 2))\n" + \
        "(assert (<= (+ X_0 (* -3 X_2)) 0.1))\n" + \
        "(assert (or (and (<= Y_0 Y_1) (> Y_1 7)) (= Y_0 (/ -1 7))))\n"
    (base,) = read_vnnlib(str(_write(tmp_path, text)), net)
    assert base.net.input.lo.exact[2] == Fraction(1, 3)
    write_vnnlib(base, str(tmp_path / "again.vnnlib"))
    (back,) = read_vnnlib(str(tmp_path / "again.vnnlib"), net, name=base.name)
    assert back == base
    assert "(/ 1 3)" in vnnlib_text(base)


def _write(tmp_path, text):
    path = tmp_path / "w.vnnlib"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,message,line", [
    (HEADER + BOX + "(assert (<= Y_0 1)", "unexpected end of file", 9),
    (HEADER + "(declare-const Y_7 Real)\n", "'Y_7' is out of range", 5),
    (HEADER + BOX + "(assert (<= Z_0 1))", "'Z_0' is not declared", 9),
    (HEADER + BOX + "(assert (<= (* Y_0 Y_1) 1))", "product of two variables", 9),
    (HEADER + BOX + "(assert (<= Y_0 1 2))", "unexpected '2'", 9),
    (HEADER + BOX + "(assert (<= (/ Y_0 0) 1))", "division by zero", 9),
    ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n",
     "declares 1 inputs", 1),
    (HEADER + BOX + "(assert (<= Y_0 1 ; a comment\n  $))", "unexpected character '$'", 10),
    (HEADER + "(declare-const X_0 Int)\n", "declared Int", 5),
    (HEADER + BOX.replace("(assert (>= X_1 -1))\n", ""), "X_1 has no lower bound", None),
    # hostile input, refused before parsing at the offending token (see nnir/limits.py)
    (HEADER + BOX + "(assert " + "(not " * 5000 + "(<= Y_0 1)" + ")" * 5000 + ")",
     "brackets nested more than 100 deep", 9),
    (HEADER + BOX + "(assert (or" + " (<= Y_0 1)" * 5000 + "))", "an 'or' of more than", 9),
    (HEADER + BOX + "(assert (or" + " true" * 5000 + "))", "an 'or' of more than", 9),
    (HEADER + BOX + "(assert (<= Y_0 1e999999999))", "exponent beyond", 9),
    (HEADER + BOX + "(assert (<= Y_0 -1.8e308))", "largest float64", 9),
    (HEADER + BOX + "(assert (<= Y_0 " + "7" * 5000 + "))", "more than 4000 digits", 9),
    (HEADER + BOX + "\x00", "NUL byte", 9),
])
def test_malformed_properties(tmp_path, text, message, line):
    with pytest.raises(InputFileError) as e:
        _read(tmp_path, text)
    msg = e.value.render()
    assert message in msg
    if line is not None:
        assert f"p.vnnlib:{line}:" in msg and "^" in msg  # the place, with a caret


def test_limits_leave_names_and_comments_alone(tmp_path):
    """Digits inside names (X_10) and numbers in comments are not numbers to check."""
    text = "; 1e999999999 " + "(" * 500 + "\n" + HEADER + BOX + "(assert (<= Y_0 1e2))\n"
    (p,) = _read(tmp_path, text)
    assert p.prop == Atom(((Ref("y", 0), Fraction(1)),), "<=", Fraction(100))


def test_vnnlib_2_through_the_optional_package(tmp_path):
    pytest.importorskip("vnnlib")
    text = """(vnnlib-version <2.0>)
(declare-network n
  (declare-input X float32 [1, 2])
  (declare-output Y float32 [1, 2]))
(assert (and (>= X[0,0] 0.0) (<= X[0,0] 1.0) (>= X[0,1] -1.0) (<= X[0,1] 0.5)))
(assert (or (<= (+ Y[0,1] (* -2.0 Y[0,0])) 0.1) (>= Y[0,0] Y[0,1])))
"""
    (p,) = _read(tmp_path, text)
    assert list(p.net.input.hi.exact) == [1, Fraction(1, 2)]
    y0, y1 = Ref("y", 0), Ref("y", 1)
    assert p.prop.args[0] == Atom(((y1, Fraction(1)), (y0, Fraction(-2))), "<=",
                                  Fraction(1, 10))


def test_example_property_file(tmp_path):
    net = read_onnx(str(EXAMPLES / "data/mlp_3x8x8x2.onnx"))
    problems = read_vnnlib(str(EXAMPLES / "data/mlp_two_boxes.vnnlib"), net)
    assert len(problems) == 2
    assert VerifyProblem(problems[0].net, (), problems[0].prop, "x").prop == problems[1].prop
