"""`train` plumbing: problems from datasets, replay of trained weights, written networks."""
import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from helpers import EXAMPLES

import nnir
from nnir.queries.train import prepare_train, replay_train

NET = """net n {
  input x[2] in [-1, 1]
  relu   h[4] = unknown x + unknown
  linear y[2] = unknown h + unknown
}
"""
XOR = """data xor {
  [0.5, 0.5] -> 0
  [-0.5, -0.5] -> 0
  [0.5, -0.5] -> 1
  [-0.5, 0.5] -> 1
}
"""


def test_prepare_applies_weight_box_and_margin():
    prog = nnir.parse(NET + XOR + "train n on xor margin 1/4 weights in [-3, 3]")
    pr = prepare_train(prog, prog.queries[0])
    assert pr.margin == Fraction(1, 4) and pr.n_classes == 2 and len(pr.y) == 4
    assert all(t.lo == -3 and t.hi == 3 for lay in pr.net.layers for t in (lay.weight, lay.bias))
    assert pr.X_exact[0, 0] == Fraction(1, 2)


@pytest.mark.parametrize("data,msg", [
    ("data d { [1, 2, 3] -> 0 }", "dimension 3"),
    ("data d { [1, 2] -> 5 }", "has label 5, but network 'n' has only 2 outputs"),
    ("data d {}", "dataset is empty"),
])
def test_bad_datasets_are_reported_at_the_query(data, msg):
    prog = nnir.parse(NET + data + "\ntrain n on d\n")
    res = nnir.solve(prog, backend="sgd")
    assert res.status == "error" and msg in res.message, res.message


def test_network_without_unknowns_cannot_be_trained():
    prog = nnir.parse("net k { input x[1] in [0, 1] linear y[2] = [[1], [2]] x }\n"
                      "data d { [0.5] -> 1 }\ntrain k on d\n")
    res = nnir.solve(prog, backend="sgd")
    assert res.status == "error" and "no unknown weights" in res.message


def test_replay_catches_wrong_weights():
    prog = nnir.parse(NET + XOR + "train n on xor margin 0.1")
    pr = prepare_train(prog, prog.queries[0])
    zeros = [(np.zeros((4, 2)), np.zeros(4)), (np.zeros((2, 4)), np.zeros(2))]
    rep = replay_train(pr, zeros)
    assert not rep.ok and rep.exact_ok == 0 and len(rep.worst) == 4
    # A hand-made exact XOR solution: y1 - y0 = relu(x0 - x1) + relu(x1 - x0) - 1/2.
    W1 = [[Fraction(1), Fraction(-1)], [Fraction(-1), Fraction(1)], [Fraction(0)] * 2,
          [Fraction(0)] * 2]
    b1 = [Fraction(0)] * 4
    W2 = [[Fraction(0)] * 4, [Fraction(1), Fraction(1), Fraction(0), Fraction(0)]]
    b2 = [Fraction(0), Fraction(-1, 2)]
    rep = replay_train(pr, [(W1, b1), (W2, b2)])
    assert rep.ok and rep.min_margin == Fraction(1, 2)


def test_cli_train_writes_exact_network(tmp_path):
    out = tmp_path / "trained.nnir"
    r = subprocess.run([sys.executable, "-m", "nnir", "train", str(EXAMPLES / "sphere.nnir"),
                        "--backend", "sgd", "--save", str(out), "--json", "--query", "fit",
                        "-o", str(tmp_path / "results.json")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["results"][0]
    assert res["status"] == "trained" and res["replay"]["exact"] is True
    assert json.loads((tmp_path / "results.json").read_text())["results"][0] == res
    assert "deprecated" not in r.stderr
    trained = nnir.load(str(out)).network("sphere")
    assert not trained.has_unknowns
    z = np.load(tmp_path / "trained.npz")
    assert np.array_equal(z["W1"], trained.layers[0].weight.f64)
    # The written network classifies every training point (replayed again from the file).
    prog = nnir.load(str(EXAMPLES / "sphere.nnir"))
    pr = prepare_train(prog, prog.queries[0])
    rep = replay_train(pr, [(lay.weight, lay.bias) for lay in trained.layers])
    assert rep.ok


def test_cli_train_several_queries_write_one_file_each(tmp_path):
    out = tmp_path / "t.nnir"
    r = subprocess.run([sys.executable, "-m", "nnir", "train",
                        str(EXAMPLES / "train_more.nnir"), "--query", "fit_boxed", "--query",
                        "fit_deep", "--backend", "sgd", "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "-o " in r.stderr and "deprecated" in r.stderr and "--save" in r.stderr  # the old -o
    boxed = nnir.load(str(tmp_path / "t_fit_boxed.nnir")).network("boxed")
    assert all(abs(v) <= 4 for lay in boxed.layers for v in lay.weight.exact.reshape(-1))
    assert nnir.load(str(tmp_path / "t_fit_deep.nnir")).network("deep")
    assert (tmp_path / "t_fit_deep.npz").exists()


def test_test_split_accuracy_is_reported():
    prog = nnir.load(str(EXAMPLES / "sphere.nnir"))
    res = nnir.solve(prog, "fit", backend="sgd")
    assert res.status == "trained"
    assert res.replay["test_points"] == 1000 and 0.5 < res.replay["test_accuracy"] <= 1.0


def test_written_network_reparses_to_the_same_network(tmp_path):
    from nnir.cli_commands import _save_trained

    prog = nnir.load(str(EXAMPLES / "sphere.nnir"))
    res = nnir.solve(prog, "fit", backend="highs")
    assert res.status == "trained"
    _save_trained(res, str(tmp_path / "t.nnir"))
    again = nnir.load(str(tmp_path / "t.nnir")).network("sphere")
    assert again == res.trained
