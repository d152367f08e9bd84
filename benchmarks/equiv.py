"""`equiv` benchmarks, three suites (`--suite`):

scaling (default): relation inference against the solver route on a random ReLU MLP and its
4-way tensor-parallel version (Megatron style, `nnir.passes.shard`), as width and depth grow.

For each depth d and width w: the MLP 16-w-...-w-4 (d hidden layers, float64 weights ~ N(0, 1),
biases ~ N(0, 0.5), inputs in [-1, 1]), sharded 4 ways; the `equiv` query is answered
- by relation inference (`method=relations`): the inference time alone and the whole query
  (bound passes included), median over `--runs` runs;
- by the solver route (`method=solver`, HiGHS then an exact SMT confirmation when small, no
  sampling), capped at `--timeout` seconds; once it times out at some width for a depth, the
  wider networks of that depth are not run (reported as `>T (skipped)`).
Every answer is checked: inference must say "equivalent"; the solver may say equivalent or
time out, never "not equivalent".

    python benchmarks/equiv.py                       # widths 4..1024, depths 2,4,8, 60 s cap
    python benchmarks/equiv.py --quick               # widths 16,64; depths 2,4; 10 s cap

region: sharded networks that differ from the sequential one only on a small region of the box
(`nnir.passes.region_bugs`: 4 inputs, width 16, depth 2 and 3, every bug kind, `--seeds` seeds
each, and correct pairs), each answered as `nnirc equiv` would (method auto, backend auto,
`--timeout` s). Columns: the verdict and time, the share of 200,000 random points where the
networks differ (float64; 0 for a harmless bug), and the `before` verdict and time when a CSV
of an earlier run is given (`--before FILE`: this suite run by an older nnir, e.g. with
PYTHONPATH pointing at a checkout of it).

    python benchmarks/equiv.py --suite region --seeds 3 --timeout 60

tp-bug: a single-weight bug in one shard of the 4-way tensor-parallel D x W MLP (`--sizes`,
default 1024x8: 16 inputs, 4 outputs), answered with `--timeout` s: wall and CPU time (the CPU
time shows the work on a loaded machine), peak memory, and what found and replayed the
difference.

    python benchmarks/equiv.py --suite tp-bug --sizes 1024x8 --timeout 30

Run by an older nnir (PYTHONPATH at a checkout of it, with `nnir/passes/region_bugs.py` copied
in), either suite writes the CSV that `--before` reads.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, print_table, save_plot, write_csv  # noqa: E402

import nnir  # noqa: E402
from nnir.ir.nodes import Equiv, Program  # noqa: E402
from nnir.passes.shard import shard_network  # noqa: E402
from nnir.queries.run import run_query  # noqa: E402


def mlp(width: int, depth: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = [16] + [width] * depth + [4]
    layers = [(rng.normal(size=(sizes[k + 1], sizes[k])), 0.5 * rng.normal(size=sizes[k + 1]),
               "relu" if k < depth else "linear") for k in range(depth + 1)]
    return nnir.network("mlp", layers, lo=-1, hi=1)


def answer(a, b, method: str, timeout: float | None, sample: bool = False):
    q = Equiv("q", a.name, b.name)
    prog = Program(networks=(a, b), queries=(q,))
    start = time.perf_counter()
    res = run_query(prog, q, "auto", timeout=timeout, method=method, sample=sample)
    return res, time.perf_counter() - start


def _before(args, key: str) -> dict:
    """Rows of an earlier run's CSV (`--before`), by `key`."""
    if not args.before:
        return {}
    import csv

    with open(args.before) as fh:
        return {r[key]: r for r in csv.DictReader(fh)}


def region(args) -> None:
    from nnir.ir.evaluate import evaluate_batch
    from nnir.passes.region_bugs import standard_pairs

    before = _before(args, "pair")
    rows = []
    X = np.random.default_rng(0).uniform(-1, 1, size=(200_000, 4))
    for name, a, b, info in standard_pairs(args.seeds):
        gap = np.abs(evaluate_batch(a, X)[a.output] - evaluate_batch(b, X)[b.output]).max(1)
        cpu = time.process_time()
        res, secs = answer(a, b, "auto", args.timeout, sample=True)
        cpu = time.process_time() - cpu
        status = str(res.status)
        if status == "differs":
            assert res.replay["exact"], res.render()
        if info["kind"] is None:
            assert status != "differs", f"{name}: a difference in equal networks"
        row = {"pair": name, "bug": info.get("edit", "none"),
               "differing_share": f"{(gap > 1e-9).mean():.2g}", "verdict": status,
               "by": res.backend or "", "time_s": f"{secs:.2f}", "cpu_s": f"{cpu:.2f}"}
        if before:
            old = before.get(name, {})
            row.update(before_verdict=old.get("verdict", "-"), before_s=old.get("time_s", "-"))
        rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    print()
    print_table(rows)
    out = Path(args.out if args.out_given else RESULTS / "equiv_region.csv")
    write_csv(out, rows, list(rows[0]))
    print(f"wrote {out}")


def tp_bug(args) -> None:
    import resource

    from nnir.passes.region_bugs import edit

    before = _before(args, "size")
    rows = []
    for size in args.sizes.split(","):
        width, depth = (int(v) for v in size.split("x"))
        a = mlp(width, depth)
        b = shard_network(a, args.ways, name="mlp_tp_bug")
        b = edit(b, "h2_p1", "weight", (5, 10), lambda v: v + 0.5)
        cpu = time.process_time()
        res, secs = answer(a, b, "auto", args.timeout, sample=True)
        cpu = time.process_time() - cpu
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append({"size": f"{depth} x {width}", "verdict": str(res.status),
                     "by": res.backend or "", "time_s": f"{secs:.2f}", "cpu_s": f"{cpu:.2f}",
                     "timeout_s": f"{args.timeout:g}",
                     "peak_rss_mb": f"{rss:.0f}",
                     "certified": res.certified or res.message})
        if before:
            old = before.get(rows[-1]["size"], {})
            rows[-1].update({f"before_{k}": old.get(k, "-")
                             for k in ("verdict", "time_s", "cpu_s", "peak_rss_mb")})
        print(rows[-1], flush=True)
    print()
    print_table(rows)
    out = Path(args.out if args.out_given else RESULTS / "equiv_tp_bug.csv")
    write_csv(out, rows, list(rows[0]))
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=("scaling", "region", "tp-bug"), default="scaling")
    ap.add_argument("--seeds", type=int, default=3, help="region: seeds per bug kind and depth")
    ap.add_argument("--before", help="region, tp-bug: CSV of the same suite run by an older "
                    "nnir")
    ap.add_argument("--sizes", default="1024x8", help="tp-bug: WIDTHxDEPTH,...")
    ap.add_argument("--widths", default="4,16,64,256,1024")
    ap.add_argument("--depths", default="2,4,8")
    ap.add_argument("--ways", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3, help="runs of relation inference (median)")
    ap.add_argument("--timeout", type=float, default=60.0, help="cap of the solver route (s)")
    ap.add_argument("--no-skip", action="store_true",
                    help="run the solver at every size, even after it timed out on a smaller one")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "equiv.csv"))
    args = ap.parse_args()
    args.out_given = any(a.startswith("--out") for a in sys.argv[1:])
    if args.suite == "region":
        return region(args)
    if args.suite == "tp-bug":
        return tp_bug(args)
    if args.quick:
        args.widths, args.depths, args.timeout, args.runs = "16,64", "2,4", 10.0, 2
    widths = [int(w) for w in args.widths.split(",")]
    depths = [int(d) for d in args.depths.split(",")]
    rows, series = [], {}
    for depth in depths:
        solver_dead = False
        for width in widths:
            a = mlp(width, depth)
            b = shard_network(a, args.ways, name="mlp_tp")
            inf_s, tot_s = [], []
            for _ in range(args.runs):
                res, secs = answer(a, b, "relations", None)
                assert res.status == "equivalent" and res.backend == "relations", res.message
                inf_s.append(res.info["relations_s"])
                tot_s.append(secs)
            if solver_dead:
                solver, s_status = None, "skipped"
            else:
                sres, solver = answer(a, b, "solver", args.timeout)
                s_status = str(sres.status)
                assert s_status != "differs", "the solver found a difference in equal networks"
                if s_status != "equivalent" and not args.no_skip:
                    solver_dead = True
            inf, tot = statistics.median(inf_s), statistics.median(tot_s)
            ok = s_status == "equivalent"
            rows.append({
                "depth": depth, "width": width, "neurons": depth * width,
                "inference_s": f"{inf:.3f}", "query_s": f"{tot:.3f}",
                "solver_s": f"{solver:.2f}" if ok else f">{args.timeout:g}",
                "solver_status": s_status + (f" ({sres.info.get('proven_by', '')})"
                                             if ok else ""),
                "solver/query": f"{solver / tot:.1f}x" if ok else f">{args.timeout / tot:.0f}x",
            })
            print(f"depth {depth} width {width}: inference {inf:.3f}s, query {tot:.3f}s, "
                  f"solver {s_status} {'' if solver is None else f'{solver:.1f}s'}", flush=True)
            series.setdefault(f"inference, depth {depth}", ([], []))
            series[f"inference, depth {depth}"][0].append(width)
            series[f"inference, depth {depth}"][1].append(tot)
            if ok:
                series.setdefault(f"solver, depth {depth}", ([], []))
                series[f"solver, depth {depth}"][0].append(width)
                series[f"solver, depth {depth}"][1].append(solver)
    print()
    print_table(rows)
    out = Path(args.out)
    write_csv(out, rows, list(rows[0]))
    print(f"wrote {out}")
    save_plot(out.with_suffix(".png"), series, "width", "seconds",
              f"equiv of an MLP and its {args.ways}-way tensor-parallel version "
              f"(solver capped at {args.timeout:g} s)", markers=True)


if __name__ == "__main__":
    main()
