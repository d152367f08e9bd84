"""Reports of relation inference: how a stuck row differs from network A's closest neuron,
and which A values a related value of B is (`nnir/passes/relations.py`)."""
from __future__ import annotations

import numpy as np

from nnir.passes import forms as F


def nearest(a, row) -> str:
    """How a stuck row differs from the A neuron that shares most of its weights (a report)."""
    cb, vb, kb = row
    vbf = np.asarray(vb, dtype=np.float64)
    best = None
    for node, P in a.pre:
        if len(P.cols) == 0 or not np.all(np.isin(cb, P.cols)):
            continue
        Mf = np.asarray(P.M, dtype=np.float64)
        pos = np.searchsorted(P.cols, cb)
        nz = Mf != 0
        diff = nz.sum(axis=1) - nz[:, pos].sum(axis=1) + (Mf[:, pos] != vbf).sum(axis=1)
        i = int(np.argmin(diff))
        if best is None or diff[i] < best[0]:
            best = (int(diff[i]), node, i, int(nz[i].sum()), P.const[i])
    if best is None:
        return "it reads neurons that no single layer of A reads"
    diff, node, i, n, ka = best
    if diff == 0:
        return (f"its weights equal those of A's {node}[{i}], but its bias is {float(kb):.6g} "
                f"instead of {float(ka):.6g}")
    return f"closest neuron of A is {node}[{i}]: {diff} of its {n} input weights differ"


def describe_value(a, v: F.Value) -> str:
    """A short account of which A values a B value is (for the relation chain)."""
    if not isinstance(v, F.Vec):
        return "an affine function of A's neurons"
    live = v.ids[v.ids >= 0]
    if len(live) == 0:
        return "constant"
    nodes = dict.fromkeys(a.names[int(k)][0] for k in live)
    idx = [a.names[int(k)][1] for k in live]
    how = []
    if len(live) < len(v.ids):
        how.append(f"{len(v.ids) - len(live)} constant entries")
    if v.scale is not None:
        how.append("positively scaled")
    if len(nodes) == 1 and idx == list(range(idx[0], idx[0] + len(idx))):
        text = f"A.{next(iter(nodes))}[{idx[0]}:{idx[-1] + 1}]"
    else:
        text = "a permutation/selection of " + ", ".join(f"A.{n}" for n in nodes)
    return text + (f" ({', '.join(how)})" if how else "")
