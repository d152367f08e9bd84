"""Time `read_onnx` (exact folding of the affine chain) on real and generated networks.

Networks: ACAS Xu and VNN-COMP 2022 mnist_fc (from ../shared/benchmarks, skipped when absent;
the gzip files are unpacked into a temporary folder), and generated ones from
`tests/onnx_models.py`: the shape of VNN-COMP 2022 tllverifybench (TLL, N = M = 16 and 8) and a
dense chain of float32 layers after Sub/Div(255) whose linear layers compose with the next
(products that do not fit float64, so they take the exact integer path).

    python benchmarks/onnx_read.py [--repeat 3]

Prints a table and writes `results/onnx_read.csv`: per network, the layer sizes and the best of
`--repeat` read times.
"""
from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, print_table, write_csv  # noqa: E402

SHARED = ROOT.parent / "shared" / "benchmarks"


def networks(tmp: Path) -> list[tuple[str, Path]]:
    import onnx_models as om

    out = []
    acas = SHARED / "acasxu" / "onnx" / "ACASXU_run2a_1_1_batch_2000.onnx"
    if acas.exists():
        out.append(("acasxu 1_1", acas))
    for gz in sorted((SHARED / "vnncomp2022" / "mnist_fc" / "onnx").glob("*.onnx.gz")):
        path = tmp / gz.name[:-3]
        path.write_bytes(gzip.decompress(gz.read_bytes()))
        out.append((f"mnist_fc {gz.name[:-8]}", path))
    rng = np.random.default_rng
    made = [("tll N=M=8 (+Sub/Div 3)", om.tll(rng(0), N=8, M=8)),
            ("tll N=M=16 (tllverifybench shape)", om.tll(rng(0), N=16, M=16, normalise=False)),
            ("tll N=M=16 (+Sub/Div 3)", om.tll(rng(0), N=16, M=16)),
            ("dense chain 784-256x3-10 (+Sub/Div 255)", om.dense_chain(rng(0)))]
    for i, (name, m) in enumerate(made):
        out.append((name, Path(om.save(m, tmp / f"gen{i}.onnx"))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from nnir.formats import read_onnx

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in networks(Path(tmp)):
            best, net = float("inf"), None
            for _ in range(args.repeat):
                t = time.perf_counter()
                net = read_onnx(str(path))
                best = min(best, time.perf_counter() - t)
            rows.append({"network": name, "layers": "-".join(str(lay.size) for lay in net.layers),
                         "exact_float64": all(lay.weight.is_float_exact for lay in net.layers),
                         "read_s": f"{best:.3f}"})
            print(f"{name}: {best:.3f} s", file=sys.stderr, flush=True)
    print_table(rows)
    write_csv(RESULTS / "onnx_read.csv", rows, list(rows[0]))


if __name__ == "__main__":
    main()
