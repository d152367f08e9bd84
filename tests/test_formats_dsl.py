"""The `.nnir` forms for other tools' files: `net n = onnx|nnet "..."`, `verify n from vnnlib`."""
from fractions import Fraction

import numpy as np
import onnx_models as om
import pytest
from helpers import EXAMPLES

import nnir
from nnir.errors import DslError, InputFileError, NnirError
from nnir.ir.printer import print_program
from nnir.queries.run import prepare

PROP = """(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const X_2 Real)
(declare-const X_3 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(declare-const Y_2 Real)
(assert (or (and (>= X_0 0) (<= X_0 0.5) (>= X_1 0) (<= X_1 0.5))
            (and (>= X_0 -1) (<= X_0 -0.5) (>= X_1 0.25) (<= X_1 1))))
(assert (>= X_2 -0.1))
(assert (<= X_2 0.1))
(assert (>= X_3 0))
(assert (<= X_3 0))
(assert (>= Y_0 Y_1))
"""


@pytest.fixture
def files(tmp_path):
    om.save(om.matlab_style(np.random.default_rng(0)), tmp_path / "m.onnx")  # no box recorded
    (tmp_path / "p.vnnlib").write_text(PROP)
    return tmp_path


def _load(files, text):
    path = files / "f.nnir"
    path.write_text(text)
    return nnir.load(str(path))


def test_onnx_network_takes_the_box_of_its_properties(files):
    prog = _load(files, 'net m = onnx "m.onnx"\nverify m from vnnlib "p.vnnlib"\n'
                 'verify m as again from vnnlib "p.vnnlib"\n')
    net = prog.network("m")
    assert list(net.input.lo.exact) == [-1, 0, Fraction(-1, 10), 0]  # the hull of the regions
    assert list(net.input.hi.exact) == [Fraction(1, 2), 1, Fraction(1, 10), 0]
    assert [q.name for q in prog.queries] == ["verify1_1", "verify1_2", "again_1", "again_2"]
    q = prog.queries[1]
    assert len(q.where) == 8  # the region's box, as where-bounds
    box = prepare(prog, q).net.input  # the passes see the region, not the hull
    assert list(box.lo.exact) == [-1, Fraction(1, 4), Fraction(-1, 10), 0]
    again = nnir.parse(print_program(prog))
    assert again == prog


def test_box_override_and_nnet(files):
    prog = _load(files, 'net m = onnx "m.onnx" input in [-2, 2]\n'
                 f'net t = nnet "{EXAMPLES / "data/tiny.nnet"}" input in [[1, 2], [0, 1]]\n'
                 "verify m as q: out[0] >= 100\nverify t as r: y[0] >= 0\n")
    assert list(prog.network("m").input.lo.exact) == [-2] * 4
    assert list(prog.network("t").input.hi.exact) == [2, 1]
    assert nnir.parse(print_program(prog)) == prog


def _error(files, text, cls=NnirError):
    with pytest.raises(cls) as e:
        _load(files, text)
    return e.value.render()


def test_unboxed_network_in_another_query_is_an_error(files):
    msg = _error(files, 'net m = onnx "m.onnx"\nverify m as q: out[0] >= 1\n', DslError)
    assert "has no input box" in msg and "f.nnir:1:5" in msg and "^" in msg
    assert "input in [lo, hi]" in msg


def test_property_outside_an_explicit_box_is_an_error(files):
    msg = _error(files, 'net m = onnx "m.onnx" input in [0, 1]\nverify m from vnnlib "p.vnnlib"\n')
    assert "leaves network 'm''s domain" in msg and "f.nnir:2:" in msg


def test_file_errors_point_at_the_path(files):
    msg = _error(files, 'net m = onnx "nope.onnx"\n', InputFileError)
    assert "f.nnir:1:14" in msg and "not found" in msg and "relative to" in msg
    (files / "bad.onnx").write_bytes(b"\x08\x07garbage")
    msg = _error(files, 'net m = onnx "bad.onnx"\n', InputFileError)
    assert "f.nnir:1:14" in msg and "not a readable ONNX model" in msg
    msg = _error(files, 'net m = onnx "m.onnx" input in [[0, 1], [0, 1]]\n', DslError)
    assert "gives 2 intervals" in msg
    (files / "bad.vnnlib").write_text(PROP.replace("(assert (>= Y_0 Y_1))", "(assert (>= Y_0"))
    msg = _error(files, 'net m = onnx "m.onnx"\nverify m from vnnlib "bad.vnnlib"\n',
                 InputFileError)
    assert "bad.vnnlib:" in msg and "end of file" in msg  # the place in the property file
    msg = _error(files, 'verify m from vnnlib "p.vnnlib"\n', DslError)
    assert "network 'm' is not defined" in msg


def test_example_file_round_trips_and_answers():
    prog = nnir.load(str(EXAMPLES / "formats.nnir"))
    assert nnir.parse(print_program(prog), base_dir=str(EXAMPLES)) == prog
    res = {q.name: nnir.solve(prog, q.name, backend="z3").status for q in prog.queries
           if q.net == "tiny_nnet" or q.name.startswith("two_boxes")}
    assert res == {"two_boxes_1": "unsat", "two_boxes_2": "unsat", "reaches_4": "sat",
                   "exceeds_4": "unsat"}
