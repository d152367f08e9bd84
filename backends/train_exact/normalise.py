"""The sign-normalised form of a one-hidden-layer two-class network, and its inverse.

ReLU is positively homogeneous, so a hidden unit with outgoing weight difference u_j (class-1 row
minus class-0 row) and incoming (w_j, b_j) computes the same logit difference as one with outgoing
sign s_j = sign(u_j) and incoming |u_j| (w_j, b_j). With the signs fixed the problem is linear
with one case split per (point, helping unit) (`smtlib/train_lower.signed_script`,
`milp/train_lower.signed_milp`). A unit with u_j = 0 is a unit of either sign with zero weights.

**Weight boxes** (`Unknown.lo/hi`) are enforced on the *returned* (de-normalised) network. The
form applies only when every hidden box contains 0; then it is exact: with an output box
[vlo, vhi], D = vhi - vlo bounds |u_j|, and the set of normalised incoming weights |u_j| (w_j, b_j)
with (w_j, b_j) in a box B containing 0 and |u_j| <= D is exactly D B (scaled boxes containing 0
are nested). A solution is de-normalised with |u_j| = D (or the least scale that fits the box when
D is infinite) and the two output rows are picked inside their box with difference u_j (`split`);
likewise the offset c = c1 - c0 lies in [blo - bhi, bhi - blo].

**More than two classes** are not normalised: with K logits a unit has K outgoing weights, and
only a common positive scale can move into the first layer, so the signs of K - 1 differences
would have to be enumerated jointly per unit. Such networks go to the naive encoding.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from nnir.ir.nodes import Network, Unknown


@dataclass(frozen=True)
class SignedForm:
    """A one-hidden-layer two-class network in sign-normalised form.

    Normalised bounds (None: unbounded) of the incoming weights w, biases b and the offset c, or
    the known offset `c_fixed`; `d` inputs, `h` hidden units; `out_d` bounds |u_j| (None: inf).
    """

    d: int
    h: int
    w_lo: Fraction | None
    w_hi: Fraction | None
    b_lo: Fraction | None
    b_hi: Fraction | None
    c_lo: Fraction | None
    c_hi: Fraction | None
    c_fixed: Fraction | None
    out_d: Fraction | None


def _scale(v: Fraction | None, D: Fraction | None) -> Fraction | None:
    if v is None or v == 0:
        return v
    return None if D is None else v * D


def _width(t: Unknown) -> Fraction | None:
    return None if t.lo is None or t.hi is None else t.hi - t.lo


def signed_form(net: Network) -> tuple[SignedForm | None, str]:
    """The sign-normalised form of `net`, or None and the reason it does not apply."""
    if net.output_size != 2:
        return None, f"{net.output_size} classes (the signed encoding handles 2)"
    if len(net.layers) != 2:
        return None, f"{len(net.layers)} layers (the signed encoding needs 2)"
    hid, out = net.layers
    if not (hid.act == "relu" and out.act == "linear" and hid.src == net.input.name
            and out.src == hid.name and net.output == out.name):
        return None, "not input -> relu hidden -> linear output"
    if not all(isinstance(t, Unknown) for t in (hid.weight, hid.bias, out.weight)):
        return None, "hidden weights, hidden biases and output weights must all be unknown"
    for t in (hid.weight, hid.bias):
        if (t.lo is not None and t.lo > 0) or (t.hi is not None and t.hi < 0):
            return None, "a hidden weight box does not contain 0"
    D = _width(out.weight)
    if isinstance(out.bias, Unknown):
        Dc = _width(out.bias)
        c = (None if Dc is None else -Dc, Dc, None)
    else:
        c = (None, None, out.bias.exact[1] - out.bias.exact[0])
    hw, hb = hid.weight, hid.bias
    return SignedForm(net.input.size, hid.size, _scale(hw.lo, D), _scale(hw.hi, D),
                      _scale(hb.lo, D), _scale(hb.hi, D), *c, D), ""


def split(u: Fraction, lo: Fraction | None, hi: Fraction | None) -> tuple[Fraction, Fraction]:
    """(a, b) with a - b = u and both in [lo, hi] (possible when |u| <= hi - lo)."""
    if u >= 0:
        b = lo if lo is not None else (hi - u if hi is not None else Fraction(0))
        return b + u, b
    a = lo if lo is not None else (hi + u if hi is not None else Fraction(0))
    return a, a - u


def _fit_scale(vals, lo: Fraction | None, hi: Fraction | None) -> Fraction:
    """The least t >= 1 with every v / t in [lo, hi] (lo <= 0 <= hi; a side None: unbounded)."""
    t = Fraction(1)
    for v in vals:
        if v > 0 and hi is not None and hi > 0:
            t = max(t, v / hi)
        elif v < 0 and lo is not None and lo < 0:
            t = max(t, v / lo)
    return t


def denormalise(net: Network, spec: SignedForm, signs, w, b, c) -> list:
    """Weights of every layer of `net` from a normalised solution (w: h x d, b: h, c or None)."""
    hid, out = net.layers
    W1, b1, V1, V0 = [], [], [], []
    for j, s in enumerate(signs):
        if spec.out_d is None:  # any scale is allowed: the least that fits the hidden box
            t = max(_fit_scale(w[j], hid.weight.lo, hid.weight.hi),
                    _fit_scale([b[j]], hid.bias.lo, hid.bias.hi))
        else:
            t = spec.out_d
        if t == 0:  # the output weights are fixed equal: the unit cannot matter
            W1.append([Fraction(0)] * spec.d)
            b1.append(Fraction(0))
        else:
            W1.append([v / t for v in w[j]])
            b1.append(b[j] / t)
        a, z = split(s * t, out.weight.lo, out.weight.hi)
        V1.append(a)
        V0.append(z)
    if spec.c_fixed is not None:
        c_pair = list(out.bias.exact)
    else:
        c1, c0 = split(c, out.bias.lo, out.bias.hi)
        c_pair = [c0, c1]
    return [(W1, b1), ([V0, V1], c_pair)]
