"""Sound float64 pre-activation bounds on many sub-boxes at once: forward symbolic intervals.

For every node and every box, two linear functions of the input, L(x) and U(x), and two error
terms eL, eU >= 0 are kept such that, for every x in the box and the exact (rational) value v of
the node, L(x) - eL <= v <= U(x) + eU, where L and U are evaluated exactly from the floats stored
(the symbolic intervals of ReluVal and Neurify: Wang et al. 2018, "Formal Security Analysis of
Neural Networks using Symbolic Intervals" and "Efficient Formal Safety Analysis of Neural
Networks"). A layer z = W src + b maps them by W+ U + W- L (and the mirror); an unstable ReLU
with pre-activation bounds l < 0 < u gets the upper line a z + d of `relu_relaxation` and the lower
line alpha z, alpha = 1 if u >= -l else 0 (CROWN's choice; valid for any alpha in [0, 1]); stable
ReLUs are exact. Concretising U and L over the box gives sound pre-activation bounds, and so on
layer by layer. Both functions of a node are stored side by side, A[:, :, :n] for U and
A[:, :, n:] for L, so one GEMM per layer maps a whole batch. (Neurify's parallel lower line,
slope a, lets U and L share one matrix at a quarter of the work, but on ACAS Xu it needed 4 to 6
times more sub-boxes: 33,091 against 7,967 on network 1_1, property 2, and was 3 times slower.)

Soundness in float64, by the argument of `nnir.passes.symbolic`: every float step is a sum of at
most 2N + 2 rounded terms (N the widest node), whose error is at most gamma_{2N+2} times the sum
of the absolute values of its terms (Higham, "Accuracy and Stability of Numerical Algorithms",
3.1); a coefficient error only matters through |x| <= mx (the box's magnitude), and the rounding
of the exact weights to floats through |h| <= M (a sound magnitude of the source node). We add
`fac` = 4 (N + 3) u times those magnitudes (u = 2^-53), at least twice what the analysis needs,
which also covers the rounding of the error terms themselves, plus an underflow allowance, and
round every error term and bound outward with `nextafter`. Non-finite values make a bound
infinite, never NaN.

Layers are the nodes with one source: dense, conv (W its sparse tap matrix, `nnir.ir.conv`: a
row has at most C/groups * kh * kw <= N terms, so the same allowance holds), gather and slice
(0/1 index maps, exact but treated like any W); a network with add or concat nodes is first made
an exact chain of such layers (`chain.py`), whose widest layer sets `fac`. The forward intervals
hold (d + 1) x 2m floats per node and box: on a 3072-dim CIFAR input that is about 100 MB per
conv layer for one box, so the ReLU-split engine computes them once, at the root, and bounds
sub-problems by back-substitution (`bab.crown`); its `crown=False` mode sizes its batches by
the same count (one box at a time on such inputs).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from nnir.backends.split import chain
from nnir.ir import conv
from nnir.ir.nodes import Network
from nnir.passes.symbolic import relu_relaxation

_U = 2.0 ** -53
TINY = np.finfo(np.float64).tiny


@dataclass
class Layer:
    """One linear layer's float data, prepared once per network: `z = W src + b`, then `act`.

    `W` is a dense array (dense layers) or a `scipy.sparse` CSR matrix (convolutions, whose
    taps are `nnir.ir.conv.matrix`, and the 0/1 index maps of gather and slice nodes); the
    derived matrices are sparse too then. Every use is a product `X @ W`, `X @ W.T` or
    `X @ absWT` with a dense X, which gives a dense array either way (`np.asarray`).
    """

    name: str
    src: str
    act: str
    W: np.ndarray | sp.csr_matrix  # (m, n)
    b: np.ndarray  # (m,)
    Wbig: np.ndarray | sp.csr_matrix  # (2n, 2m): [U | L] of the source to [U | L] of z
    absWbig: np.ndarray | sp.csr_matrix  # the same with |.|: how the error terms propagate
    absWT: np.ndarray | sp.csr_matrix  # |W|^T (n, m)
    absb: np.ndarray

    def rows(self, u: np.ndarray) -> np.ndarray:
        """Rows u of W as a dense (len(u), n) array."""
        W = self.W[u]
        return W.toarray() if sp.issparse(W) else np.array(W)


@dataclass
class Prepared:
    """A network's float data for the split engine, and the root box's sound facts."""

    net: Network
    layers: list[Layer]
    fac: float
    root_lo: dict = field(default_factory=dict)  # layer -> pre-activation lower bound (or absent)
    root_hi: dict = field(default_factory=dict)
    # a DAG made a chain (`chain.py`): node -> its size (its entries lead its chain layer's)
    node_size: dict = field(default_factory=dict)
    chain: list = field(default_factory=list)  # its `chain.ChainLayer`s

    def pad_rows(self, rows):
        """`rows` (a `backsub.Rows` over IR nodes) over the chain layers: zeros on the carried
        entries."""
        if not self.node_size:
            return rows
        wide = {lay.name: len(lay.b) for lay in self.layers}
        coef = {}
        for node, c in rows.coef.items():
            c = np.asarray(c)
            extra = wide.get(node, c.shape[-1]) - c.shape[-1]
            coef[node] = np.concatenate([c, np.zeros(c.shape[:-1] + (extra,))], axis=-1) \
                if extra else c
        return type(rows)(coef, rows.const)

    def node_bounds(self, z: dict) -> dict:
        """Per-layer arrays (..., width) of the chain as per-node ones of the IR network."""
        if not self.node_size:
            return z
        return {k: v[..., :self.node_size[k]] for k, v in z.items() if k in self.node_size}


def _layer(lay, W, b: np.ndarray) -> Layer:
    """The prepared layer `z = W src + b` (W dense or sparse)."""
    b = np.asarray(b, dtype=np.float64)
    if sp.issparse(W):
        W = sp.csr_matrix(W, dtype=np.float64)
        Wp, Wn = W.maximum(0.0).T, W.minimum(0.0).T
        big = sp.bmat([[Wp, Wn], [Wn, Wp]], format="csr")  # U' = W+ U + W- L, L' = W- U + W+ L
        return Layer(lay.name, lay.src, lay.act, W, b, big, abs(big), abs(W).T.tocsr(),
                     np.abs(b))
    Wp, Wn = np.maximum(W, 0.0).T, np.minimum(W, 0.0).T
    big = np.block([[Wp, Wn], [Wn, Wp]])
    return Layer(lay.name, lay.src, lay.act, W, b, big, np.abs(big), np.abs(W).T, np.abs(b))


def _selection(lay, n: int, index) -> sp.csr_matrix:
    """The 0/1 matrix of `z = src[index]` (exact: one term of weight 1 per row)."""
    m = len(index)
    return sp.csr_matrix((np.ones(m), np.asarray(index, dtype=np.int64),
                          np.arange(m + 1)), shape=(m, n))


def linear_map(net: Network, lay):
    """(W, b) of a dense, conv, gather or slice node: float64, W dense or CSR (see `Layer`)."""
    if lay.kind == "dense":
        return lay.weight.f64, lay.bias.f64
    if lay.kind == "conv":
        return conv.matrix(lay), conv.bias_vector(lay)
    n = net.size_of(lay.src)
    index = lay.index if lay.kind == "gather" else range(lay.start, lay.start + lay.size)
    return _selection(lay, n, index), np.zeros(lay.size)


def _single(net: Network, lay):
    """A one-source node's map by source: ([(src, W)], b) (see `chain.build`)."""
    W, b = linear_map(net, lay)
    return [(lay.src, W)], b


def _add(net: Network, lay):
    eye = sp.identity(lay.size, format="csr")
    return [(s, eye) for s in lay.srcs], np.zeros(lay.size)


def _concat(net: Network, lay):
    out, o = [], 0
    for s in lay.srcs:
        k = net.size_of(s)
        i = np.arange(k)
        out.append((s, sp.csr_matrix((np.ones(k), (o + i, i)), shape=(lay.size, k))))
        o += k
    return out, np.zeros(lay.size)


# Per node kind, its affine map by source, `([(src, W)], b)` (W dense or CSR): one-source nodes
# (dense, conv, gather, slice) are taken as they are when the whole network is a chain of them;
# networks with add and concat nodes (residual and tensor-parallel graphs) become an exact chain
# of affine + ReLU layers first (`chain.py`).
RULES = {"dense": _single,
         "slice": _single,
         "concat": _concat,
         "add": _add,
         "conv": _single,
         "gather": _single}


def prepare_network(net: Network) -> Prepared:
    """Float copies and the block matrices the batched passes need (a DAG through `chain`)."""
    if chain.is_chain(net):
        width = max([net.input.size] + [lay.size for lay in net.layers])
        layers = [_layer(lay, *linear_map(net, lay)) for lay in net.layers]
        prep = Prepared(net, layers, 4.0 * (2 * width + 3) * _U)
        if net.facts is not None:
            prep.root_lo = dict(net.facts.lo)
            prep.root_hi = dict(net.facts.hi)
        return prep
    links = chain.build(net, lambda n, lay: RULES[lay.kind](n, lay))
    width = max([net.input.size] + [len(c.b) for c in links])
    layers = [_layer(c, c.W, c.b) for c in links]
    prep = Prepared(net, layers, 4.0 * (2 * width + 3) * _U,
                    node_size={c.name: c.size for c in links}, chain=links)
    prep.root_lo = {c.name: c.lo for c in links}
    prep.root_hi = {c.name: c.hi for c in links}
    return prep


@dataclass
class BoxBounds:
    """Bounds of one batch of boxes: pre-activation bounds per layer, magnitudes per node
    (sound bounds of |value|), and the ReLU relaxations (a, d, alpha) the back-substitution uses."""

    lo: np.ndarray
    hi: np.ndarray
    mx: np.ndarray
    zlo: dict
    zhi: dict
    mag: dict
    relax: dict
    share: dict  # relu layer -> (B, d, m): each input dimension's share of a neuron's bound width

    def unstable(self) -> np.ndarray:
        """Unstable ReLUs per box."""
        n = np.zeros(len(self.lo), dtype=np.int64)
        for name in self.relax:
            n += np.sum((self.zlo[name] < 0) & (self.zhi[name] > 0), axis=1)
        return n


def _outer_box(lo: np.ndarray, hi: np.ndarray):
    """Centre c and radius r of a float box containing [lo, hi] in exact arithmetic (r rounded
    up), and the magnitude |c| + r >= |x| of its points."""
    c = lo + (hi - lo) / 2
    r = np.nextafter(np.maximum(hi - c, c - lo), np.inf)  # >= the exact distances
    return c, r, np.abs(c) + r


def _concretise(A: np.ndarray, c: np.ndarray, rm: np.ndarray, m: int):
    """Max over the box of the U half of A and min of the L half (float sums; the caller adds
    their rounding errors), and the size |A| . mx + |A_const| of every function.

    Args:
        A: (B, d + 1, 2m) [U | L] coefficients, the constant last.
        c: (B, d) centre; rm: (B, 2, d) radius and magnitude.
    """
    P = A[:, :-1, :]
    cv = np.matmul(c[:, None, :], P)[:, 0]
    rv = np.matmul(rm, np.abs(P))  # (B, 2, 2m): |A| . r and |A| . mx
    const = A[:, -1, :]
    up = cv[:, :m] + rv[:, 0, :m] + const[:, :m]
    dn = cv[:, m:] - rv[:, 0, m:] + const[:, m:]
    return up, dn, rv[:, 1] + np.abs(const)


def forward_bounds(prep: Prepared, lo: np.ndarray, hi: np.ndarray) -> BoxBounds:
    """Sound pre-activation bounds of every layer on each box [lo[i], hi[i]] (float rows).

    Args:
        prep: the prepared network.
        lo, hi: (B, d) box corners; the exact boxes must lie inside them.
    """
    B, d = lo.shape
    c, r, mx = _outer_box(lo, hi)
    rm = np.stack([r, mx], axis=1)
    fac = prep.fac
    net = prep.net
    eye = np.zeros((d + 1, 2 * d))
    eye[np.arange(d), np.arange(d)] = eye[np.arange(d), d + np.arange(d)] = 1.0
    A = {net.input.name: np.broadcast_to(eye, (B, d + 1, 2 * d))}
    err = {net.input.name: np.zeros((B, 2 * d))}
    size = {net.input.name: np.concatenate([mx, mx], axis=1)}
    mag = {net.input.name: mx}
    zlo, zhi, relax, share = {}, {}, {}, {}
    width = (hi - lo)[:, :, None]
    readers = {}  # the symbolic intervals of a node are dropped after its last reader
    for lay in prep.layers:
        readers[lay.src] = readers.get(lay.src, 0) + 1
    with np.errstate(over="ignore", invalid="ignore"):
        for lay in prep.layers:
            m = len(lay.b)
            As, es, ss, Ms = A[lay.src], err[lay.src], size[lay.src], mag[lay.src]
            readers[lay.src] -= 1
            if not readers[lay.src]:
                del A[lay.src], err[lay.src], size[lay.src]
            n = Ms.shape[1]
            Az = np.asarray(As.reshape(-1, 2 * n) @ lay.Wbig).reshape(B, d + 1, 2 * m)
            Az[:, d, :m] += lay.b
            Az[:, d, m:] += lay.b
            S = np.maximum(ss[:, :n], ss[:, n:]) + Ms + es[:, :n] + es[:, n:]
            extra = (fac * (np.asarray(S @ lay.absWT) + lay.absb)
                     + TINY * (n + 3) * (1.0 + Ms.sum(1))[:, None])
            ez = np.nextafter(np.asarray(es @ lay.absWbig) + np.concatenate([extra, extra], axis=1),
                              np.inf)
            up, dn, sz = _concretise(Az, c, rm, m)
            slack = fac * sz + TINY * (d + 2)
            zu = np.nextafter(up + ez[:, :m] + slack[:, :m], np.inf)
            zl = np.nextafter(dn - ez[:, m:] - slack[:, m:], -np.inf)
            zu = np.where(np.isnan(zu), np.inf, zu)
            zl = np.where(np.isnan(zl), -np.inf, zl)
            if lay.name in prep.root_lo:  # the root box's facts hold on every sub-box
                zl = np.maximum(zl, prep.root_lo[lay.name])
                zu = np.minimum(zu, prep.root_hi[lay.name])
            zlo[lay.name], zhi[lay.name] = zl, zu
            if lay.act == "relu":
                a, dd, alpha = relu_relaxation(zl, zu)
                relax[lay.name] = (a, dd, alpha)
                w = np.abs(Az[:, :d, :m]) * width  # for branching only
                share[lay.name] = w / (w.sum(1, keepdims=True) + TINY)
                slopes = np.concatenate([a, alpha], axis=1)
                Ah = Az * slopes[:, None, :]
                Ah[:, d, :m] += dd
                # h <= a (U + eU) + d and h >= alpha (L - eL); rounding of the products and sums
                dd2 = np.concatenate([dd, np.zeros_like(dd)], axis=1)
                eh = np.nextafter(ez * slopes + fac * (slopes * (sz + ez) + dd2) + 4 * TINY,
                                  np.inf)
                A[lay.name], err[lay.name] = Ah, eh
                # |a A| . mx <= a (1 + u) |A| . mx: a size bound without another pass over Ah
                size[lay.name] = slopes * sz * (1.0 + fac) + dd2
                mag[lay.name] = np.maximum(zu, 0.0)
            else:
                A[lay.name], err[lay.name], size[lay.name] = Az, ez, sz
                mag[lay.name] = np.maximum(np.abs(zl), np.abs(zu))
    return BoxBounds(lo, hi, mx, zlo, zhi, mag, relax, share)
