"""Bad input gets one clear, pointed message and a non-zero exit, never a traceback."""
import subprocess
import sys

import numpy as np
import pytest

import nnir
from nnir.errors import DslError, InputFileError, IrError

NET = "net a {\n  input x[2] in [0, 1]\n  relu h[2] = [[1, 2], [3, 4]] x\n}\n"

# (source, error class, message fragment, line, column)
CASES = [
    ("net a {\n  input x[2] in [0, 1]\n  relu h[2] = [[1, 2], [3, 4]] x +\n}\n",
     DslError, "unexpected }", 4, 1),
    (NET.replace(" x\n", " x $\n"), DslError, "unexpected character '$'", 3, 34),
    ("net a {\n  input x[2] in [0, 1]\n", DslError, "unexpected end of file", 2, 23),
    (NET + "  verify a y[0] >= 1\n", DslError, "unexpected name 'y'", 5, 12),
    (NET.replace("[[1, 2], [3, 4]] x", "[[1, 2], [3, 4]] q"), IrError,
     "layer 'q' is not defined", 3, 8),
    (NET.replace("[[1, 2], [3, 4]]", "[[1, 2, 3], [3, 4, 5]]"), IrError,
     "so its weight must be 2x2, got 2x3", 3, 8),
    (NET.replace("[[1, 2], [3, 4]] x", "[[1, 2], [3, 4]] x + [1, 2, 3]"), IrError,
     "its bias must be 2, got 3", 3, 8),
    (NET.replace("[[1, 2], [3, 4]]", "[[1, 2], [3]]"), DslError,
     "rows of equal length", 3, 15),
    (NET.replace("in [0, 1]", "in [1, 0]"), DslError, "empty interval", 2, 17),
    (NET.replace("in [0, 1]", "in [[0, 1], [0, 1], [0, 1]]"), DslError,
     "gives 3 intervals but input 'x' has 2", 2, 17),
    (NET.replace("in [0, 1]", "in [0, 1]\n  where z[0] <= 1"), IrError,
     "'z' is not defined here", 3, 9),
    (NET + "verify a: h[5] >= 1\n", IrError, "index 5 is out of range for 'h' of size 2", 5, 11),
    (NET + "verify b: h[0] >= 1\n", IrError, "network 'b' is not defined", 5, 8),
    (NET + "verify a where h[0] <= 1: h[0] >= 1\n", IrError, "'h' is not defined here", 5, 16),
    (NET + NET, IrError, "'a' is already defined as a network", 5, 5),
    (NET.replace("relu h[2]", "relu x[2]"), IrError, "name 'x' is defined twice", 3, 8),
    (NET + "train a on nothing\n", IrError, "dataset 'nothing' is not defined", 5, 7),
    (NET + "bound a.zz[0]\n", IrError, "layer 'zz' is not defined", 5, 7),
    (NET + "bound a.h[9]\n", IrError, "index 9 is out of range", 5, 7),
    (NET.replace("[[1, 2], [3, 4]] x", "unknown x") + "verify a: h[0] >= 1\n", IrError,
     "has unknown weights", 5, 8),
    (NET.replace("[[1, 2], [3, 4]]", 'load "nope.npz"["W"]'), InputFileError,
     "weight file 'nope.npz' not found", 3, 15),
]


@pytest.mark.parametrize("src,cls,msg,line,col", CASES, ids=[c[2][:30] for c in CASES])
def test_error_message_and_position(src, cls, msg, line, col, tmp_path):
    path = tmp_path / "bad.nnir"
    path.write_text(src)
    with pytest.raises(cls) as info:
        nnir.load(str(path))
    err = info.value
    assert msg in err.message
    assert (err.span.line, err.span.col) == (line, col)
    text = err.render()
    assert text.startswith(f"{path}:{line}:{col}: error: ")
    assert f"{line:5d} | " in text and "^" in text


def test_npz_missing_key_lists_keys(tmp_path):
    np.savez(tmp_path / "w.npz", W1=np.eye(2))
    (tmp_path / "m.nnir").write_text(NET.replace("[[1, 2], [3, 4]]", 'load "w.npz"["W9"]'))
    with pytest.raises(InputFileError) as info:
        nnir.load(str(tmp_path / "m.nnir"))
    assert "no array 'W9'" in info.value.message and "W1" in info.value.hint


def test_npz_bad_values(tmp_path):
    np.savez(tmp_path / "w.npz", W=np.array([[np.nan, 1], [0, 1]]), S=np.array(["a", "b"]))
    (tmp_path / "m.nnir").write_text(NET.replace("[[1, 2], [3, 4]]", 'load "w.npz"["W"]'))
    with pytest.raises(InputFileError, match="NaN"):
        nnir.load(str(tmp_path / "m.nnir"))
    (tmp_path / "m.nnir").write_text(NET.replace("[[1, 2], [3, 4]] x",
                                                 '[[1, 2], [3, 4]] x + load "w.npz"["S"]'))
    with pytest.raises(InputFileError, match="numeric"):
        nnir.load(str(tmp_path / "m.nnir"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    (tmp_path / "m.nnir").write_text(NET.replace("[[1, 2], [3, 4]]", 'load "junk.npz"["W"]'))
    with pytest.raises(InputFileError, match="'junk.npz' is not an .npy or .npz file"):
        nnir.load(str(tmp_path / "m.nnir"))


@pytest.mark.parametrize("content,msg", [
    ("a,b,label\n1,2,0\n1,x,1\n", "line 3, column 2 of the CSV file: 'x' is not a number"),
    ("1,2,0\n1,2\n", "has 2 columns, expected 3"),
    ("1,2,0.5\n", "label 0.5 is not an integer"),
    ("", "no data rows"),
    ("1,2,-1\n", "negative labels"),
])
def test_bad_csv_dataset(tmp_path, content, msg):
    (tmp_path / "d.csv").write_text(content)
    (tmp_path / "m.nnir").write_text(NET + 'data d = csv "d.csv"\n')
    r = _nnirc("check", str(tmp_path / "m.nnir"))
    assert r.returncode == 1
    assert msg in r.stderr and "m.nnir:5:6: error:" in r.stderr


def _nnirc(*args):
    return subprocess.run([sys.executable, "-m", "nnir", *args], capture_output=True, text=True)


def test_cli_error_has_no_traceback(tmp_path):
    (tmp_path / "bad.nnir").write_text(NET.replace(" x\n", " x $\n"))
    r = _nnirc("check", str(tmp_path / "bad.nnir"))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith(f"{tmp_path / 'bad.nnir'}:3:34: error: unexpected character")
    r = _nnirc("check", str(tmp_path / "bad.nnir"), "--debug")
    assert "Traceback" in r.stderr


def test_cli_missing_file_and_json_error(tmp_path):
    r = _nnirc("check", str(tmp_path / "none.nnir"))
    assert r.returncode == 1 and "not found" in r.stderr and "Traceback" not in r.stderr
    r = _nnirc("run", str(tmp_path / "none.nnir"), "--json")
    assert r.returncode == 1 and '"status": "error"' in r.stdout


def test_long_source_lines_show_a_window_with_the_caret_in_place():
    from nnir.errors import DslError, Span, clip

    line = "x" * 3000 + "BAD" + "y" * 3000
    err = DslError("bad thing", Span("f.nnir", 1, 3001, 1, 3004), None, line).render()
    _, shown, caret = err.splitlines()
    assert len(shown) < 250 and shown.index("BAD") == caret.index("^")
    assert caret.endswith("^~~")
    assert clip("9" * 5000) == "9" * 18 + "..." + "9" * 18 and clip("short") == "short"


def test_control_characters_in_excerpts_are_masked():
    from nnir.errors import DslError, Span

    err = DslError("bad", Span("f.nnir", 1, 3), None, "a\x1b[2Jb").render()
    assert "\x1b" not in err and err.splitlines()[1].endswith("a?[2Jb")
