"""VNN-COMP benchmarks through `nnirc batch`: solved, wrong and time per benchmark against the
2022 verdicts, next to what every 2022 tool solved of the same instances.

A benchmark is a folder with the competition's `instances.csv` (onnx,vnnlib,timeout) and an
`expected.csv`: `../shared/benchmarks/vnncomp2022/<name>` (columns onnx, vnnlib, timeout,
expected, solved_by_sat, solved_by_unsat: who reported what in 2022) or
`../shared/benchmarks/acasxu` (network, property, expected; no per-tool columns). The chosen
instances (`--select`, `--limit`) are written to an instance list and run by `nnirc batch` (one
process per instance, killed max(1.5 s, 4%) past its limit), `--jobs` at once, each with its own
timeout times `--scale`. Networks and properties are read gzipped as shipped.

Per benchmark the table gives: instances run; solved (sat + unsat answers); sat; unsat, and how
many of those are exact (rest on no floating-point tolerance); wrong (a verdict contradicting
`expected`: printed loudly, exit status 1); unchecked (answered where no 2022 tool was, so
nothing to check against); timeout/unknown; error; the median seconds of the solved ones and
the total seconds of all.
A second table counts, for each 2022 tool, the instances it solved correctly among THE SAME
instances (so a subset compares fairly), and Marabou run here (same instances, same limits,
in killable processes) when `maraboupy` is importable (`pip install maraboupy`; or give the
Python of another environment that has it: `--marabou-python`).

    python benchmarks/vnncomp.py mnist_fc --backend bab --select 3      # every 3rd instance
    python benchmarks/vnncomp.py acasxu --limit 10 --scale 0.5 --jobs 2
    python benchmarks/vnncomp.py mnist_fc acasxu --select 3:1 --no-marabou
    python benchmarks/vnncomp.py --list                                 # the benchmarks found

Results: `benchmarks/results/vnncomp_<tag>.csv` (one row per instance) and
`vnncomp_<tag>_summary.csv`; `<tag>` is `--tag`, default `<benchmarks>_<backend>`. The instance
list and `nnirc batch`'s own CSV (kept as it goes: an interrupted run keeps what it finished) are
in `benchmarks/cache/`; `--reuse CSV` tabulates such a CSV again without running nnir (to add
the Marabou column, or merge runs). Timings are wall-clock on the machine the script runs on;
the table's note gives its load average.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import RESULTS, print_table, write_csv

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "benchmarks"
WORK = ROOT / "benchmarks" / "cache"  # the instance list and nnirc batch's own CSV (ignored)
SOLVED = ("sat", "unsat")


@dataclass
class Instance:
    name: str
    onnx: str
    vnnlib: str
    timeout: float
    expected: str = ""  # sat, unsat or "" (no 2022 tool solved it / not known here)
    by_sat: set = field(default_factory=set)  # 2022 tools that reported sat
    by_unsat: set = field(default_factory=set)
    verdict: str = ""
    seconds: float = 0.0
    exact: str = ""
    message: str = ""
    marabou: str = ""
    marabou_seconds: float = 0.0


def benchmarks() -> dict[str, Path]:
    """Benchmark folders found under ../shared/benchmarks, by name."""
    found = {}
    if (SHARED / "acasxu" / "instances.csv").is_file():
        found["acasxu"] = SHARED / "acasxu"
    for folder in sorted((SHARED / "vnncomp2022").glob("*/instances.csv")):
        found[folder.parent.name] = folder.parent
    return found


def packed(path: Path) -> str:
    """The path, or `path.gz` when only the compressed file is there (as shipped)."""
    gz = path.with_name(path.name + ".gz")
    return str(gz if not path.exists() and gz.is_file() else path)


def stem(path: str) -> str:
    base = os.path.basename(path)
    return os.path.splitext(base[:-3] if base.endswith(".gz") else base)[0]


def load(folder: Path) -> list[Instance]:
    """The instances of a benchmark folder, in list order, with the 2022 verdicts."""
    rows = [r for r in csv.reader(open(folder / "instances.csv")) if r and r[0].strip()]
    expected = list(csv.DictReader(open(folder / "expected.csv")))
    if expected and "network" in expected[0]:  # acasxu: one row per instance, same order
        want = {(e["network"], e["property"]): (e["expected"], "", "") for e in expected}
    else:
        want = {(stem(e["onnx"]), stem(e["vnnlib"])): (e["expected"], e["solved_by_sat"],
                                                      e["solved_by_unsat"]) for e in expected}
    out = []
    for onnx, vnnlib, limit in ((r[0].strip(), r[1].strip(), r[2].strip()) for r in rows):
        key = (stem(onnx), stem(vnnlib))
        exp, by_sat, by_unsat = want.get(key, ("", "", ""))
        out.append(Instance(f"{key[0]}-{key[1]}", packed(folder / onnx), packed(folder / vnnlib),
                            float(limit), exp, set(by_sat.split()), set(by_unsat.split())))
    return out


def select(insts: list[Instance], spec: str | None, limit: int | None) -> list[Instance]:
    """`spec`: `K` (every K-th, from the first), `K:O` (every K-th from index O, 0-based), or
    indices and ranges `0,5,10-19`; then the first `limit` of those."""
    if spec:
        if "," in spec or "-" in spec:
            keep = set()
            for part in spec.split(","):
                a, _, b = part.partition("-")
                keep.update(range(int(a), int(b or a) + 1))
            insts = [x for k, x in enumerate(insts) if k in keep]
        else:
            k, _, offset = spec.partition(":")
            insts = insts[int(offset or 0)::int(k)]
    return insts[:limit] if limit else insts


def limit_of(x: Instance, scale: float, cap: float | None) -> float:
    """The time limit an instance runs under: its timeout times `scale`, at most `cap`."""
    t = x.timeout * scale
    return t if cap is None else min(t, cap)


def run_nnir(insts: list[Instance], tag: str, backend: str, scale: float, jobs: int,
             work: Path = WORK, reuse: Path | None = None, cap: float | None = None) -> None:
    """Run the instances through `nnirc batch` (`reuse`: read the results CSV of an earlier
    run instead); fill in verdict, seconds, exact."""
    listing = work / f"vnncomp_{tag}_instances.csv"
    out = reuse or work / f"vnncomp_{tag}_batch.csv"
    work.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"{x.onnx},{x.vnnlib},{limit_of(x, scale, cap):g}\n"
                               for x in insts))
    cmd = [sys.executable, "-m", "nnir", "batch", str(listing), "--backend", backend,
           "--jobs", str(jobs), "-o", str(out)]
    if reuse:
        print(f"reusing {out} (--reuse): nnir not run", flush=True)
    else:
        print("$ " + " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # progress: our stderr
        print(proc.stdout, end="", flush=True)
        if proc.returncode not in (0, 3):  # 3: some rows are errors, shown in the table
            print(f"note: nnirc batch exited with status {proc.returncode}", file=sys.stderr)
    if not out.is_file():
        sys.exit(f"no nnirc batch results in {out}")
    got = {r["instance"]: r for r in csv.DictReader(open(out))}
    for x in insts:
        r = got.get(x.name)
        if r:
            x.verdict, x.seconds, x.exact = r["verdict"], float(r["seconds"]), r.get("exact", "")


# ---------------------------------------------------------------------------- Marabou (optional)
# Run by `--marabou-python` (default: this Python) in a child process, so that a Marabou in
# another virtual environment works too; the pool kills the child's process group at the limit.
MARABOU_RUN = """
import sys
from maraboupy import Marabou
net = Marabou.read_onnx(sys.argv[1])
opts = Marabou.createOptions(timeoutInSeconds=int(sys.argv[3]), verbosity=0)
code, _, _ = net.solve(propertyFilename=sys.argv[2], options=opts, verbose=False)
print("RESULT", str(code).lower())
"""


def marabou_available(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import maraboupy"], capture_output=True,
                              timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _marabou_work(conn, inst: Instance, limit: float, python: str) -> None:
    """In a worker process: Marabou on one instance (default options, one worker)."""
    try:
        with tempfile.TemporaryDirectory(prefix="nnir-marabou-") as tmp:
            paths = []
            for p in (inst.onnx, inst.vnnlib):  # Marabou reads no .gz files
                if p.endswith(".gz"):
                    plain = os.path.join(tmp, os.path.basename(p)[:-3])
                    with gzip.open(p, "rb") as src, open(plain, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    p = plain
                paths.append(p)
            run = subprocess.run([python, "-c", MARABOU_RUN, *paths, str(max(1, int(limit)))],
                                 capture_output=True, text=True)
        lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
        conn.send(lines[-1].split()[1] if lines else
                  f"error: exit {run.returncode}: {run.stderr.strip()[-200:]}")
    except Exception as exc:  # Marabou refusing a network is a result, not our failure
        conn.send(f"error: {type(exc).__name__}: {exc}")
    finally:
        conn.close()


def run_marabou(insts: list[Instance], scale: float, jobs: int, python: str,
                cap: float | None = None) -> None:
    from nnir.formats.batch import run_pool

    def done(job, reply, seconds) -> None:
        inst = job[0]
        inst.marabou = reply
        if reply not in ("sat", "unsat", "timeout", "unknown"):
            inst.marabou = "error" if reply.startswith(("error", "worker")) else "unknown"
        inst.marabou_seconds = seconds
        print(f"  marabou {inst.name}: {inst.marabou} {seconds:.1f}s"
              + (f" ({reply})" if inst.marabou == "error" else ""), file=sys.stderr, flush=True)

    run_pool([(x, limit_of(x, scale, cap), python) for x in insts], jobs, _marabou_work,
             lambda j: j[1], done)


# ---------------------------------------------------------------------------------- the tables
def correct(verdict: str, expected: str) -> str:
    """yes / no (a wrong answer) / ? (nothing known to check it against) / "" (no verdict)."""
    if verdict not in SOLVED:
        return ""
    if not expected:
        return "?"
    return "yes" if verdict == expected else "no"


def summary(bench: str, insts: list[Instance], backend: str, marabou: bool) -> dict:
    solved = [x for x in insts if x.verdict in SOLVED]
    row = {"benchmark": bench, "backend": backend, "instances": len(insts),
           "solved": len(solved),
           "sat": sum(x.verdict == "sat" for x in insts),
           "unsat": sum(x.verdict == "unsat" for x in insts),
           "unsat exact": sum(x.verdict == "unsat" and x.exact == "yes" for x in insts),
           "wrong": sum(correct(x.verdict, x.expected) == "no" for x in insts),
           "unchecked": sum(correct(x.verdict, x.expected) == "?" for x in insts),
           "timeout/unknown": sum(x.verdict in ("timeout", "unknown") for x in insts),
           "error": sum(x.verdict == "error" for x in insts),
           "median s": f"{statistics.median(x.seconds for x in solved):.1f}" if solved else "-",
           "total s": f"{sum(x.seconds for x in insts):.0f}"}
    if any(not x.verdict for x in insts):
        row["not run"] = sum(not x.verdict for x in insts)
    if marabou:
        msolved = [x for x in insts if x.marabou in SOLVED]
        row["marabou solved"] = len(msolved)
        row["marabou wrong"] = sum(correct(x.marabou, x.expected) == "no" for x in insts)
        row["marabou median s"] = (f"{statistics.median(x.marabou_seconds for x in msolved):.1f}"
                                   if msolved else "-")
    return row


def tools_row(bench: str, insts: list[Instance], nnir_name: str, marabou: bool) -> dict:
    """Instances solved correctly by nnir and by every 2022 tool, of these same instances
    (`N (+w wrong)` when a tool also answered some wrongly)."""
    tools = sorted(set().union(*(x.by_sat | x.by_unsat for x in insts)) if insts else set())
    row = {"benchmark": bench, "instances": len(insts),
           "known": sum(bool(x.expected) for x in insts),
           nnir_name: sum(correct(x.verdict, x.expected) == "yes" for x in insts)}
    if marabou:
        row["Marabou (here)"] = sum(correct(x.marabou, x.expected) == "yes" for x in insts)
    for t in tools:
        ok = sum(bool(x.expected) and t in (x.by_sat if x.expected == "sat" else x.by_unsat)
                 for x in insts)
        bad = sum(bool(x.expected) and t in (x.by_unsat if x.expected == "sat" else x.by_sat)
                  for x in insts)
        row[t] = f"{ok}" + (f" (+{bad} wrong)" if bad else "")
    return row


def main(argv=None) -> int:
    found = benchmarks()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", nargs="*", help="benchmark names or folders (default: mnist_fc "
                    "and acasxu); --list shows those found")
    ap.add_argument("--backend", default="auto", help="nnir backend (default auto)")
    ap.add_argument("--limit", type=int, help="only the first N instances (after --select)")
    ap.add_argument("--select", help="K: every K-th instance; K:O: every K-th from index O; "
                    "or indices 0,5,10-19 (0-based, list order)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every timeout by F")
    ap.add_argument("--cap", type=float, metavar="S", help="at most S seconds per instance "
                    "(after --scale): the competition's 300-1800 s limits, bounded for a run "
                    "on one machine")
    ap.add_argument("--jobs", type=int, default=1, help="instances run at once (default 1)")
    ap.add_argument("--no-marabou", action="store_true",
                    help="no Marabou column even when maraboupy is installed")
    ap.add_argument("--marabou-python", default=sys.executable,
                    help="the Python that has maraboupy (default: this one)")
    ap.add_argument("--tag", help="results file names: vnncomp_TAG.csv (default: benchmarks "
                    "and backend)")
    ap.add_argument("--reuse", type=Path, metavar="CSV", help="take nnir's verdicts from the "
                    "results CSV of an earlier run (benchmarks/cache/vnncomp_TAG_batch.csv) "
                    "instead of running it, e.g. to add the Marabou column; read after Marabou "
                    "ran; instances it lacks count as not run")
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="folder for the CSVs (default benchmarks/results)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks found and exit")
    args = ap.parse_args(argv)
    if args.list:
        for name, folder in found.items():
            print(f"{name}: {len(load(folder))} instances in {folder}")
        return 0
    names = args.bench or [b for b in ("mnist_fc", "acasxu") if b in found]
    if not names:
        sys.exit(f"no benchmarks found under {SHARED}")
    folders = {}
    for b in names:
        folder = found.get(b) or Path(b)
        if not (folder / "instances.csv").is_file():
            sys.exit(f"unknown benchmark '{b}': give one of {', '.join(found)} or a folder with "
                     "instances.csv and expected.csv")
        folders[folder.name] = folder
    tag = args.tag or "+".join(folders) + f"_{args.backend}"
    use_marabou = not args.no_marabou and marabou_available(args.marabou_python)
    load_start, start = os.getloadavg()[0], time.time()

    per_bench = {b: select(load(f), args.select, args.limit) for b, f in folders.items()}
    every = [x for insts in per_bench.values() for x in insts]
    work = WORK if args.results == RESULTS else args.results
    if not args.reuse:
        run_nnir(every, tag, args.backend, args.scale, args.jobs, work, cap=args.cap)
    if use_marabou:
        print("Marabou on the same instances ...", file=sys.stderr, flush=True)
        run_marabou(every, args.scale, args.jobs, args.marabou_python, args.cap)
    if args.reuse:
        run_nnir(every, tag, args.backend, args.scale, args.jobs, work, args.reuse,
                 cap=args.cap)

    nnir_name = f"nnir {args.backend}"
    rows = [summary(b, insts, args.backend, use_marabou) for b, insts in per_bench.items()]
    tools = [tools_row(b, insts, nnir_name, use_marabou) for b, insts in per_bench.items()]
    print()
    print_table(rows)
    print("\ninstances solved correctly, of the same instances (`known`: those with a 2022 "
          "verdict):")
    for t in tools:  # one table per benchmark: the tools differ
        print_table([t])
    load_end = os.getloadavg()[0]
    ran = ("Marabou" if use_marabou else "nothing") if args.reuse else (
        "nnir" + (" and Marabou" if use_marabou else ""))
    print(f"\nnote: {time.time() - start:.0f} s wall-clock running {ran}, --jobs {args.jobs}, "
          f"timeouts x {args.scale:g}" + (f", at most {args.cap:g} s" if args.cap else "") +
          f"; load average {load_start:.1f} at the start, "
          f"{load_end:.1f} at the end on {os.cpu_count()} cores")
    if args.reuse:
        print(f"note: nnir's verdicts and times from an earlier run: {args.reuse}")
    if not use_marabou:
        print("note: Marabou column left out: " + (
            "--no-marabou" if args.no_marabou else
            "maraboupy is not installed (pip install maraboupy)"))
    if any(not x.by_sat and not x.by_unsat for x in every if x.expected):
        print("note: acasxu's expected.csv names no tools: its 2022 tool columns are empty")

    fields = ["benchmark", "instance", "timeout", "expected", "verdict", "correct", "seconds",
              "exact", "marabou", "marabou_seconds", "solved_by_sat", "solved_by_unsat",
              "onnx", "vnnlib"]
    out_rows = [{"benchmark": b, "instance": x.name, "timeout": x.timeout,
                 "expected": x.expected, "verdict": x.verdict,
                 "correct": correct(x.verdict, x.expected), "seconds": f"{x.seconds:.2f}",
                 "exact": x.exact, "marabou": x.marabou,
                 "marabou_seconds": f"{x.marabou_seconds:.2f}" if x.marabou else "",
                 "solved_by_sat": " ".join(sorted(x.by_sat)),
                 "solved_by_unsat": " ".join(sorted(x.by_unsat)),
                 "onnx": os.path.relpath(x.onnx, ROOT), "vnnlib": os.path.relpath(x.vnnlib, ROOT)}
                for b, insts in per_bench.items() for x in insts]
    write_csv(args.results / f"vnncomp_{tag}.csv", out_rows, fields)
    write_csv(args.results / f"vnncomp_{tag}_summary.csv", rows, list(rows[0]))
    print(f"wrote {args.results / f'vnncomp_{tag}.csv'} and vnncomp_{tag}_summary.csv")

    wrong = [(b, x) for b, insts in per_bench.items() for x in insts
             if correct(x.verdict, x.expected) == "no"]
    for b, x in wrong:
        print(f"\n!!! WRONG ANSWER on {b} {x.name}: nnir says {x.verdict}, 2022 verdict "
              f"{x.expected}\n!!! reproduce: nnirc verify {x.onnx} {x.vnnlib} --backend "
              f"{args.backend} --timeout {limit_of(x, args.scale, args.cap):g}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
