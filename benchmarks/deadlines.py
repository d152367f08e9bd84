"""Do time limits hold? Hard instances of every query kind and backend, run with short limits.

    python benchmarks/deadlines.py [--limits 2,5] [--modes cli,api] [--only SUBSTR] [--quick]

Issue 11: `--timeout T` is a promise: the command returns within T + max(2 s, 5% of T), for
every backend and query kind, and leaves no child process behind. Each instance is run

* through the `nnirc` command line (`nnirc run FILE --query Q --backend B --timeout T`, a
  subprocess in its own session): the wall time of the whole command (start-up and file
  reading included), then a scan of /proc for any process still in the command's session;
* in-process (`api`): `run_query(prog, q, backend, timeout=T)` in a fresh Python process, the
  wall time of that call alone (no `nnirc` backstop: the query's own deadline must hold).

Instances (built in a temporary folder from `../shared/benchmarks`, or generated): ACAS Xu
1_9 with property 2 (unsat, hard for every verify backend); ACAS Xu under a thin slab of `where`
constraints and with contradictory output atoms (trivially unsat: answered, not timed out);
exact bounds of the MNIST 2x50 classifier; the stable analysis of the 2x50 L1 one; compress of
784-16-16-10 MNIST networks (the first 16 neurons of each hidden layer of the 2x20 classifiers,
without and with L1: nothing and some neurons stable) and of the 2x50 L1 one; an equivalence of
the 2x50 network with a copy that differs by a hair (relations cannot decide; the solver must);
training a 4-16-2 network on 400 XOR points with a margin none of the trainers reaches quickly.

Prints a table (instance, kind, backend, mode, limit, wall, overrun, allowed, status, ok) and
the worst overrun per backend; writes `benchmarks/results/deadlines.csv`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, print_table, write_csv  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "benchmarks"
NNIRC = [sys.executable, "-m", "nnir"]


@dataclass
class Case:
    name: str
    kind: str
    query: str
    backends: list[str]
    flags: list[str] = field(default_factory=list)  # extra nnirc flags (and run_query options)
    options: dict = field(default_factory=dict)


def allowed(limit: float) -> float:
    """The promised overrun: max(2 s, 5% of T)."""
    return max(2.0, 0.05 * limit)


# ----------------------------------------------------------------------------- instances
def _npz_net(name: str, path: Path, arrays: dict, lo, hi, n_in: int) -> str:
    np.savez(path, **arrays)
    n = sum(1 for k in arrays if k.startswith("W"))
    lines = [f"net {name} {{", f"  input x[{n_in}] in [{lo}, {hi}]"]
    src = "x"
    for k in range(1, n + 1):
        act, nm = ("relu", f"h{k}") if k < n else ("linear", "y")
        size = arrays[f"W{k}"].shape[0]
        lines.append(f'  {act} {nm}[{size}] = load "{path.name}"["W{k}"] {src} + '
                     f'load "{path.name}"["b{k}"]')
        src = nm
    return "\n".join(lines + ["}"])


def build(work: Path) -> tuple[Path, list[Case]]:
    """Write the instances' `.nnir` file (and weights) under `work`; the cases to run."""
    parts, cases = [], []
    acas = SHARED / "acasxu" / "onnx" / "ACASXU_run2a_1_9_batch_2000.onnx"
    prop2 = SHARED / "acasxu" / "vnnlib" / "prop_2.vnnlib"
    verify_backends = ["z3", "cvc5", "pysmt", "highs", "split", "portfolio", "auto"]
    if shutil.which("z3"):
        verify_backends.append("external")
    if acas.exists():
        parts.append(f'net acas = onnx "{acas}"')
        parts.append(f'verify acas as acas_p2 from vnnlib "{prop2}"')
        cases.append(Case("acas19_prop2", "verify", "acas_p2", verify_backends))
        # trivially unsat: the where constraints contradict each other
        parts.append(f'net acasb = onnx "{acas}" input in [-0.5, 0.5]')
        # trivially unsat: a thin slab of `where` constraints, contradictory output atoms
        parts.append("verify acasb as acas_slab where x[0] + x[1] >= 0.3, "
                     "x[0] + x[1] <= 0.29999: linear_7_Add[0] >= linear_7_Add[1]")
        parts.append("verify acasb as acas_contra: linear_7_Add[0] >= linear_7_Add[1] + "
                     "0.000001 and linear_7_Add[1] >= linear_7_Add[0]")
        cases.append(Case("acas19_thin_slab", "verify", "acas_slab", ["split", "auto", "z3"]))
        cases.append(Case("acas19_contradiction", "verify", "acas_contra",
                          ["split", "auto", "z3"]))
    stab = SHARED / "stability"
    if (stab / "mnist_2x50_nol1.npz").exists():
        d = np.load(stab / "mnist_2x50_nol1.npz")
        a50 = {k: d[k] for k in d.files}
        parts.append(_npz_net("m50", work / "m50.npz", a50, 0, 1, 784))
        b50 = dict(a50)
        b50["b3"] = a50["b3"] + 1e-12  # differs by a hair: relations are stuck
        parts.append(_npz_net("m50b", work / "m50b.npz", b50, 0, 1, 784))
        d20 = np.load(stab / "mnist_2x20_nol1.npz")
        a16 = {"W1": d20["W1"][:16], "b1": d20["b1"][:16], "W2": d20["W2"][:16, :16],
               "b2": d20["b2"][:16], "W3": d20["W3"][:, :16], "b3": d20["b3"]}
        parts.append(_npz_net("m16", work / "m16.npz", a16, 0, 1, 784))
        parts.append("bound m50.h2[0] as m50_bound method exact")
        cases.append(Case("mnist2x50_h2_0", "bound", "m50_bound", ["highs", "z3", "cvc5"]))
        d = np.load(stab / "mnist_2x50_l1_1e-3.npz")
        parts.append(_npz_net("m50l1", work / "m50l1.npz", {k: d[k] for k in d.files}, 0, 1,
                              784))
        d = np.load(stab / "mnist_2x20_l1_1e-3.npz")
        a16l1 = {"W1": d["W1"][:16], "b1": d["b1"][:16], "W2": d["W2"][:16, :16],
                 "b2": d["b2"][:16], "W3": d["W3"][:, :16], "b3": d["b3"]}
        parts.append(_npz_net("m16l1", work / "m16l1.npz", a16l1, 0, 1, 784))
        parts.append("stable m50l1 as m50l1_stable")
        cases.append(Case("mnist2x50_l1", "stable", "m50l1_stable", ["auto"]))
        parts.append("compress m16 as m16_small")
        cases.append(Case("mnist784x16x16", "compress", "m16_small", ["auto"]))
        parts.append("compress m16l1 as m16l1_small")
        cases.append(Case("mnist784x16x16_l1", "compress", "m16l1_small", ["auto"]))
        parts.append("compress m50l1 as m50l1_small")
        cases.append(Case("mnist2x50_l1", "compress", "m50l1_small", ["auto"]))
        parts.append("equiv m50 m50b as m50_same tol 1e-6")
        cases.append(Case("mnist2x50_hair", "equiv", "m50_same", ["highs", "z3", "cvc5"],
                          ["--method", "solver"], {"method": "solver"}))
    parts.append("net learner {\n  input x[4] in [-1, 1]\n"
                 "  relu h[16] = unknown in [-2, 2] x + unknown in [-2, 2]\n"
                 "  linear y[2] = unknown in [-2, 2] h + unknown in [-2, 2]\n}")
    parts.append("data xor4 = sphere_planes(n=400, dim=4, planes=3, rule=xor, seed=5, "
                 "min_gap=0.01)")
    parts.append("train learner as fit_xor on xor4 margin 0.5")
    cases.append(Case("xor4_16", "train", "fit_xor", ["z3", "cvc5", "highs", "sgd", "admm"]))
    path = work / "deadlines.nnir"
    path.write_text("\n\n".join(parts) + "\n")
    return path, cases


# ----------------------------------------------------------------------------- running
def session_members(sid: int) -> list[int]:
    """Pids of live processes in session `sid` (its leader included), from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields_ = stat[stat.rindex(")") + 2:].split()
        state, session = fields_[0], int(fields_[3])
        if session == sid and state != "Z":
            out.append(int(entry))
    return out


def run_cli(path: Path, case: Case, backend: str, limit: float, guard: float) -> dict:
    out = path.parent / f"res_{case.query}_{backend}_{limit:g}.json"
    cmd = [*NNIRC, case.kind, str(path), "--query", case.query, "--backend", backend,
           "--timeout", f"{limit:g}", "-o", str(out), *case.flags]
    start = time.monotonic()
    p = subprocess.Popen(cmd, cwd=path.parent, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = p.communicate(timeout=guard)
        killed = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        _, err = p.communicate()
        killed = True
    wall = time.monotonic() - start
    time.sleep(0.2)
    left = session_members(p.pid)
    for pid in left:  # report, then clean up what the command left behind
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    status, msg = "killed" if killed else "?", ""
    try:
        res = json.loads(out.read_text())
        r = res["results"][0] if isinstance(res, dict) and "results" in res else res[0]
        status, msg = r["status"], r.get("message", "")
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        msg = err.decode(errors="replace")[-300:]
    return {"wall": wall, "status": status, "left": len(left), "message": msg}


_INNER = """
import json, sys, time
import nnir
from nnir.queries.run import run_query
prog = nnir.load(sys.argv[1])
q = next(q for q in prog.queries if q.name == sys.argv[2])
opts = json.loads(sys.argv[5])
t = time.monotonic()
res = run_query(prog, q, sys.argv[3], timeout=float(sys.argv[4]), **opts)
wall = time.monotonic() - t
print(json.dumps({"wall": wall, "status": res.status, "message": res.message[:300]}))
"""


def run_api(path: Path, case: Case, backend: str, limit: float, guard: float) -> dict:
    """`run_query` in-process, in a fresh Python (so a runaway call cannot stop the table)."""
    env = dict(os.environ)  # (a child of its own may still guard a solver, as via the API)
    cmd = [sys.executable, "-c", _INNER, str(path), case.query, backend, f"{limit:g}",
           json.dumps(case.options)]
    p = subprocess.Popen(cmd, cwd=path.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True, env=env)
    start = time.monotonic()
    try:
        out, err = p.communicate(timeout=guard)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return {"wall": time.monotonic() - start, "status": "killed", "left": 0,
                "message": f"still running after {guard:g} s"}
    for pid in session_members(p.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        got = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"wall": float("nan"), "status": "error", "left": 0,
                "message": err.decode(errors="replace")[-300:]}
    return {**got, "left": 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limits", default="2,5", help="time limits in seconds (comma-separated)")
    ap.add_argument("--modes", default="cli,api", help="cli, api or both")
    ap.add_argument("--only", default="", help="run only cases whose name, kind, query or "
                    "backend contains this")
    ap.add_argument("--quick", action="store_true", help="one limit (2 s), command line only")
    args = ap.parse_args()
    limits = [2.0] if args.quick else [float(v) for v in args.limits.split(",")]
    modes = ["cli"] if args.quick else args.modes.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="nnir_deadlines_") as tmp:
        path, cases = build(Path(tmp))
        for case in cases:
            for backend in case.backends:
                tag = f"{case.name} {case.kind} {case.query} {backend}"
                if args.only and args.only not in tag:
                    continue
                for limit in limits:
                    for mode in modes:
                        guard = 3 * limit + 60
                        fn = run_cli if mode == "cli" else run_api
                        got = fn(path, case, backend, limit, guard)
                        over = got["wall"] - limit
                        ok = over <= allowed(limit) and got["left"] == 0 \
                            and got["status"] not in ("killed", "error", "?")
                        rows.append({"instance": case.name, "kind": case.kind,
                                     "backend": backend, "mode": mode, "limit": f"{limit:g}",
                                     "wall": f"{got['wall']:.2f}", "overrun": f"{over:+.2f}",
                                     "allowed": f"{allowed(limit):.1f}",
                                     "status": got["status"], "children_left": got["left"],
                                     "ok": "yes" if ok else "NO",
                                     "message": " ".join(got["message"].split())[:90]})
                        print(f"{tag} {mode} T={limit:g}: {got['wall']:.2f} s {got['status']}"
                              f"{'' if ok else '  <-- NOT OK'}", file=sys.stderr, flush=True)
    fields = ["instance", "kind", "backend", "mode", "limit", "wall", "overrun", "allowed",
              "status", "children_left", "ok"]
    print_table([{k: r[k] for k in fields} for r in rows])
    worst = {}
    for r in rows:
        key = (r["kind"] if r["kind"] != "verify" else "verify") + "/" + r["backend"]
        worst[key] = max(worst.get(key, -1e9), float(r["overrun"]))
    print("\nworst overrun per kind/backend (s):")
    print_table([{"kind/backend": k, "worst overrun": f"{v:+.2f}"} for k, v in worst.items()])
    bad = [r for r in rows if r["ok"] != "yes"]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} runs kept the promise")
    name = "deadlines.csv" if not args.only else "deadlines_only.csv"  # a part keeps the whole
    write_csv(RESULTS / name, rows, fields + ["message"])
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
