"""ACAS Xu (VNN-COMP 2022 instances on networks 1_1 .. 1_9): verdicts, wrong answers and times
per backend, against the published ground truth.

Each instance runs in its own process (`nnir.formats.vnncomp.verify_files`, what `nnirc verify
NET.onnx PROP.vnnlib` runs) with the instance's limit (116 s, times `--scale`), killed
max(1.5 s, 4% of the limit) past it (`nnir.cli_common.kill_grace`), with whatever it
started. Backends:

    split       input splitting (`--backend split`; what `auto` now picks for few inputs)
    portfolio   split and the MILP/SMT plan racing in two processes (`--backend portfolio`)
    auto-milp   `auto` as it was before input splitting: HiGHS, then cvc5 re-decides an unsat
                with at most 24 unstable ReLUs (else the unsat rests on MILP tolerances)

The table gives, per backend: instances run, solved (sat + unsat), sat, unsat (`inexact`: those
resting on MILP tolerances), timeouts, other (unknown/error), wrong answers against
`expected.csv`, total and median seconds, and the ratio of median times against the baseline
(`--baseline`, default auto-milp) on the instances both ran. With `--repeat N` each instance runs
N times and its median time counts (a verdict that changes between runs is reported).

    python benchmarks/acasxu.py                                # split and portfolio, all 39
    python benchmarks/acasxu.py --backends auto-milp --props 1 # the old auto, property 1 only
    python benchmarks/acasxu.py --backends split --props 1,2 --scale 0.25 --jobs 2
    python benchmarks/acasxu.py --all --backends auto --out benchmarks/results/acasxu_all.csv

`--all` runs the full VNN-COMP 2022 list (186 instances: properties 1-4 on all 45 networks and
six more); only the 39 on networks 1_x have published verdicts here, so "wrong" counts those.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from common import RESULTS, print_table, save_plot, write_csv

from nnir.formats.batch import run_pool

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks" / "acasxu"
BACKENDS = {"split": ("split", {}), "portfolio": ("portfolio", {}),
            "auto-milp": ("auto", {"auto_split": False}), "auto": ("auto", {}),
            "bab": ("bab", {})}
# The VNN-COMP 2022 list (SOURCE.md): properties 1-4 on all 45 networks, then these six.
EXTRA = [("1_1", 5), ("1_1", 6), ("1_9", 7), ("2_9", 8), ("3_3", 9), ("4_5", 10)]
FIELDS = ["backend", "network", "property", "expected", "verdict", "correct", "seconds",
          "repeat", "exact", "winner", "message"]


def instances(data: Path, props, nets) -> list[dict]:
    """The rows of instances.csv with their expected verdicts, filtered."""
    rows = [line.split(",") for line in (data / "instances.csv").read_text().split()]
    exp = [line.split(",") for line in (data / "expected.csv").read_text().split()[1:]]
    out = []
    for (onnx, vnnlib, limit), (net, prop, want) in zip(rows, exp):
        assert Path(onnx).stem == net and Path(vnnlib).stem == prop, (onnx, net)
        short = net.split("_", 2)[2].replace("_batch_2000", "")
        if (props and prop.split("_")[1] not in props) or (nets and short not in nets):
            continue
        out.append({"onnx": str(data / onnx), "vnnlib": str(data / vnnlib),
                    "limit": float(limit), "network": short, "property": prop,
                    "expected": want})
    return out


def all_instances(data: Path, props, nets) -> list[dict]:
    """The full VNN-COMP 2022 list of 186 instances (116 s each). Verdicts are known (and
    checked) for networks 1_x only (`expected.csv`); the others are kept for independent
    evaluation, so their `expected` is "?" and only the answers' own certificates (exact
    replay of every witness, exact unsat) stand behind them."""
    known = {(r["network"], r["property"]): r for r in instances(data, set(), set())}
    pairs = [(f"{a}_{b}", p) for p in (1, 2, 3, 4) for a in range(1, 6) for b in range(1, 10)]
    out = []
    for net, p in sorted(pairs + EXTRA, key=lambda t: (t[0], t[1])):
        prop = f"prop_{p}"
        if (props and str(p) not in props) or (nets and net not in nets):
            continue
        want = known.get((net, prop), {}).get("expected", "?")
        out.append({"onnx": str(data / "onnx" / f"ACASXU_run2a_{net}_batch_2000.onnx"),
                    "vnnlib": str(data / "vnnlib" / f"{prop}.vnnlib"), "limit": 116.0,
                    "network": net, "property": prop, "expected": want})
    return out


def _work(conn, key, inst: dict, backend: str, options: dict, limit: float) -> None:
    """In the worker process: answer one instance, send (verdict, exact, message)."""
    from nnir.formats.vnncomp import verify_files

    try:
        res = verify_files(inst["onnx"], inst["vnnlib"], backend, limit, **options)
        msg = res.message.splitlines()[0] if res.message else ""
        won = res.certified.split("won by ")[1].strip("')") if "won by" in res.certified else ""
        conn.send((str(res.status), res.exact,
                   f"won by '{won}'; {msg}" if won else msg))
    except Exception as exc:  # one instance's failure is a row, not the end of the run
        conn.send(("error", False, f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def run_all(jobs: list[tuple], n_procs: int, on_done) -> None:
    """Run (key, inst, backend, options, limit) jobs, at most `n_procs` at once (the pool of
    `nnirc batch`: each in its own process group, killed `GRACE` s past its limit)."""
    def done(job, reply, seconds) -> None:
        if reply == "timeout":
            reply = ("timeout", False, "killed past its limit")
        elif isinstance(reply, str):
            reply = ("error", False, reply)
        on_done(job, reply, seconds)

    run_pool(jobs, n_procs, _work, lambda job: job[4], done)


def summary(rows: list[dict], names: list[str], baseline: str) -> list[dict]:
    """One table row per backend (per-instance median time over repeats)."""
    out = []
    per = {}
    for name in names:
        mine = [r for r in rows if r["backend"] == name]
        inst = {}
        for r in mine:
            inst.setdefault((r["network"], r["property"]), []).append(r)
        per[name] = {k: statistics.median(float(r["seconds"]) for r in v) for k, v in inst.items()}
        last = [v[-1] for v in inst.values()]
        verdicts = [r["verdict"] for r in last]
        flaky = sum(len({r["verdict"] for r in v}) > 1 for v in inst.values())
        times = list(per[name].values())
        out.append({"backend": name, "run": len(last),
                    "solved": sum(v in ("sat", "unsat") for v in verdicts),
                    "sat": verdicts.count("sat"), "unsat": verdicts.count("unsat"),
                    "inexact": sum(r["verdict"] == "unsat" and r["exact"] == "no" for r in last),
                    "timeout": verdicts.count("timeout"),
                    "other": sum(v not in ("sat", "unsat", "timeout") for v in verdicts),
                    "wrong": sum(r["correct"] == "WRONG" for r in mine),
                    "total s": f"{sum(times):.1f}",
                    "median s": f"{statistics.median(times):.2f}" if times else "-",
                    "flaky": flaky})
    for row in out:
        common = sorted(set(per[row["backend"]]) & set(per.get(baseline, {})))
        if common and row["backend"] != baseline:
            a = statistics.median(per[row["backend"]][k] for k in common)
            b = statistics.median(per[baseline][k] for k in common)
            row[f"vs {baseline}"] = f"{b / a:.1f}x on {len(common)}" if a > 0 else "-"
        else:
            row[f"vs {baseline}"] = "-"
    return out


def cactus(rows: list[dict], names: list[str], path: Path) -> None:
    series = {}
    for name in names:
        t = sorted(float(r["seconds"]) for r in rows
                   if r["backend"] == name and r["verdict"] in ("sat", "unsat"))
        series[name] = (list(range(1, len(t) + 1)), t)
    save_plot(path, series, "instances solved", "seconds (each)",
              f"ACAS Xu ({len(rows) // max(1, len(names))} instances): cactus plot",
              logx=False, logy=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backends", default="split,portfolio",
                    help=f"comma-separated, of: {', '.join(BACKENDS)}")
    ap.add_argument("--props", default="", help="only these properties, e.g. 1,2")
    ap.add_argument("--nets", default="", help="only these networks, e.g. 1_1,1_9")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every time limit")
    ap.add_argument("--jobs", type=int, default=1, help="instances at once (processes)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per instance (median time)")
    ap.add_argument("--baseline", default="auto-milp")
    ap.add_argument("--data", default=str(DATA), help="the acasxu folder")
    ap.add_argument("--all", action="store_true",
                    help="the full VNN-COMP 2022 list (186 instances; verdicts known for 1_x)")
    ap.add_argument("--out", default=str(RESULTS / "acasxu.csv"))
    args = ap.parse_args(argv)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in names if b not in BACKENDS]
    if bad or not Path(args.data, "instances.csv").exists():
        print(f"unknown backends {bad}" if bad else f"no ACAS Xu data in {args.data}",
              file=sys.stderr)
        return 2
    insts = (all_instances if args.all else instances)(
        Path(args.data), set(args.props.split(",")) - {""}, set(args.nets.split(",")) - {""})
    jobs = [((name, rep, k), inst, *BACKENDS[name], inst["limit"] * args.scale)
            for name in names for rep in range(args.repeat) for k, inst in enumerate(insts)]
    rows: list[dict] = []
    start = time.monotonic()

    def done(job, got, seconds):
        (name, rep, _), inst = job[0], job[1]
        verdict, exact, msg = got
        correct = "-" if verdict not in ("sat", "unsat") or inst["expected"] == "?" else (
            "yes" if verdict == inst["expected"] else "WRONG")
        winner = msg.split("'")[1] if name == "portfolio" and (
            "answered first" in msg or "won by" in msg) else ""
        rows.append({"backend": name, "network": inst["network"], "property": inst["property"],
                     "expected": inst["expected"], "verdict": verdict, "correct": correct,
                     "seconds": f"{seconds:.2f}", "repeat": rep, "winner": winner,
                     "exact": "yes" if exact else "no", "message": msg[:160]})
        print(f"[{len(rows)}/{len(jobs)}] {name:9s} {inst['network']} {inst['property']}: "
              f"{verdict} ({inst['expected']}) {seconds:.2f}s {winner}"
              + ("  WRONG" if correct == "WRONG" else ""), file=sys.stderr, flush=True)
        write_csv(Path(args.out), rows, FIELDS)

    run_all(jobs, max(1, args.jobs), done)
    print(f"\nACAS Xu, {len(insts)} instances ({sum(i['expected'] != '?' for i in insts)} "
          f"with known verdicts), limit {args.scale:g} x 116 s, {args.jobs} at "
          f"once, {args.repeat} run(s) each; {time.monotonic() - start:.0f} s in all:")
    print_table(summary(rows, names, args.baseline))
    write_csv(Path(args.out), rows, FIELDS)
    cactus(rows, names, Path(args.out).with_suffix(".png"))
    print(f"wrote {args.out}")
    return 1 if any(r["correct"] == "WRONG" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
