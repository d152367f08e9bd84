"""Embed an MNIST classifier in your own HiGHS model: the smallest L1 change to an image, within
an L-infinity budget, that makes another class win.

The optimisation is the user's: their own pixel columns, L1 distance columns, a binary per
candidate class and the objective, built with plain highspy calls. `nnir.embed` adds only the
network (784-20-20-10 by default; big-M constants from nnir's sound bound passes over the budget
box) and hands back the columns of its inputs and logits. The user solves with `h.run()`; the
image found is then replayed through the network in exact rational arithmetic, since HiGHS's
answer holds only within its feasibility tolerances.

Run: python examples/embed_mnist.py [--image K] [--eps E] [--net mnist_2x20_nol1]
(data: ../shared/benchmarks/stability; the script skips with a message when it is missing).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from fractions import Fraction

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "benchmarks", "stability")
MARGIN = 1e-3  # the new class must win by this much in the model: far above HiGHS's tolerances


def load(net_name: str):
    """The network (exact weights from float64 arrays) and the MNIST test set, or None."""
    import nnir

    path, mnist = os.path.join(DATA, net_name + ".npz"), os.path.join(DATA, "mnist_uint8.npz")
    if not (os.path.isfile(path) and os.path.isfile(mnist)):
        return None
    w = np.load(path)
    net = nnir.network(net_name, [(w["W1"], w["b1"], "relu"), (w["W2"], w["b2"], "relu"),
                                  (w["W3"], w["b3"], "linear")], lo=0, hi=1)
    d = np.load(mnist)
    return net, d["x_test"], d["y_test"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=int, default=8, help="index in the MNIST test set")
    ap.add_argument("--eps", type=float, default=0.05, help="L-infinity budget per pixel")
    ap.add_argument("--net", default="mnist_2x20_nol1",
                    help="a network of ../shared/benchmarks/stability (mnist_2x50_nol1: the "
                    "search takes minutes; HiGHS keeps the best image found at --time-limit)")
    ap.add_argument("--bounds", default="lp", help="bound passes for the big-M constants")
    ap.add_argument("--time-limit", type=float, default=40.0)
    args = ap.parse_args(argv)

    loaded = load(args.net)
    if loaded is None:
        print(f"skipped: MNIST data not found under {os.path.normpath(DATA)}")
        return 0
    import highspy

    import nnir
    from nnir.backends.milp.highs import new_highs
    from nnir.ir.evaluate import evaluate

    net, X, Y = loaded
    pix = X[args.image].astype(np.int64)
    x0 = [Fraction(int(p), 255) for p in pix]  # the image, exactly
    x0f = np.array([float(v) for v in x0])
    logits0 = evaluate(net, x0, exact=True)[net.output]
    c = int(np.argmax([float(v) for v in logits0]))
    print(f"image {args.image}: label {int(Y[args.image])}, network says {c}")
    eps = Fraction(args.eps)
    lo = [max(Fraction(0), v - eps) for v in x0]
    hi = [min(Fraction(1), v + eps) for v in x0]

    # ---- the user's own model: pixels, L1 distances, objective
    t0 = time.perf_counter()
    h = new_highs()  # any highspy.Highs (new_highs only silences its banner)
    n = net.input.size
    h.addVars(n, np.zeros(n), np.ones(n))  # pixels 0..n-1 in [0, 1]
    h.addVars(n, np.zeros(n), np.full(n, np.inf))  # d_i >= |x_i - x0_i|, columns n..2n-1
    for i in range(n):
        h.addRow(-x0f[i], np.inf, 2, np.array([n + i, i], np.int32), np.array([1.0, -1.0]))
        h.addRow(x0f[i], np.inf, 2, np.array([n + i, i], np.int32), np.array([1.0, 1.0]))
    h.changeColsCost(n, np.arange(n, 2 * n, dtype=np.int32), np.ones(n))

    # ---- nnir adds the network on the user's pixel columns, bounded over the budget box
    emb = nnir.embed(net, h, inputs=list(range(n)), box=(lo, hi), bounds=args.bounds)
    y = emb.outputs
    ylo, yhi = emb.bounds[net.output]
    print(f"embedded: {len(emb.binaries)} unstable ReLUs (binaries), "
          f"{sum(len(v.pre) for k, v in emb.neurons.items())} neurons, "
          f"{h.getNumCol()} columns, {h.getNumRow()} rows ({time.perf_counter() - t0:.1f} s)")

    # ---- the user's flip constraint: some class t != c beats c by MARGIN; one binary s_t each,
    # switched off by a big-M the user takes from the embedding's sound output bounds
    others = [t for t in range(net.output_size) if t != c]
    s0 = h.getNumCol()
    h.addVars(len(others), np.zeros(len(others)), np.ones(len(others)))
    h.changeColsIntegrality(len(others), np.arange(s0, s0 + len(others), dtype=np.int32),
                            np.full(len(others), highspy.HighsVarType.kInteger))
    h.addRow(1.0, np.inf, len(others), np.arange(s0, s0 + len(others), dtype=np.int32),
             np.ones(len(others)))
    for k, t in enumerate(others):  # y_t - y_c >= MARGIN - M (1 - s_t)
        M = max(0.0, MARGIN - (ylo[t] - yhi[c])) * 1.01 + 1.0
        h.addRow(MARGIN - M, np.inf, 3, np.array([y[t], y[c], s0 + k], np.int32),
                 np.array([1.0, -1.0, -M]))

    h.setOptionValue("time_limit", args.time_limit)
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    print(f"HiGHS: {status} in {time.perf_counter() - t0:.1f} s")
    sol = h.getSolution()
    if not sol.value_valid:
        print(f"no image within L-inf {args.eps} makes another class win (or none found in "
              "the time limit)")
        return 0
    x = np.clip(np.array(sol.col_value[:n]), [float(v) for v in lo], [float(v) for v in hi])
    for i in range(n):  # the nearest float to a box end may lie just outside it: step inside
        if Fraction(float(x[i])) < lo[i]:
            x[i] = np.nextafter(x[i], np.inf)
        elif Fraction(float(x[i])) > hi[i]:
            x[i] = np.nextafter(x[i], -np.inf)
    assert all(a <= Fraction(float(v)) <= b for v, a, b in zip(x, lo, hi))
    info = h.getInfo()
    print(f"L1 change {np.abs(x - x0f).sum():.6g} (HiGHS objective "
          f"{info.objective_function_value:.6g}, dual bound {info.mip_dual_bound:.6g}), "
          f"{int((np.abs(x - x0f) > 1e-9).sum())} pixels changed, "
          f"max change {np.abs(x - x0f).max():.4g}")

    # ---- replay: the found image through the network in exact rational arithmetic
    logits = emb.replay(x)
    new = max(range(len(logits)), key=lambda k: logits[k])
    gap = logits[new] - logits[c]
    print(f"exact replay: class {c} -> {new} (logit {new} - logit {c} = {float(gap):.6g}); "
          f"every pixel within {args.eps} of the original, checked exactly")
    if new == c:
        print("replay did not confirm a class change (HiGHS's tolerance); not reported")
        return 1
    print("confirmed by exact replay")
    return 0


if __name__ == "__main__":
    sys.exit(main())
