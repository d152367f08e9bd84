"""Time to 100% training accuracy against network size, after Ison's "SMT Solvers for Neural
Network Training" (figures 4 and 5), on this machine.

Networks 3-h-2 and 3-h-h-2 (all weights and biases unknown) are trained on `sphere_planes` data
(two planes, rule `and`: 200 points with min_gap 0.05, and 1000 points with min_gap 0.01) with
margin 0.01 by: the naive encoding (z3, encoding="naive", every weight a real unknown, QF_NRA),
the best exact route per backend (z3, cvc5, highs with encoding auto: the sign-normalised
encoding where it applies), and the numeric trainers sgd and admm. For each size, the median
time over `--seeds` data seeds (an unsolved run counts as the timeout) and how many were solved
(status sat, replayed exactly by nnir). Sizes grow until a method has a timeout (or an error)
at a size; it is not run at larger sizes. A numeric trainer that gives up early (unknown, its
iteration budget spent) counts as unsolved but does not stop the growth. Prints a table (with
the speed-up over the naive z3 encoding at the same size), writes
benchmarks/results/train_scaling.csv and a log-log plot train_scaling.png (when matplotlib is
installed).

    python benchmarks/train_scaling.py --quick            # a small subset, < 3 minutes
    python benchmarks/train_scaling.py                    # the full sweep (hours at timeout 60)
    python benchmarks/train_scaling.py --methods highs,sgd --archs 3-h-2 --points 200
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, print_table, write_csv  # noqa: E402

import nnir  # noqa: E402

# method -> (backend, options)
METHODS = {
    "z3-naive": ("z3", {"encoding": "naive"}),
    "z3": ("z3", {}),
    "cvc5": ("cvc5", {}),
    "highs": ("highs", {}),
    "sgd": ("sgd", {}),
    "admm": ("admm", {}),
}
# hidden widths tried per architecture, smallest first
SIZES = {
    "3-h-2": [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024],
    "3-h-h-2": [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64],
}
DATASETS = {200: 0.05, 1000: 0.01}
# A train query that found weights: `trained` (earlier results files, before per-kind statuses,
# say `sat`).
SOLVED = ("trained", "sat")
QUICK = {"sizes": {"3-h-2": [3, 4, 16, 64], "3-h-h-2": [2, 4, 8]}, "seeds": 1, "timeout": 8.0,
         "points": [200]}


def weights(arch: str, h: int) -> int:
    """Unknown weights and biases of 3-h-2 or 3-h-h-2."""
    return 3 * h + h + 2 * h + 2 if arch == "3-h-2" else 3 * h + h + h * h + h + 2 * h + 2


def program(arch: str, h: int, n: int, gap: float, seed: int):
    hidden = f"relu h[{h}] = unknown x + unknown\n"
    last = "h"
    if arch == "3-h-h-2":
        hidden += f"  relu g[{h}] = unknown h + unknown\n"
        last = "g"
    return nnir.parse(f"""net n {{ input x[3] in [-1, 1]
  {hidden}  linear y[2] = unknown {last} + unknown }}
data d = sphere_planes(n={n}, dim=3, planes=2, rule=and, seed={seed}, min_gap={gap})
train n on d margin 0.01""")


def run_one(method, arch, h, n, gap, seed, timeout):
    backend, opts = METHODS[method]
    prog = program(arch, h, n, gap, seed)
    t0 = time.perf_counter()
    try:
        r = nnir.solve(prog, backend=backend, timeout=timeout, **opts)
        status, info = str(r.status), dict(r.info or {})
    except Exception as e:  # an option a backend does not take yet, a solver crash ...
        status, info = "error", {"error": f"{type(e).__name__}: {e}"}
    wall = time.perf_counter() - t0
    return {"arch": arch, "points": n, "min_gap": gap, "hidden": h, "weights": weights(arch, h),
            "method": method, "seed": seed, "status": status, "seconds": round(wall, 3),
            "encoding": info.get("encoding", ""), "note": info.get("error", "")}


def summarise(rows, timeout):
    """One line per (arch, points, weights, method): median seconds, solved count, speed-up."""
    groups = {}
    for r in rows:
        groups.setdefault((r["arch"], r["points"], r["weights"], r["method"]), []).append(r)
    med = {}
    for key, rs in groups.items():
        ts = [r["seconds"] if r["status"] in SOLVED else timeout for r in rs]
        solved = sum(r["status"] in SOLVED for r in rs)
        med[key] = (statistics.median(ts), solved, len(rs), rs)
    table = []
    for (arch, n, w, m), (t, solved, total, rs) in med.items():
        base = med.get((arch, n, w, "z3-naive"))
        if m == "z3-naive" or base is None:
            ratio = "-" if m != "z3-naive" else "1"
        elif base[1] * 2 <= base[2]:  # naive unsolved at the median: a lower bound
            ratio = f">{base[0] / t:.0f}" if solved * 2 > total else "-"
        else:
            ratio = f"{base[0] / t:.1f}" if solved * 2 > total else f"<{base[0] / t:.2f}"
        statuses = sorted({r["status"] for r in rs if r["status"] not in SOLVED})
        table.append({"arch": arch, "points": n, "weights": w, "method": m,
                      "median s": f"{t:.2f}" if solved * 2 > total else f">{timeout:g}",
                      "solved": f"{solved}/{total}", "vs z3-naive": ratio,
                      "encoding": rs[0]["encoding"], "other": ",".join(statuses)})
    return table


def plot(path, table, timeout):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print(f"(matplotlib is not installed: {path.name} not drawn; pip install matplotlib)")
        return
    panels = sorted({(r["arch"], r["points"]) for r in table})
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    for ax, (arch, n) in zip(axes[0], panels):
        for ci, m in enumerate(METHODS):
            pts = [(r["weights"], float(r["median s"])) for r in table
                   if (r["arch"], r["points"], r["method"]) == (arch, n, m)
                   and not r["median s"].startswith(">")]
            if pts:
                xs, ys = zip(*sorted(pts))
                ax.plot(xs, ys, "o-", label=m, markersize=4, color=f"C{ci}")
        ax.axhline(timeout, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("weights (biases included)")
        ax.set_ylabel("median seconds to 100% train accuracy")
        ax.set_title(f"{arch}, {n} points", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small subset (< 3 minutes)")
    ap.add_argument("--seeds", type=int, default=None, help="data seeds per size (5; quick 1)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per run (60; quick 8)")
    ap.add_argument("--methods", default=",".join(METHODS), help="subset of " + ",".join(METHODS))
    ap.add_argument("--archs", default="3-h-2,3-h-h-2")
    ap.add_argument("--points", default=None, help="comma list of 200, 1000 (both; quick 200)")
    ap.add_argument("--max-weights", type=int, default=None, help="skip larger networks")
    ap.add_argument("--widths", default=None,
                    help="comma list of hidden widths to run (e.g. 256; default all)")
    ap.add_argument("--out", type=Path, default=RESULTS / "train_scaling.csv")
    args = ap.parse_args(argv)
    seeds = args.seeds or (QUICK["seeds"] if args.quick else 5)
    timeout = args.timeout or (QUICK["timeout"] if args.quick else 60.0)
    points = ([int(p) for p in args.points.split(",")] if args.points
              else QUICK["points"] if args.quick else list(DATASETS))
    sizes = QUICK["sizes"] if args.quick else SIZES
    if args.widths:
        sizes = {a: [int(w) for w in args.widths.split(",")] for a in SIZES}
    rows = []
    t_start = time.perf_counter()
    for arch in args.archs.split(","):
        for n in points:
            for method in args.methods.split(","):
                for h in sizes[arch]:
                    if args.max_weights and weights(arch, h) > args.max_weights:
                        break
                    batch = [run_one(method, arch, h, n, DATASETS[n], s, timeout)
                             for s in range(seeds)]
                    rows += batch
                    solved = sum(r["status"] in SOLVED for r in batch)
                    ts = [r["seconds"] for r in batch]
                    print(f"{arch:8s} n={n:5d} w={weights(arch, h):6d} {method:9s} "
                          f"solved {solved}/{seeds} median {statistics.median(ts):7.2f} s "
                          f"[{', '.join(sorted({r['status'] for r in batch}))}]"
                          + (f" {batch[0]['note']}" if batch[0]["note"] else ""), flush=True)
                    write_csv(args.out, rows, list(rows[0]))
                    if any(r["status"] in ("timeout", "error") or r["seconds"] >= timeout
                           for r in batch):  # the first timeout at a size: stop growing
                        break
    table = summarise(rows, timeout)
    print(f"\ntime to 100% training accuracy (margin 0.01), median of {seeds} data seed(s), "
          f"timeout {timeout:g} s, {time.perf_counter() - t_start:.0f} s in all:")
    print_table(table)
    print(f"wrote {args.out}")
    plot(args.out.with_suffix(".png"), table, timeout)


if __name__ == "__main__":
    main()
