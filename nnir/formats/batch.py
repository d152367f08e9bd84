"""`nnirc batch`: a VNN-COMP instance list run in a pool of worker processes.

Each row of the list is `onnx,vnnlib,timeout` (paths relative to the list; a file listed as
`x.onnx` that is only there as `x.onnx.gz` is read compressed, and so is `.vnnlib.gz`). Every
instance runs in its own process, so a solver that overstays its limit is killed (the verdict is
`timeout`) without disturbing the others. Progress goes to stderr; the results CSV (instance,
verdict, seconds, backend, onnx, vnnlib, timeout: the `verdict` column is the status, named as
VNN-COMP tools name it) is rewritten atomically after every instance, so an interrupted run keeps
what it finished. `--json` prints the same rows as `results`, with `status` for the verdict.
"""
from __future__ import annotations

import csv
import io
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import wait

from nnir.cli_common import check_backend_name, document, kill_grace, print_json
from nnir.errors import InputFileError, NnirError, Span
from nnir.formats.vnncomp import verify_files
from nnir.io import write_text
from nnir.proc import after_fork, silence_solvers

# Seconds past its limit before an instance's process is killed; None: `kill_grace(limit)`,
# max(1.5 s, 4% of the limit), within the time-limit promise of max(2 s, 5%).
GRACE: float | None = None
COLUMNS = ("instance", "verdict", "seconds", "backend", "onnx", "vnnlib", "timeout", "exact")
# (the CSV's `verdict` column holds `Row.status`; `exact` is yes/no for sat and unsat: whether
# the verdict rests on no floating-point tolerance)


@dataclass
class Row:
    instance: str
    onnx: str
    vnnlib: str
    timeout: float
    status: str = ""  # sat, unsat, unknown, timeout or error
    seconds: float = 0.0
    backend: str = ""
    message: str = ""
    exact: bool | None = None  # for sat/unsat: rests on no tolerance (not in the JSON rows)


def read_instances(path: str) -> list[Row]:
    """The rows of an instance list; paths become relative to the current folder."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise InputFileError(f"cannot read instance list '{path}': {exc.strerror}") from None
    base = os.path.dirname(path)
    rows = []
    for k, cells in enumerate(csv.reader(io.StringIO(text)), 1):
        cells = [c.strip() for c in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        try:
            net, prop, limit = cells[0], cells[1], float(cells[2])
        except (IndexError, ValueError):
            if k == 1 and len(cells) >= 3:
                continue  # a header line
            raise InputFileError("expected onnx,vnnlib,timeout", Span(path, k, 1),
                                 "one instance per line, paths relative to the list",
                                 text) from None
        name = "-".join(instance_stem(p) for p in (net, prop))
        rows.append(Row(name, packed(os.path.join(base, net)), packed(os.path.join(base, prop)),
                        limit))
    return rows


def instance_stem(path: str) -> str:
    """The file name without its folder and suffixes: `onnx/net.onnx.gz` -> `net`."""
    base = os.path.basename(path)
    if base.endswith(".gz"):
        base = base[:-3]
    return os.path.splitext(base)[0]


def packed(path: str) -> str:
    """`path`, or `path.gz` when only the compressed file is there (VNN-COMP lists name the
    unpacked files, its benchmark folders ship them gzipped; both are read directly)."""
    if not os.path.exists(path) and os.path.isfile(path + ".gz"):
        return path + ".gz"
    return path


def run_pool(jobs: list[tuple], n_procs: int, target, limit_of, on_done) -> None:
    """Run `target(conn, *job)` for every job, each in its own process, at most `n_procs` at
    once; the worker sends its reply through `conn`.

    Workers are not daemonic, so a worker may start processes of its own (the `portfolio`
    backend does), and each leads its own process group, so killing it also stops those. A job
    still running `GRACE` (default: `kill_grace`) seconds past `limit_of(job)` is killed; so is
    every worker when the pool is left early (an exception, Ctrl-C). `on_done(job, reply,
    seconds)` gets the reply, or a string when there is none: "timeout" (killed) or "worker
    exited (CODE)".
    """
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    pending, running = list(jobs), {}  # connection -> (job, process, start)
    try:
        while pending or running:
            while pending and len(running) < max(1, n_procs):
                job = pending.pop(0)
                parent, child = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_grouped, args=(target, child) + tuple(job),
                                   daemon=False)
                proc.start()
                child.close()
                running[parent] = (job, proc, time.monotonic())
            for conn in wait(list(running), timeout=0.2):
                job, proc, start = running.pop(conn)
                try:
                    reply = conn.recv()
                except EOFError:  # the process died without an answer (killed, out of memory)
                    proc.join(timeout=5)  # its exit code is only known once it is reaped
                    reply = f"worker exited ({proc.exitcode})"
                _finish(job, reply, start, proc, conn, on_done)
            now = time.monotonic()
            for conn, (job, proc, start) in list(running.items()):
                limit = limit_of(job)
                if now - start > limit + (kill_grace(limit) if GRACE is None else GRACE):
                    _kill(proc)
                    del running[conn]
                    _finish(job, "timeout", start, proc, conn, on_done)
    finally:
        for _, proc, _ in running.values():
            _kill(proc)


def _grouped(target, conn, *args) -> None:
    """In the worker: lead a process group of its own, die with the batch, keep solvers off our
    stdout and stderr, then run the job."""
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    after_fork()
    silence_solvers()
    target(conn, *args)


def _kill(proc) -> None:
    """Kill a worker and whatever it started (its process group), or just it where no groups."""
    try:
        os.killpg(proc.pid, 9)
    except (AttributeError, OSError):
        proc.kill()


def _finish(job, reply, start, proc, conn, on_done) -> None:
    seconds = time.monotonic() - start
    proc.join(timeout=5)
    conn.close()
    on_done(job, reply, seconds)


def _work(conn, row: Row, backend: str, limit: float) -> None:
    """In the worker process: answer one instance, send (status, backend, message, exact)."""
    try:
        res = verify_files(row.onnx, row.vnnlib, backend, limit)
        conn.send((str(res.status), res.backend or backend, res.message.splitlines()[0]
                   if res.message else "", bool(res.exact)))
    except NnirError as exc:
        conn.send(("error", backend, exc.render().splitlines()[0], None))
    except Exception as exc:  # a bug: reported in the row, the batch goes on
        conn.send(("error", backend, f"internal error: {type(exc).__name__}: {exc}", None))
    finally:
        conn.close()


def run_batch(rows: list[Row], jobs: int = 1, scale: float = 1.0, backend: str = "auto",
              on_done=None) -> list[Row]:
    """Run every row, at most `jobs` at once; `on_done(row)` is called as each finishes."""
    def done(job, reply, seconds) -> None:
        row = job[0]
        if reply == "timeout":
            reply = ("timeout", backend, "killed past its limit", None)
        elif isinstance(reply, str):
            reply = ("error", backend, reply, None)
        row.status, row.backend, row.message, row.exact = reply
        if row.status not in ("sat", "unsat"):
            row.exact = None
        row.seconds = seconds
        if on_done:
            on_done(row)

    run_pool([(r, backend, r.timeout * scale) for r in rows], jobs, _work, lambda j: j[2], done)
    return rows


def csv_text(rows: list[Row]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        if r.status:
            w.writerow([r.instance, r.status, f"{r.seconds:.3f}", r.backend, r.onnx, r.vnnlib,
                        f"{r.timeout:g}", {True: "yes", False: "no"}.get(r.exact, "")])
    return out.getvalue()


def _progress(rows: list[Row], row: Row, tty: bool) -> str:
    done = [r for r in rows if r.status]
    counts = {v: sum(r.status == v for r in done) for v in ("sat", "unsat", "timeout")}
    other = len(done) - sum(counts.values())
    width = 24
    bar = "#" * (width * len(done) // len(rows))
    line = (f"[{bar:<{width}}] {len(done)}/{len(rows)}  sat {counts['sat']}  unsat "
            f"{counts['unsat']}  timeout {counts['timeout']}  other {other}  | {row.instance}: "
            f"{row.status} {row.seconds:.1f}s")
    return ("\r\033[K" + line) if tty else line + "\n"


def _json_row(r: Row) -> dict:
    row = dict(r.__dict__)
    del row["exact"]  # not in the nnir/1 schema's batch rows (yet)
    return row


def cmd_batch(args) -> int:
    check_backend_name(args.backend)
    rows = read_instances(args.file)
    if not rows:
        raise InputFileError(f"instance list '{args.file}' has no rows")
    tty = sys.stderr.isatty()

    def done(row):
        if not args.json:
            sys.stderr.write(_progress(rows, row, tty))
            sys.stderr.flush()
        write_text(args.output, csv_text(rows))

    run_batch(rows, args.jobs, args.timeout_scale, args.backend, done)
    if tty and not args.json:
        sys.stderr.write("\n")
    write_text(args.output, csv_text(rows))
    if args.json:
        print_json(document("batch", file=args.file, output=args.output,
                            results=[_json_row(r) for r in rows]))
    else:
        counts = {v: sum(r.status == v for r in rows) for v in
                  ("sat", "unsat", "timeout", "unknown", "error")}
        print(f"{len(rows)} instances: " + ", ".join(f"{n} {v}" for v, n in counts.items())
              + f"; {sum(r.seconds for r in rows):.1f} s in all; results in {args.output}")
        for r in rows:
            if r.status == "error":
                print(f"  {r.instance}: {r.message}")
    return 3 if any(r.status == "error" for r in rows) else 0
