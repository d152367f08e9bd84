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

Networks of dense and conv layers (`_compress_graph`), per conv layer with ReLUs, exactly:
- a channel whose every position is stably inactive outputs 0 on the domain: its kernel and bias
  go (an out channel), and so does what reads it: the columns of its positions in a dense reader,
  the in channel of a conv reader (ungrouped convolutions only; a grouped one is left as is);
- a conv layer whose ReLUs are all stable, read only by dense layers, is affine and folded into
  them as above, the product W_C[:, act] K[act, :] taken tap by tap (K the convolution's exact
  sparse matrix, never made dense; work taps x reader rows, skipped past `FOLD_WORK`);
- channels that are stably active but not all stable stay (a conv with some linear channels
  would need a skip connection, as for dense layers); a dense layer read by a conv layer keeps
  its neurons (dropping entries would break the reader's image layout).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from nnir.errors import UnsupportedQuery
from nnir.ir import conv
from nnir.ir.const import Const
from nnir.ir.nodes import Conv, Dense, Network
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
    other = [lay for lay in net.layers if lay.kind not in ("dense", "conv")]
    if other:
        lay = other[0]
        raise UnsupportedQuery(f"compress handles networks of dense and conv layers only; "
                               f"'{net.name}' has the {lay.kind} node '{lay.name}'", lay.span,
                               "compress the sequential network, then shard it")
    if not net.is_dense_only:
        return _compress_graph(net, stable, name)
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


FOLD_WORK = 20_000_000  # exact multiply-adds allowed to fold one conv layer into its readers


def _taps(w: dict):
    return conv.taps(w["in_shape"], w["out_shape"], w["W"].shape, w["stride"], w["pads"],
                     w["dilation"], w["groups"])


def _n_connections(w: dict) -> int:
    return len(_taps(w)[1]) if w["kind"] == "conv" else w["W"].shape[0] * w["W"].shape[1]


def _work_of(lay) -> dict:
    w = {"kind": lay.kind, "src": lay.src, "W": np.array(lay.weight.exact, dtype=object),
         "b": np.array(lay.bias.exact, dtype=object), "act": lay.act, "span": lay.span}
    if lay.kind == "conv":
        w.update(in_shape=tuple(lay.in_shape), out_shape=tuple(lay.out_shape),
                 stride=tuple(lay.stride), pads=tuple(lay.pads), dilation=tuple(lay.dilation),
                 groups=lay.groups)
    return w


def _fold_conv(w: dict, act: np.ndarray, reader: dict) -> None:
    """Rewrite a dense `reader` of the all-stable conv layer `w` (active entries `act`) to read
    w's source: W_C' = W_C[:, act] K[act, :], b_C' = b_C + W_C[:, act] b[act], exactly."""
    indptr, cols, widx = _taps(w)
    wf = w["W"].reshape(-1)
    Wc, m = reader["W"], reader["W"].shape[0]
    n_src = int(np.prod(w["in_shape"]))
    Wn = np.empty((m, n_src), dtype=object)
    Wn[:] = 0
    per = w["out_shape"][1] * w["out_shape"][2]
    bias = reader["b"].copy()
    for r in act.tolist():
        col = Wc[:, r]
        bias = bias + col * w["b"][r // per]
        for t in range(indptr[r], indptr[r + 1]):
            Wn[:, cols[t]] += col * wf[widx[t]]
    reader.update(src=w["src"], W=Wn, b=bias)


def _compress_graph(net: Network, stable: dict, name: str | None):
    """`compress_with_report` for networks of dense and conv layers (see the module doc)."""
    work = {lay.name: _work_of(lay) for lay in net.layers}
    readers = {lay.name: [c.name for c in net.layers if c.src == lay.name] for lay in net.layers}
    before = {lay.name: _n_connections(work[lay.name]) for lay in net.layers}
    folded = set()
    for lay in net.layers:
        if lay.act != "relu" or lay.name == net.output:
            continue
        s = _stable_of(lay, stable)
        w, rd = work[lay.name], [work[c] for c in readers[lay.name]]
        dense_readers = all(r["kind"] == "dense" for r in rd)
        if lay.kind == "dense":
            if not dense_readers:
                continue  # a conv reader needs this layer's image layout
            if np.all(s != 0):
                act = np.flatnonzero(s == 1)
                for r in rd:
                    Wa = r["W"][:, act]
                    r["b"] = r["b"] + _matmul(Wa, w["b"][act].reshape(-1, 1), Wa.shape[0],
                                              1).reshape(-1)
                    r["W"] = _matmul(Wa, w["W"][act, :], Wa.shape[0], w["W"].shape[1])
                    r["src"] = w["src"]
                folded.add(lay.name)
                continue
            keep = np.flatnonzero(s != -1)
            w["W"], w["b"] = w["W"][keep, :], w["b"][keep]
            for r in rd:
                r["W"] = r["W"][:, keep]
            continue
        # a conv layer: its current geometry (an earlier removal may have changed its input)
        if np.all(s != 0) and dense_readers and rd:
            act = np.flatnonzero(s == 1)
            indptr = _taps(w)[0]
            taps = int((indptr[act + 1] - indptr[act]).sum())
            if taps * max(r["W"].shape[0] for r in rd) <= FOLD_WORK:
                for r in rd:
                    _fold_conv(w, act, r)
                folded.add(lay.name)
                continue
        n_out, OH, OW = w["out_shape"]
        per_ch = s.reshape(n_out, OH * OW)
        keep = np.flatnonzero(~np.all(per_ch == -1, axis=1))
        if len(keep) == n_out or w["groups"] != 1 or \
                any(r["kind"] == "conv" and r["groups"] != 1 for r in rd):
            continue
        if len(keep) == 0:
            keep = np.array([0])  # a conv keeps one channel (its readers then read zeros)
        w["W"], w["b"] = w["W"][keep], w["b"][keep]
        w["out_shape"] = (len(keep), OH, OW)
        entries = (keep[:, None] * (OH * OW) + np.arange(OH * OW)[None, :]).reshape(-1)
        for r in rd:
            if r["kind"] == "dense":
                r["W"] = r["W"][:, entries]
            else:
                r["W"] = r["W"][:, keep]
                r["in_shape"] = (len(keep),) + tuple(r["in_shape"][1:])
    layers, changes = [], []
    for lay in net.layers:
        if lay.name in folded:
            changes.append(LayerChange(lay.name, lay.size, 0, before[lay.name], 0, True))
            continue
        w = work[lay.name]
        if w["kind"] == "dense":
            new = Dense(lay.name, w["W"].shape[0], w["src"], _exact(w["W"]), _exact(w["b"]),
                        w["act"], w["span"])
        else:
            new = Conv(lay.name, int(np.prod(w["out_shape"])), w["src"], w["in_shape"],
                       w["out_shape"], _exact(w["W"]), _exact(w["b"]), w["stride"], w["pads"],
                       w["dilation"], w["groups"], w["act"], w["span"])
        layers.append(new)
        changes.append(LayerChange(lay.name, lay.size, new.size, before[lay.name],
                                   _n_connections(w), False))
    out = replace(net, name=name or net.name, layers=tuple(layers), facts=None)
    verify_network(out)
    return out, changes
