"""Datasets: the sphere_planes generator and the file formats."""
import numpy as np
import pytest
from helpers import EXAMPLES

import nnir
from nnir.data import load_dataset, sphere_planes


@pytest.mark.parametrize("rule", ["and", "xor"])
def test_sphere_planes(rule):
    X, y = sphere_planes(300, dim=3, planes=2, rule=rule, seed=5, min_gap=0.05)
    assert X.shape == (300, 3) and y.shape == (300,)
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0)
    assert set(np.unique(y)) == {0, 1}
    # Another draw: same planes, independent points (a test set never repeats training points).
    Xt, _ = sphere_planes(300, dim=3, planes=2, rule=rule, seed=5, min_gap=0.05, draw=1)
    assert not np.any(np.all(np.isclose(Xt[:, None, :], X[None, :, :]), axis=2))
    # Same seed, same data; the planes are recoverable from the generator's stream.
    X2, y2 = sphere_planes(300, dim=3, planes=2, rule=rule, seed=5, min_gap=0.05)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    rng = np.random.default_rng(5)
    normals = rng.normal(size=(2, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    dots = X @ normals.T
    assert np.all(np.abs(dots) >= 0.05)  # min_gap respected
    side = dots > 0
    want = side.all(axis=1) if rule == "and" else side.sum(axis=1) % 2 == 1
    assert np.array_equal(y, want.astype(int))


def test_sphere_planes_rejects_bad_parameters():
    with pytest.raises(ValueError, match="rule"):
        sphere_planes(10, rule="nand")
    with pytest.raises(ValueError):
        sphere_planes(0)


def test_all_file_formats_agree():
    prog = nnir.load(str(EXAMPLES / "datasets.nnir"))
    loaded = {d.name: load_dataset(d, prog.base_dir) for d in prog.datasets}
    ref = loaded["from_npy"]
    assert ref.X.shape == (12, 3)
    for name in ("from_csv", "from_npz"):
        assert np.allclose(loaded[name].X, ref.X, atol=1e-4)  # the CSV holds 4 decimals
        assert np.array_equal(loaded[name].y, ref.y)
    inline = loaded["inline"]
    assert inline.exact[1, 1] == nnir.parse("net n { input x[1] in [0,1] "
                                            "linear y[1] = [[-1/3]] x }").networks[0] \
        .layers[0].weight.exact[0, 0]
    assert list(inline.y) == [1, 0, 1]
    assert loaded["sphere"].X.shape == (200, 3)


def test_generator_errors_point_at_dataset(tmp_path):
    (tmp_path / "g.nnir").write_text("data g = sphere_planes(n=10, rule=nand)\n"
                                     "data h = no_such_gen(n=1)\n")
    prog = nnir.load(str(tmp_path / "g.nnir"))
    with pytest.raises(nnir.InputFileError, match="unknown rule 'nand'") as info:
        load_dataset(prog.datasets[0])
    assert info.value.span.line == 1
    with pytest.raises(nnir.InputFileError, match="unknown generator 'no_such_gen'"):
        load_dataset(prog.datasets[1])


def test_dataset_dimension_must_match_network(tmp_path):
    from nnir.cli import main

    (tmp_path / "m.nnir").write_text(
        "net n { input x[2] in [0, 1] linear y[2] = [[1, 0], [0, 1]] x }\n"
        "data d { [1, 2, 3] -> 0 }\ntrain n on d\n")
    assert main(["check", str(tmp_path / "m.nnir")]) == 1


# ---------------------------------------------------------------- exactness of data files
XOR_CSV = "0.1,0.1,0\n0.7,0.7,0\n0.7,0.1,1\n0.1,0.7,1\n0.3,0.3,0\n"
XOR_NET = """
net n {
  input x[2] in [0, 1]
  relu h[2] = unknown x + unknown
  linear y[2] = unknown h + unknown
}
data pts = csv "xor.csv"
train n on pts margin 0.1 weights in [-10, 10]
"""


def test_csv_cells_are_the_decimals_they_spell(tmp_path):
    """`0.1` in a CSV file is 1/10 exactly, not the float64 nearest it (which is above)."""
    from fractions import Fraction

    (tmp_path / "xor.csv").write_text(XOR_CSV)
    (tmp_path / "m.nnir").write_text(XOR_NET)
    prog = nnir.load(str(tmp_path / "m.nnir"))
    data = load_dataset(prog.datasets[0], prog.base_dir)
    assert data.exact[0, 0] == Fraction(1, 10) != Fraction(0.1)
    assert data.exact_row(4) == [Fraction(3, 10), Fraction(3, 10)]
    assert data.X[2, 0] == 0.7 and list(data.y) == [0, 0, 1, 1, 0]


def test_csv_byte_order_mark_keeps_the_first_row(tmp_path):
    (tmp_path / "xor.csv").write_text("\ufeff" + XOR_CSV, encoding="utf-8")
    (tmp_path / "m.nnir").write_text(XOR_NET)
    prog = nnir.load(str(tmp_path / "m.nnir"))
    assert len(load_dataset(prog.datasets[0], prog.base_dir).y) == 5


def test_npy_points_keep_their_binary_values(tmp_path):
    from fractions import Fraction

    np.save(tmp_path / "x.npy", np.array([[0.1, 0.7]], dtype=np.float32))
    np.save(tmp_path / "y.npy", np.array([1]))
    (tmp_path / "m.nnir").write_text('data d = npy "x.npy" labels "y.npy"\n')
    prog = nnir.load(str(tmp_path / "m.nnir"))
    row = load_dataset(prog.datasets[0], prog.base_dir).exact_row(0)
    assert row == [Fraction(float(np.float32(0.1))), Fraction(float(np.float32(0.7)))]


@pytest.mark.parametrize("backend", ["z3", "cvc5"])
def test_training_certificate_holds_on_the_csv_decimals(tmp_path, backend):
    """Regression: exact trainers fitted the float64 neighbours of the CSV's decimals, and the
    certificate "all points classified with margin 1/10 in exact rational arithmetic" was false
    for 3 of the 5 points as written (short by about 1e-17)."""
    from fractions import Fraction

    from nnir.backends.registry import backend_class
    from nnir.cli import main
    from nnir.ir.evaluate import evaluate

    if not backend_class(backend).available():
        pytest.skip(f"{backend} is not installed")
    (tmp_path / "xor.csv").write_text(XOR_CSV)
    (tmp_path / "m.nnir").write_text(XOR_NET)
    out = tmp_path / "trained.nnir"
    assert main(["train", str(tmp_path / "m.nnir"), "--backend", backend, "--timeout", "120",
                 "--save", str(out)]) == 0
    net = nnir.load(str(out)).networks[0]
    for line in XOR_CSV.splitlines():
        *x, label = line.split(",")
        z = evaluate(net, [Fraction(v) for v in x], exact=True)[net.output]
        assert z[int(label)] - z[1 - int(label)] >= Fraction(1, 10), line
