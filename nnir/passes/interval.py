"""Interval bound propagation (IBP): sound float64 bounds on every pre-activation.

Bounds are computed in float64 and then widened by a rigorous bound on the rounding error, so
they contain the exact (rational) pre-activations for every input in the box. For y = W x + b
with |W| <= |W_f| (1 + u) from rounding the exact weights to floats (u = 2^-53), the error of the
float dot product of length n is at most gamma_n |W_f| |x| (Higham, "Accuracy and Stability of
Numerical Algorithms", 3.1), gamma_n = n u / (1 - n u). The two dot products and the bias make
2n + 1 rounded terms, and weight rounding adds u |W_f| m, where m = max(|lo|, |hi|); we widen by
3 (n + 3) u (|W_f| m + |b|) plus an underflow allowance, over 1.4 times what the analysis needs,
to cover the rounding of the error term itself. Extra linear input constraints are ignored (the box
is a superset, so bounds stay sound).
"""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
import scipy.sparse as sp

from nnir.ir import conv
from nnir.ir.nodes import Facts, Network

_U = 2.0 ** -53
_TINY = np.finfo(np.float64).tiny


def round_down(q: Fraction) -> float:
    f = float(q)
    return f if Fraction(f) <= q else float(np.nextafter(f, -np.inf))


def round_up(q: Fraction) -> float:
    f = float(q)
    return f if Fraction(f) >= q else float(np.nextafter(f, np.inf))


def input_box(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """The input box as float64 arrays rounded outward."""
    lo = np.array([round_down(v) for v in net.input.lo.exact])
    hi = np.array([round_up(v) for v in net.input.hi.exact])
    return lo, hi


def inner_box(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """The input box as float64 arrays rounded inward (every float in it lies in the exact box;
    lo > hi in a coordinate whose exact interval holds no float)."""
    lo = np.array([round_up(v) for v in net.input.lo.exact])
    hi = np.array([round_down(v) for v in net.input.hi.exact])
    return lo, hi


def affine_bounds(W, b: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Sound bounds of W x + b for x in [lo, hi] (see the module docstring); W a dense array
    or a scipy sparse matrix (a convolution's, `nnir.ir.conv.matrix`)."""
    if sp.issparse(W):
        Wp, Wn = W.maximum(0.0), W.minimum(0.0)
    else:
        Wp, Wn = np.maximum(W, 0.0), np.minimum(W, 0.0)
    plo = Wp @ lo + Wn @ hi + b
    phi = Wp @ hi + Wn @ lo + b
    n = W.shape[1]
    mag = abs(W) @ np.maximum(np.abs(lo), np.abs(hi)) + np.abs(b)
    err = 3.0 * (n + 3) * _U * mag + (n + 2) * _TINY
    return np.nextafter(plo - err, -np.inf), np.nextafter(phi + err, np.inf)


def graph_bounds(lay, vals: dict) -> tuple[np.ndarray, np.ndarray]:
    """Sound pre-activation bounds of any node from its sources' value bounds `vals`."""
    return RULES[lay.kind](lay, vals)


# Per node kind, sound pre-activation bounds from the sources' value bounds `vals`.
def _dense(lay, vals: dict) -> tuple[np.ndarray, np.ndarray]:
    slo, shi = vals[lay.src]
    plo, phi = affine_bounds(lay.weight.f64, lay.bias.f64, slo, shi)
    if lay.act == "relu":
        plo, phi = refine_near_zero(lay, plo, phi, slo, shi)
    return plo, phi


def _slice(lay, vals: dict) -> tuple[np.ndarray, np.ndarray]:
    """Slicing copies bounds exactly."""
    lo, hi = vals[lay.src]
    stop = lay.start + lay.size
    return lo[lay.start:stop].copy(), hi[lay.start:stop].copy()


def _concat(lay, vals: dict) -> tuple[np.ndarray, np.ndarray]:
    """Concatenation copies bounds exactly."""
    return (np.concatenate([vals[s][0] for s in lay.srcs]),
            np.concatenate([vals[s][1] for s in lay.srcs]))


def _add(lay, vals: dict) -> tuple[np.ndarray, np.ndarray]:
    """A sum of k vectors is added one term at a time, each float addition rounded outward by
    one step (`nextafter`): a rounded sum is within half a spacing of the exact one, so one step
    down (up) is below (above) it, and an overflow goes to -inf (+inf), still sound."""
    lo, hi = (v.copy() for v in vals[lay.srcs[0]])
    for s in lay.srcs[1:]:
        with np.errstate(over="ignore", invalid="ignore"):
            lo = np.nextafter(lo + vals[s][0], -np.inf)
            hi = np.nextafter(hi + vals[s][1], np.inf)
    return np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)


def _conv(lay, vals: dict) -> tuple[np.ndarray, np.ndarray]:
    """A convolution is a sparse affine map: the dense bound with its CSR matrix (the error
    term counts the source's length, an upper bound on the taps per entry)."""
    slo, shi = vals[lay.src]
    return affine_bounds(conv.matrix(lay), conv.bias_vector(lay), slo, shi)


def _gather(lay, vals: dict) -> tuple[np.ndarray, np.ndarray]:
    """An index map copies bounds exactly."""
    lo, hi = vals[lay.src]
    return lo[list(lay.index)], hi[list(lay.index)]


RULES = {"dense": _dense, "slice": _slice, "concat": _concat, "add": _add, "conv": _conv,
         "gather": _gather}


def refine_near_zero(lay, plo, phi, slo, shi):
    """Recompute exactly (in rationals) the bounds whose sign the rounding allowance blurs.

    A pre-activation whose true bound is exactly 0 (e.g. `x + 1` on [-1, 1]) would otherwise be
    left unstable by the widening and cost a case split; for those few rows the rational sum
    is cheap and exact given the (sound) source bounds.
    """
    width = np.maximum(np.abs(plo), np.abs(phi))
    near = np.nonzero((plo < 0) & (phi > 0) & ((plo > -1e-9 * (1 + width))
                                               | (phi < 1e-9 * (1 + width))))[0]
    if len(near) == 0:
        return plo, phi
    plo, phi = plo.copy(), phi.copy()
    W, b = lay.weight.exact, lay.bias.exact
    flo = [Fraction(float(v)) for v in slo]
    fhi = [Fraction(float(v)) for v in shi]
    for i in near:
        lo_q = hi_q = b[i]
        for j, w in enumerate(W[i]):
            if w > 0:
                lo_q += w * flo[j]
                hi_q += w * fhi[j]
            elif w < 0:
                lo_q += w * fhi[j]
                hi_q += w * flo[j]
        plo[i] = max(plo[i], round_down(lo_q))
        phi[i] = min(phi[i], round_up(hi_q))
    return plo, phi


def merge(net: Network, origin: str, lo: dict, hi: dict) -> Network:
    """Intersect new bounds with any already known and mark the stable ReLUs."""
    old = net.facts
    L, H, S, orig = {}, {}, {}, {}
    for lay in net.layers:
        lo_new, hi_new = lo[lay.name], hi[lay.name]
        if old is not None and lay.name in old.lo:
            tighter = (lo_new > old.lo[lay.name]) | (hi_new < old.hi[lay.name])
            lo_new = np.maximum(lo_new, old.lo[lay.name])
            hi_new = np.minimum(hi_new, old.hi[lay.name])
            orig[lay.name] = origin if tighter.any() else old.origin[lay.name]
        else:
            orig[lay.name] = origin
        L[lay.name], H[lay.name] = lo_new, hi_new
        st = np.zeros(lay.size, dtype=np.int8)
        if lay.act == "relu":
            st[lo_new >= 0] = 1
            st[hi_new <= 0] = -1
        S[lay.name] = st
    return replace(net, facts=Facts(L, H, S, orig))


class IntervalBounds:
    """Interval bound propagation over the input box."""

    name = "ibp"

    def accepts(self, net: Network) -> bool:
        return not net.has_unknowns

    def run(self, net: Network, ctx) -> Network:
        vals = {net.input.name: input_box(net)}
        lo, hi = {}, {}
        for lay in net.layers:
            plo, phi = RULES[lay.kind](lay, vals)
            if net.facts is not None and lay.name in net.facts.lo:  # reuse tighter known bounds
                plo = np.maximum(plo, net.facts.lo[lay.name])
                phi = np.minimum(phi, net.facts.hi[lay.name])
            lo[lay.name], hi[lay.name] = plo, phi
            if lay.act == "relu":
                vals[lay.name] = (np.maximum(plo, 0.0), np.maximum(phi, 0.0))
            else:
                vals[lay.name] = (plo, phi)
        return merge(net, self.name, lo, hi)
