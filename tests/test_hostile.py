"""Hostile input never crashes nnir: every case from the fuzzing audit is an input error (exit 1)
at file:line:col, with the source line and a caret, quickly and in bounded memory."""
from __future__ import annotations

import io
import re
import time
import zipfile

import numpy as np
import pytest

from nnir.cli import main
from nnir.limits import MAX_LITERAL_DIGITS, MAX_NESTING, MAX_OR_WIDTH

NET = """net n {
  input x[2] in [0, 1]
  relu h[2] = [[1, 0], [0, 1]] x
  linear y[2] = [[1, 0], [0, 1]] h
}
"""
PROP_HEAD = """(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (>= X_0 0)) (assert (<= X_0 1)) (assert (>= X_1 0)) (assert (<= X_1 1))
"""


def _npy_header(shape, descr: str = "<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue()


def box(interval: str) -> str:
    return NET.replace("in [0, 1]", f"in {interval}")


def _npz(**members: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, content in members.items():
            zf.writestr(key + ".npy", content)
    return buf.getvalue()


def one_layer(weight: str) -> str:
    return f"net n {{ input x[1] in [0, 1] linear y[1] = {weight} x }}\n"


# name: (the .nnir source, other files {name: str | bytes | a function making them},
#        message, "FILE:LINE:COL" or None)
CASES = {
    "200 nested parentheses": (
        NET + "verify n: " + "(" * 200 + "y[0] >= 0" + ")" * 200 + "\n", {},
        f"brackets nested more than {MAX_NESTING} deep", "t.nnir:6:111"),
    "5000 nots": (NET + "verify n: " + "not " * 5000 + "y[0] >= 0\n", {},
                  f"nested more than {MAX_NESTING} deep", "t.nnir:6:411"),
    "nested lists": (one_layer("[" * 5000 + "1" + "]" * 5000), {},
                     "brackets nested more than", "t.nnir:1:144"),
    "a list three deep": (one_layer("[[[1]]]"), {}, "a vector or a matrix", "t.nnir:1:44"),
    "50000-way or": (NET + "verify n: " + " or ".join(["y[0] >= 0"] * 50000) + "\n", {},
                     f"an 'or' of more than {MAX_OR_WIDTH} alternatives", "t.nnir:6:"),
    "1.8e308": (box("[0, 1.8e308]"), {}, "largest float64", "t.nnir:2:21"),
    "1e999999999 in a box": (box("[0, 1e999999999]"), {},
                             "exponent beyond", "t.nnir:2:21"),
    "seed=1e999999": ("data s = sphere_planes(n=10, seed=1e999999)\n", {},
                      "exponent beyond", "t.nnir:1:35"),
    "5000-digit negative number": (box("[-" + "9" * 5000 + ", 1]"), {},
                                   f"more than {MAX_LITERAL_DIGITS} digits", "t.nnir:2:19"),
    "5000-digit empty interval": (box("[1, 1/" + "7" * 999 + "]"), {},
                                  "empty interval", "t.nnir:2:17"),
    "overflowing hex float": (box("[0, 0x1p99999]"), {},
                              "exponent beyond", "t.nnir:2:21"),
    "hex float above float64": (box("[0, 0x1p1024]"), {},
                                "largest float64", "t.nnir:2:21"),
    "input x[1000000000]": ("net n { input x[1000000000] in [0,1] linear y[1] = unknown x }\n",
                            {}, "input size 1000000000 is too large", "t.nnir:1:17"),
    "10^31 neurons": ("net n { input x[1] in [0,1] linear y[" + "1" + "0" * 31 +
                      "] = unknown x }\n", {}, "is too large", "t.nnir:1:38"),
    "10^12 weights": ("net n { input x[1000000] in [0,1] linear y[1000000] = unknown x }\n",
                      {}, "more than 100,000,000 weights", "t.nnir:1:42"),
    "sphere_planes(n=1000000000)": ("data s = sphere_planes(n=1000000000)\n", {},
                                    "at most 10,000,000", "t.nnir:1:6"),
    "sphere_planes(decimals=1e300)": ("data s = sphere_planes(n=10, decimals=1e300)\n", {},
                                      "decimals must be", "t.nnir:1:6"),
    "sphere_planes(min_gap=0.49)": ("data s = sphere_planes(n=10, planes=40, min_gap=0.49)\n",
                                    {}, "min_gap", "t.nnir:1:6"),
    "\\x in a path": (one_layer('load "\\x"'), {}, "bad escape", "t.nnir:1:49"),
    "\\x00 in a path": (one_layer('load "a\\x00b.npy"'), {}, "NUL", "t.nnir:1:49"),
    "inf CSV label": ('data c = csv "c.csv"\n', {"c.csv": "1,2,inf\n3,4,0\n"},
                      "line 1, column 3 of the CSV file: 'inf' is not a number", "t.nnir:1:6"),
    "non-zip .npz": (one_layer('load "w.npz"["W"]'), {"w.npz": b"hello, not a zip"},
                     "is not an .npy or .npz file", "t.nnir:1:44"),
    "npy header claiming a huge shape": (one_layer('load "w.npy"'),
                                         {"w.npy": _npy_header((10**6, 10**6))},
                                         "more than the file holds", "t.nnir:1:44"),
    "npz member claiming a huge shape": (one_layer('load "w.npz"["W"]'),
                                         {"w.npz": _npz(W=_npy_header((10**6, 10**6)))},
                                         "more than the file holds", "t.nnir:1:44"),
    "npz member of 300 MiB of zeros": (
        one_layer('load "w.npz"["W"]'),
        {"w.npz": lambda: _npz(W=_npy_header((300 * 2**17,)) + bytes(300 * 2**20))},
        "unpack to more than 256 MiB", "t.nnir:1:44"),
    "sum(x) of a 10^6 input, twice": (
        "net n { input x[1000000] in [0, 1] linear y[1] = unknown x }\n"
        "verify n: sum(x) >= 0 and sum(x) <= 1\n", {}, "expand to more than 1,000,000 terms",
        "t.nnir:2:27"),
    "CSV of 1.1 million numbers": ('data c = csv "c.csv"\n', {"c.csv": "0,1\n" * 550001},
                                   "more than 1,000,000 numbers", "t.nnir:1:6"),
    "npy of objects": (one_layer('load "w.npy"'), {"w.npy": _npy_header((1,), "|O") + b"x" * 8},
                       "Python objects", "t.nnir:1:44"),
    "/dev/zero as weights": (one_layer('load "/dev/zero"'), {}, "larger than 256 MiB",
                             "t.nnir:1:44"),
    "/dev/zero as a CSV file": ('data c = csv "/dev/zero"\n', {}, "larger than 256 MiB",
                                "t.nnir:1:6"),
    "a folder as weights": (one_layer('load "."'), {}, "is a folder", "t.nnir:1:44"),
    "a folder as a CSV file": ('data c = csv "."\n', {}, "is a folder", "t.nnir:1:6"),
    "non-ASCII path": (one_layer('load "wäights.npy"'), {}, "'wäights.npy' not found",
                       "t.nnir:1:44"),
    "Latin-1 source": ("", {"t.nnir": (NET + "# café\n").encode("latin-1")},
                       "not UTF-8 text: byte 0xe9", "t.nnir:6:6"),
    "NUL in the source": (NET + "verify n: y[0] >= 0 \x00\n", {}, "NUL byte", "t.nnir:6:21"),
    "5000-deep VNN-LIB formula": (
        NET + 'verify n from vnnlib "p.vnnlib"\n',
        {"p.vnnlib": PROP_HEAD + "(assert " + "(not " * 5000 + "(<= Y_0 1)" + ")" * 5000 + ")"},
        "brackets nested more than", "p.vnnlib:6:"),
    "1e999999999 in VNN-LIB": (NET + 'verify n from vnnlib "p.vnnlib"\n',
                               {"p.vnnlib": PROP_HEAD + "(assert (<= Y_0 1e999999999))\n"},
                               "exponent beyond", "p.vnnlib:6:17"),
    "50000-way VNN-LIB or": (
        NET + 'verify n from vnnlib "p.vnnlib"\n',
        {"p.vnnlib": PROP_HEAD + "(assert (or" + " (<= Y_0 1)" * 50000 + "))\n"},
        f"an 'or' of more than {MAX_OR_WIDTH}", "p.vnnlib:6:"),
    "/dev/zero as VNN-LIB": (NET + 'verify n from vnnlib "/dev/zero"\n', {},
                             "larger than 256 MiB", "t.nnir:6:22"),
}


def _check(tmp_path, capsys, source, files):
    for name, content in files.items():
        content = content() if callable(content) else content  # made only when needed
        if isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        else:
            (tmp_path / name).write_text(content, encoding="utf-8")
    if "t.nnir" not in files:
        (tmp_path / "t.nnir").write_text(source, encoding="utf-8")
    start = time.monotonic()
    code = main(["check", str(tmp_path / "t.nnir")])
    elapsed = time.monotonic() - start
    captured = capsys.readouterr()
    return code, captured.err, elapsed


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_a_located_input_error(tmp_path, capsys, name):
    source, files, message, where = CASES[name]
    code, err, elapsed = _check(tmp_path, capsys, source, files)
    assert code == 1, err
    assert "internal error" not in err and "Traceback" not in err
    assert message in err, err
    if where:
        assert re.search(re.escape(where) + r"\d*: error: ", err), err
        lines = err.splitlines()
        assert len(lines) >= 3 and re.match(r"\s+\d+ \| ", lines[1]) and "^" in lines[2], err
    assert max(len(line) for line in err.splitlines()) < 400, "a long line must be clipped"
    assert elapsed < 20


@pytest.mark.parametrize("source,files", [
    ("\ufeff" + NET + "verify n: y[0] >= 0\n", {}),  # a byte-order mark before the text
    (NET + 'data c = csv "c.csv"\n', {"c.csv": "\ufeff1,2,1\n3,4,0\n"}),
    # y[0] inside the parentheses is one bracket more
    (NET + "verify n: " + "(" * (MAX_NESTING - 1) + "y[0] >= 0" + ")" * (MAX_NESTING - 1)
     + "\n", {}),
    (NET + "verify n: " + "not " * (MAX_NESTING - 1) + "y[0] >= 0\n", {}),
    (NET + "verify n: " + " or ".join(["y[0] >= 0"] * MAX_OR_WIDTH) + "\n", {}),
    (box("[0, 1e-400]"), {}),  # tiny numbers are exact, not too large
    (box("[0, 1.7976931348623157e308]"), {}),
])
def test_input_at_the_limits_is_read(tmp_path, capsys, source, files):
    code, err, elapsed = _check(tmp_path, capsys, source, files)
    assert code == 0, err
    assert elapsed < 20


def test_bom_csv_keeps_its_first_row(tmp_path, capsys):
    from nnir.data import load_dataset
    from nnir.frontend import load

    (tmp_path / "c.csv").write_text("\ufeff1,2,1\n3,4,0\n", encoding="utf-8")
    (tmp_path / "t.nnir").write_text('data c = csv "c.csv"\n')
    prog = load(str(tmp_path / "t.nnir"))
    assert list(load_dataset(prog.datasets[0], prog.base_dir).y) == [1, 0]


def test_non_ascii_path_is_read(tmp_path):
    from nnir.frontend import load

    np.save(tmp_path / "wäights.npy", np.array([[2.0]]))
    (tmp_path / "t.nnir").write_text(one_layer('load "wäights.npy"'), encoding="utf-8")
    assert load(str(tmp_path / "t.nnir")).networks[0].layers[0].weight.f64[0, 0] == 2.0


def test_hex_floats_are_exact_beyond_53_bits():
    from fractions import Fraction

    from nnir.ir.const import parse_number

    assert parse_number("0x1.00000000000001p0") == 1 + Fraction(1, 2**56)
    assert parse_number("-0x1p-1074") == -Fraction(1, 2**1074)
