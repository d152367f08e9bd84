"""Which SMT-LIB ReLU encoding should `nnirc emit` write by default? Time the z3 binary and cvc5
on every verify query of the examples and a few ACAS Xu instances, once per encoding.

    python benchmarks/emit_relu.py [--timeout S] [--acas N] [--csv OUT.csv]

Each script is exactly what `nnirc emit --format smtlib --relu ENC` writes (no get-value); z3 runs
as the binary (`z3 -T:S FILE`), cvc5 through its own SMT-LIB parser (the Python module's
InputParser, in a child process). Each run gets S seconds of CPU time (RLIMIT_CPU) and its CPU
time is reported, so a busy machine changes neither. A verdict is checked against nnir's own
answer (for ACAS Xu: expected.csv, which nnir's answers match).
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nnir
from nnir.backends.smtlib.lower import RELU_ENCODINGS, to_smtlib
from nnir.frontend import load
from nnir.queries.run import prepare

ROOT = Path(__file__).resolve().parents[1]
ACAS = ROOT.parent / "shared" / "benchmarks" / "acasxu"
# (network, property): sat and unsat ones with small input boxes (props 3, 4), then larger boxes.
ACAS_CASES = [("1_7", 3), ("1_1", 4), ("1_9", 4), ("1_1", 3), ("1_2", 2), ("1_1", 1)]
CVC5_RUN = ("import sys, cvc5\n"
            "tm = cvc5.TermManager(); s = cvc5.Solver(tm); sm = cvc5.SymbolManager(tm)\n"
            "p = cvc5.InputParser(s, sm)\n"
            "p.setFileInput(cvc5.InputLanguage.SMT_LIB_2_6, sys.argv[1])\n"
            "while not (c := p.nextCommand()).isNull():\n"
            "    sys.stdout.write(c.invoke(s, sm)); sys.stdout.flush()\n")


def expected() -> dict[str, str]:
    """The ACAS Xu ground truth (`expected.csv`; nnir agrees, see tests/test_split_acasxu.py)."""
    out = {}
    path = ACAS / "expected.csv"
    if path.exists():
        for row in csv.DictReader(open(path)):
            net = row["network"].replace("ACASXU_run2a_", "").replace("_batch_2000", "")
            out[f"acas_{net}:{row['property']}"] = row["expected"]
    return out


EXPECTED = expected()


def z3_cmd() -> list[str]:
    here = Path(sys.executable).parent / "z3"
    return [str(here) if here.exists() else (shutil.which("z3") or "z3")]


def run(argv: list[str], limit: float) -> tuple[str, float, int]:
    """Run a solver with `limit` seconds of CPU time (RLIMIT_CPU, so a busy machine does not
    change the verdicts); returns the verdict, the CPU seconds it used and its exit status."""
    def cap():
        resource.setrlimit(resource.RLIMIT_CPU, (math.ceil(limit), math.ceil(limit) + 1))

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20 * limit + 60,
                           preexec_fn=cap)
        out, rc = p.stdout, p.returncode
    except subprocess.TimeoutExpired:
        out, rc = "", -9
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    first = (out.split() or ["?"])[0]
    if first in ("sat", "unsat"):
        return first, cpu, rc
    return ("timeout" if cpu >= limit * 0.95 or rc < 0 else "unknown"), cpu, rc


def cases(acas: int):
    for f in sorted((ROOT / "examples").glob("*.nnir")):
        prog = load(str(f))
        for q in prog.queries:
            if q.kind == "verify":
                yield f"{f.stem}:{q.name}", prog, q
    for net, prop in ACAS_CASES[:acas]:
        text = (f'net acas = onnx "{ACAS}/onnx/ACASXU_run2a_{net}_batch_2000.onnx"\n'
                f'verify acas as p{prop} from vnnlib "{ACAS}/vnnlib/prop_{prop}.vnnlib"\n')
        prog = nnir.parse(text)
        for q in prog.queries:
            if q.kind == "verify":
                yield f"acas_{net}:prop_{prop}" + q.name[len(f"p{prop}"):], prog, q


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--acas", type=int, default=len(ACAS_CASES), help="ACAS Xu cases to run")
    ap.add_argument("--encodings", default=",".join(RELU_ENCODINGS))
    ap.add_argument("--csv", help="also write the rows here")
    ap.add_argument("--seeds", type=int, default=1, help="run z3 with smt.random_seed=0..N-1 "
                    "and show the median (z3's time on a sat query varies with the seed)")
    ap.add_argument("--only", default="", help="only the cases whose name contains this")
    args = ap.parse_args()
    encs = args.encodings.split(",")
    rows, tmp = [], tempfile.mkdtemp(prefix="emit-relu-")
    t = args.timeout
    print(f"{'query':34} {'nnir':6} " + " ".join(f"{'z3 ' + e:>13} {'cvc5 ' + e:>13}"
                                                for e in encs))
    for name, prog, q in cases(args.acas):
        if args.only not in name:
            continue
        expect = EXPECTED.get(name) or nnir.solve(prog, q, timeout=600).status
        problem = prepare(prog, q)
        cells = []
        for enc in encs:
            path = os.path.join(tmp, f"{name.replace(':', '_')}_{enc}.smt2")
            Path(path).write_text(to_smtlib(problem, relu=enc, get_values=False).text)
            for solver in ("z3", "cvc5"):
                runs = []
                for seed in range(args.seeds if solver == "z3" else 1):
                    argv = (z3_cmd() + [f"smt.random_seed={seed}", path] if solver == "z3"
                            else [sys.executable, "-c", CVC5_RUN, path])
                    verdict, secs, rc = run(argv, t)
                    ok = verdict in ("timeout", "unknown") or verdict == expect
                    rows.append(dict(query=name, nnir=expect, encoding=enc, solver=solver,
                                     seed=seed, verdict=verdict, seconds=round(secs, 2), exit=rc,
                                     agrees=ok))
                    runs.append((secs if verdict in ("sat", "unsat") else math.inf, ok))
                secs = sorted(r[0] for r in runs)[len(runs) // 2]  # the median; inf: timeout
                mark = "" if all(r[1] for r in runs) else "!"
                shown = f"{secs:.2f}s" if math.isfinite(secs) else "timeout"
                cells.append(f"{shown + mark:>13}")
        print(f"{name:34} {expect:6} " + " ".join(cells), flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    print("\ntotals (CPU seconds, a timeout counted as the limit; answered of all):")
    for enc in encs:
        for solver in ("z3", "cvc5"):
            rs = [r for r in rows if r["encoding"] == enc and r["solver"] == solver]
            if not rs:
                continue
            tot = sum(min(r["seconds"], t) for r in rs)
            done = sum(r["verdict"] in ("sat", "unsat") for r in rs)
            print(f"  {solver:5} {enc:5} {tot:8.1f} s  {done}/{len(rs)}")


if __name__ == "__main__":
    main()
