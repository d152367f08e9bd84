"""Exact compression by ReLU stability: LEO++ of Serra, Yu, Kumar & Ramalingam, "Scaling Up Exact
Neural Network Compression by ReLU Stability", NeurIPS 2021.

Given proven stable sets (+1 stably active, -1 stably inactive, 0 unstable, per ReLU layer), the
result is a smaller network equal to the original at every input of the domain, in exact rational
arithmetic:
- a stably inactive neuron outputs 0 on the domain: its row of W/b goes, and so does its column
  in every layer that reads it;
- a layer whose ReLUs are *all* stable is affine on the domain, `y = D (W s + b)` with D keeping
  the active rows, so it disappears and each reader C reads its source `s` directly:
  `W_C' = W_C[:, act] @ W[act, :]`, `b_C' = b_C + W_C[:, act] @ b[act]`;
- a partly active layer keeps its active neurons as ReLUs (folding them would need a skip
  connection, and a layer of our IR reads one source only).
The output layer keeps all its neurons (its size is the network's interface). Layers are visited
in topological (source) order, so a layer is folded only after its own weights were rewritten.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from nnir.errors import UnsupportedQuery
from nnir.ir.const import Const
from nnir.ir.nodes import Dense, Network
from nnir.ir.verifier import verify_network


@dataclass(frozen=True)
class LayerChange:
    """What compression did to one layer of the original network."""

    name: str
    neurons_before: int
    neurons_after: int  # 0 when the layer was folded away
    connections_before: int  # entries of the weight matrix (incoming connections)
    connections_after: int
    folded: bool

    @property
    def neurons_removed(self) -> int:
        return self.neurons_before - self.neurons_after

    @property
    def connections_removed(self) -> int:
        return self.connections_before - self.connections_after


def _exact(values) -> Const:
    return Const.exact_of(np.asarray(values, dtype=object))


def _stable_of(lay: Dense, stable: dict) -> np.ndarray:
    s = stable.get(lay.name)
    if s is None or lay.act != "relu":
        return np.zeros(lay.size, dtype=np.int8)
    s = np.asarray(s, dtype=np.int8)
    if s.shape != (lay.size,):
        raise ValueError(f"stable set of layer '{lay.name}' has shape {s.shape}, "
                         f"expected ({lay.size},)")
    return s


def compress_network(net: Network, stable: dict, name: str | None = None) -> Network:
    """The exactly equivalent smaller network, given proven stable ReLUs (see the module doc).

    Args:
        net: a network without unknown weights.
        stable: layer name -> int8 array (+1 stably active, -1 stably inactive, 0 unstable) that
            must be *sound* over the input domain (e.g. `facts.stable` of the bound passes);
            missing layers count as all unstable.
        name: the compressed network's name (default: `net.name`).
    Returns:
        The compressed network (no facts), verified by `verify_network`. Layer names are kept.
    Raises:
        ValueError: unknown weights, or a stable array of the wrong shape.
    """
    return compress_with_report(net, stable, name)[0]


def compress_with_report(net: Network, stable: dict,
                         name: str | None = None) -> tuple[Network, list[LayerChange]]:
    """`compress_network`, also returning one `LayerChange` per original layer, in order."""
    if net.has_unknowns:
        raise ValueError(f"network '{net.name}' has unknown weights; train it first")
    if not net.is_dense_only:
        lay = net.layer(net.graph_nodes()[0])
        raise UnsupportedQuery(f"compress handles networks of dense layers only; "
                               f"'{net.name}' has the {lay.kind} node '{lay.name}'", lay.span,
                               "compress the sequential network, then shard it")
    # Mutable working copy: name -> [src, W (object array), b (object array), act, span]
    work = {lay.name: [lay.src, np.array(lay.weight.exact, dtype=object),
                       np.array(lay.bias.exact, dtype=object), lay.act, lay.span]
            for lay in net.layers}
    readers = {lay.name: [c.name for c in net.layers if c.src == lay.name] for lay in net.layers}
    folded = set()
    for lay in net.layers:  # topological order: a layer reads an earlier node
        if lay.act != "relu" or lay.name == net.output:
            continue
        s = _stable_of(lay, stable)
        src, W, b, _, _ = work[lay.name]
        if np.all(s != 0):  # affine on the domain: fold into every reader
            act = np.flatnonzero(s == 1)
            for c in readers[lay.name]:
                _, Wc, bc, cact, cspan = work[c]
                Wa = Wc[:, act]
                Wn = _matmul(Wa, W[act, :], Wc.shape[0], W.shape[1])
                bn = bc + _matmul(Wa, b[act].reshape(-1, 1), Wc.shape[0], 1).reshape(-1)
                work[c] = [src, Wn, bn, cact, cspan]
            folded.add(lay.name)
            continue
        keep = np.flatnonzero(s != -1)
        if len(keep) == lay.size:
            continue
        work[lay.name][1], work[lay.name][2] = W[keep, :], b[keep]
        for c in readers[lay.name]:
            work[c][1] = work[c][1][:, keep]
    layers, changes = [], []
    for lay in net.layers:
        before = lay.size * lay.weight.shape[1]
        if lay.name in folded:
            changes.append(LayerChange(lay.name, lay.size, 0, before, 0, True))
            continue
        src, W, b, act, span = work[lay.name]
        new = Dense(lay.name, W.shape[0], src, _exact(W), _exact(b), act, span)
        layers.append(new)
        changes.append(LayerChange(lay.name, lay.size, new.size, before,
                                   W.shape[0] * W.shape[1], False))
    out = replace(net, name=name or net.name, layers=tuple(layers), facts=None)
    verify_network(out)
    return out, changes


def _matmul(A: np.ndarray, B: np.ndarray, m: int, n: int) -> np.ndarray:
    """Exact product of object arrays of Fractions; an m x n zero block when the inner size is 0."""
    if A.shape[1] == 0:
        return np.array([[0] * n for _ in range(m)], dtype=object).reshape(m, n)
    return A.dot(B)
