"""ONNX MaxPool as exact ReLU arithmetic: max(a, b) = b + relu(a - b).

A max pool is piecewise linear; rather than a node kind that every analysis would need its own
rules for (an SMT `ite` chain, a MILP with one binary per window member, a bound rule), it is
read as the tournament of pairwise maxima above, built from node kinds every analysis already
handles exactly: Gather (pick the pair members), a 1x2 Conv with kernel [1, -1] (a - b, through a
ReLU), Add (b + relu(a - b)) and Concat (the survivors of a round). A window of m members takes
ceil(log2 m) rounds and m - 1 ReLUs, each with its own binary in a MILP and its own sound
relaxation in the bound passes; the result is the max exactly, in rationals. Padding (ONNX pads
a max pool with -inf) never wins, so padded taps are simply left out of the windows.
"""
from __future__ import annotations

import numpy as np

from nnir.ir.const import Const
from nnir.ir.conv import output_hw, taps
from nnir.ir.nodes import Add, Conv


def windows(chw, kernel, stride, pads, dilation) -> tuple[list[list[int]], tuple[int, int]]:
    """Per output entry (channel-major, as ONNX lays them out): the flat source indices of its
    window inside the image, and the output height and width."""
    C, H, W = chw
    OH, OW = output_hw((H, W), kernel, stride, pads, dilation)
    indptr, cols, _ = taps((C, H, W), (C, OH, OW), (C, 1, kernel[0], kernel[1]),
                           tuple(stride), tuple(pads), tuple(dilation), C)
    return [cols[indptr[r]:indptr[r + 1]].tolist() for r in range(C * OH * OW)], (OH, OW)


def max_pool(g, node, src: str, wins: list[list[int]], tensor: str) -> str:
    """Add the nodes computing max over each window of node `src` to reader `g`; returns the
    name of the node holding one maximum per window, in window order."""
    cur, where = src, [list(w) for w in wins]  # where[r]: positions in `cur` still in the race
    while any(len(w) > 1 for w in where):
        a, b, keep, nxt = [], [], [], []
        for w in where:
            pairs = len(w) // 2
            a += w[0:2 * pairs:2]
            b += w[1:2 * pairs:2]
            keep += w[2 * pairs:]
        k = len(a)
        # next round's vector: the k pair maxima, then the entries that sat this round out
        pos_pair, pos_keep = 0, k
        for w in where:
            pairs = len(w) // 2
            nxt.append(list(range(pos_pair, pos_pair + pairs))
                       + list(range(pos_keep, pos_keep + len(w) - 2 * pairs)))
            pos_pair += pairs
            pos_keep += len(w) - 2 * pairs
        ab = g.index_node(cur, np.array([i for pair in zip(a, b) for i in pair]), tensor,
                          slices=False)
        diff = g._name(tensor, False)
        g.layers.append(Conv(diff, k, ab, (1, 1, 2 * k), (1, 1, k),
                             Const.of_floats(np.array([[[[1.0, -1.0]]]])), Const.zeros((1,)),
                             (1, 2), act="relu"))
        bsel = g.index_node(cur, np.array(b), tensor, slices=False)
        mx = g._name(tensor, False)
        g.layers.append(Add(mx, k, (diff, bsel)))
        if keep:
            rest = g.index_node(cur, np.array(keep), tensor, slices=False)
            cur = g.concat_node([mx, rest], tensor)
        else:
            cur = mx
        where = nxt
    final = [w[0] for w in where]
    if final == list(range(g.size_of(cur))):
        return cur
    return g.index_node(cur, np.array(final), tensor, slices=False)


__all__ = ["max_pool", "windows"]
