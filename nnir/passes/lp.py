"""LP-based bound tightening (optimisation-based bound tightening) with safe dual bounds.

Layer by layer, each neuron's pre-activation is minimised and maximised over the LP relaxation of
the earlier layers: the input box and the input's linear constraints, exact affine layers, stable
ReLUs exact (identity / zero) and unstable ReLUs by the triangle relaxation y >= 0, y >= z,
y <= a z + d (a ~ u / (u - l), the float line of `symbolic.relu_relaxation`, valid exactly), with
the best bounds known so far. The model is built once per layer; only the objective changes between
neurons, so the LP solver warm-starts from the previous basis.

The LP solver is a backend (`nnir.backends.milp.highs.DualLp`, HiGHS, by default), reached
through a small interface so that this pass never imports a solver: `solver(A, rl, ru, cl, cu,
options)` returns an object with `duals(idx, costs)` (the row duals of min sum costs x[idx]) and
`set_time_limit(seconds)`. Only the duals are used, and any duals give a sound bound (below).

Soundness. An optimum reported by HiGHS is a floating-point number and is NOT used. Instead the
LP's dual row values y serve as multipliers in the safe bound of Neumaier & Shcherbina ("Safe
bounds in linear and mixed-integer linear programming", Math. Prog. 99, 2004): for min c^T x over
rl <= A x <= ru, l <= x <= u (A, c exact; rl, ru, l, u floats), ANY vector y gives
    c^T x = y^T (A x) + r^T x >= sum_i (y_i > 0 ? y_i rl_i : y_i ru_i) + sum_j min(r_j l_j, r_j u_j)
with r = c - A^T y. Multipliers that would meet an infinite row bound are set to 0 first. The
exact data are the rational weights (`Const.exact`), the relaxation lines (floats, valid exactly)
and outward-rounded floats for the input box, the biases and constraint right-hand sides (a
looser row bound keeps the relaxation valid). r is computed in float64 from the nearest floats
A_f, c_f of A, c; with m rows, |r - r_f| <= |c - c_f| + |A - A_f|^T |y| + (error of the float
sum of m + 1 products) <= (gamma_{m+1} + u) (|c_f| + |A_f|^T |y|) + eta (m + 2 + sum |y|)
(Higham, "Accuracy and Stability of Numerical Algorithms", 3.1; u = 2^-53, eta = the underflow
unit). We allow e_j = 4 (m + 3) u (|c_f| + |A_f|^T |y|)_j + tiny (m + 3 + sum |y|), over twice
that, which also covers the rounding of e itself, and since min(r l, r u) is M-Lipschitz in r
(M = max(|l|, |u|)), subtract sum_j e_j M_j. The final sums are computed EXACTLY (scaled
integers) and rounded outward once. A maximum is minus the minimum of -c. A neuron whose bound
cannot be made finite keeps its old bound; the result is intersected with the known facts.
Slices, concatenations and gathers reuse their sources' columns; an `add` node gets one column
per entry with the exact row z - sum(terms) = 0; a convolution one row per output entry over its
taps only (`conv.rows`: cost output size x kernel size, never a dense matrix). A layer reading
the input box directly (no input constraints) is skipped: over a box its LP optimum is the
interval bound IBP already holds. The bounds of graph nodes themselves are not LP-tightened
(they are recomputed from their sources' tightened bounds), only used by later dense layers.
"""
from __future__ import annotations

import time
from fractions import Fraction
from functools import partial

import numpy as np
import scipy.sparse as sp

from nnir.ir import conv
from nnir.ir.nodes import Network
from nnir.passes.interval import (
    IntervalBounds,
    graph_bounds,
    input_box,
    merge,
    round_down,
    round_up,
)
from nnir.passes.symbolic import relu_relaxation

_U = 2.0 ** -53
_TINY = np.finfo(np.float64).tiny
_INF = np.inf  # an absent row bound (HiGHS's kHighsInf is inf too)
_SCALE = 2 * 1074 + 2  # every product of two floats is an integer multiple of 2^-2148


def exact_dot(a: np.ndarray, b: np.ndarray) -> Fraction:
    """The exact value of sum_i a_i b_i for finite float arrays (as scaled integers, fast)."""
    tot = 0
    for x, y in zip(a.tolist(), b.tolist()):
        if x == 0.0 or y == 0.0:
            continue
        nx, dx = x.as_integer_ratio()
        ny, dy = y.as_integer_ratio()
        tot += (nx * ny) << (_SCALE - dx.bit_length() - dy.bit_length())
    return Fraction(tot, 1 << (_SCALE - 2))


def safe_lower_bound(A: sp.csc_matrix, c: np.ndarray, rl, ru, cl, cu, y) -> Fraction | None:
    """A rigorous lower bound of min c^T x over rl <= A x <= ru, cl <= x <= cu, from multipliers y.

    Args:
        A, c: the nearest floats to the exact constraint matrix and objective (see the module
            docstring for the allowance this costs).
        rl, ru: float row bounds (+-inf allowed); cl, cu: finite float column bounds.
        y: any float multipliers, one per row (e.g. HiGHS's `row_dual` of the minimisation).

    Returns:
        The exact rational bound, or None when y is not finite.
    """
    y = np.array(y, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        return None
    y[((y > 0) & ~np.isfinite(rl)) | ((y < 0) & ~np.isfinite(ru))] = 0.0
    m = A.shape[0]
    r = c - A.T @ y
    ay = np.abs(y)
    t = np.abs(c) + abs(A).T @ ay
    err = np.nextafter(4.0 * (m + 3) * _U * t + _TINY * (m + 3 + ay.sum()), np.inf)
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(err))):
        return None
    rb = np.where(y > 0, rl, ru)
    xb = np.where(r > 0, cl, cu)
    keep = y != 0
    mag = np.maximum(np.abs(cl), np.abs(cu))
    return (exact_dot(y[keep], rb[keep]) + exact_dot(r, xb) - exact_dot(err, mag))


class _LayerLp:
    """The LP relaxation of the layers a target layer depends on, built once, objective swapped."""

    def __init__(self, net: Network, k: int, lo: dict, hi: dict, options: dict, solver):
        target = net.layers[k]
        need, stack = set(), list(target.srcs)
        while stack:  # ancestors of the target (layers read earlier nodes only)
            node = stack.pop()
            if node != net.input.name and node not in need:
                need.add(node)
                stack.extend(net.layer(node).srcs)
        cl, cu = [], []
        rows, cols, vals, rl, ru = [], [], [], [], []
        post: dict[str, np.ndarray] = {}

        def new_cols(lo_v, hi_v):
            start = sum(len(v) for v in cl)
            cl.append(np.asarray(lo_v, dtype=np.float64))
            cu.append(np.asarray(hi_v, dtype=np.float64))
            return np.arange(start, start + len(lo_v))

        def add_row(cidx, cval, lo_b, hi_b):
            r = len(rl)
            rows.extend([r] * len(cidx))
            cols.extend(cidx)
            vals.extend(cval)
            rl.append(lo_b)
            ru.append(hi_b)

        xlo, xhi = input_box(net)
        post[net.input.name] = new_cols(xlo, xhi)
        for atom in net.input.constraints:  # linear input constraints (strict ones relaxed)
            if any(ref.node != net.input.name for ref, _ in atom.terms):
                continue  # dropping a constraint keeps the relaxation valid
            cidx = [int(post[net.input.name][ref.index]) for ref, _ in atom.terms]
            cval = [float(q) for _, q in atom.terms]
            lo_b = round_down(atom.rhs) if atom.rel in (">=", ">", "==") else -_INF
            hi_b = round_up(atom.rhs) if atom.rel in ("<=", "<", "==") else _INF
            add_row(cidx, cval, lo_b, hi_b)
        for lay in net.layers[:k]:
            if lay.name not in need:
                continue
            l_, u_ = lo[lay.name], hi[lay.name]
            z = ROW_RULES[lay.kind](lay, post, partial(new_cols, l_, u_), add_row)
            if z is None:  # a copy of its sources' columns
                continue
            if lay.act != "relu":
                post[lay.name] = z
                continue
            out = np.where(l_ >= 0, z, -1)  # stably active: y = z; inactive: y = 0 (no column)
            uns = np.nonzero((l_ < 0) & (u_ > 0))[0]
            a, d, _ = relu_relaxation(l_[uns], u_[uns])
            ycols = new_cols(np.zeros(len(uns)), u_[uns])
            for t, i in enumerate(uns):  # triangle: y >= z, y <= a z + d (valid exactly)
                add_row([int(ycols[t]), int(z[i])], [1.0, -1.0], 0.0, _INF)
                add_row([int(ycols[t]), int(z[i])], [1.0, -float(a[t])], -_INF, float(d[t]))
            out[uns] = ycols
            post[lay.name] = out
        self.cl, self.cu = np.concatenate(cl), np.concatenate(cu)
        self.rl, self.ru = np.array(rl, dtype=np.float64), np.array(ru, dtype=np.float64)
        n = len(self.cl)
        self.A = sp.csc_matrix((vals, (rows, cols)), shape=(len(rl), n), dtype=np.float64)
        self.A.sum_duplicates()
        self.src = post[target.src]
        self.finite = bool(np.all(np.isfinite(self.cl)) and np.all(np.isfinite(self.cu))
                           and np.all(np.isfinite(self.A.data)))
        self.lp = solver(self.A, self.rl, self.ru, self.cl, self.cu, options)
        self.live = np.nonzero(self.src >= 0)[0]  # source neurons that have a column
        # a column may be read by several source entries (a gather or concat repeating one):
        # their weights add up on it
        self.cost_idx, self.inv = np.unique(self.src[self.live], return_inverse=True)
        self.cost_idx = self.cost_idx.astype(np.int32)
        self.repeats = len(self.cost_idx) < len(self.live)

    def minimum(self, w: np.ndarray) -> Fraction | None:
        """A rigorous lower bound of w . post(src) over the relaxation (None if none is found)."""
        cw = w[self.live]
        if self.repeats:  # the summed weight's float rounding is outside the exact-data
            return None  # allowance of safe_lower_bound: no LP bound (the old one is kept)
        cw = cw[np.argsort(self.inv, kind="stable")]
        y = self.lp.duals(self.cost_idx, cw)
        c = np.zeros(len(self.cl))
        c[self.cost_idx] = cw
        return safe_lower_bound(self.A, c, self.rl, self.ru, self.cl, self.cu, y)


class LpBounds:
    """Per-neuron LP bounds over the triangle relaxation, certified by safe dual bounds.

    Args:
        unstable_only: bound only the unstable neurons of ReLU layers (all neurons of other
            layers); otherwise every neuron.
        options: extra LP solver options (HiGHS: e.g. tolerances); the bounds stay sound
            whatever they are.
        deadline: a `time.monotonic()` value: past it no more LPs are solved (each also gets
            the time left) and the bounds found so far are kept, all of them sound.
        solver: the LP solver factory (see the module docstring); None: HiGHS's `DualLp`.
    """

    name = "lp"

    def __init__(self, unstable_only: bool = True, options: dict | None = None,
                 deadline: float | None = None, solver=None):
        self.unstable_only = unstable_only
        self.options = dict(options or {})
        self.deadline = deadline
        self.solver = solver
        self.stopped = False  # the last run stopped at the deadline

    def _out_of_time(self, model=None) -> bool:
        if self.deadline is None:
            return False
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.stopped = True
        elif model is not None:
            model.lp.set_time_limit(float(left))
        return self.stopped

    def accepts(self, net: Network) -> bool:
        return not net.has_unknowns

    def run(self, net: Network, ctx) -> Network:
        if net.facts is None:
            net = IntervalBounds().run(net, ctx)
        lo = {name: v.copy() for name, v in net.facts.lo.items()}
        hi = {name: v.copy() for name, v in net.facts.hi.items()}
        vals = {net.input.name: input_box(net)}
        self.stopped = False
        for k, lay in enumerate(net.layers):
            l_, u_ = lo[lay.name], hi[lay.name]
            if not TIGHTEN_RULES[lay.kind]:  # from the sources' (possibly tightened) bounds
                glo, ghi = graph_bounds(lay, vals)
                l_[:], u_[:] = np.maximum(l_, glo), np.minimum(u_, ghi)
                _post(vals, lay, l_, u_)
                continue
            todo = np.arange(lay.size)
            if self.unstable_only and lay.act == "relu":
                todo = np.nonzero((l_ < 0) & (u_ > 0))[0]
            if len(todo) == 0:
                _post(vals, lay, l_, u_)
                continue
            if lay.srcs == (net.input.name,) and not net.input.constraints:
                # over a box an affine map's range is its interval bound: IBP already has it
                _post(vals, lay, l_, u_)
                continue
            if self._out_of_time():
                break  # later layers keep their (sound) bounds
            model = _LayerLp(net, k, lo, hi, self.options, self.solver or default_lp_solver())
            if not model.finite:  # a column without finite bounds: later layers keep theirs
                break
            row, b = OBJECTIVES[lay.kind](lay, net.size_of(lay.src))
            for i in todo:
                if self._out_of_time(model):  # a timed-out LP's dual still gives a sound bound
                    break
                w_i = row(i)
                low = model.minimum(w_i)
                if low is not None:
                    l_[i] = max(l_[i], round_down(low + b[i]))
                if lay.act == "relu" and self.unstable_only and l_[i] >= 0:
                    continue  # now stably active: the upper bound is not needed
                neg = model.minimum(-w_i)
                if neg is not None:
                    u_[i] = min(u_[i], round_up(b[i] - neg))
            bad = l_ > u_  # only possible when the input domain is empty: keep the old bounds
            l_[bad], u_[bad] = net.facts.lo[lay.name][bad], net.facts.hi[lay.name][bad]
            _post(vals, lay, l_, u_)
        ctx.log.append(f"lp: {_count_stable(net, lo, hi)} stable ReLUs"
                       + (" (stopped at the time limit)" if self.stopped else ""))
        return merge(net, self.name, lo, hi)


def default_lp_solver():
    """The LP solver the pass uses unless given one: HiGHS (`nnir.backends.milp.highs.DualLp`).

    Returns:
        The factory `DualLp(A, rl, ru, cl, cu, options)`.
    Raises:
        ImportError: highspy is not installed.
    """
    # lazy: passes sit below backends; the LP pass takes its solver as an argument and only
    # its default reaches up to the HiGHS helper (which itself imports highspy on use)
    from nnir.backends.milp.highs import DualLp

    return DualLp


# Per node kind, its part of the LP relaxation: rule(node, post, cols, add_row) with `post` the
# columns of earlier nodes' values (-1: fixed at 0), `cols()` making the node's pre-activation
# columns and `add_row(cols, coefs, lo, hi)` adding a row; returns the pre-activation columns, or
# None after setting `post[node]` for a node that copies its sources' columns.
def _rows_dense(lay, post: dict, cols, add_row):
    z = cols()
    W, src = lay.weight.f64, post[lay.src]
    for i in range(lay.size):  # z_i - W_i . src = b_i
        nz = np.nonzero((W[i] != 0) & (src >= 0))[0]
        b = lay.bias.exact[i]
        add_row([int(z[i])] + src[nz].tolist(), [1.0] + (-W[i, nz]).tolist(),
                round_down(b), round_up(b))
    return z


def _rows_add(lay, post: dict, cols, add_row):
    z = cols()
    for i in range(lay.size):  # z_i - sum_k src_k[i] = 0 (coefficients +-1: exact)
        terms = [int(post[s][i]) for s in lay.srcs if post[s][i] >= 0]
        add_row([int(z[i])] + terms, [1.0] + [-1.0] * len(terms), 0.0, 0.0)
    return z


def _rows_slice(lay, post: dict, cols, add_row):
    post[lay.name] = post[lay.src][lay.start:lay.start + lay.size]


def _rows_concat(lay, post: dict, cols, add_row):
    post[lay.name] = np.concatenate([post[s] for s in lay.srcs])


def _rows_conv(lay, post: dict, cols, add_row):
    z = cols()
    src, wf, bias = post[lay.src], lay.weight.f64.reshape(-1), lay.bias.exact
    per = lay.out_shape[1] * lay.out_shape[2]
    for i, (c, widx) in enumerate(conv.rows(lay)):  # z_i - sum_taps w src = b_i: its taps only
        w = wf[widx]
        nz = (w != 0) & (src[c] >= 0)
        b = bias[i // per]
        add_row([int(z[i])] + src[c[nz]].tolist(), [1.0] + (-w[nz]).tolist(),
                round_down(b), round_up(b))
    return z


def _rows_gather(lay, post: dict, cols, add_row):
    post[lay.name] = post[lay.src][list(lay.index)]


ROW_RULES = {"dense": _rows_dense, "slice": _rows_slice, "concat": _rows_concat,
             "add": _rows_add, "conv": _rows_conv, "gather": _rows_gather}

# Per node kind: are its bounds LP-tightened (True), or recomputed from its sources' tightened
# bounds (False; see the module docstring)?
TIGHTEN_RULES = {"dense": True, "slice": False, "concat": False, "add": False, "conv": True,
                 "gather": False}


# Per tightened node kind: (row(i), exact bias per neuron): row(i) the float64 weights of neuron
# i over its source (the nearest floats of the exact ones, as `safe_lower_bound` requires).
def _objective_dense(lay, n_src: int):
    W = lay.weight.f64
    return (lambda i: W[i]), lay.bias.exact


def _objective_conv(lay, n_src: int):
    indptr, cols, widx = conv.taps_of(lay)
    wf = lay.weight.f64.reshape(-1)

    def row(i):  # dense over the source only for this one neuron (cost: source size)
        w = np.zeros(n_src)
        a, e = indptr[i], indptr[i + 1]
        w[cols[a:e]] = wf[widx[a:e]]  # a row's taps read distinct source entries
        return w
    return row, conv.bias_vector(lay, exact=True)


OBJECTIVES = {"dense": _objective_dense, "conv": _objective_conv}


def _post(vals: dict, lay, lo: np.ndarray, hi: np.ndarray) -> None:
    """Record the value bounds of `lay` (after its ReLU) for the graph nodes that read it."""
    relu = lay.act == "relu"
    vals[lay.name] = (np.maximum(lo, 0.0), np.maximum(hi, 0.0)) if relu else (lo, hi)


def _count_stable(net: Network, lo: dict, hi: dict) -> int:
    return int(sum(np.sum((lo[lay.name] >= 0) | (hi[lay.name] <= 0))
                   for lay in net.layers if lay.act == "relu"))
