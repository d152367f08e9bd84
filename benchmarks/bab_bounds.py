"""The `bab` backend (ReLU-split branch and bound) on VNN-COMP 2022 mnist_fc instances: verdicts
against the official ones, seconds and sub-problems bounded, per instance, and medians.

Each instance is read from the gzipped benchmark (`../shared/benchmarks/vnncomp2022/mnist_fc`,
unpacked into a temporary folder), then answered in this process by
`nnir.formats.vnncomp.solve_problems(..., backend="bab", timeout=T)`. The table has one row per
instance (network, property, expected, verdict, ok: `WRONG` when a verdict contradicts the
official one, seconds, sub-problems bounded, how they were closed), then solved / wrong counts
and the median seconds of the solved ones; the CSV goes to `benchmarks/results/bab_<label>.csv`.

    python benchmarks/bab_bounds.py                           # 256x2 eps 0.03, first 5 of x4, x6
    python benchmarks/bab_bounds.py --nets 256x2 --first 15 --timeout 60 --label quick
    python benchmarks/bab_bounds.py --only prop_6_0.03 --nets 256x2
    python benchmarks/bab_bounds.py --nets 256x4,256x6 --eps 0.05 --first 256x4=5,256x6=5
    python benchmarks/bab_bounds.py --option crown=false          # the forward-interval bounds

The machines here are shared (2 cores); times are one run each.
"""
from __future__ import annotations

import argparse
import gzip
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import RESULTS, print_table, write_csv

import nnir.backends.bab.bab_backend  # noqa: F401  (imported up front: not timed)
from nnir.formats.vnncomp import read_network, solve_problems
from nnir.formats.vnnlib import read_vnnlib

DATA = (Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks" / "vnncomp2022"
        / "mnist_fc")
FIELDS = ["network", "property", "expected", "verdict", "ok", "seconds", "bounded", "closed",
          "message"]


def instances(nets: list[str], first: dict, only: set, eps: str = "") -> list[dict]:
    """Rows of expected.csv for the networks asked (and the radius `eps`, when given), the first
    `first[net]` of each."""
    rows = [line.split(",") for line in (DATA / "expected.csv").read_text().split("\n")[1:]
            if line.strip()]
    out, seen = [], {}
    for onnx, vnnlib, _limit, want, *_ in rows:
        net = Path(onnx).name.replace("mnist-net_", "").replace(".onnx", "")
        prop = Path(vnnlib).stem
        if net not in nets or (only and prop not in only) or (eps and not prop.endswith(eps)):
            continue
        seen[net] = seen.get(net, 0) + 1
        if seen[net] > first.get(net, 10 ** 9):
            continue
        out.append({"network": net, "property": prop, "expected": want,
                    "onnx": DATA / (onnx + ".gz"), "vnnlib": DATA / (vnnlib + ".gz")})
    return out


def _gunzip(src: Path, folder: Path) -> str:
    dst = folder / src.name[:-3]
    if not dst.exists():
        with gzip.open(src, "rb") as f, open(dst, "wb") as g:
            shutil.copyfileobj(f, g)
    return str(dst)


def run_one(inst: dict, folder: Path, timeout: float, options: dict) -> dict:
    """Answer one instance; its table row."""
    net = read_network(_gunzip(inst["onnx"], folder))
    problems = read_vnnlib(_gunzip(inst["vnnlib"], folder), net)
    t = time.monotonic()
    res = solve_problems(problems, inst["property"], backend="bab", timeout=timeout, **options)
    sec = time.monotonic() - t
    # `combine` keeps the regions' messages (not their info): read the counts from the message
    msg = res.message or ""
    bounded = sum(int(n) for n in re.findall(r"(\d+) sub-problems bounded", msg))
    closed = "; ".join(re.findall(r"sub-problems bounded, ([^;]*)", msg))[:120]
    wrong = res.status in ("sat", "unsat") and res.status != inst["expected"]
    return {"network": inst["network"], "property": inst["property"],
            "expected": inst["expected"], "verdict": res.status,
            "ok": "WRONG" if wrong else "", "seconds": round(sec, 2),
            "bounded": bounded, "closed": closed,
            "message": msg.split("\n")[0][:300]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nets", default="256x2,256x4,256x6")
    ap.add_argument("--first", default="256x2=15,256x4=5,256x6=5",
                    help="how many instances of each network, in expected.csv's order")
    ap.add_argument("--only", default="", help="comma-separated property names")
    ap.add_argument("--eps", default="", help="only this radius, e.g. 0.05")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--label", default="mnist_fc")
    ap.add_argument("--option", action="append", default=[],
                    help="backend option KEY=VALUE (repeatable), e.g. crown=false")
    args = ap.parse_args()
    first = {k: int(v) for k, v in (p.split("=") for p in args.first.split(",") if p)}
    options = {}
    for kv in args.option:
        k, v = kv.split("=", 1)
        options[k] = {"true": True, "false": False}.get(v.lower(), v)
        if isinstance(options[k], str):
            try:
                options[k] = float(v) if "." in v else int(v)
            except ValueError:
                pass
    todo = instances(args.nets.split(","), first, set(filter(None, args.only.split(","))),
                     args.eps)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for inst in todo:
            row = run_one(inst, Path(tmp), args.timeout, options)
            rows.append(row)
            print(" ".join(f"{k}={row[k]}" for k in FIELDS[:8]), flush=True)
    print()
    print_table([{k: r[k] for k in FIELDS[:8]} for r in rows])
    for net in args.nets.split(","):
        mine = [r for r in rows if r["network"] == net]
        solved = [r for r in mine if r["verdict"] in ("sat", "unsat")]
        wrong = [r for r in mine if r["ok"] == "WRONG"]
        med = statistics.median([r["seconds"] for r in solved]) if solved else float("nan")
        print(f"{net}: {len(solved)}/{len(mine)} solved, {len(wrong)} wrong, median "
              f"{med:.1f} s over the solved")
    path = RESULTS / f"bab_{args.label}.csv"
    write_csv(path, rows, FIELDS)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
