"""`nnirc verify NET.onnx PROP.vnnlib`, `nnirc batch` and `nnirc emit --format onnx|vnnlib`,
end to end: VNN-COMP results files, replayed witnesses, known ACAS Xu answers, clear errors."""
import csv
import json
import re
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest
from helpers import EXAMPLES, SHARED
from onnx import helper

from nnir.formats import read_onnx, read_vnnlib

ACAS = SHARED / "acasxu"
needs_acas = pytest.mark.skipif(not (ACAS / "expected.csv").is_file(),
                                reason="../shared/benchmarks/acasxu is not here")
MLP = EXAMPLES / "data/mlp_3x8x8x2.onnx"
# Fast known instances (HiGHS finds each counterexample in about a second here).
FAST = [("ACASXU_run2a_1_9_batch_2000", "prop_4"), ("ACASXU_run2a_1_8_batch_2000", "prop_3")]


def nnirc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nnir", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def _witness(text: str) -> dict:
    return {k: float(v) for k, v in re.findall(r"\((\w+) ([-+0-9.e]+)\)", text)}


def _class1_property(tmp_path):
    path = tmp_path / "wins.vnnlib"
    path.write_text("".join(f"(declare-const X_{i} Real)\n" for i in range(3))
                    + "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
                    + "".join(f"(assert (>= X_{i} -0.5))\n(assert (<= X_{i} 0.5))\n"
                              for i in range(3))
                    + "(assert (>= (- Y_1 Y_0) 0.05))\n")
    return path


def test_sat_writes_the_vnncomp_witness(tmp_path):
    prop = _class1_property(tmp_path)
    r = nnirc("verify", MLP, prop, "-o", tmp_path / "res.txt", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    assert ": sat" in r.stdout and "replay: exact ok" in r.stdout
    text = (tmp_path / "res.txt").read_text()
    assert text.startswith("sat\n((X_0 ")
    w = _witness(text)
    assert sorted(w) == ["X_0", "X_1", "X_2", "Y_0", "Y_1"]
    assert all(-0.5 <= w[f"X_{i}"] <= 0.5 for i in range(3))
    assert w["Y_1"] - w["Y_0"] >= 0.05 - 1e-9
    try:
        import onnxruntime  # noqa: F401
        assert "onnxruntime (float64)" in r.stdout  # the file stores float64 weights
    except ImportError:
        assert "onnxruntime not installed" in r.stdout


def test_unsat_over_two_input_regions_json(tmp_path):
    r = nnirc("verify", MLP, EXAMPLES / "data/mlp_two_boxes.vnnlib", "--json", "-o",
              tmp_path / "res.txt")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    res = out["results"][0]
    assert res["status"] == "unsat" and out["vnncomp"] == "unsat\n"
    assert "2 input regions: unsat, unsat" in res["notes"]
    assert (tmp_path / "res.txt").read_text() == "unsat\n"


@needs_acas
@pytest.mark.parametrize("net,prop", FAST)
def test_fast_acas_instances_give_the_known_answer(tmp_path, net, prop):
    expected = {(row["network"], row["property"]): row["expected"]
                for row in csv.DictReader(open(ACAS / "expected.csv"))}[(net, prop)]
    onnx_path, prop_path = ACAS / f"onnx/{net}.onnx", ACAS / f"vnnlib/{prop}.vnnlib"
    r = nnirc("verify", onnx_path, prop_path, "--timeout", "100", "-o", tmp_path / "r.txt")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "r.txt").read_text()
    assert text.split("\n")[0] == expected == "sat"
    (problem,) = read_vnnlib(str(prop_path), read_onnx(str(onnx_path)))
    x = [Fraction(v) for k, v in sorted(_witness(text).items()) if k[0] == "X"]
    lo, hi = problem.net.input.lo.exact, problem.net.input.hi.exact
    assert all(a <= v <= b for v, a, b in zip(x, lo, hi))  # printed floats are exact values
    assert "replay: exact ok" in r.stdout


@needs_acas
def test_acas_timeout_is_reported_as_timeout(tmp_path):
    r = nnirc("verify", ACAS / "onnx/ACASXU_run2a_1_1_batch_2000.onnx",
              ACAS / "vnnlib/prop_1.vnnlib", "--timeout", "1", "-o", tmp_path / "r.txt")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r.txt").read_text() in ("timeout\n", "unsat\n")  # never sat: it holds


def test_batch_runs_a_list_with_a_pool(tmp_path):
    wins = _class1_property(tmp_path)
    listing = tmp_path / "instances.csv"
    listing.write_text(f"{MLP},{EXAMPLES / 'data/mlp_two_boxes.vnnlib'},60\n"
                       f"{MLP},{wins.name},60\n"
                       f"{MLP},missing.vnnlib,60\n")
    r = nnirc("batch", listing, "--jobs", "2", "-o", tmp_path / "out.csv")
    assert r.returncode == 3, r.stdout + r.stderr  # the missing file is an error row
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert [(row["instance"], row["verdict"]) for row in rows] == [
        ("mlp_3x8x8x2-mlp_two_boxes", "unsat"), ("mlp_3x8x8x2-wins", "sat"),
        ("mlp_3x8x8x2-missing", "error")]
    assert all(float(row["seconds"]) > 0 and row["backend"] for row in rows)
    assert "3/3" in r.stderr and "not found" in r.stdout
    assert "Traceback" not in r.stderr + r.stdout


def test_batch_can_run_the_portfolio(tmp_path):
    """Batch workers are not daemonic, so `portfolio` can start its member processes there."""
    wins = _class1_property(tmp_path)
    listing = tmp_path / "instances.csv"
    listing.write_text(f"{MLP},{EXAMPLES / 'data/mlp_two_boxes.vnnlib'},60\n"
                       f"{MLP},{wins.name},60\n")
    r = nnirc("batch", listing, "--backend", "portfolio", "-o", tmp_path / "out.csv")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert [row["verdict"] for row in rows] == ["unsat", "sat"]
    assert all(row["backend"] == "portfolio" for row in rows)


def test_bad_files_give_clear_errors(tmp_path):
    import onnx

    g = helper.make_graph([helper.make_node("Sin", ["x"], ["y"], name="sin1")], "g",
                          [helper.make_tensor_value_info("x", 1, [1, 2])],
                          [helper.make_tensor_value_info("y", 1, [1, 2])])
    onnx.save(helper.make_model(g), str(tmp_path / "conv.onnx"))
    r = nnirc("verify", tmp_path / "conv.onnx", EXAMPLES / "data/mlp_two_boxes.vnnlib")
    assert r.returncode == 1 and "'Sin'" in r.stderr and "sin1" in r.stderr
    (tmp_path / "bad.vnnlib").write_text("(declare-const X_0 Real)\n(assert (<= X_0 1 2))\n")
    r = nnirc("verify", MLP, tmp_path / "bad.vnnlib")
    assert r.returncode == 1 and re.search(r"bad\.vnnlib:2:19: error", r.stderr)
    (tmp_path / "cut.onnx").write_bytes(MLP.read_bytes()[:300])
    r = nnirc("verify", tmp_path / "cut.onnx", EXAMPLES / "data/mlp_two_boxes.vnnlib")
    assert r.returncode == 1 and "cut.onnx" in r.stderr
    r = nnirc("verify", MLP)
    assert r.returncode == 2 and "property" in r.stderr
    assert "Traceback" not in r.stderr


def test_emit_onnx_and_vnnlib(tmp_path):
    r = nnirc("emit", EXAMPLES / "tiny.nnir", "--format", "onnx", "-o", tmp_path / "t.onnx")
    assert r.returncode == 0 and "float32, exact" in r.stderr
    net = read_onnx(str(tmp_path / "t.onnx"))
    assert [lay.name for lay in net.layers] == ["h", "y"]
    r = nnirc("emit", EXAMPLES / "mlp_npz.nnir", "--format", "vnnlib", "--query", "leaves_box",
              "-o", tmp_path / "q.vnnlib")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "q.vnnlib").read_text()
    assert "(assert (>= X_0 0.15))" in text and "(assert (<= X_0 0.25))" in text
    mlp = read_onnx(str(MLP))
    (p,) = read_vnnlib(str(tmp_path / "q.vnnlib"), mlp)
    assert len(p.where) == 3  # the network's own: sum(x) in [-1, 1], x0 - 2 x1 <= 1.5
    assert np.isclose(float(p.net.input.hi.exact[2]), 0.05)


def _pool_job(conn, kind, limit):
    import os
    import time

    if kind == "reply":
        conn.send(("ok", os.getpgrp() == os.getpid()))  # leads its own process group
    elif kind == "exit":
        os._exit(3)
    else:
        time.sleep(60)


def test_pool_replies_kills_past_the_limit_and_reports_dead_workers(monkeypatch):
    from nnir.formats import batch

    monkeypatch.setattr(batch, "GRACE", 0.5)
    got = {}
    t = time.monotonic()
    batch.run_pool([("reply", 5), ("exit", 5), ("sleep", 0.5)], 3, _pool_job,
                   lambda job: job[1], lambda job, reply, s: got.setdefault(job[0], (reply, s)))
    assert got["reply"][0] == ("ok", True)
    assert got["exit"][0] == "worker exited (3)"
    assert got["sleep"][0] == "timeout" and 1.0 <= got["sleep"][1] < 10
    assert time.monotonic() - t < 10


# ---------------------------------------------------------------- gzip-compressed files (.gz)
def _gz(src, dst):
    import gzip

    dst.write_bytes(gzip.compress(src.read_bytes()))
    return dst


def test_gz_network_and_property_read_like_the_plain_files(tmp_path):
    from nnir.formats.vnncomp import read_network

    net_gz = _gz(MLP, tmp_path / "mlp_3x8x8x2.onnx.gz")
    prop_gz = _gz(EXAMPLES / "data/mlp_two_boxes.vnnlib", tmp_path / "two_boxes.vnnlib.gz")
    plain, packed = read_onnx(str(MLP)), read_network(str(net_gz))
    assert packed.name == plain.name
    assert all(np.array_equal(a.weight.exact, b.weight.exact) and
               np.array_equal(a.bias.exact, b.bias.exact)
               for a, b in zip(packed.layers, plain.layers, strict=True))
    problems = read_vnnlib(str(prop_gz), packed)
    assert [p.name for p in problems] == ["two_boxes_1", "two_boxes_2"]
    unpacked = read_vnnlib(str(EXAMPLES / "data/mlp_two_boxes.vnnlib"), plain)
    assert all(np.array_equal(p.net.input.lo.exact, q.net.input.lo.exact) and p.prop == q.prop
               for p, q in zip(problems, unpacked, strict=True))


def test_verify_reads_gz_files_and_replays_in_onnxruntime(tmp_path):
    net_gz = _gz(MLP, tmp_path / "mlp.onnx.gz")
    prop_gz = _gz(_class1_property(tmp_path), tmp_path / "wins.vnnlib.gz")
    r = nnirc("verify", net_gz, prop_gz, "-o", tmp_path / "res.txt", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "res.txt").read_text().startswith("sat\n((X_0 ")
    try:
        import onnxruntime  # noqa: F401
        assert f"onnxruntime (float64) on {net_gz}: the property holds" in r.stdout
    except ImportError:
        assert "onnxruntime not installed" in r.stdout


def test_nnir_file_imports_gz_files(tmp_path):
    _gz(MLP, tmp_path / "m.onnx.gz")
    _gz(EXAMPLES / "data/mlp_two_boxes.vnnlib", tmp_path / "p.vnnlib.gz")
    (tmp_path / "q.nnir").write_text('net m = onnx "m.onnx.gz"\n'
                                     'verify m as p from vnnlib "p.vnnlib.gz"\n')
    r = nnirc("run", tmp_path / "q.nnir", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    assert "p_1: unsat" in r.stdout and "p_2: unsat" in r.stdout


def test_gz_suffix_is_dropped_from_names(tmp_path):
    gz = tmp_path / "x.onnx.gz"
    (tmp_path / "x.onnx").write_bytes(MLP.read_bytes()[:0])  # an unrelated plain file
    _gz(EXAMPLES / "data/mlp_two_boxes.vnnlib", tmp_path / "prop_7.vnnlib.gz")
    problems = read_vnnlib(str(tmp_path / "prop_7.vnnlib.gz"), read_onnx(str(MLP)))
    assert problems[0].name == "prop_7_1"
    from nnir.formats.batch import instance_stem

    assert instance_stem(str(gz)) == "x" and instance_stem("a/prop_7.vnnlib") == "prop_7"


def test_batch_finds_the_gz_file_of_a_listed_name(tmp_path):
    """VNN-COMP lists name `x.onnx`; its benchmark folders hold `x.onnx.gz`."""
    _gz(MLP, tmp_path / "mlp.onnx.gz")
    _gz(EXAMPLES / "data/mlp_two_boxes.vnnlib", tmp_path / "two.vnnlib.gz")
    (tmp_path / "instances.csv").write_text("mlp.onnx,two.vnnlib,60\n"
                                            "mlp.onnx.gz,two.vnnlib.gz,60\n")
    r = nnirc("batch", tmp_path / "instances.csv", "-o", tmp_path / "out.csv")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert [(row["instance"], row["verdict"]) for row in rows] == [("mlp-two", "unsat")] * 2
    assert all(row["onnx"].endswith("mlp.onnx.gz") for row in rows)


def test_damaged_gz_files_are_input_errors(tmp_path, monkeypatch):
    import gzip

    from nnir.errors import InputFileError
    from nnir.formats import onnx_io

    prop = EXAMPLES / "data/mlp_two_boxes.vnnlib"
    (tmp_path / "junk.onnx.gz").write_bytes(b"not gzip at all")
    (tmp_path / "cut.onnx.gz").write_bytes(gzip.compress(MLP.read_bytes())[:400])
    (tmp_path / "cut.vnnlib.gz").write_bytes(gzip.compress(prop.read_bytes())[:60])
    for net, p, name in [("junk.onnx.gz", prop, "junk.onnx.gz"), ("cut.onnx.gz", prop,
                         "cut.onnx.gz"), (MLP, tmp_path / "cut.vnnlib.gz", "cut.vnnlib.gz")]:
        r = nnirc("verify", tmp_path / net, p)
        assert r.returncode == 1, r.stdout + r.stderr
        assert re.search(rf"error: (ONNX|VNN-LIB) file '.*{name}' is not a readable gzip file",
                         r.stderr), r.stderr
        assert "Traceback" not in r.stderr
    bomb = tmp_path / "bomb.onnx.gz"  # 5 KB that unpack to 5 MB, more than the limit allows
    bomb.write_bytes(gzip.compress(bytes(5 * 2**20)))
    assert bomb.stat().st_size < 100_000
    monkeypatch.setattr(onnx_io, "MAX_ONNX_BYTES", 100_000)
    with pytest.raises(InputFileError, match="unpacks to more than"):
        onnx_io.read_onnx(str(bomb))
