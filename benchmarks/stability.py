"""Stable ReLUs and exact compression on MNIST networks (issue 4): ISA vs the per-neuron baseline.

    python benchmarks/stability.py [--nets 2x20_l1_1e-3,...] [--domains full,local]
                                   [--runs 3] [--baseline-cap 300] [--quick]

Networks: the MNIST classifiers of `../shared/benchmarks/stability` (2x20, 2x50, 2x100, with and
without L1) plus a 5x100 L1 network trained by `train_mnist_deep.py` (cached). Domains: `full`
is [0,1]^784 with 10,000 training images as data; `local` is the L-infinity ball of radius 0.05
around test image 0, intersected with [0,1], with 1,000 uniform points of the ball as data.

Per case it reports: ReLUs; stable ReLUs proven by IBP, by the default pipeline (IBP + symbolic)
and with the LP pass added; neurons the data show unstable; stable found by ISA (data, passes,
one MILP; `stable ... using` with method `isa`, median time of `--runs` runs); the full
per-neuron baseline (Tjeng et al.: after the same bound passes, max and min of every other
neuron's pre-activation by its own MILP, no data, no sharing of arg-max points; one run); their
time ratio; whether the two stable sets are identical (the benchmark fails if they differ); and
the exact compression (LEO++) of the ISA sets: neurons and weight entries removed. A baseline
stopped by `--baseline-cap` seconds reports its ratio as a lower bound (">=") and is compared
with ISA on the neurons it did decide. Writes `benchmarks/results/stability.csv`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, print_table, write_csv  # noqa: E402

import nnir  # noqa: E402
from nnir.passes.compress import compress_with_report  # noqa: E402
from nnir.passes.interval import IntervalBounds  # noqa: E402
from nnir.passes.lp import LpBounds  # noqa: E402
from nnir.passes.manager import PassManager, default_pipeline  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks" / "stability"
NETS = ["2x20_nol1", "2x20_l1_1e-3", "2x50_nol1", "2x50_l1_1e-3", "2x100_nol1",
        "2x100_l1_1e-3", "5x100_l1_1e-3"]
RADIUS = 0.05


def load_net(tag: str, lo, hi):
    if tag.startswith("5x100"):
        from train_mnist_deep import ensure

        path = ensure(log=lambda m: print(m, file=sys.stderr))
    else:
        path = SHARED / f"mnist_{tag}.npz"
    d = np.load(path)
    n = sum(1 for k in d.files if k.startswith("W"))
    layers = [(d[f"W{k}"], d[f"b{k}"], "relu" if k < n else "linear") for k in range(1, n + 1)]
    return nnir.network("m", layers, lo, hi)


def domain(kind: str, mnist, rng):
    """(lo, hi, data points) of a domain."""
    if kind == "full":
        return 0, 1, mnist["x_train"][:10000].astype(np.float64) / 255.0
    x0 = mnist["x_test"][0].astype(np.float64) / 255.0
    lo, hi = np.clip(x0 - RADIUS, 0, 1), np.clip(x0 + RADIUS, 0, 1)
    return lo, hi, np.vstack([x0, rng.uniform(lo, hi, size=(1000, 784))])


def count_stable(net) -> int:
    return int(sum((s != 0).sum() for k, s in net.facts.stable.items()
                   if net.layer(k).act == "relu"))


def sets_of(res) -> dict:
    return {k: (tuple(t["active"]), tuple(t["inactive"]))
            for k, t in res.info["stable"].items()}


def compare_decided(base, res) -> tuple[int, int]:
    """How many neurons the baseline decided (active, inactive or unstable) ISA classifies the
    same way, and how many it classifies differently (a capped baseline decides only some)."""
    agree = differ = 0
    for k, t in base.info["stable"].items():
        mine = res.info["stable"][k]
        for kind in ("active", "inactive", "unstable"):
            got, open_ = set(mine[kind]), set(mine["undecided"])  # undecided: no verdict
            agree += sum(i in got for i in t[kind])
            differ += sum(i not in got and i not in open_ for i in t[kind])
    return agree, differ


def run_case(tag: str, kind: str, mnist, args, tmp: Path) -> dict:
    rng = np.random.default_rng(0)
    lo, hi, X = domain(kind, mnist, rng)
    net = load_net(tag, lo, hi)
    relus = sum(lay.size for lay in net.layers if lay.act == "relu")
    data_path = tmp / f"{tag}_{kind}.npz"
    np.savez(data_path, x=X, y=np.zeros(len(X), dtype=np.int64))
    prog = nnir.program(net, datasets=f'data d = npz "{data_path}" x "x" y "y"',
                        queries="stable m as isa using d\nstable m as base")
    ibp = count_stable(PassManager([IntervalBounds()]).run(net))
    sym_net = default_pipeline().run(net)
    t = time.perf_counter()
    lp = count_stable(PassManager([LpBounds()]).run(sym_net))
    lp_s = time.perf_counter() - t
    times, res = [], None
    for _ in range(args.runs):
        t = time.perf_counter()
        res = nnir.solve(prog, "isa", backend="highs", timeout=args.timeout, method="isa",
                         **({"lp": False} if args.no_lp else {}))  # default: LP when needed
        times.append(time.perf_counter() - t)
        if times[-1] > 60:  # long runs are not repeated (their noise is small in proportion)
            break
    isa_s = statistics.median(times)
    how = [h for t_ in res.info["stable"].values() for h in t_["how"].values()]
    isa_stable = sum(len(a) + len(b) for a, b in sets_of(res).values())
    undecided = sum(len(t_["undecided"]) for t_ in res.info["stable"].values())
    row = {"net": tag, "domain": kind, "relus": relus, "ibp": ibp,
           "symbolic": count_stable(sym_net), "lp": lp, "lp_s": f"{lp_s:.1f}",
           "data_unstable": how.count("data"), "search_unstable": how.count("search"),
           "isa_stable": isa_stable,
           "isa_decided": how.count("isa"), "undecided": undecided,
           "isa_s": f"{isa_s:.2f}"}
    if args.baseline_cap > 0:
        t = time.perf_counter()
        base = nnir.solve(prog, "base", backend="highs", timeout=args.baseline_cap,
                          method="per-neuron", full=True, lp=not args.no_lp)
        base_s = time.perf_counter() - t
        capped = any(t_["undecided"] for t_ in base.info["stable"].values())
        ratio = base_s / isa_s
        agree, differ = compare_decided(base, res)
        row.update(base_s=f"{base_s:.1f}", ratio=(">=" if capped else "") + f"{ratio:.0f}",
                   same_sets=f"{agree} agree, {differ} differ (capped)" if capped else
                   str(sets_of(base) == sets_of(res)))
        if differ or (not capped and sets_of(base) != sets_of(res)):
            print(f"ERROR: ISA and per-neuron stable sets differ on {tag} {kind}",
                  file=sys.stderr)
            row["same_sets"] = "DIFFER"
    stable = {k: np.zeros(net.layer(k).size, dtype=np.int8) for k in res.info["stable"]}
    for k, (act, inact) in sets_of(res).items():
        stable[k][list(act)] = 1
        stable[k][list(inact)] = -1
    _, changes = compress_with_report(net, stable)
    row["neurons_removed"] = sum(c.neurons_removed for c in changes if c.name != net.output)
    row["weights_removed"] = sum(c.connections_removed for c in changes)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--domains", default="full,local")
    ap.add_argument("--runs", type=int, default=3, help="ISA runs per case (median time)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per ISA run")
    ap.add_argument("--baseline-cap", type=float, default=300,
                    help="seconds for the per-neuron baseline per case (0: skip it)")
    ap.add_argument("--quick", action="store_true", help="2x20 networks only, 1 run")
    ap.add_argument("--no-lp", action="store_true",
                    help="without the LP bound pass (by default ISA and the baseline both run it)")
    ap.add_argument("--out", default="stability.csv", help="CSV name under benchmarks/results")
    args = ap.parse_args()
    if not SHARED.exists():
        sys.exit(f"missing {SHARED}: the shared benchmark data is needed")
    nets = args.nets.split(",")
    if args.quick:
        nets, args.runs = [n for n in nets if n.startswith("2x20")], 1
    mnist = np.load(SHARED / "mnist_uint8.npz")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for tag in nets:
            for kind in args.domains.split(","):
                print(f"... {tag} {kind}", file=sys.stderr, flush=True)
                rows.append(run_case(tag, kind, mnist, args, Path(tmp)))
                print(rows[-1], file=sys.stderr, flush=True)
    print_table(rows)
    for kind in args.domains.split(","):
        ratios = [float(r["ratio"].lstrip(">=")) for r in rows
                  if "ratio" in r and r["domain"] == kind]
        if ratios:
            print(f"median ISA speed-up over the per-neuron baseline, {kind} domain: "
                  f"{statistics.median(ratios):.0f}x over {len(ratios)} networks "
                  f"(a '>=' case counts its lower bound)")
    write_csv(RESULTS / args.out, rows, list(rows[0]))
    print(f"wrote {RESULTS / args.out}")
    if any(r.get("same_sets") == "DIFFER" for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
