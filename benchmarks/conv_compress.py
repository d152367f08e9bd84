"""`stable`, `compress` and an exact `equiv` check on a VNN-COMP CIFAR conv network (issue 14).

The network (default oval21's cifar_base_kw) over an L-infinity ball of radius eps around a
point of the 1/255 grid (seed-chosen, not a CIFAR image), clipped to [0, 1]: `stable` and
`compress` with a time limit each, then `equiv original compressed` to check the compressed
network exactly (the compress query itself checks it on replayed points and with HiGHS).
Prints one table; CSV under benchmarks/results/conv_compress.csv.

    python benchmarks/conv_compress.py [--net PATH] [--eps 2/255] [--timeout 120] [--seed 0]
"""
from __future__ import annotations

import argparse
import csv
import os
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from nnir.formats.onnx_io import read_onnx, with_box
from nnir.ir.nodes import Compress, Equiv, Program, Stable
from nnir.queries.run import run_query

ROOT = Path(__file__).resolve().parent.parent
NET = ROOT / "../shared/benchmarks/vnncomp2022/oval21/onnx/cifar_base_kw.onnx.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", default=str(NET))
    ap.add_argument("--eps", default="2/255")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not Path(args.net).exists():
        raise SystemExit(f"{args.net} not found (../shared/benchmarks is not here)")
    net = read_onnx(args.net, "cifar")
    rng = np.random.default_rng(args.seed)
    center = [Fraction(int(v), 255) for v in rng.integers(0, 256, net.input.size)]
    eps = Fraction(args.eps)
    net = with_box(net, [max(Fraction(0), v - eps) for v in center],
                   [min(Fraction(1), v + eps) for v in center])
    prog = Program((net,), (), (Stable("s", net.name), Compress("k", net.name, "small")))
    rows = []
    t = time.time()
    st = run_query(prog, prog.queries[0], "auto", timeout=args.timeout)
    relus = sum(lay.size for lay in net.layers if lay.act == "relu")
    stable = sum(len(v.get("active", [])) + len(v.get("inactive", []))
                 for v in st.info.get("stable", {}).values() if isinstance(v, dict))
    rows.append(("stable", st.status, f"{time.time() - t:.1f}",
                 f"{stable} of {relus} ReLUs proven stable"))
    t = time.time()
    cp = run_query(prog, prog.queries[1], "auto", timeout=args.timeout)
    small = cp.trained
    rows.append(("compress", cp.status, f"{time.time() - t:.1f}",
                 (f"{sum(lay.size for lay in net.layers)} -> "
                  f"{sum(lay.size for lay in small.layers)} neurons; "
                  f"{cp.info.get('exact_points', '?')} points replayed equal")
                 if small is not None else cp.message.splitlines()[0]))
    if small is not None:
        both = Program((net, small), (), (Equiv("e", net.name, small.name),))
        t = time.time()
        eq = run_query(both, both.queries[0], "auto", timeout=args.timeout)
        rows.append(("equiv original compressed", eq.status, f"{time.time() - t:.1f}",
                     f"[{eq.backend}] " + (eq.certified or eq.message.splitlines()[0])))
    print(f"{Path(args.net).name}, eps {args.eps}, seed {args.seed}, limit {args.timeout:g} s "
          f"per query; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| query | status | s | what |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    out = ROOT / "benchmarks" / "results" / "conv_compress.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        csv.writer(fh).writerows([("query", "status", "seconds", "what"), *rows])


if __name__ == "__main__":
    main()
