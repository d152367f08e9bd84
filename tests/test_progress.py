"""Progress of long work: a status line on a terminal's stderr, erased before each result, and
nothing at all when stderr is not a terminal (pipes, CI logs, the Python API)."""
import io
import os
import pty
import subprocess
import sys

from nnir import progress

TINY = ("net tiny { input x[2] in [0, 1]\n relu h[2] = [[1, -1], [-1, 1]] x\n"
        " linear y[1] = [[1, 1]] h + [-0.5] }\n"
        "verify tiny as q: y[0] > 0.5\n")  # unsat: split must bound sub-boxes


def test_status_line_only_when_enabled(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    progress.enable(False)
    progress.show("bab: 3 open", force=True)
    progress.clear()
    assert buf.getvalue() == ""
    progress.enable(True)
    try:
        progress.show("bab: 3 open", force=True)
        progress.show("bab: 2 open")  # within INTERVAL of the last: not drawn
        progress.clear()
    finally:
        progress.enable(False)
    assert buf.getvalue() == "\r\033[Kbab: 3 open\r\033[K"


def _run(tmp_path, tty: bool):
    f = tmp_path / "t.nnir"
    f.write_text(TINY)
    cmd = [sys.executable, "-m", "nnir", "verify", str(f), "--backend", "split", "--timeout",
           "60"]
    if not tty:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        return r.returncode, r.stdout, r.stderr
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, text=True)
        os.close(slave)
        out = p.communicate(timeout=120)[0]
        err = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
    finally:
        os.close(master)
    return p.returncode, out, err.decode()


def test_cli_shows_progress_on_a_terminal_only(tmp_path):
    code, out, err = _run(tmp_path, tty=True)
    assert code == 0 and "q: unsat" in out
    assert "split: " in err and "sub-boxes open" in err, err
    assert err.rstrip("\n").count("\r\033[K") >= 2  # drawn, then erased before the result
    code, out, err = _run(tmp_path, tty=False)
    assert code == 0 and "q: unsat" in out
    assert "\r" not in err and "sub-boxes open" not in err
