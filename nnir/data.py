"""Datasets: materialise inline points, CSV/NPY/NPZ files and generators into arrays.

A loaded dataset keeps its exact point values (`exact`): the rationals written inline, the
decimals a CSV file spells (`0.1` is 1/10, not the float nearest it), the binary values of the
floats of `.npy`/`.npz` files, and the points a generator made (rounded ones as the decimals they
print as). Training replay checks every certificate against these exact values. Every size is
held to `nnir.limits`.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from nnir import limits
from nnir.errors import InputFileError, clip
from nnir.io import read_arrays, read_text
from nnir.ir.const import parse_decimal
from nnir.ir.nodes import Dataset, FileData, GeneratedData, InlineData


@dataclass(frozen=True)
class LoadedData:
    X: np.ndarray  # (n, dim) float64
    y: np.ndarray  # (n,) int64 class labels
    exact_points: tuple | None = None  # inline and CSV data: the exact rationals as written
    # a file's `scale`/`shift` options: the points are raw * scale + shift exactly (X holds
    # the floats nearest them, `raw` the file's values)
    raw: np.ndarray | None = None
    scale: Fraction = Fraction(1)
    shift: Fraction = Fraction(0)

    @property
    def exact(self) -> np.ndarray:
        """(n, dim) object array of Fractions."""
        if self.exact_points is not None:
            return np.array(self.exact_points, dtype=object)
        out = np.empty(self.X.shape, dtype=object)
        out[:] = [self.exact_row(i) for i in range(len(self.X))]
        return out

    def exact_row(self, i: int) -> list[Fraction]:
        """Point i as Fractions (without converting the whole dataset)."""
        if self.exact_points is not None:
            return list(self.exact_points[i])
        if self.raw is not None:
            return [Fraction(float(v)) * self.scale + self.shift for v in self.raw[i]]
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
    for what, v in (("n", n), ("dim", dim), ("planes", planes), ("seed", seed), ("draw", draw)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise ValueError(f"{what} must be an integer, got {clip(v)}")
    if n <= 0 or dim <= 0 or planes <= 0:
        raise ValueError("n, dim and planes must be positive")
    if seed < 0 or draw < 0:
        raise ValueError("seed and draw must be 0 or more")
    if n * dim > limits.MAX_DATASET_VALUES or planes * dim > limits.MAX_DATASET_VALUES:
        raise ValueError(f"n x dim and planes x dim must be at most "
                         f"{limits.MAX_DATASET_VALUES:,}")
    if decimals is not None and not (isinstance(decimals, (int, np.integer))
                                     and 0 <= decimals <= limits.MAX_DECIMALS):
        raise ValueError(f"decimals must be an integer from 0 to {limits.MAX_DECIMALS}")
    if rule not in ("and", "xor"):
        raise ValueError(f"unknown rule '{rule}' (use and or xor)")
    if not isinstance(min_gap, (int, float)) or not 0 <= min_gap < 0.5:
        raise ValueError("min_gap must be in [0, 0.5)")
    normals = np.random.default_rng(seed).normal(size=(planes, dim))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    rng = np.random.default_rng([seed, draw])  # points: a stream independent of the planes
    pts: list[np.ndarray] = []
    have = drawn = 0
    while have < n:
        if drawn > 50 * n + 10**4:
            raise ValueError(f"min_gap={min_gap} leaves almost no points (fewer than 1 in 50 "
                             "drawn keep it): lower min_gap or use fewer planes")
        cand = rng.normal(size=(max(2 * (n - have), 64), dim))
        drawn += len(cand)
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
    except InputFileError as exc:
        if exc.span is not None:
            raise  # it points into the data file itself
        raise InputFileError(f"dataset '{ds.name}': {exc.message}", ds.span, exc.hint,
                             source) from None
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
    opts = dict(src.options)
    scale, shift = (_option_number(opts.pop(k, d), k) for k, d in (("scale", 1), ("shift", 0)))
    data = _load_file(src, opts, base_dir)
    if scale == 1 and shift == 0:
        return data
    return rescaled(data, scale, shift)


def _option_number(v, key: str) -> Fraction:
    if isinstance(v, bool) or not isinstance(v, (int, Fraction)):
        raise ValueError(f"option {key} must be a number (e.g. {key} 1/255), got {clip(v)}")
    return Fraction(v)


def rescaled(data: LoadedData, scale: Fraction, shift: Fraction) -> LoadedData:
    """`data` with every coordinate mapped to v * scale + shift (`scale 1/255` turns raw
    pixels into [0, 1]); the exact points are exactly that, the floats the nearest ones."""
    if data.exact_points is not None:
        pts = tuple(tuple(v * scale + shift for v in p) for p in data.exact_points)
        X = np.array([[float(v) for v in p] for p in pts], dtype=np.float64)
        return LoadedData(X.reshape(len(pts), -1), data.y, pts)
    X = data.X * float(scale) + float(shift)
    return LoadedData(X, data.y, None, data.X, scale, shift)


def _load_file(src: FileData, opts: dict, base_dir: str) -> LoadedData:
    path = src.path if os.path.isabs(src.path) else os.path.join(base_dir, src.path)
    if not os.path.exists(path):
        raise ValueError(f"file '{src.path}' not found (relative paths start at {base_dir})")
    if src.format == "csv":
        return _csv(path, opts, src.path)
    if src.format == "npy":
        X = _array(path, src.path)
        lab = opts.get("labels")
        if not isinstance(lab, str):
            raise ValueError("an npy dataset needs `labels \"file.npy\"`")
        lab_path = lab if os.path.isabs(lab) else os.path.join(base_dir, lab)
        return LoadedData(_float2d(X), _labels(_array(lab_path, lab)))
    arrays = read_arrays(path, "dataset file", src.path)
    if None in arrays:
        raise ValueError(f"'{src.path}' is an .npy file, not an .npz archive (use npy)")
    names = list(arrays)
    xkey = opts.get("x") or next((k for k in ("x", "X", "inputs") if k in arrays), None)
    ykey = opts.get("y") or next((k for k in ("y", "Y", "labels") if k in arrays), None)
    if xkey not in arrays or ykey not in arrays:
        raise ValueError(f"npz needs point and label arrays (name them with x \"KEY\" "
                         f"y \"KEY\"); it has: {', '.join(names)}")
    return LoadedData(_float2d(arrays[xkey]), _labels(arrays[ykey]))


def _array(path: str, shown: str):
    arrays = read_arrays(path, "dataset file", shown)
    if None not in arrays:
        raise ValueError(f"'{shown}' is an .npz archive, not an .npy file (use npz)")
    return arrays[None]


def _float2d(X) -> np.ndarray:
    X = np.asarray(X)
    if X.size == 0 or X.ndim == 0:
        raise ValueError("the dataset is empty")
    if X.dtype.kind not in "fiu":
        raise ValueError(f"points must be numeric, got dtype {X.dtype}")
    if X.size > limits.MAX_DATASET_VALUES:
        raise ValueError(f"more than {limits.MAX_DATASET_VALUES:,} numbers")
    X = X.reshape(len(X), -1)
    if X.dtype.kind in "iu" and np.abs(X.astype(np.float64)).max() >= 2.0**53:
        raise ValueError("integer points of 2^53 or more are not exact in float64")
    return X.astype(np.float64)


def _labels(y) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError("labels must be integers (class numbers 0, 1, ...)")
        if np.any(np.abs(y) > limits.MAX_VECTOR):
            raise ValueError(f"a label is beyond {limits.MAX_VECTOR:,}")
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64)


def _is_decimal(cell: str) -> bool:
    try:
        parse_decimal(cell)
        return True
    except ValueError:
        return False


def _csv(path: str, opts: dict, shown: str) -> LoadedData:
    """A CSV file, each cell taken as the exact decimal it spells (never through a float)."""
    col = opts.get("label", -1)
    if not isinstance(col, int) or isinstance(col, bool):
        raise ValueError(f"label must be a column number, got {clip(col)}")
    text = read_text(path, "CSV file", shown)  # bounded, UTF-8, a byte-order mark dropped
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    count = 0
    try:
        for r in reader:
            if r and any(c.strip() for c in r):
                rows.append((reader.line_num, r))
                count += len(r)
                if count > limits.MAX_CSV_VALUES + len(rows[0][1]):  # a header row more
                    raise ValueError(f"the CSV file has more than "
                                     f"{limits.MAX_CSV_VALUES:,} numbers")
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num} of the CSV file: {exc}") from None
    if rows and opts.get("header", "auto") in ("auto", "true", True, 1):
        if not any(_is_decimal(c) for c in rows[0][1]):  # a header: no cell is a number
            rows = rows[1:]
    if not rows:
        raise ValueError("the CSV file has no data rows")
    width = len(rows[0][1])
    if not -width <= col < width:
        raise ValueError(f"label column {col} is outside the {width} columns of the CSV file")
    if len(rows) * width > limits.MAX_CSV_VALUES:
        raise ValueError(f"the CSV file has more than {limits.MAX_CSV_VALUES:,} numbers")
    points, y = [], []
    for line, r in rows:
        if len(r) != width:
            raise ValueError(f"line {line} of the CSV file has {len(r)} columns, "
                             f"expected {width}")
        vals = []
        for k, c in enumerate(r, 1):
            try:
                vals.append(parse_decimal(c))
            except ValueError as exc:
                why = "" if str(exc) == "not a number" else f" ({exc})"
                raise ValueError(f"line {line}, column {k} of the CSV file: '{clip(c)}' is not "
                                 f"a number{why}") from None
        lab = vals.pop(col)
        if lab.denominator != 1:
            raise ValueError(f"line {line} of the CSV file: label {clip(r[col].strip())} is "
                             "not an integer")
        if abs(lab) > limits.MAX_VECTOR:
            raise ValueError(f"line {line} of the CSV file: label {clip(lab)} is too large")
        points.append(tuple(vals))
        y.append(int(lab))
    X = np.array([[float(v) for v in p] for p in points], dtype=np.float64)
    return LoadedData(X.reshape(len(points), width - 1), np.array(y, dtype=np.int64),
                      tuple(points))


__all__ = ["GENERATORS", "LoadedData", "load_dataset", "sphere_planes"]
