"""Symbolic (back-substitution) bounds: CROWN / DeepPoly linear bounds on every pre-activation.

For each layer in order, the upper bound of +-z (z its pre-activation) is written as a linear
function of earlier nodes and pushed back to the input one node at a time, in reverse topological
order (layers only read earlier nodes, so reverse layer order is one), each node visited once with
the coefficients of all its readers summed. A ReLU node with pre-activation bounds l < 0 < u is
replaced by its triangle upper line a z + d (a ~ u / (u - l)) where its coefficient is positive and
by the CROWN lower line alpha z (alpha = 1 if u >= -l else 0; Zhang et al. 2018, "Efficient Neural
Network Robustness Certification with General Activation Functions"; Singh et al. 2019, DeepPoly)
where it is negative; stable ReLUs and linear layers are exact. The result is concretised over the
outward-rounded input box and intersected with known facts (IBP runs first).

Soundness in float64. The invariant kept for every row r is, for all inputs in the box and the
exact values h_j of the stored nodes,
    target_r <= sum_j Lam_j[r] . h_j + c[r] + E[r]
with Lam_j, c, E the floats actually stored. (1) The relaxation lines are valid as floats: a is
rounded so that a >= u / (u - l) (and a <= 1) and d = -a l is rounded up, so a l + d >= 0 and
a u + d >= a (u - l) >= u; ReLU is convex, so the line is above it on [l, u]. alpha is 0 or 1.
(2) Every float step (the products lam * a, the dot products lam+ . d, mu @ W, mu @ b, the sums
into Lam and c, and the final concretisation) is a sum of at most N + 2 rounded terms
(N = the widest node), whose error is at most gamma_{N+2} times the sum of the absolute values
of its terms (Higham, "Accuracy and Stability of Numerical Algorithms", 3.1), plus one
half-ulp of underflow per multiplication; a coefficient error on node j matters only through
|h_j| <= M_j, a sound magnitude bound. Rounding the exact weights to floats adds u |W| + eta.
So each step adds at most (gamma_{N+2} + u) * mag + underflow terms to E, where mag is that
sum of |terms| times M, computed alongside with np.abs matrices; we add 4 (N + 3) u * mag plus
tiny * (operation count), over twice what the analysis needs, which also covers the rounding of
mag and E themselves (E is rounded up with nextafter after each step). The final bound is
rounded outward with one nextafter. Any non-finite coefficient or sum (overflow) makes that
bound infinite, and NaN never reaches the facts.

Graph nodes. An `add` node z = a + b + ... hands its coefficient vector unchanged to every term
and a `slice`/`concat` hands each part to its source (exact copies); only adding them into
coefficients already there rounds, covered like the sums above (`_scatter`). The bounds of a
slice or concat are copied from its sources' value bounds (exact), not back-substituted.
"""
from __future__ import annotations

import numpy as np

from nnir.ir import conv
from nnir.ir.nodes import Network
from nnir.passes.interval import graph_bounds, input_box, merge

_U = 2.0 ** -53
_TINY = np.finfo(np.float64).tiny


def relu_relaxation(lo: np.ndarray, hi: np.ndarray):
    """Float lines bounding ReLU on [lo, hi]: relu(z) <= a z + d and relu(z) >= alpha z.

    Returns:
        (a, d, alpha) arrays; the upper line is valid in exact arithmetic for the float values
        returned (see the module docstring), alpha is 0 or 1, stable neurons are exact.
    """
    active, inactive = lo >= 0, hi <= 0
    unstable = ~active & ~inactive
    a = np.where(active, 1.0, 0.0)
    d = np.zeros_like(a)
    alpha = a.copy()
    if unstable.any():
        zl, zu = lo[unstable], hi[unstable]
        w = np.nextafter(zu - zl, -np.inf)  # w <= u - l (exactly)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            s = np.nextafter(zu / w, np.inf)  # s >= u / w >= u / (u - l)
        s = np.where(w > 0, np.minimum(s, 1.0), 1.0)  # 1 >= u / (u - l) as l < 0
        a[unstable] = s
        d[unstable] = np.nextafter(-(s * zl), np.inf)  # d >= -s l
        alpha[unstable] = (zu >= -zl).astype(np.float64)
    return a, d, alpha


class _Backsub:
    """Shared state for the back-substitution of one network: bounds, relaxations, magnitudes."""

    def __init__(self, net: Network):
        self.net = net
        self.xlo, self.xhi = input_box(net)
        width = max([net.input.size] + [lay.size for lay in net.layers])
        self.fac = 4.0 * (width + 3) * _U
        self.mag = {net.input.name: np.maximum(np.abs(self.xlo), np.abs(self.xhi))}
        self.zmag: dict[str, np.ndarray] = {}
        self.relax: dict[str, tuple] = {}

    def record(self, lay, lo: np.ndarray, hi: np.ndarray) -> None:
        """Remember sound pre-activation bounds of `lay` (only finite ones are usable)."""
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            return
        self.zmag[lay.name] = np.maximum(np.abs(lo), np.abs(hi))
        if lay.act == "relu":
            self.relax[lay.name] = relu_relaxation(lo, hi)
            self.mag[lay.name] = np.maximum(hi, 0.0)
        else:
            self.mag[lay.name] = self.zmag[lay.name]

    def _push(self, mu, lay, lam: dict, c, err):
        """Replace `mu . z` (z the pre-activation of `lay`) by coefficients on its sources and a
        constant; returns the new constant and error."""
        return PUSH_RULES[lay.kind](self, mu, lay, lam, c, err)

    def _scatter(self, parts, mu, lam: dict, err):
        """Hand `mu . v` of a slice, concat or add node v to its sources, `parts` = (source,
        start, coefficients): the coefficients are copied (exact); only their addition into
        coefficients already there rounds, by at most u |sum| per entry, and each source value
        is at most M in size."""
        for src, start, part in parts:
            stop = start + part.shape[1]
            if src not in lam:
                lam[src] = np.zeros((mu.shape[0], self.net.size_of(src)))
            new = lam[src][:, start:stop] + part
            lam[src][:, start:stop] = new
            m = np.abs(new) @ self.mag[src][start:stop]
            err = np.nextafter(err + self.fac * m, np.inf)
        return err

    def upper(self, k: int, C: np.ndarray) -> np.ndarray:
        """Sound upper bounds of C z_k over the input box (+inf where none is found)."""
        net, lay = self.net, self.net.layers[k]
        rows = C.shape[0]
        lam: dict[str, np.ndarray] = {}
        c, err = self._push(C, lay, lam, np.zeros(rows), np.zeros(rows))
        bad = np.zeros(rows, dtype=bool)
        for j in range(k - 1, -1, -1):  # reverse topological order
            lj = net.layers[j]
            coef = lam.pop(lj.name, None)
            if coef is None:
                continue
            if lj.name not in self.mag:  # no finite bounds known for this node
                return np.full(rows, np.inf)
            bad |= ~np.all(np.isfinite(coef), axis=1)
            if lj.act == "relu":
                a, d, alpha = self.relax[lj.name]
                pos, neg = np.maximum(coef, 0.0), np.minimum(coef, 0.0)
                mu = pos * a + neg * alpha  # disjoint supports: the sum is exact
                shift = pos @ d
                c = c + shift
                m = np.abs(mu) @ self.zmag[lj.name] + shift + np.abs(c)
                tiny = _TINY * (2 * lj.size + 2)
                err = np.nextafter(err + (self.fac * m + tiny), np.inf)
            else:
                mu = coef
            c, err = self._push(mu, lj, lam, c, err)
        lx = lam.pop(net.input.name, np.zeros((rows, net.input.size)))
        val = np.maximum(lx, 0.0) @ self.xhi + np.minimum(lx, 0.0) @ self.xlo + c
        m = np.abs(lx) @ self.mag[net.input.name] + np.abs(c)
        err = np.nextafter(err + (self.fac * m + _TINY * (2 * net.input.size + 2)), np.inf)
        with np.errstate(invalid="ignore", over="ignore"):
            out = np.nextafter(val + err, np.inf)
        bad |= ~np.all(np.isfinite(lx), axis=1) | ~np.isfinite(out)
        return np.where(bad, np.inf, out)


# Per node kind, how back-substitution pushes `mu . z` (z the node's pre-activation) to its
# sources: rule(backsub, mu, node, lam, c, err) -> (c, err), adding into `lam`.
def _push_dense(bs: _Backsub, mu, lay, lam: dict, c, err):
    """z = W src + b with exact W: mu W onto src, mu b into the constant. A convolution is the
    same with its sparse matrix (`nnir.ir.conv.matrix`): `mu @ W` is a dense-by-sparse product,
    and N (the widest node) bounds its terms per entry as well."""
    W, b = LINEAR[lay.kind](lay)
    ms = bs.mag[lay.src]
    nu = np.asarray(mu @ W)
    new = lam[lay.src] + nu if lay.src in lam else nu
    lam[lay.src] = new
    c = c + mu @ b
    amu = np.abs(mu)
    m = amu @ (abs(W) @ ms) + amu @ np.abs(b) + np.abs(new) @ ms + np.abs(c)
    # underflow: one eta per product, and eta per weight rounded to float (times |mu| M)
    n_ops = lay.size * (len(ms) + 4) + 2
    tiny = _TINY * (n_ops + amu.sum(axis=1) * (ms.sum() + 1.0))
    return c, np.nextafter(err + (bs.fac * m + tiny), np.inf)


def _push_slice(bs: _Backsub, mu, lay, lam: dict, c, err):
    return c, bs._scatter([(lay.src, lay.start, mu)], mu, lam, err)


def _push_concat(bs: _Backsub, mu, lay, lam: dict, c, err):
    offs = np.cumsum([0] + [bs.net.size_of(s) for s in lay.srcs])
    parts = [(s, 0, mu[:, offs[i]:offs[i + 1]]) for i, s in enumerate(lay.srcs)]
    return c, bs._scatter(parts, mu, lam, err)


def _push_add(bs: _Backsub, mu, lay, lam: dict, c, err):
    """Every term gets the whole coefficient vector."""
    return c, bs._scatter([(s, 0, mu) for s in lay.srcs], mu, lam, err)


def _push_gather(bs: _Backsub, mu, lay, lam: dict, c, err):
    """z = src[index]: each coefficient goes to the entry it copies (repeats add up)."""
    n = bs.net.size_of(lay.src)
    part = np.zeros((mu.shape[0], n))
    np.add.at(part, (slice(None), np.asarray(lay.index)), mu)  # repeats: rounded sums
    err = np.nextafter(err + bs.fac * (np.abs(mu) @ bs.mag[lay.src][list(lay.index)]), np.inf)
    return c, bs._scatter([(lay.src, 0, part)], mu, lam, err)


# Per affine node kind: its float weights and per-entry bias (dense arrays, or the sparse
# matrix of a convolution).
LINEAR = {"dense": lambda lay: (lay.weight.f64, lay.bias.f64),
          "conv": lambda lay: (conv.matrix(lay), conv.bias_vector(lay))}

PUSH_RULES = {"dense": _push_dense, "slice": _push_slice, "concat": _push_concat,
              "add": _push_add, "conv": _push_dense, "gather": _push_gather}


# Per node kind, its sound pre-activation bounds: rule(backsub, k, node, vals) with `vals` the
# value bounds of earlier nodes. Slices and concatenations copy their sources' bounds (exact).
ROW_BUDGET = 2 ** 24
"""Most float64 coefficients a back-substitution holds per node at once (128 MiB): rows are
processed in chunks so a convolution layer of 16k entries does not need a 32k x 16k matrix."""


def _backsub_bounds(bs: _Backsub, k: int, lay, vals: dict):
    """Back-substituted bounds of the node's entries that IBP left undecided: a ReLU entry
    known stable keeps its interval bound (back-substitution could only tighten a bound whose
    sign is already settled), a linear node's entries are all recomputed."""
    lo, hi = graph_bounds(lay, vals)
    todo = np.arange(lay.size)
    if lay.act == "relu":
        todo = np.nonzero((lo < 0) & (hi > 0))[0]
    width = max([bs.net.input.size] + [lj.size for lj in bs.net.layers])
    chunk = max(1, ROW_BUDGET // (2 * width))
    for a in range(0, len(todo), chunk):
        rows = todo[a:a + chunk]
        C = np.zeros((len(rows), lay.size))
        C[np.arange(len(rows)), rows] = 1.0
        up = bs.upper(k, np.vstack([C, -C]))
        lo[rows] = np.maximum(lo[rows], -up[len(rows):])
        hi[rows] = np.minimum(hi[rows], up[:len(rows)])
    return lo, hi


def _copied_bounds(bs: _Backsub, k: int, lay, vals: dict):
    return graph_bounds(lay, vals)


RULES = {"dense": _backsub_bounds, "slice": _copied_bounds, "concat": _copied_bounds,
         "add": _backsub_bounds, "conv": _backsub_bounds, "gather": _copied_bounds}


class SymbolicBounds:
    """Back-substitution (CROWN / DeepPoly) linear bounds, intersected with known facts."""

    name = "symbolic"

    def accepts(self, net: Network) -> bool:
        return not net.has_unknowns

    def run(self, net: Network, ctx) -> Network:
        bs = _Backsub(net)
        known = net.facts
        lo, hi = {}, {}
        vals = {net.input.name: (bs.xlo, bs.xhi)}
        for k, lay in enumerate(net.layers):
            plo, phi = RULES[lay.kind](bs, k, lay, vals)
            if known is not None and lay.name in known.lo:
                plo = np.maximum(plo, known.lo[lay.name])
                phi = np.minimum(phi, known.hi[lay.name])
            lo[lay.name], hi[lay.name] = plo, phi
            bs.record(lay, plo, phi)
            relu = lay.act == "relu"
            vals[lay.name] = (np.maximum(plo, 0.0), np.maximum(phi, 0.0)) if relu else (plo, phi)
        return merge(net, self.name, lo, hi)
