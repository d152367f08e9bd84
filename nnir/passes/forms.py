"""Exact affine forms of a network's values over "neurons", the algebra of relation inference.

A neuron is an input coordinate or the output of one ReLU. Every other value of a network is an
affine function of earlier neurons, and this module computes that function exactly:
- `Vec`: entry i is `scale[i] * neuron[ids[i]]`, or the constant `const[i]` where `ids[i] < 0`
  (the values of ReLU nodes, slices and concatenations of them): relabelling, no arithmetic;
- `Form`: entry i is `sum_j M[i, j] * neuron[cols[j]] + const[i]`, `cols` sorted and distinct
  (linear layers, sums of partial results).

Exactness, cheaply. `M` is float64 whenever every entry is exactly a float (the exact rational
value of each float is meant), else an object array of `Fraction`s. Relabelling columns, slicing
and stacking rows copy floats, so they are exact. A sum of two float matrices is checked with
Knuth's TwoSum (s = a + b, e = (a - (s - (s - a))) + (b - (s - a)) is the exact rounding error of s
when nothing overflows; Higham, "Accuracy and Stability of Numerical Algorithms", 4.3): when every
e is 0 and s is finite the float sum is the exact sum, else the sum is redone in Fractions. Only a
dense layer reading a general `Form` (a product of matrices) or positive scales other than 1 need
Fraction arithmetic; products beyond `MAX_EXACT_WORK` multiplications are refused (`TooLarge`).
Constants are always `Fraction`s (one per entry: cheap).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from nnir.ir import conv as _conv

MAX_EXACT_WORK = 4_000_000


class TooLarge(Exception):
    """An exact product of matrices would take too long; relation inference gives up here."""


def fractions(values) -> np.ndarray:
    """An object array of Fractions (floats taken at their exact binary value)."""
    arr = np.asarray(values)
    out = np.empty(arr.shape, dtype=object)
    flat = out.reshape(-1)
    flat[:] = [v if isinstance(v, Fraction) else Fraction(v) for v in arr.reshape(-1).tolist()]
    return out


def zeros_q(n: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    out[:] = [Fraction(0)] * n
    return out


@dataclass
class Vec:
    """Entries that are single neurons times a positive scale, or constants (see module doc)."""

    ids: np.ndarray  # int64, -1 for a constant entry
    const: np.ndarray  # object Fractions (used where ids < 0)
    scale: np.ndarray | None = None  # object Fractions per entry; None means all 1

    def take(self, idx) -> Vec:
        idx = np.asarray(idx, dtype=np.int64)
        return Vec(self.ids[idx], self.const[idx], None if self.scale is None
                   else self.scale[idx])

    def to_form(self) -> Form:
        n = len(self.ids)
        live = np.flatnonzero(self.ids >= 0)
        cols, pos = np.unique(self.ids[live], return_inverse=True)
        if self.scale is None:
            M = np.zeros((n, len(cols)))
            M[live, pos] = 1.0
        else:
            M = np.full((n, len(cols)), Fraction(0), dtype=object)
            M[live, pos] = self.scale[live]
        const = self.const.copy()
        const[live] = Fraction(0)
        return Form(cols, M, const)


@dataclass
class Form:
    """Entries that are affine functions of neurons (see module doc); `via` names the linear
    nodes folded into it, for reports."""

    cols: np.ndarray
    M: np.ndarray
    const: np.ndarray
    via: tuple[str, ...] = ()

    def take(self, idx) -> Form:
        idx = np.asarray(idx, dtype=np.int64)
        return Form(self.cols, self.M[idx], self.const[idx], self.via)

    def row(self, r: int) -> tuple[np.ndarray, np.ndarray, Fraction]:
        """Row r without zero coefficients: (neuron ids, coefficients, constant)."""
        m = self.M[r]
        nz = np.flatnonzero(m != 0)
        return self.cols[nz], m[nz], self.const[r]


Value = Vec | Form


def as_form(v: Value) -> Form:
    return v if isinstance(v, Form) else v.to_form()


def exact_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b exactly: float when TwoSum shows no rounding (see module doc), else Fractions."""
    if a.dtype != object and b.dtype != object:
        with np.errstate(over="ignore", invalid="ignore"):
            s = a + b
            bb = s - a
            err = (a - (s - bb)) + (b - bb)
        if np.all(err == 0) and np.all(np.isfinite(s)):
            return s
    return _obj(a) + _obj(b)


def _obj(m: np.ndarray) -> np.ndarray:
    return m if m.dtype == object else fractions(m)


def widen(f: Form, cols: np.ndarray) -> np.ndarray:
    """`f.M` with its columns placed among `cols` (a sorted superset of `f.cols`)."""
    if len(cols) == len(f.cols):
        return f.M
    zero = 0.0 if f.M.dtype != object else Fraction(0)
    out = np.full((f.M.shape[0], len(cols)), zero, dtype=f.M.dtype)
    out[:, np.searchsorted(cols, f.cols)] = f.M
    return out


def add(terms: list[Value], via: tuple[str, ...]) -> Form:
    """The exact sum of equally long values."""
    forms = [as_form(t) for t in terms]
    cols = np.unique(np.concatenate([f.cols for f in forms])) if forms else np.zeros(0, np.int64)
    M = widen(forms[0], cols)
    const = forms[0].const.copy()
    for f in forms[1:]:
        M = exact_sum(M, widen(f, cols))
        const = const + f.const
    inner = tuple(n for f in forms for n in f.via)
    return Form(cols, M, const, via + inner)


def concat(parts: list[Value], via: tuple[str, ...] = ()) -> Value:
    if all(isinstance(p, Vec) for p in parts):
        scale = None
        if any(p.scale is not None for p in parts):
            scale = np.concatenate([p.scale if p.scale is not None else
                                    np.array([Fraction(1)] * len(p.ids), dtype=object)
                                    for p in parts])
        return Vec(np.concatenate([p.ids for p in parts]),
                   np.concatenate([p.const for p in parts]), scale)
    forms = [as_form(p) for p in parts]
    cols = np.unique(np.concatenate([f.cols for f in forms]))
    Ms = [widen(f, cols) for f in forms]
    if any(m.dtype == object for m in Ms):
        Ms = [_obj(m) for m in Ms]
    return Form(cols, np.vstack(Ms), np.concatenate([f.const for f in forms]),
                via + tuple(n for f in forms for n in f.via))


def dense(W, b, src: Value, via: tuple[str, ...]) -> Form:
    """`W @ src + b` as a Form over src's neurons (W, b: `Const`s, taken exactly)."""
    Wm = W.f64 if W.is_float_exact else W.exact
    const = np.array(b.exact, dtype=object)
    if isinstance(src, Vec) and src.scale is None:
        live = np.flatnonzero(src.ids >= 0)
        cst = np.flatnonzero((src.ids < 0) & (src.const != 0))
        if len(cst):
            const = const + _obj(Wm[:, cst]).dot(src.const[cst])
        ids = src.ids[live]
        cols, first, inv = np.unique(ids, return_index=True, return_inverse=True)
        if len(cols) == len(ids):  # distinct neurons: a relabelling of W's columns
            order = np.argsort(ids, kind="stable")
            return Form(cols, Wm[:, live[order]], const, via)
        M = Wm[:, live[first]]  # a neuron read twice: its columns summed exactly
        for k in np.flatnonzero(np.bincount(inv) > 1):
            dup = live[np.flatnonzero(inv == k)]
            s = Wm[:, dup[0]]
            for j in dup[1:]:
                s = exact_sum(s, Wm[:, j])
            if s.dtype == object and M.dtype != object:
                M = _obj(M)
            M[:, k] = s
        return Form(cols, M, const, via)
    f = as_form(src)
    if W.shape[0] * W.shape[1] * max(1, len(f.cols)) > MAX_EXACT_WORK:
        raise TooLarge(f"an exact product of a {W.shape[0]}x{W.shape[1]} weight with a "
                       f"{f.M.shape[0]}x{len(f.cols)} affine form")
    Wq = _obj(Wm)
    return Form(f.cols, Wq.dot(_obj(f.M)) if len(f.cols) else np.zeros((W.shape[0], 0)),
                const + Wq.dot(f.const), via + f.via)


def conv(lay, src: Value, via: tuple[str, ...]) -> Form:
    """A convolution node's pre-activation over src's neurons, exactly, built from its taps
    (`nnir.ir.conv.taps_of`: work proportional to taps, never a dense weight matrix; the Form
    itself is dense over the neurons read, so its size is guarded like a dense product's)."""
    indptr, cols, widx = _conv.taps_of(lay)
    W = lay.weight
    w = (W.f64 if W.is_float_exact else W.exact).reshape(-1)[widx]
    rows = np.repeat(np.arange(lay.size), np.diff(indptr))
    const = np.array(_conv.bias_vector(lay, exact=True), dtype=object)
    if isinstance(src, Vec) and src.scale is None:  # neurons and constants: a relabelling
        ids = src.ids[cols]
        live = ids >= 0
        for t in np.flatnonzero(~live & (src.const[cols] != 0)):
            const[rows[t]] += Fraction(w[t]) * src.const[cols[t]]
        ucols, pos = np.unique(ids[live], return_inverse=True)
        _guard(lay.size * len(ucols), lay)
        r, wl = rows[live], w[live]
        key = r * max(1, len(ucols)) + pos
        if w.dtype != object and len(np.unique(key)) == len(key):  # no sums: floats copied
            M = np.zeros((lay.size, len(ucols)))
            M[r, pos] = wl
        else:
            M = np.full((lay.size, len(ucols)), Fraction(0), dtype=object)
            for a, b, c in zip(r.tolist(), pos.tolist(), wl.tolist()):
                M[a, b] += Fraction(c)
        return Form(ucols.astype(np.int64), M, const, via)
    g = as_form(src)
    _guard(len(w) * max(1, len(g.cols)), lay)
    Gq = _obj(g.M)
    M = np.full((lay.size, len(g.cols)), Fraction(0), dtype=object)
    for t, (r, c) in enumerate(zip(rows.tolist(), cols.tolist())):
        q = Fraction(w[t])
        M[r] += q * Gq[c]
        const[r] += q * g.const[c]
    return Form(g.cols, M, const, via + g.via)


def _guard(work: int, lay) -> None:
    if work > MAX_EXACT_WORK:
        raise TooLarge(f"an exact affine form of convolution '{lay.name}' ({work} entries)")


def from_rows(rows: list[tuple[np.ndarray, np.ndarray, Fraction]], via=()) -> Form:
    """A Form from per-entry (neuron ids, coefficients, constant) rows."""
    cols = np.unique(np.concatenate([r[0] for r in rows] + [np.zeros(0, np.int64)]))
    M = np.full((len(rows), len(cols)), Fraction(0), dtype=object)
    for i, (c, v, _) in enumerate(rows):
        M[i, np.searchsorted(cols, c)] = [x if isinstance(x, Fraction) else Fraction(x)
                                          for x in v]
    const = np.array([Fraction(r[2]) for r in rows] or [], dtype=object)
    return Form(cols.astype(np.int64), M, const, via)


def entry_row(v: Value, i: int) -> tuple[np.ndarray, np.ndarray, Fraction]:
    """Entry i of a value as (neuron ids, coefficients, constant), zero coefficients dropped."""
    if isinstance(v, Form):
        return v.row(i)
    if v.ids[i] < 0:
        return np.zeros(0, np.int64), np.zeros(0), v.const[i]
    s = 1.0 if v.scale is None else v.scale[i]
    return np.array([v.ids[i]]), np.array([s], dtype=object if v.scale is not None else float), \
        Fraction(0)


def proportional(rb, ra) -> Fraction | None:
    """The d > 0 with row rb = d * row ra exactly (coefficients and constant), else None."""
    cb, vb, kb = rb
    ca, va, ka = ra
    if len(cb) != len(ca) or not np.array_equal(cb, ca):
        return None
    if len(cb) == 0:
        if ka == 0:
            return Fraction(1) if kb == 0 else None
        d = Fraction(kb) / Fraction(ka)
        return d if d > 0 else None
    d = Fraction(vb[0]) / Fraction(va[0])
    if d <= 0:
        return None
    if d == 1 and vb.dtype != object and va.dtype != object:
        return d if np.array_equal(vb, va) and kb == ka else None
    if kb != d * ka:
        return None
    ok = all(Fraction(x) == d * Fraction(y) for x, y in zip(vb.tolist(), va.tolist()))
    return d if ok else None
