"""Exact affine maps over one network node, the values an ONNX graph is folded into.

While an ONNX graph is read, every tensor is either a constant (a numpy array) or an `Affine`:
`A @ v + c` of the flattened value `v` of one nnir node (the input or a layer). Chains of
affine ops compose here, so consecutive MatMul/Add/Sub/Mul/... become one dense layer. Arrays
are float64 while every entry is a float read from the file (the exact binary value), and
become object arrays of `Fraction`s as soon as arithmetic could round, so the composed layer is
exactly the composition of the graph's affine maps.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from nnir.ir.const import Const, to_fraction


def exact(a) -> np.ndarray:
    """The same array as an object array of Fractions (floats at their binary values)."""
    arr = np.asarray(a)
    if arr.dtype == object:
        return arr
    out = np.empty(arr.size, dtype=object)
    out[:] = [to_fraction(v) for v in arr.reshape(-1)]
    return out.reshape(arr.shape)


def as_const(a: np.ndarray) -> Const:
    """A `Const` holding exactly the values of `a` (float64, integer or Fraction array)."""
    if a.dtype == np.float64:
        return Const.of_floats(a)
    return Const(exact=exact(a))


def is_zero(a) -> bool:
    return a is None or not np.any(np.asarray(a) != 0)


@dataclass(frozen=True)
class Affine:
    """The tensor `A @ v + c`, with `v` the flattened value of node `src`.

    `A is None` stands for `diag(d)`, and for the identity when `d` is None too; `c is None` for
    zero. So pure reshapes and the first op after a ReLU cost nothing, and an elementwise
    scaling of a wide input (`x / 255`) stays a vector. `shape` is the ONNX shape of the tensor.
    """

    src: str
    src_size: int
    shape: tuple[int, ...]
    A: np.ndarray | None = None
    c: np.ndarray | None = None
    d: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def is_identity(self) -> bool:
        return self.A is None and self.d is None and self.c is None

    def _with(self, A=None, c=None, d=None, shape=None) -> Affine:
        return Affine(self.src, self.src_size, self.shape if shape is None else tuple(shape),
                      A, c, d)

    def reshaped(self, shape) -> Affine:
        return self._with(self.A, self.c, self.d, tuple(int(v) for v in shape))

    def weight(self) -> np.ndarray:
        """A as an explicit matrix (a diagonal or the identity written out)."""
        if self.A is not None:
            return self.A
        if self.d is not None:
            return _diag(exact(self.d))
        return np.eye(self.src_size)

    def bias(self) -> np.ndarray:
        return np.zeros(self.size) if self.c is None else self.c

    def left_multiply(self, W: np.ndarray, shape) -> Affine:
        """`W @ self` for a constant matrix W of shape (m, size)."""
        if self.A is None and self.d is None:
            A = W
        elif self.A is None:
            A = exact(W) * exact(self.d)[None, :]  # W @ diag(d): scale the columns
        else:
            A = _dot(W, self.A)
        c = None if is_zero(self.c) else _dot(W, self.c)
        return self._with(A, c, None, shape)

    def scale(self, s: np.ndarray) -> Affine:
        """Elementwise `s * self`, s a vector over this tensor's flattened entries."""
        s = exact(s)
        c = None if is_zero(self.c) else s * exact(self.c)
        if self.A is None:
            return self._with(None, c, s if self.d is None else s * exact(self.d))
        return self._with(s[:, None] * exact(self.A), c)

    def shift(self, k: np.ndarray) -> Affine:
        """`self + k`, k a vector over this tensor's flattened entries."""
        if is_zero(k):
            return self
        c = np.asarray(k) if self.c is None else exact(self.c) + exact(k)
        return self._with(self.A, c, self.d)

    def negated(self) -> Affine:
        c = None if self.c is None else -exact(self.c)
        if self.A is None:
            d = -exact(self.d) if self.d is not None else exact(-np.ones(self.src_size))
            return self._with(None, c, d)
        return self._with(-exact(self.A), c)

    def plus(self, other: Affine) -> Affine:
        """The sum of two affine functions of the same node."""
        A = exact(self.weight()) + exact(other.weight())
        c = None
        if not (is_zero(self.c) and is_zero(other.c)):
            c = exact(self.bias()) + exact(other.bias())
        return self._with(A, c)


def _dot(W: np.ndarray, B: np.ndarray) -> np.ndarray:
    """W @ B in exact rationals (a float64 product would round)."""
    return exact(W).dot(exact(B))


def _diag(s: np.ndarray) -> np.ndarray:
    out = np.empty((len(s), len(s)), dtype=object)
    out[:] = Fraction(0)
    for i, v in enumerate(s):
        out[i, i] = v
    return out
