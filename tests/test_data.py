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
