"""Train the deeper MNIST network of the stability benchmark (issue 4): 784 -> 5 x 100 -> 10 ReLU,
with L1 weight regularisation, in plain numpy, the recipe of `../shared/benchmarks/stability`
(He init, seed 0, Adam with the learning rate decayed linearly from 1e-3 to 1e-5, batch 128,
mean softmax cross-entropy + L1 * sum |W| as a subgradient, biases not penalised).

    python benchmarks/train_mnist_deep.py [--epochs 8] [--l1 1e-3] [-o PATH]

The weights go to `benchmarks/cache/mnist_5x100_l1_1e-3.npz` (arrays W1, b1, ..., W6, b6; W of
shape (out, in), as the shared networks); the cache folder is not tracked: the benchmark trains
the network when the file is missing (about 2 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "benchmarks" / "stability" / "mnist_uint8.npz"
CACHE = ROOT / "cache"


def default_path(depth: int = 5, width: int = 100, l1: float = 1e-3) -> Path:
    return CACHE / f"mnist_{depth}x{width}_l1_{l1:g}.npz"


def train(depth: int = 5, width: int = 100, l1: float = 1e-3, epochs: int = 8,
          seed: int = 0, log=print) -> dict:
    """Train and return {W1, b1, ...} (float64) with test accuracy under key `test_acc`."""
    d = np.load(DATA)
    X, y = d["x_train"].astype(np.float64) / 255.0, d["y_train"].astype(np.int64)
    Xt, yt = d["x_test"].astype(np.float64) / 255.0, d["y_test"].astype(np.int64)
    rng = np.random.default_rng(seed)
    sizes = [784] + [width] * depth + [10]
    Ws = [rng.normal(size=(o, i)) * np.sqrt(2.0 / i) for i, o in zip(sizes, sizes[1:])]
    bs = [np.zeros(o) for o in sizes[1:]]
    params = Ws + bs
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    steps = epochs * ((len(X) + 127) // 128)
    t, start = 0, time.perf_counter()
    for ep in range(epochs):
        order = rng.permutation(len(X))
        for k in range(0, len(X), 128):
            idx = order[k:k + 128]
            acts = [X[idx]]
            for W, b in zip(Ws[:-1], bs[:-1]):
                acts.append(np.maximum(acts[-1] @ W.T + b, 0.0))
            logits = acts[-1] @ Ws[-1].T + bs[-1]
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(idx)), y[idx]] -= 1.0
            g = p / len(idx)
            gW, gb = [None] * len(Ws), [None] * len(bs)
            for li in range(len(Ws) - 1, -1, -1):
                gW[li] = g.T @ acts[li] + l1 * np.sign(Ws[li])
                gb[li] = g.sum(axis=0)
                if li:
                    g = (g @ Ws[li]) * (acts[li] > 0)
            t += 1
            lr = 1e-3 + (1e-5 - 1e-3) * t / steps
            for j, gr in enumerate(gW + gb):
                m[j] = 0.9 * m[j] + 0.1 * gr
                v[j] = 0.999 * v[j] + 0.001 * gr * gr
                mh, vh = m[j] / (1 - 0.9 ** t), v[j] / (1 - 0.999 ** t)
                params[j] -= lr * mh / (np.sqrt(vh) + 1e-8)
        log(f"epoch {ep + 1}/{epochs}: {time.perf_counter() - start:.0f} s")
    h = Xt
    for W, b in zip(Ws[:-1], bs[:-1]):
        h = np.maximum(h @ W.T + b, 0.0)
    acc = float(np.mean(np.argmax(h @ Ws[-1].T + bs[-1], axis=1) == yt))
    out = {f"W{k + 1}": W for k, W in enumerate(Ws)}
    out.update({f"b{k + 1}": b for k, b in enumerate(bs)})
    out["test_acc"] = np.array(acc)
    return out


def ensure(depth: int = 5, width: int = 100, l1: float = 1e-3, epochs: int = 8,
           log=print) -> Path:
    """The cached network's path, training it first when missing."""
    path = default_path(depth, width, l1)
    if not path.exists():
        log(f"training {path.name} ({epochs} epochs) ...")
        arrays = train(depth, width, l1, epochs, log=log)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
        log(f"test accuracy {float(arrays['test_acc']):.4f}; wrote {path}")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--l1", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=8)
    a = ap.parse_args()
    ensure(a.depth, a.width, a.l1, a.epochs)


if __name__ == "__main__":
    main()
