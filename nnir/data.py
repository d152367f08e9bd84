"""Datasets: materialise inline points, CSV/NPY/NPZ files and generators into arrays.

A loaded dataset keeps its exact point values (`exact`): the rationals written inline, or the
binary values of the floats read from files or made by a generator.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from nnir.errors import InputFileError
from nnir.ir.nodes import Dataset, FileData, GeneratedData, InlineData


@dataclass(frozen=True)
class LoadedData:
    X: np.ndarray  # (n, dim) float64
    y: np.ndarray  # (n,) int64 class labels
    exact_points: tuple | None = None  # inline data: the exact rationals as written

    @property
    def exact(self) -> np.ndarray:
        """(n, dim) object array of Fractions."""
        if self.exact_points is not None:
            return np.array(self.exact_points, dtype=object)
        out = np.empty(self.X.shape, dtype=object)
        out.reshape(-1)[:] = [Fraction(float(v)) for v in self.X.reshape(-1)]
        return out

    def exact_row(self, i: int) -> list[Fraction]:
        """Point i as Fractions (without converting the whole dataset)."""
        if self.exact_points is not None:
            return list(self.exact_points[i])
        return [Fraction(float(v)) for v in self.X[i]]

    @property
    def dim(self) -> int:
        return self.X.shape[1]


def sphere_planes(n: int, dim: int = 3, planes: int = 2, rule: str = "and", seed: int = 0,
                  min_gap: float = 0.0, draw: int = 0,
                  decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform on the unit sphere in R^dim, labelled by their side of random planes.

    The planes pass through the origin (so `and` of two planes is a lune, as in Ison's "SMT
    Solvers for Neural Network Training"); label 1 when the point is on the positive side of
    every plane (`and`) or of an odd number of planes (`xor`). Points closer than `min_gap` to a
    plane are dropped and redrawn, giving the data a margin. `seed` fixes the planes; `draw`
    picks an independent sample of points for the same planes (a test set: `draw=1`).
    `decimals` rounds the points (before labelling and the gap test), as measured data is: exact
    solvers then work with short rationals instead of 53-bit binary fractions.
    """
    if n <= 0 or dim <= 0 or planes <= 0:
        raise ValueError("n, dim and planes must be positive")
    if rule not in ("and", "xor"):
        raise ValueError(f"unknown rule '{rule}' (use and or xor)")
    if not 0 <= min_gap < 0.5:
        raise ValueError("min_gap must be in [0, 0.5)")
    normals = np.random.default_rng(seed).normal(size=(planes, dim))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    rng = np.random.default_rng([seed, draw])  # points: a stream independent of the planes
    pts: list[np.ndarray] = []
    have = 0
    while have < n:
        cand = rng.normal(size=(max(2 * (n - have), 64), dim))
        cand /= np.linalg.norm(cand, axis=1, keepdims=True)
        if decimals is not None:
            cand = np.round(cand, decimals)
        keep = np.all(np.abs(cand @ normals.T) >= min_gap, axis=1)
        pts.append(cand[keep])
        have += int(keep.sum())
    X = np.concatenate(pts)[:n]
    side = X @ normals.T > 0
    y = np.all(side, axis=1) if rule == "and" else (side.sum(axis=1) % 2 == 1)
    return X, y.astype(np.int64)


GENERATORS = {"sphere_planes": sphere_planes}


def load_dataset(ds: Dataset, base_dir: str = ".", source: str | None = None) -> LoadedData:
    """Materialise `ds`, raising `InputFileError` at the dataset's span on any problem."""
    try:
        data = _load(ds, base_dir)
    except InputFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputFileError(f"dataset '{ds.name}': {exc}", ds.span, source=source) from None
    if data.X.ndim != 2 or len(data.X) == 0:
        raise InputFileError(f"dataset '{ds.name}' is empty", ds.span, source=source)
    if len(data.y) != len(data.X):
        raise InputFileError(f"dataset '{ds.name}' has {len(data.X)} points but "
                             f"{len(data.y)} labels", ds.span, source=source)
    if np.any(data.y < 0):
        raise InputFileError(f"dataset '{ds.name}' has negative labels; labels are class "
                             "numbers 0, 1, ...", ds.span, source=source)
    if not np.all(np.isfinite(data.X)):
        raise InputFileError(f"dataset '{ds.name}' has NaN or infinite values", ds.span,
                             source=source)
    return data


def _load(ds: Dataset, base_dir: str) -> LoadedData:
    src = ds.source
    if isinstance(src, InlineData):
        if not src.points:
            raise ValueError("the dataset is empty")
        dims = {len(p) for p in src.points}
        if len(dims) > 1:
            raise ValueError(f"points have different lengths {sorted(dims)}")
        X = np.array([[float(v) for v in p] for p in src.points], dtype=np.float64)
        return LoadedData(X.reshape(len(src.points), -1), np.array(src.labels, dtype=np.int64),
                          src.points)
    if isinstance(src, GeneratedData):
        gen = GENERATORS.get(src.generator)
        if gen is None:
            raise ValueError(f"unknown generator '{src.generator}' (known: "
                             f"{', '.join(GENERATORS)})")
        params = {k: (float(v) if isinstance(v, Fraction) else v) for k, v in src.params}
        X, y = gen(**params)
        d = params.get("decimals")
        if d is not None:  # rounded points are the decimals they print as, exactly
            scale = 10 ** int(d)
            exact = tuple(tuple(Fraction(int(round(v * scale)), scale) for v in row) for row in X)
            return LoadedData(X, y, exact)
        return LoadedData(X, y)
    assert isinstance(src, FileData)
    path = src.path if os.path.isabs(src.path) else os.path.join(base_dir, src.path)
    opts = dict(src.options)
    if not os.path.exists(path):
        raise ValueError(f"file '{src.path}' not found (relative paths start at {base_dir})")
    if src.format == "csv":
        return _csv(path, opts)
    if src.format == "npy":
        X = np.load(path, allow_pickle=False)
        lab = opts.get("labels")
        if lab is None:
            raise ValueError("an npy dataset needs `labels \"file.npy\"`")
        lab_path = lab if os.path.isabs(lab) else os.path.join(base_dir, lab)
        return LoadedData(_float2d(X), _labels(np.load(lab_path, allow_pickle=False)))
    with np.load(path, allow_pickle=False) as z:
        xkey = opts.get("x") or next((k for k in ("x", "X", "inputs") if k in z.files), None)
        ykey = opts.get("y") or next((k for k in ("y", "Y", "labels") if k in z.files), None)
        if xkey not in z.files or ykey not in z.files:
            raise ValueError(f"npz needs point and label arrays (name them with x \"KEY\" "
                             f"y \"KEY\"); it has: {', '.join(z.files)}")
        return LoadedData(_float2d(z[xkey]), _labels(z[ykey]))


def _float2d(X) -> np.ndarray:
    X = np.asarray(X)
    if X.size == 0:
        raise ValueError("the dataset is empty")
    if X.dtype.kind not in "fiu":
        raise ValueError(f"points must be numeric, got dtype {X.dtype}")
    return X.reshape(len(X), -1).astype(np.float64)


def _labels(y) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if y.dtype.kind == "f" and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64)


def _csv(path: str, opts: dict) -> LoadedData:
    col = int(opts.get("label", -1))
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if rows and opts.get("header", "auto") in ("auto", "true", True, 1):
        try:
            [float(c) for c in rows[0]]
        except ValueError:
            rows = rows[1:]
    if not rows:
        raise ValueError("the CSV file has no data rows")
    X, y = [], []
    for k, r in enumerate(rows, 1):
        try:
            vals = [float(c) for c in r]
        except ValueError:
            raise ValueError(f"row {k} of the CSV file is not numeric: "
                             f"{','.join(r)[:60]}") from None
        if len(vals) != len(rows[0]):
            raise ValueError(f"row {k} of the CSV file has {len(vals)} columns, "
                             f"expected {len(rows[0])}")
        lab = vals.pop(col)
        if lab != int(lab):
            raise ValueError(f"row {k}: label {lab} is not an integer")
        X.append(vals)
        y.append(int(lab))
    return LoadedData(np.array(X, dtype=np.float64), np.array(y, dtype=np.int64))


__all__ = ["GENERATORS", "LoadedData", "load_dataset", "sphere_planes"]
