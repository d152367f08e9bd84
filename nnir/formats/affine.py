"""Exact affine maps over one network node, the values an ONNX graph is folded into.

While an ONNX graph is read, every tensor is either a constant (a numpy array) or an `Affine`:
`A @ v + c` of the flattened value `v` of one nnir node (the input or a layer). Chains of
affine ops compose here, so consecutive MatMul/Add/Sub/Mul/... become one dense layer.

Every array holds exact values: float64 while each entry is a float64 value (floats read from
the file are their exact binary values), an object array of `Fraction`s otherwise. The kernels
`mul`, `add` and `dot` compute the exact result and keep it in float64 when that loses nothing,
which they prove rather than assume:

* `add`: Knuth's TwoSum gives the rounding error of each float64 sum exactly; zero error means
  the float sum is the exact sum.
* `mul`: a product of floats with odd mantissas of p and q bits has p + q - 1 or p + q bits; it
  is kept when it fits in 53 (and stays in the normal range).
* `dot`: scaled by powers of two, float matrices are integer matrices; when their bit widths and
  the inner dimension leave every partial sum below 2**53, the float64 (BLAS) product is exact
  in any summation order. Otherwise the integers are split into limbs small enough for the same
  argument, each pair of limbs is multiplied in float64 exactly, and the limb products are
  added up as Python integers. Rationals are brought to integers by a common denominator per row
  (left factor) or per column (right factor).

So the composed layer is exactly the composition of the graph's affine maps, at the speed of
floating point where the values allow.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import lcm

import numpy as np

from nnir.ir.const import Const, to_fraction

_TINY = 2.0 ** -1022  # smallest normal float64: results below it are left to Fractions

MAX_WEIGHTS = 2**27
"""Most entries of one matrix or tensor built while reading (1 GiB as float64): far above real
networks' dense layers, far below what would exhaust memory."""


class TooLarge(ValueError):
    """A matrix the reader would build is larger than `MAX_WEIGHTS` entries."""


def room(rows: int, cols: int) -> None:
    """Raise `TooLarge` unless a rows x cols matrix is within `MAX_WEIGHTS`."""
    if rows * cols > MAX_WEIGHTS:
        raise TooLarge(f"a {rows} x {cols} weight matrix is more than nnir builds (at most "
                       f"{MAX_WEIGHTS} entries)")


def exact(a) -> np.ndarray:
    """The same array as an object array of Fractions (floats at their binary values)."""
    arr = np.asarray(a)
    if arr.dtype == object:
        return arr
    out = np.empty(arr.size, dtype=object)
    out[:] = [to_fraction(v) for v in arr.reshape(-1)]
    return out.reshape(arr.shape)


def floats(a) -> np.ndarray | None:
    """`a` as float64 when every entry is exactly a float64 value (None for Fraction arrays)."""
    arr = np.asarray(a)
    if arr.dtype == np.float64:
        return arr
    if arr.dtype.kind == "f" and arr.dtype.itemsize <= 8:
        return arr.astype(np.float64)  # float16/32 -> float64 is exact
    if arr.dtype.kind == "b" or (arr.dtype.kind in "iu" and (
            arr.size == 0 or (int(arr.max()) <= 2 ** 53 and int(arr.min()) >= -2 ** 53))):
        return arr.astype(np.float64)
    return None


def as_const(a: np.ndarray) -> Const:
    """A `Const` holding exactly the values of `a` (float64, integer or Fraction array)."""
    f = floats(a)
    if f is not None:
        return Const.of_floats(f)
    return Const(exact=exact(a))


def is_zero(a) -> bool:
    return a is None or not np.any(np.asarray(a) != 0)


# ------------------------------------------------------------------------------ exact kernels
def _normal(*arrays: np.ndarray) -> bool:
    """True when every nonzero entry is finite and at least the smallest normal float64."""
    for a in arrays:
        m = np.abs(a)
        if not np.all(np.isfinite(m)) or np.any((m != 0) & (m < _TINY)):
            return False
    return True


def _odd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For nonzero floats x: (bits, low, top) with |x| = o * 2**low, o odd of `bits` bits; top
    is the exponent of the leading bit (|x| < 2**(top + 1))."""
    m, e = np.frexp(np.abs(x))  # |x| = m 2^e, m in [0.5, 1)
    im = np.ldexp(m, 53).astype(np.int64)  # the 53-bit mantissa, exactly
    tz = np.frexp((im & -im).astype(np.float64))[1] - 1  # trailing zero bits
    return 53 - tz, e - 53 + tz, e - 1


def neg(a) -> np.ndarray:
    f = floats(a)
    return -f if f is not None else -exact(a)


def add(a, b) -> np.ndarray:
    """a + b (broadcast), exactly."""
    fa, fb = floats(a), floats(b)
    if fa is not None and fb is not None:
        fa, fb = np.broadcast_arrays(fa, fb)
        with np.errstate(all="ignore"):
            s = fa + fb
            bp = s - fa  # TwoSum: err is exactly (fa + fb) - s
            err = (fa - (s - bp)) + (fb - bp)
        if _normal(fa, fb, s) and not np.any(err):
            return s
    return _rational(a, b, lambda p, q, r, t: Fraction(p * t + r * q, q * t))


def mul(a, b) -> np.ndarray:
    """a * b (broadcast), exactly."""
    fa, fb = floats(a), floats(b)
    if fa is not None and fb is not None:
        fa, fb = np.broadcast_arrays(fa, fb)
        with np.errstate(all="ignore"):
            p = fa * fb
        if _product_exact(fa, fb, p):
            return p
    return _rational(a, b, lambda p, q, r, t: Fraction(p * r, q * t))


def _ratios(a: np.ndarray) -> list[tuple[int, int]]:
    """(numerator, denominator) of every entry, row-major."""
    f = floats(a)
    if f is not None:
        return [v.as_integer_ratio() for v in f.reshape(-1).tolist()]
    return [to_fraction(v).as_integer_ratio() for v in a.reshape(-1)]


def _rational(a, b, op) -> np.ndarray:
    """op on the (numerator, denominator) pairs of a and b (broadcast), as Fractions."""
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    out = np.empty(a.size, dtype=object)
    out[:] = [op(p, q, r, t) for (p, q), (r, t) in zip(_ratios(a), _ratios(b))]
    return out.reshape(a.shape)


def _product_exact(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> bool:
    nz = (a != 0) & (b != 0)
    if not np.any(nz):
        return True
    a, b, p = a[nz], b[nz], p[nz]
    if not _normal(a, b, p):
        return False
    ba, la, _ = _odd(a)
    bb, lb, _ = _odd(b)
    if np.min(la + lb) < -1022:
        return False
    bits = ba + bb
    if np.all(bits <= 53):
        return True
    if np.any(bits > 54):
        return False
    # p + q = 54: the product has 53 bits iff the odd parts, scaled into [1, 2), multiply to
    # less than 2 (a float product that rounds up to 2 only makes this test refuse)
    edge = bits == 54
    ma, mb = (2 * np.frexp(np.abs(v[edge]))[0] for v in (a, b))  # in [1, 2)
    return bool(np.all(ma * mb < 2))


def dot(W, B) -> np.ndarray:
    """W @ B exactly, W of shape (m, k), B of shape (k, n) or (k,)."""
    W, B = np.asarray(W), np.asarray(B)
    if B.ndim == 1:
        return dot(W, B[:, None])[:, 0]
    m, k = W.shape
    n = B.shape[1]
    if m == 0 or n == 0 or k == 0:
        return np.zeros((m, n))
    fw, fb = floats(W), floats(B)
    if fw is not None and fb is not None:
        sw, sb = _scale(fw), _scale(fb)
        if sw is None or sb is None:  # a zero matrix
            return np.zeros((m, n))
        fits = sw[0] + sb[0] + (k - 1).bit_length() <= 53
        if fits and min(sw[1], sb[1], sw[1] + sb[1]) >= -1022 \
                and sw[2] + sb[2] + k.bit_length() < 1023:
            # every partial sum is an integer multiple of 2^(lw + lb), fewer than 2^53 of them,
            # and normal: exact in float64, whatever order BLAS adds in
            return fw @ fb
    iw, qw = _integers(W, fw, axis=1)  # W = diag(qw) iw
    ib, qb = _integers(B, fb, axis=0)  # B = ib diag(qb)
    P = _int_dot(iw, ib)
    return _scaled(P, qw, qb)


def _scale(f: np.ndarray):
    """(bits, low, top) of a float matrix: f = I * 2**low with |I| < 2**bits integers, and every
    |f| < 2**(top + 1); None when f is zero."""
    nz = f[f != 0]
    if nz.size == 0:
        return None
    _, low, top = _odd(nz)
    lo, hi = int(low.min()), int(top.max())
    return hi + 1 - lo, lo, hi


def _integers(X: np.ndarray, f: np.ndarray | None, axis: int):
    """X as integers times a scale per row (axis=1: each row shares one) or per column (axis=0):
    (float64 integers or an object array of Python ints, scales as Fractions (or one power of
    two as an int exponent))."""
    if f is not None:
        s = _scale(f)
        low = 0 if s is None else s[1]
        if s is None or s[0] <= 1000:
            return np.ldexp(f, -low), low  # exact: a power-of-two scaling of floats
        X = exact(f)
    X = exact(X)
    if axis == 1:
        dens = [lcm(*[v.denominator for v in row]) for row in X]
        ints = np.array([[v.numerator * (d // v.denominator) for v in row]
                         for row, d in zip(X, dens)], dtype=object).reshape(X.shape)
    else:
        dens = [lcm(*[v.denominator for v in col]) for col in X.T]
        ints = np.array([[v.numerator * (d // v.denominator) for v in col]
                         for col, d in zip(X.T, dens)], dtype=object).reshape(X.T.shape).T
    return ints, [Fraction(1, d) for d in dens]


def _limbs(ints: np.ndarray, s: int) -> list[np.ndarray]:
    """Integer matrix `ints` (float64 integers or Python ints) as sum_l L_l 2^(l s), each L_l a
    float64 matrix of integers with |entries| < 2**s (signed like `ints`)."""
    if ints.dtype == np.float64:
        sign, mag = np.sign(ints), np.abs(ints)
        out = []
        while np.any(mag):
            rest = np.floor(np.ldexp(mag, -s))  # exact: powers of two, floor of a float
            out.append(sign * (mag - np.ldexp(rest, s)))
            mag = rest
        return out or [np.zeros(ints.shape)]
    flat = ints.reshape(-1).tolist()
    sign = np.array([(v > 0) - (v < 0) for v in flat], dtype=np.float64)
    mag = [abs(v) for v in flat]
    mask, out = (1 << s) - 1, []
    while any(mag):
        out.append((sign * np.array([v & mask for v in mag], dtype=np.float64)).reshape(ints.shape))
        mag = [v >> s for v in mag]
    return out or [np.zeros(ints.shape)]


def _int_dot(iw: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """The exact product of two integer matrices, as an object array of Python ints."""
    k = iw.shape[1]
    s = (53 - (k - 1).bit_length()) // 2  # k products of two s-bit limbs stay below 2^53
    lw, lb = _limbs(iw, s), _limbs(ib, s)
    terms: dict[int, np.ndarray] = {}
    for i, a in enumerate(lw):
        for j, b in enumerate(lb):
            p = (a @ b).astype(np.int64)  # exact: integers below 2^53
            terms[i + j] = p if i + j not in terms else terms[i + j] + p
    # at most min(len(lw), len(lb)) < 2^9 terms of < 2^53 each are summed into one int64
    acc = np.zeros(terms[0].shape, dtype=object)
    for t in sorted(terms, reverse=True):
        acc = (acc * (1 << s)) + terms[t].astype(object)  # t runs over 0 .. max, all present
    return acc


def _scaled(P: np.ndarray, qw, qb) -> np.ndarray:
    """diag(qw) P diag(qb) for integer P: float64 when every entry is a float64, else Fractions.
    qw, qb are power-of-two exponents (ints) or lists of Fractions."""
    m, n = P.shape
    if isinstance(qw, int) and isinstance(qb, int):
        e = qw + qb
        flat = P.reshape(-1).tolist()
        try:
            f = np.array([float(v) for v in flat])
        except OverflowError:
            f = None
        if f is not None and all(int(x) == v for x, v in zip(f.tolist(), flat)):
            with np.errstate(all="ignore"):
                r = np.ldexp(f, e)
            if _normal(r) and np.array_equal(np.ldexp(r, -e), f):
                return r.reshape(m, n)
        out = np.empty(m * n, dtype=object)
        if e >= 0:
            out[:] = [Fraction(v << e) for v in flat]
        else:
            den = 1 << -e
            out[:] = [Fraction(v, den) for v in flat]
        return out.reshape(m, n)
    qw = [Fraction(2) ** qw] * m if isinstance(qw, int) else qw
    qb = [Fraction(2) ** qb] * n if isinstance(qb, int) else qb
    rb = [q.as_integer_ratio() for q in qb]
    out = np.empty((m, n), dtype=object)
    for i in range(m):
        pw, dw = qw[i].as_integer_ratio()
        out[i, :] = [Fraction(v * pw * pb, dw * db) for v, (pb, db) in zip(P[i].tolist(), rb)]
    return out


# ------------------------------------------------------------------------------ affine maps
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
        room(self.src_size, self.src_size)
        if self.d is not None:
            f = floats(self.d)
            return np.diag(f) if f is not None else _diag(exact(self.d))
        return np.eye(self.src_size)

    def bias(self) -> np.ndarray:
        return np.zeros(self.size) if self.c is None else self.c

    def left_multiply(self, W: np.ndarray, shape) -> Affine:
        """`W @ self` for a constant matrix W of shape (m, size)."""
        room(W.shape[0], self.src_size)
        if self.A is None and self.d is None:
            A = W
        elif self.A is None:
            A = mul(W, np.asarray(self.d)[None, :])  # W @ diag(d): scale the columns
        else:
            A = dot(W, self.A)
        c = None if is_zero(self.c) else dot(W, self.c)
        return self._with(A, c, None, shape)

    def scale(self, s: np.ndarray) -> Affine:
        """Elementwise `s * self`, s a vector over this tensor's flattened entries."""
        s = np.asarray(s)
        c = None if is_zero(self.c) else mul(s, self.c)
        if self.A is None:
            return self._with(None, c, s if self.d is None else mul(s, self.d))
        return self._with(mul(s[:, None], self.A), c)

    def shift(self, k: np.ndarray) -> Affine:
        """`self + k`, k a vector over this tensor's flattened entries."""
        if is_zero(k):
            return self
        c = np.asarray(k) if self.c is None else add(self.c, k)
        return self._with(self.A, c, self.d)

    def negated(self) -> Affine:
        c = None if self.c is None else neg(self.c)
        if self.A is None:
            d = neg(self.d) if self.d is not None else -np.ones(self.src_size)
            return self._with(None, c, d)
        return self._with(neg(self.A), c)

    def plus(self, other: Affine) -> Affine:
        """The sum of two affine functions of the same node."""
        c = None
        if not (is_zero(self.c) and is_zero(other.c)):
            c = add(self.bias(), other.bias())
        if self.A is None and other.A is None:  # diagonals stay vectors
            one = np.ones(self.src_size)
            d = add(one if self.d is None else self.d, one if other.d is None else other.d)
            return self._with(None, c, d)
        A = add(self.weight(), other.weight())
        return self._with(A, c)


def _diag(s: np.ndarray) -> np.ndarray:
    out = np.empty((len(s), len(s)), dtype=object)
    out[:] = Fraction(0)
    for i, v in enumerate(s):
        out[i, i] = v
    return out


def per_channel(k: np.ndarray, channels: int) -> np.ndarray | None:
    """The per-channel values of a flat vector over (channels, positions...), or None when some
    channel's values differ (a shift or scale that is not one number per channel)."""
    k = np.asarray(k)
    if channels <= 0 or k.size % channels:
        return None
    m = k.reshape(channels, -1)
    if m.shape[1] and not np.all(m == m[:, :1]):
        return None
    return m[:, 0].copy() if m.shape[1] else np.zeros(channels)


@dataclass(frozen=True)
class PendingConv:
    """A convolution of node `src` that is not a node yet: per-channel scales and shifts after
    it fold into its kernel and bias, and a ReLU into its activation, before it becomes one.

    `shape` is the ONNX shape of the tensor: the conv's (1, O, OH, OW) (or (1, O, L) for 1-D),
    or a reshape of it (same flat order); `out_shape` is the conv's own (O, OH, OW).
    """

    src: str
    src_size: int
    shape: tuple[int, ...]
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    weight: np.ndarray  # (O, C / groups, kh, kw), float64 or Fractions
    bias: np.ndarray  # (O,)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    act: str = "linear"  # a ReLU read it: nothing folds into it any more

    @property
    def size(self) -> int:
        return int(np.prod(self.out_shape, dtype=np.int64))

    @property
    def foldable(self) -> bool:
        """True while scales and shifts after it still fold into its kernel and bias."""
        return self.act == "linear"

    def _with(self, **kw) -> PendingConv:
        from dataclasses import replace
        return replace(self, **kw)

    def reshaped(self, shape) -> PendingConv:
        return self._with(shape=tuple(int(v) for v in shape))

    def channels(self, k: np.ndarray) -> np.ndarray | None:
        """Flat vector `k` over this tensor as one value per out channel (None if it is not)."""
        return per_channel(k, self.out_shape[0])

    def scale(self, s: np.ndarray) -> PendingConv:
        """Out channel o times s[o]: the kernel's and the bias's rows scaled, exactly."""
        s = np.asarray(s)
        return self._with(weight=mul(self.weight, s.reshape(-1, 1, 1, 1)),
                          bias=mul(self.bias, s))

    def shift(self, t: np.ndarray) -> PendingConv:
        """Out channel o plus t[o]."""
        return self._with(bias=add(self.bias, t))

    def negated(self) -> PendingConv:
        return self._with(weight=neg(self.weight), bias=neg(self.bias))


@dataclass(frozen=True)
class PendingAdd:
    """The sum of computed tensors (`terms`: (value, tensor name) pairs, each a node value, an
    affine map or a pending conv) plus a constant `c`, not a node yet. It becomes an IR Add over
    one node per term, `c` folded into a term's bias (so the all-reduce of partial layers keeps
    one bias), and a ReLU after it becomes its activation."""

    terms: tuple
    shape: tuple[int, ...]
    act: str = "linear"
    c: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def reshaped(self, shape) -> PendingAdd:
        from dataclasses import replace
        return replace(self, shape=tuple(int(v) for v in shape))


@dataclass(frozen=True)
class Padded:
    """A tensor with zeros around its last two dimensions (top, left, bottom, right), as an
    ONNX Pad writes it; only a Conv or AveragePool right after it reads it (into its pads)."""

    value: Affine
    pads: tuple[int, int, int, int]

    @property
    def shape(self) -> tuple[int, ...]:
        s = self.value.shape
        return s[:-2] + (s[-2] + self.pads[0] + self.pads[2], s[-1] + self.pads[1] + self.pads[3])
