"""What users have, read as they have it (issue 15, items 4 and 5): input boxes from arrays in
files and L-infinity balls, datasets rescaled exactly (`scale 1/255`), a warning when a dataset
has no point in the domain, the program on standard input, and -q/-v."""
from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import nnir
from nnir import progress
from nnir.data import load_dataset
from nnir.errors import NnirError

NET = "\n  relu y[1] = [[1, 1, 1, 1]] x }\n"


def _nnirc(args, stdin=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "nnir", *args], input=stdin,
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_box_from_npz_arrays_is_exact(tmp_path):
    lo = np.array([0.1, 0.0, -1.0, 0.25])
    np.savez(tmp_path / "box.npz", lo=lo, hi=lo + 0.5, a=lo - 1, b=lo)
    prog = nnir.parse(f'net a {{ input x[4] in load "box.npz"{NET}'
                      f'net b {{ input x[4] in load "box.npz"["a", "b"]{NET}',
                      str(tmp_path / "t.nnir"))
    a, b = prog.networks
    assert list(a.input.lo.exact) == [Fraction(v) for v in lo]  # the floats' binary values
    assert list(a.input.hi.exact) == [Fraction(v) for v in lo + 0.5]
    assert list(b.input.lo.exact) == [Fraction(v) for v in lo - 1]


def test_ball_around_an_image_clipped(tmp_path):
    img = np.array([[0.0, 0.5], [0.99, 0.25]])
    np.save(tmp_path / "img.npy", img)
    net = nnir.parse(f'net n {{ input x[4] in ball(load "img.npy", 1/50) clip [0, 1]{NET}',
                     str(tmp_path / "t.nnir")).networks[0]
    c = [Fraction(v) for v in img.reshape(-1)]
    r = Fraction(1, 50)
    assert list(net.input.lo.exact) == [max(v - r, 0) for v in c]
    assert list(net.input.hi.exact) == [min(v + r, 1) for v in c]
    lit = nnir.parse(f"net n {{ input x[4] in ball([1, 2, 3, 4], 1/2){NET}").networks[0]
    assert list(lit.input.lo.exact) == [Fraction(1, 2), Fraction(3, 2), Fraction(5, 2),
                                        Fraction(7, 2)]


@pytest.mark.parametrize("text, message", [
    ('net n { input x[3] in load "box.npz"\n  relu y[1] = [[1, 1, 1]] x }', "has 4 values"),
    ('net n { input x[4] in load "box.npz"["lo", "zz"]' + NET, "no array 'zz'"),
    ('net n { input x[4] in load "nothere.npz"' + NET, "not found"),
    ("net n { input x[4] in ball([1, 2, 3, 4], -1)" + NET, "non-negative"),
    ("net n { input x[4] in ball([1, 2, 3], 1)" + NET, "has 3 values"),
    ("net n { input x[4] in ball([1, 2, 3, 4], 1) clip [5, 6]" + NET, "is empty"),
])
def test_file_box_errors_point_at_the_source(tmp_path, text, message):
    np.savez(tmp_path / "box.npz", lo=np.zeros(4), hi=np.ones(4))
    with pytest.raises(NnirError) as e:
        nnir.parse(text, str(tmp_path / "t.nnir"))
    assert message in str(e.value)
    assert "t.nnir:1:" in str(e.value)


def test_dataset_scale_is_exact(tmp_path):
    raw = np.array([[0, 255, 128, 1], [3, 4, 5, 6]], dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=raw, y=np.array([0, 1]))
    prog = nnir.parse('data d = npz "d.npz" scale 1/255 shift -1/2\n', str(tmp_path / "t.nnir"))
    data = load_dataset(prog.datasets[0], str(tmp_path))
    want = [Fraction(int(v), 255) - Fraction(1, 2) for v in raw[0]]
    assert data.exact_row(0) == want
    assert np.allclose(data.X[0], [float(v) for v in want])
    csv = tmp_path / "d.csv"
    csv.write_text("1,2,3,4,0\n5,6,7,8,1\n")
    prog = nnir.parse('data c = csv "d.csv" scale 1/10\n', str(tmp_path / "t.nnir"))
    assert load_dataset(prog.datasets[0], str(tmp_path)).exact_row(1) == \
        [Fraction(1, 2), Fraction(3, 5), Fraction(7, 10), Fraction(4, 5)]
    bad = nnir.parse('data d = npz "d.npz" scale x\n', str(tmp_path / "t.nnir"))
    with pytest.raises(NnirError, match="scale must be a number"):
        load_dataset(bad.datasets[0], str(tmp_path))


def test_warning_when_no_point_lies_in_the_domain(tmp_path):
    raw = np.array([[0, 255, 128, 1], [3, 4, 5, 6]], dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=raw, y=np.array([0, 1]))
    prog = (f"net n {{ input x[4] in [0, 1]{NET}"
            'data raw = npz "d.npz"\ndata ok = npz "d.npz" scale 1/255\n'
            "stable n as s1 using raw\nstable n as s2 using ok\n")
    (tmp_path / "t.nnir").write_text(prog)
    out = _nnirc(["check", "t.nnir"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "no point of dataset 'raw'" in out.stderr and "scale 1/255" in out.stderr
    assert "dataset 'ok'" not in out.stderr


def test_program_on_standard_input(tmp_path):
    text = f"net n {{ input x[4] in [0, 1]{NET}verify n as q: y[0] > 5\n"
    out = _nnirc(["run", "-", "-q"], stdin=text, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "q: unsat" in out.stdout
    assert out.stderr == ""  # -q: no "[1/1] verify q ..." line
    bad = _nnirc(["check", "-"], stdin="net n { input x[4] in [0, 1]\n  relu y[1] = \n}\n")
    assert bad.returncode != 0
    assert "<stdin>:3:1: error" in bad.stdout + bad.stderr


def test_verbosity_levels(capsys):
    try:
        progress.configure(-1, tty=True)
        progress.show("hidden", force=True)
        progress.configure(0, tty=False)
        progress.show("hidden too", force=True)
        progress.configure(1, tty=False)
        progress.show("a line", force=True)
        progress.clear()
        progress.configure(0, tty=True)
        progress.show("status", force=True)
    finally:
        progress.enable(False)
    err = capsys.readouterr().err
    assert "hidden" not in err
    assert "a line\n" in err and "\r" not in err.split("a line\n")[0]
    assert "\r\033[Kstatus" in err


def test_verbose_flag_reaches_the_engines(tmp_path):
    # -v with stderr a pipe: the split engine's progress arrives as whole lines
    acas = os.path.join(os.path.dirname(__file__), "..", "examples", "tiny.nnir")
    out = _nnirc(["run", acas, "-v"])
    assert out.returncode == 0, out.stderr
    assert "\r" not in out.stderr
