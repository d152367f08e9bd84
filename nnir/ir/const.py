"""Exact numbers and constant tensors.

Every weight in the IR is held at its exact value: a literal `0.1` in source text is the rational
1/10, and a float read from a file is the rational equal to its binary value (never re-rounded).
Float64 copies are derived from the exact values for fast numeric work.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np

from nnir import limits

_HEX = re.compile(r"^([+-]?)0[xX]([0-9a-fA-F]+)(?:\.([0-9a-fA-F]*))?[pP]([+-]?\d+)$")
_DEC = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$")


def parse_number(text: str) -> Fraction:
    """Parse a number literal exactly: decimal (`1.5e-3`), rational (`1/3`) or hex float.

    Raises:
        ValueError: not a number, or beyond the bounds of `nnir.limits` (digits, exponent,
            magnitude); the message says which.
    """
    text = text.strip()
    m = _HEX.match(text)
    if m:
        sign, whole, frac, exp = m.groups()
        frac = frac or ""
        _digits(whole + frac)
        p = _exponent(exp, limits.MAX_BINARY_EXPONENT)
        q = Fraction(int(whole + frac, 16)) * Fraction(2) ** (p - 4 * len(frac))
        return _bounded(-q if sign == "-" else q)
    if "/" in text:
        num, den = text.split("/", 1)
        n, d = _decimal(num), _decimal(den)
        if d == 0:
            raise ValueError("division by zero")
        return _bounded(n / d)
    return parse_decimal(text)


def parse_decimal(text: str) -> Fraction:
    """The exact value of a decimal (`-12`, `0.1`, `1.5e-3`, `.5`): never through a float.

    Raises:
        ValueError: not a decimal (`inf` and `nan` are not), or beyond `nnir.limits`.
    """
    return _bounded(_decimal(text))


def _decimal(text: str) -> Fraction:
    m = _DEC.match(text.strip())
    if not m or not (m.group(2) or m.group(3)):
        raise ValueError("not a number")
    sign, whole, frac, exp = m.groups()
    frac = frac or ""
    _digits(whole + frac)
    e = _exponent(exp, limits.MAX_DECIMAL_EXPONENT) - len(frac) if exp else -len(frac)
    digits = int((whole + frac) or "0")
    q = Fraction(digits * 10 ** e) if e >= 0 else Fraction(digits, 10 ** -e)
    return -q if sign == "-" else q


def _digits(s: str) -> None:
    if len(s) > limits.MAX_LITERAL_DIGITS:
        raise ValueError(f"more than {limits.MAX_LITERAL_DIGITS} digits")


def _exponent(s: str, bound: int) -> int:
    if len(s.lstrip("+-").lstrip("0")) > 6 or abs(int(s)) > bound:
        raise ValueError(f"exponent beyond +-{bound}")
    return int(s)


def _bounded(q: Fraction) -> Fraction:
    if abs(q) > limits.MAX_MAGNITUDE:
        raise ValueError("too large: nnir reads numbers up to 1.797e308 (the largest float64) "
                         "in magnitude")
    return q


def to_fraction(value) -> Fraction:
    """Convert an int, float (its exact binary value), Fraction or numpy scalar to a Fraction."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, (int, np.integer)):
        return Fraction(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(f"non-finite value {f!r} cannot be represented exactly")
        return Fraction(f)
    if isinstance(value, str):
        return parse_number(value)
    raise TypeError(f"cannot convert {type(value).__name__} to an exact number")


def format_number(q: Fraction) -> str:
    """Canonical text of an exact number, re-parsed by `parse_number` to the same value.

    Terminating decimals print as decimals when short; dyadic values that are exactly a float64
    print as hex floats when their decimal form is long (weights read from files); anything else
    prints as `n/d`.
    """
    q = Fraction(q)
    if q.denominator == 1:
        return str(q.numerator)
    d = q.denominator
    twos = (d & -d).bit_length() - 1
    rest = d >> twos
    fives = 0
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    if rest == 1:
        digits = max(twos, fives)
        scaled = abs(q.numerator) * (10 ** digits) // d
        s = str(scaled).rjust(digits + 1, "0")
        dec = ("-" if q < 0 else "") + s[:-digits] + "." + s[-digits:]
        if len(dec) <= 24:
            return dec
        if fives == 0:
            f = float(q)
            if Fraction(f) == q:
                mant, exp = f.hex().split("p")
                return mant.rstrip("0").rstrip(".") + "p" + exp
        return dec
    return f"{q.numerator}/{q.denominator}"


class Const:
    """An immutable tensor (vector or matrix) of exact rationals, with a float64 view.

    Built either from exact values (`Const.exact_of`) or from floats (`Const.of_floats`), in which
    case the exact values are the floats' binary values, materialised only when asked for.
    """

    __slots__ = ("_exact", "_f64", "shape")

    def __init__(self, exact: np.ndarray | None = None, f64: np.ndarray | None = None):
        if exact is None and f64 is None:
            raise ValueError("Const needs exact values or floats")
        self._exact = exact
        self._f64 = f64
        self.shape = tuple((exact if exact is not None else f64).shape)
        if self._f64 is not None:
            self._f64.setflags(write=False)

    @classmethod
    def exact_of(cls, values) -> Const:
        """From (nested lists of) ints, strings, Fractions or floats, each taken exactly."""
        arr = np.array(values, dtype=object)
        flat = [to_fraction(v) for v in arr.reshape(-1)]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return cls(exact=out.reshape(arr.shape))

    @classmethod
    def of_floats(cls, values) -> Const:
        """From a float array; the exact values are the binary values of its float64 copy."""
        arr = np.array(values, dtype=np.float64)  # float32 -> float64 is exact
        if not np.all(np.isfinite(arr)):
            raise ValueError("weights contain NaN or infinity")
        return cls(f64=arr)

    @classmethod
    def zeros(cls, shape) -> Const:
        return cls(f64=np.zeros(shape))

    @property
    def exact(self) -> np.ndarray:
        """Object array of `Fraction`s."""
        if self._exact is None:
            flat = np.empty(self._f64.size, dtype=object)
            flat[:] = [Fraction(float(v)) for v in self._f64.reshape(-1)]
            self._exact = flat.reshape(self._f64.shape)
        return self._exact

    @property
    def f64(self) -> np.ndarray:
        """The nearest float64 values (read-only)."""
        if self._f64 is None:
            flat = np.array([float(v) for v in self._exact.reshape(-1)], dtype=np.float64)
            self._f64 = flat.reshape(self.shape)
            self._f64.setflags(write=False)
        return self._f64

    @property
    def is_float_exact(self) -> bool:
        """True when every exact value is a float64 (so `f64` loses nothing)."""
        if self._exact is None:
            return True
        return all(Fraction(float(v)) == v for v in self._exact.reshape(-1))

    def part(self, rows=None, cols=None) -> Const:
        """Some rows and/or columns, exactly (a float-made constant stays float-made)."""
        src = self._f64 if self._exact is None else self._exact
        a = src[rows] if rows is not None else src
        a = a[:, cols] if cols is not None else a
        return Const(f64=np.array(a)) if self._exact is None else \
            Const(exact=np.array(a, dtype=object))

    def reshape(self, shape) -> Const:
        """The same values in another shape (a float-made constant stays float-made)."""
        if self._exact is None:
            return Const(f64=np.array(self._f64).reshape(shape))
        return Const(exact=self._exact.reshape(shape))

    def tolist(self):
        return self.exact.tolist()

    def __eq__(self, other) -> bool:
        if not isinstance(other, Const) or self.shape != other.shape:
            return NotImplemented if not isinstance(other, Const) else False
        if self._exact is None and other._exact is None:
            return bool(np.array_equal(self._f64, other._f64))
        return bool(np.all(self.exact == other.exact))

    def __hash__(self) -> int:
        return hash((self.shape, (self.f64 + 0.0).tobytes()))  # -0.0 == 0.0

    def __repr__(self) -> str:
        return f"Const(shape={self.shape})"
