"""`nnirc` keeps its promises whatever runs inside: no foreign output on stdout, time limits kept
against a solver that ignores them, nothing left running after a kill, finished results kept on
Ctrl-C, exit statuses as documented.

The misbehaving solver is a real program: `--backend external` with a solver command that
ignores SIGTERM and never answers. The wall-clock checks allow a loaded 2-core machine plenty
of room (a 2 s limit must end within 20 s, where before it ran until killed by the test).
"""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from helpers import EXAMPLES

import nnir
from nnir.backends import registry

VERIFY = [n for n in registry.names_for("verify") if registry.backend_class(n).available()]


# The environment's bin folder first on PATH: the z3 binary of the z3-solver wheel lives there.
ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}


def nnirc(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "nnir", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=ENV)


def popen(*args):
    # (SIGINT restored to its default in the child: a disposition the harness inherited must
    # not decide what Ctrl-C does to nnirc)
    return subprocess.Popen([sys.executable, "-m", "nnir", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def hung_solver(tmp_path, first_ok: bool = False) -> tuple[str, str]:
    """A solver command that ignores SIGTERM and sleeps forever (after answering once through
    `z3 -in` when `first_ok`), and the marker that finds its processes."""
    mark = f"nnirhang{uuid.uuid4().hex[:10]}"
    script = tmp_path / f"{mark}.py"
    flag = tmp_path / f"{mark}.done"
    script.write_text(
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"if {first_ok!r} and not os.path.exists({str(flag)!r}):\n"
        f"    open({str(flag)!r}, 'w').close()\n"
        "    os.execvp('z3', ['z3', '-in'])\n"
        "time.sleep(10000)\n")
    return f"{sys.executable} {script}", mark


def alive(mark: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line holds `mark`."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read()
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        # an argument that is the script itself: the solver, not nnirc (whose --solver-cmd
        # argument holds the script's path after the interpreter's)
        if any(a.endswith(f"{mark}.py".encode()) and b" " not in a for a in cmd.split(b"\0")) \
                and state != "Z":
            pids.append(int(pid))
    return pids


def wait_gone(mark: str, seconds: float = 10.0) -> list[int]:
    end = time.monotonic() + seconds
    while alive(mark) and time.monotonic() < end:
        time.sleep(0.1)
    return alive(mark)


def wait_for(mark: str, p, seconds: float = 120.0) -> None:
    """Until the solver runs; fails at once (with nnirc's output) if nnirc ended first."""
    end = time.monotonic() + seconds
    while not alive(mark):
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < end, "the solver never started"
        time.sleep(0.1)


def far_property(tmp_path):
    """A VNN-LIB property of the example MLP that no input reaches (Y_1 - Y_0 >= 100): a
    solver has to prove it, so a hung one hangs."""
    prop = tmp_path / "p.vnnlib"
    prop.write_text("".join(f"(declare-const X_{i} Real)\n" for i in range(3))
                    + "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
                    + "".join(f"(assert (>= X_{i} -0.5))\n(assert (<= X_{i} 0.5))\n"
                              for i in range(3))
                    + "(assert (>= (- Y_1 Y_0) 100))\n")
    return prop


needs_linux = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
needs_z3_bin = pytest.mark.skipif(
    not any(os.access(os.path.join(d, "z3"), os.X_OK) for d in ENV["PATH"].split(os.pathsep)),
    reason="no z3 binary on PATH")

# ------------------------------------------------------------------------ no foreign output


RESULT_LINE = r"^(\S.*: (sat|unsat|unknown|timeout|error)(  \[.*\])?|  .*)$"


@pytest.mark.parametrize("backend", VERIFY + ["auto"])
def test_json_and_plain_output_carry_nothing_foreign(backend):
    """Every backend, on a file with sat and unsat queries: stdout is one JSON document, and
    plain output is our result lines only (HiGHS 1.16 printed a banner from its constructor)."""
    import re

    extra = ["--solver-cmd", "z3 -in"] if backend == "external" else []
    r = nnirc("run", EXAMPLES / "tiny.nnir", "--backend", backend, "--json", *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert {x["query"]: x["status"] for x in doc["results"]} == {"reach": "sat", "cap": "unsat"}
    r = nnirc("run", EXAMPLES / "tiny.nnir", "--backend", backend, *extra)
    assert r.returncode == 0
    for line in r.stdout.splitlines():
        assert re.match(RESULT_LINE, line), line
    for line in r.stderr.splitlines():
        assert line.startswith("[") and line.endswith(" ..."), line


def test_emit_and_the_python_api_are_silent(tmp_path, capfd):
    """The MPS writer and an in-process HiGHS solve print nothing on fd 1 or 2."""
    r = nnirc("emit", EXAMPLES / "tiny.nnir", "--format", "mps", "--query", "cap", "-o",
              tmp_path / "cap.mps", "--json")
    assert r.returncode == 0 and r.stderr == ""  # stdout: only the JSON document
    assert json.loads(r.stdout)["output"] == str(tmp_path / "cap.mps")
    capfd.readouterr()
    prog = nnir.load(str(EXAMPLES / "tiny.nnir"))
    assert nnir.solve(prog, "reach", backend="highs").status == "sat"
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# ------------------------------------------------------------------------ time limits, kills


@needs_linux
def test_a_solver_that_ignores_its_limit_is_stopped(tmp_path):
    cmd, mark = hung_solver(tmp_path)
    t0 = time.monotonic()
    r = nnirc("run", EXAMPLES / "tiny.nnir", "--query", "cap", "--backend", "external",
              "--solver-cmd", cmd, "--timeout", "2", "--json")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    (res,) = json.loads(r.stdout)["results"]
    assert res["status"] == "timeout", res
    assert took < 20, took  # 2 s plus the grace; before, it waited for the solver forever
    assert wait_gone(mark) == []


@needs_linux
def test_sigkill_leaves_no_solver_running(tmp_path):
    cmd, mark = hung_solver(tmp_path)
    p = popen("run", EXAMPLES / "tiny.nnir", "--query", "cap", "--backend", "external",
              "--solver-cmd", cmd)
    try:
        wait_for(mark, p)
        p.kill()
        p.wait(30)
        assert wait_gone(mark) == []  # the kernel kills each process when its parent dies
    finally:
        p.kill()


@needs_linux
@needs_z3_bin
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_finished_results(tmp_path, sig):
    """Query 1 is answered, query 2 hangs: Ctrl-C (or a kill) leaves query 1 in the -o file,
    exits 130, and stops the solver."""
    cmd, mark = hung_solver(tmp_path, first_ok=True)
    out = tmp_path / "out.json"
    p = popen("run", EXAMPLES / "tiny.nnir", "--backend", "external", "--solver-cmd", cmd,
              "-o", out)
    try:
        end = time.monotonic() + 120
        while not (out.exists() and alive(mark)):
            assert time.monotonic() < end and p.poll() is None, p.communicate()
            time.sleep(0.1)
        time.sleep(0.3)
        p.send_signal(sig)
        stdout, stderr = p.communicate(timeout=30)
        assert p.returncode == 130, stderr
        data = json.loads(out.read_text())
        assert [x["query"] for x in data["results"]] == ["reach"]
        assert data["results"][0]["status"] == "sat" and data["interrupted"] is True
        assert "reach: sat" in stdout
        assert wait_gone(mark) == []
    finally:
        p.kill()


@needs_linux
def test_vnncomp_results_file_says_unknown_when_interrupted(tmp_path):
    cmd, mark = hung_solver(tmp_path)
    prop = far_property(tmp_path)
    res = tmp_path / "results.txt"
    res.write_text("sat\n")  # stale, from an earlier run
    p = popen("verify", EXAMPLES / "data/mlp_3x8x8x2.onnx", prop, "--backend", "external",
              "--solver-cmd", cmd, "-o", res)
    try:
        wait_for(mark, p)
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
        assert res.read_text() == "unknown\n"
        assert wait_gone(mark) == []
    finally:
        p.kill()


@needs_linux
def test_vnncomp_verify_keeps_its_limit(tmp_path):
    cmd, mark = hung_solver(tmp_path)
    prop = far_property(tmp_path)
    t0 = time.monotonic()
    r = nnirc("verify", EXAMPLES / "data/mlp_3x8x8x2.onnx", prop, "--backend", "external",
              "--solver-cmd", cmd, "--timeout", "2", "-o", tmp_path / "res.txt")
    assert time.monotonic() - t0 < 20
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "res.txt").read_text() == "timeout\n"
    assert wait_gone(mark) == []


# ------------------------------------------------------------------------ exit statuses


@pytest.mark.parametrize("args, code", [
    (["run", EXAMPLES / "tiny.nnir", "--backend", "nosuch"], 2),
    (["run", EXAMPLES / "tiny.nnir", "--query", "nosuch"], 2),
    (["emit", EXAMPLES / "tiny.nnir", "--format", "mps", "--query", "cap"], 2),
    (["run", EXAMPLES / "tiny.nnir", "--timeout", "soon"], 2),
    (["nosuchcommand"], 2),
    (["verify", EXAMPLES / "data/mlp_3x8x8x2.onnx", "missing.vnnlib", "--backend", "nosuch"], 2),
    (["run", "does/not/exist.nnir"], 1),
    (["check", EXAMPLES], 1),
    (["run", EXAMPLES / "tiny.nnir", "--backend", "sgd"], 3),  # sgd answers no verify query
])
def test_exit_statuses_as_documented(args, code):
    r = nnirc(*args)
    assert r.returncode == code, r.stdout + r.stderr
    assert "Traceback" not in r.stderr


@needs_linux
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_a_batch_stops_every_instance(tmp_path, sig):
    """`nnirc batch --jobs 2` with two hanging instances: killed, it leaves no solver behind."""
    cmd, mark = hung_solver(tmp_path)
    prop = far_property(tmp_path)
    onnx = EXAMPLES / "data/mlp_3x8x8x2.onnx"
    (tmp_path / "list.csv").write_text(f"{onnx},{prop},300\n{onnx},{prop},300\n")
    p = subprocess.Popen([sys.executable, "-m", "nnir", "batch", str(tmp_path / "list.csv"),
                          "--jobs", "2", "--backend", "external", "-o",
                          str(tmp_path / "res.csv")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env={**ENV, "NNIR_SMT_CMD": cmd})
    try:
        end = time.monotonic() + 120
        while len(alive(mark)) < 2:
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < end, "the solvers never started"
            time.sleep(0.1)
        p.send_signal(sig)
        p.communicate(timeout=30)
        assert wait_gone(mark) == []
    finally:
        p.kill()


@pytest.mark.slow
@pytest.mark.parametrize("backend", VERIFY + ["auto", "sgd", "admm"])
@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.nnir")), ids=lambda p: p.name)
def test_every_backend_on_every_example_prints_one_json_document(backend, path):
    """Whatever each backend makes of each example (answers, errors, time-outs), stdout is one
    JSON document with a result per query."""
    extra = ["--solver-cmd", "z3 -in"] if backend == "external" else []
    r = nnirc("run", path, "--backend", backend, "--json", "--timeout", "20", *extra,
              timeout=1200)
    assert r.returncode in (0, 3), r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["results"]) >= 1
    assert all(x["status"] in ("sat", "unsat", "unknown", "timeout", "error")
               for x in doc["results"])


def test_a_forked_child_can_solve_with_highs_after_its_parent_did():
    """HiGHS's global thread pool does not survive fork: without `proc.after_fork` resetting it,
    a child's first solve waits forever (seen as a time-out here)."""
    from nnir import proc

    if "highs" not in VERIFY or not proc.available():
        pytest.skip("needs highspy and fork")
    prog = nnir.load(str(EXAMPLES / "tiny.nnir"))
    assert nnir.solve(prog, "reach", backend="highs").status == "sat"  # the pool starts here
    reply = proc.call(lambda: nnir.solve(prog, "reach", backend="highs").status, timeout=60)
    assert reply == "sat"
