"""A DAG network (add and concat nodes: residual and tensor-parallel graphs) as an exact chain.

The engines' passes (`forward.forward_bounds`, `backsub.upper_bounds`, `bab.crown`) read one
source per layer. A network whose nodes read several sources, or earlier nodes than the one
just computed, becomes a chain here: chain layer k computes IR node k (in a schedule that puts
ReLU nodes first among those ready, so linear nodes are computed just before their readers) and
*carries* every earlier value a later node still reads. Its state is

    state_k = act_k(M_k state_{k-1} + c_k) = [node k's values ; carried entries],

with the node's own entries first (so a row over node k is its chain layer's row padded with
zeros, `pad_rows`, and its bounds are the first entries, `node_bounds`). M_k holds node k's
weights on the columns where its sources sit (a dense or conv node's W, a 0/1 index map for
gather and slice, identities for add and concat), and identity rows for carried entries.

Exactness. Every entry of M_k is one of the node's own float weights, its negation, or a small
integer (sums of +-1 when a node reads one source twice), and c_k is the node's bias or 0: no
float product or sum is formed, so each entry is within u of the exact weight exactly as in the
chain case, and the engines' rounding allowances (`forward`, `backsub`, `crown`: `fac` from the
widest chain layer) carry over unchanged. The carried entries are exact too:

- in a linear chain layer a carried entry is an identity row;
- in a ReLU chain layer it is relu(r) = r, exact because r >= 0: ReLU nodes' outputs, and linear
  values (the input, linear nodes) whose sound lower bound is >= 0;
- any other linear value x crossing a ReLU layer is carried as p = relu(x), n = relu(-x), and read
  as x = p - n (columns +W and -W).

Root facts. New entries take the IR facts of their node (sound pre-activation bounds); carried
entries take their source's value bounds, >= 0 in a ReLU layer, so they are stably active: no
engine ever splits on them (`free` requires lo < 0 < hi) and their relaxation is the identity.
p and n are genuine ReLUs of x (split on them when x's bounds cross 0: an exact input split).
The same construction is the suggested "linear nodes substituted into their readers" without the
substitution: that would multiply or add float weights (a linear conv feeding an add with
another biased conv: b3 + b4) and so need exact re-rounding; keeping linear nodes as their own
chain layers costs one more layer per linear node, through which back-substitution is exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from nnir.ir.nodes import Network
from nnir.passes.interval import input_box


@dataclass
class Slot:
    """A part of a chain state: node `node`'s values as they are (`val`), or relu(v) (`pos`) or
    relu(-v) (`neg`), with sound bounds of the entries held."""

    node: str
    form: str
    lo: np.ndarray
    hi: np.ndarray

    @property
    def size(self) -> int:
        return len(self.lo)


@dataclass
class ChainLayer:
    """One chain layer: `act(W state_prev + b)`, its root pre-activation bounds, and the IR
    node it computes (its first `size` entries)."""

    name: str
    src: str
    act: str
    W: sp.csr_matrix
    b: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    size: int
    parts: list  # per block of entries: (node, form, fresh: formed here, not carried)


def state_pre(layer: ChainLayer, vals: dict) -> list:
    """The layer's pre-activations from the IR values `vals` (`nnir.ir.evaluate`, any number
    type): what the chain computes, by construction (the tests check it)."""
    out = []
    for node, form, fresh in layer.parts:
        v = list(vals[node + ".pre"] if node == layer.name else vals[node])
        if form == "neg":
            v = [-x for x in v]
        if form != "val" and not fresh:
            v = [max(x, 0 * x) for x in v]
        out += v
    return out


def is_chain(net: Network) -> bool:
    """True when every node reads one source (dense, conv, gather, slice): the engines take the
    network as it is."""
    return all(len(lay.srcs) == 1 and lay.kind not in ("add", "concat") for lay in net.layers)


def schedule(net: Network) -> list:
    """The nodes in a topological order that takes ReLU nodes first among those ready (linear
    values then rarely cross a ReLU layer, where they would be carried as two entries)."""
    done = {net.input.name}
    todo = list(net.layers)
    out = []
    while todo:
        ready = [lay for lay in todo if all(s in done for s in lay.srcs)]
        pick = next((lay for lay in ready if lay.act == "relu"), ready[0])
        out.append(pick)
        done.add(pick.name)
        todo.remove(pick)
    return out


def _value_bounds(net: Network, lay) -> tuple[np.ndarray, np.ndarray]:
    """Sound bounds of a node's values (post-activation) from the IR facts."""
    lo, hi = _pre_bounds(net, lay)
    if lay.act == "relu":
        lo, hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    return lo, hi


def _pre_bounds(net: Network, lay) -> tuple[np.ndarray, np.ndarray]:
    f = net.facts
    m = lay.size
    lo = np.asarray(f.lo[lay.name], dtype=np.float64) if f and lay.name in f.lo else \
        np.full(m, -np.inf)
    hi = np.asarray(f.hi[lay.name], dtype=np.float64) if f and lay.name in f.hi else \
        np.full(m, np.inf)
    return lo, hi


def _coo(rows: list, cols: list, vals: list, shape) -> sp.csr_matrix:
    if not rows:
        return sp.csr_matrix(shape)
    r, c, v = (np.concatenate(x) for x in (rows, cols, vals))
    return sp.csr_matrix((v, (r, c)), shape=shape)  # duplicates (+-1 entries) are summed


def build(net: Network, parts) -> list[ChainLayer]:
    """The chain layers of `net`; `parts(net, lay)` gives a node's affine map by source:
    ([(src, M (size x len(src)) dense or sparse)], b)."""
    order = schedule(net)
    last = {}
    for k, lay in enumerate(order):
        for s in lay.srcs:
            last[s] = k
    lo0, hi0 = input_box(net)
    state = [Slot(net.input.name, "val", lo0, hi0)]
    prev = net.input.name
    layers = []
    for k, lay in enumerate(order):
        offs = np.cumsum([0] + [s.size for s in state])
        n = int(offs[-1])
        where: dict = {}
        for s, o in zip(state, offs):
            where.setdefault(s.node, []).append((int(o), s.form))
        rows, cols, vals = [], [], []
        maps, b = parts(net, lay)
        for src, M in maps:
            Mc = sp.coo_matrix(M)
            for o, form in where[src]:
                rows.append(Mc.row)
                cols.append(Mc.col + o)
                vals.append(-Mc.data if form == "neg" else Mc.data)
        # carried: every slot whose node a later layer reads
        relu = lay.act == "relu"
        plo, phi = _pre_bounds(net, lay)
        vlo, vhi = _value_bounds(net, lay)
        new = [Slot(lay.name, "val", vlo, vhi)]
        parts_here = [(lay.name, "val", True)]
        los, his = [plo], [phi]
        r0 = lay.size
        for s, o in zip(state, offs):
            if last.get(s.node, -1) <= k:
                continue
            idx = np.arange(s.size)
            if relu and s.form == "val" and not (s.lo >= 0).all():  # x = relu(x) - relu(-x)
                for sign, form in ((1.0, "pos"), (-1.0, "neg")):
                    rows.append(r0 + idx)
                    cols.append(o + idx)
                    vals.append(np.full(s.size, sign))
                    zlo, zhi = (s.lo, s.hi) if sign > 0 else (-s.hi, -s.lo)
                    los.append(zlo)
                    his.append(zhi)
                    new.append(Slot(s.node, form, np.maximum(zlo, 0.0), np.maximum(zhi, 0.0)))
                    parts_here.append((s.node, form, True))
                    r0 += s.size
                continue
            rows.append(r0 + idx)
            cols.append(o + idx)
            vals.append(np.ones(s.size))
            los.append(s.lo)
            his.append(s.hi)
            new.append(s)
            parts_here.append((s.node, s.form, False))
            r0 += s.size
        W = _coo(rows, cols, vals, (r0, n))
        bias = np.zeros(r0)
        bias[:lay.size] = np.asarray(b, dtype=np.float64)
        layers.append(ChainLayer(lay.name, prev, lay.act, W, bias, np.concatenate(los),
                                 np.concatenate(his), lay.size, parts_here))
        state, prev = new, lay.name
    return layers
