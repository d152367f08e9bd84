"""`vnncomp_scripts/`: the VNN-COMP calling convention (prepare_instance.sh, run_instance.sh) on
tiny instances, the results file, the time limit kept, leftovers stopped, errors reported."""
import gzip
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from helpers import EXAMPLES, ROOT, SHARED
from onnx import helper

SCRIPTS = ROOT / "vnncomp_scripts"
MLP = EXAMPLES / "data/mlp_3x8x8x2.onnx"
TWO_BOXES = EXAMPLES / "data/mlp_two_boxes.vnnlib"
ACAS = SHARED / "acasxu"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or not sys.platform.startswith(
    "linux"), reason="the VNN-COMP scripts are bash scripts for Linux")


def script(name, *args, env=None, timeout=200):
    return subprocess.run(["bash", str(SCRIPTS / name), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.fixture
def env(tmp_path):
    """nnir run by this test's Python; the state folder private to the test."""
    return dict(os.environ, NNIR_PYTHON=sys.executable, NNIR_STATE=str(tmp_path / "state"))


def _class1_property(path):
    path.write_text("".join(f"(declare-const X_{i} Real)\n" for i in range(3))
                    + "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
                    + "".join(f"(assert (>= X_{i} -0.5))\n(assert (<= X_{i} 0.5))\n"
                              for i in range(3))
                    + "(assert (>= (- Y_1 Y_0) 0.05))\n")
    return path


def _witness(text: str) -> dict:
    return {k: float(v) for k, v in re.findall(r"\((\w+) ([-+0-9.e]+)\)", text)}


def test_scripts_are_executable_and_check_the_version(tmp_path, env):
    for name in ("install_tool.sh", "prepare_instance.sh", "run_instance.sh"):
        assert os.access(SCRIPTS / name, os.X_OK), name
        r = script(name, "v2", "x", MLP, TWO_BOXES, tmp_path / "out.txt", 10, env=env)
        assert r.returncode == 1 and "Expected first argument" in r.stderr
    r = script("run_instance.sh", "v1", "x", MLP, TWO_BOXES, tmp_path / "out.txt", env=env)
    assert r.returncode == 1 and "usage" in r.stderr


def test_prepare_checks_the_files(tmp_path, env):
    r = script("prepare_instance.sh", "v1", "test", MLP, TWO_BOXES, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = script("prepare_instance.sh", "v1", "test", MLP, tmp_path / "missing.vnnlib", env=env)
    assert r.returncode == 1 and "missing.vnnlib" in r.stderr


def test_sat_with_counterexample(tmp_path, env):
    prop = _class1_property(tmp_path / "wins.vnnlib")
    out = tmp_path / "out.txt"
    r = script("run_instance.sh", "v1", "test", MLP, prop, out, 60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    text = out.read_text()
    assert text.startswith("sat\n((X_0 ") and "result: sat" in r.stdout
    w = _witness(text)
    assert sorted(w) == ["X_0", "X_1", "X_2", "Y_0", "Y_1"]
    assert all(-0.5 <= w[f"X_{i}"] <= 0.5 for i in range(3))
    assert w["Y_1"] - w["Y_0"] >= 0.05 - 1e-9


def test_unsat_from_gz_files_named_as_unpacked(tmp_path, env):
    """The competition's lists name `x.onnx`; a folder that holds `x.onnx.gz` still works."""
    (tmp_path / "m.onnx.gz").write_bytes(gzip.compress(MLP.read_bytes()))
    (tmp_path / "p.vnnlib.gz").write_bytes(gzip.compress(TWO_BOXES.read_bytes()))
    args = ("v1", "test", tmp_path / "m.onnx", tmp_path / "p.vnnlib")
    assert script("prepare_instance.sh", *args, env=env).returncode == 0
    r = script("run_instance.sh", *args, tmp_path / "out.txt", 60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "out.txt").read_text() == "unsat\n"


def test_unsupported_network_is_an_error_result(tmp_path, env):
    import onnx

    g = helper.make_graph([helper.make_node("Sin", ["x"], ["y"], name="sin1")], "g",
                          [helper.make_tensor_value_info("x", 1, [1, 2])],
                          [helper.make_tensor_value_info("y", 1, [1, 2])])
    onnx.save(helper.make_model(g), str(tmp_path / "conv.onnx"))
    r = script("run_instance.sh", "v1", "test", tmp_path / "conv.onnx", TWO_BOXES,
               tmp_path / "out.txt", 30, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "out.txt").read_text() == "error\n"
    assert "'Sin'" in r.stderr


def _sleeper(tmp_path, env):
    """An `nnir` that never answers (a stand-in for a solver stuck in C code)."""
    fake = tmp_path / "fake_python"
    fake.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'fake.pid'}\nexec sleep 300\n")
    fake.chmod(0o755)
    return dict(env, NNIR_PYTHON=str(fake))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie (exited, not yet reaped) is gone too
        return fh.read().split(") ")[-1][0] != "Z"


def test_time_limit_is_kept_and_nothing_is_left(tmp_path, env):
    env = _sleeper(tmp_path, env)
    out = tmp_path / "out.txt"
    t = time.monotonic()
    r = script("run_instance.sh", "v1", "test", MLP, TWO_BOXES, out, 3, env=env)
    took = time.monotonic() - t
    assert r.returncode == 0, r.stdout + r.stderr
    assert out.read_text() == "timeout\n"
    assert 3 <= took < 6
    pid = int((tmp_path / "fake.pid").read_text())
    time.sleep(0.2)
    assert not _alive(pid)


def test_prepare_stops_a_leftover_run(tmp_path, env):
    env = _sleeper(tmp_path, env)
    run = subprocess.Popen(["bash", str(SCRIPTS / "run_instance.sh"), "v1", "test", str(MLP),
                            str(TWO_BOXES), str(tmp_path / "out.txt"), "100"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        for _ in range(100):
            if (tmp_path / "fake.pid").exists() and (tmp_path / "state/run_instance.pgid"
                                                     ).exists():
                break
            time.sleep(0.1)
        pid = int((tmp_path / "fake.pid").read_text())
        assert _alive(pid)
        r = script("prepare_instance.sh", "v1", "test", MLP, TWO_BOXES, env=env)
        assert r.returncode == 0 and "stopping leftover" in r.stdout, r.stdout + r.stderr
        time.sleep(0.2)
        assert not _alive(pid)
        run.wait(timeout=10)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, 9)


@pytest.mark.skipif(not (ACAS / "instances.csv").is_file(),
                    reason="../shared/benchmarks/acasxu is not here")
def test_acas_instance_in_the_competition_setup(tmp_path, env):
    """ACAS Xu 1_9 property 4 (sat in VNN-COMP 2022), gzipped as the competition ships it, with
    its own 116 s limit."""
    onnx_gz = tmp_path / "ACASXU_run2a_1_9_batch_2000.onnx.gz"
    onnx_gz.write_bytes(gzip.compress((ACAS / "onnx/ACASXU_run2a_1_9_batch_2000.onnx")
                                      .read_bytes()))
    prop = ACAS / "vnnlib/prop_4.vnnlib"
    assert script("prepare_instance.sh", "v1", "acasxu", onnx_gz, prop, env=env).returncode == 0
    r = script("run_instance.sh", "v1", "acasxu", onnx_gz, prop, tmp_path / "out.txt", 116,
               env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    text = (tmp_path / "out.txt").read_text()
    assert text.startswith("sat\n")
    w = _witness(text)
    assert sorted(w) == [f"X_{i}" for i in range(5)] + [f"Y_{j}" for j in range(5)]
    # property 4's unsafe outputs: Y_0 is the smallest (clear of conflict is minimal)
    assert all(w["Y_0"] <= w[f"Y_{j}"] + 1e-9 for j in range(1, 5))


# ------------------------------------------------------------ benchmarks/vnncomp.py end to end
def _bench_folder(tmp_path, sat_expected="sat"):
    """A two-instance benchmark in the VNN-COMP 2022 layout, its files gzipped as shipped."""
    folder = tmp_path / "tiny"
    (folder / "onnx").mkdir(parents=True)
    (folder / "vnnlib").mkdir()
    (folder / "onnx/mlp.onnx.gz").write_bytes(gzip.compress(MLP.read_bytes()))
    (folder / "vnnlib/two.vnnlib.gz").write_bytes(gzip.compress(TWO_BOXES.read_bytes()))
    wins = _class1_property(tmp_path / "wins.vnnlib")
    (folder / "vnnlib/wins.vnnlib.gz").write_bytes(gzip.compress(wins.read_bytes()))
    (folder / "instances.csv").write_text("onnx/mlp.onnx,vnnlib/two.vnnlib,60\n"
                                          "onnx/mlp.onnx,vnnlib/wins.vnnlib,60\n")
    (folder / "expected.csv").write_text(
        "onnx,vnnlib,timeout,expected,solved_by_sat,solved_by_unsat\n"
        "onnx/mlp.onnx,vnnlib/two.vnnlib,60,unsat,,toolA toolB\n"
        f"onnx/mlp.onnx,vnnlib/wins.vnnlib,60,{sat_expected},toolA,toolB\n")
    return folder


def _bench(folder, tmp_path, *args):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks/vnncomp.py"), str(folder),
                           "--results", str(tmp_path / "res"), "--tag", "t", *args],
                          capture_output=True, text=True, timeout=300)


def test_benchmark_script_tables_and_tools(tmp_path):
    import csv

    fake = tmp_path / "fake_marabou_python"  # "has maraboupy" and answers unsat everywhere
    fake.write_text("#!/bin/sh\necho RESULT unsat\n")
    fake.chmod(0o755)
    r = _bench(_bench_folder(tmp_path), tmp_path, "--jobs", "2", "--marabou-python", fake)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = list(csv.DictReader(open(tmp_path / "res/vnncomp_t_summary.csv")))[0]
    assert {k: summary[k] for k in ("instances", "solved", "sat", "unsat", "wrong")} == {
        "instances": "2", "solved": "2", "sat": "1", "unsat": "1", "wrong": "0"}
    assert summary["marabou solved"] == "2" and summary["marabou wrong"] == "1"
    assert re.search(r"\| tiny +\| 2 +\| 2 +\| 2 +\| 1 +\| 2 +\| 1 \(\+1 wrong\) +\|", r.stdout)
    rows = list(csv.DictReader(open(tmp_path / "res/vnncomp_t.csv")))
    assert [(x["instance"], x["verdict"], x["correct"]) for x in rows] == [
        ("mlp-two", "unsat", "yes"), ("mlp-wins", "sat", "yes")]
    again = _bench(_bench_folder(tmp_path / "b"), tmp_path, "--no-marabou", "--reuse",
                   tmp_path / "res/vnncomp_t_batch.csv")
    assert again.returncode == 0 and "reusing" in again.stdout, again.stdout + again.stderr
    keep = ("instance", "verdict", "seconds", "exact")  # Marabou left out this time
    assert [[x[k] for k in keep] for x in csv.DictReader(open(tmp_path / "res/vnncomp_t.csv"))
            ] == [[x[k] for k in keep] for x in rows]


def test_benchmark_script_flags_a_wrong_answer(tmp_path):
    folder = _bench_folder(tmp_path, sat_expected="unsat")  # a deliberately false expectation
    r = _bench(folder, tmp_path, "--select", "1:1", "--no-marabou")
    assert r.returncode == 1
    assert "WRONG ANSWER" in r.stderr and "mlp-wins" in r.stderr and "nnirc verify" in r.stderr
