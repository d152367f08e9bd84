"""Add a network's MILP (`data.lower_network`) to the user's own `highspy.Highs` model.

The columns and rows are appended to whatever the model holds; the objective is left alone (new
columns cost 0), so the user states the optimisation around the network. User-given input
columns are reused, never duplicated, and their bounds are intersected with the network's box:
the big-M constants are sound only over that box.
"""
from __future__ import annotations

import numpy as np

from nnir.backends.embed.data import Embedding, Neurons, box_note, embed_milp
from nnir.errors import BackendError
from nnir.ir.nodes import Network


def add_to_highs(h, net: Network, inputs=None, relu: str = "bigm",
                 prefix: str | None = None) -> Embedding:
    """Embed the bounded network `net` into `h`.

    Args:
        h: the user's `highspy.Highs`.
        net: the network with bound facts attached (`data.bounded`).
        inputs: the column indices of the network's inputs already in `h` (None: new columns).
        relu: "bigm" or "triangle" (see `data.lower_network`).
        prefix: prefix of the new columns' and rows' names (default: the network's name); give
            each copy of one network its own.
    Returns:
        The `Embedding`; its variables are column indices of `h`.
    Raises:
        ValueError: `inputs` of the wrong length, repeated, or not columns of `h`.
        BackendError: HiGHS refused the columns or rows.
    """
    import highspy

    data = embed_milp(net, relu, prefix)
    m = data.model
    n_in = net.input.size
    base = h.getNumCol()
    colmap = np.full(len(m.vars), -1, dtype=np.int64)
    is_input = np.zeros(len(m.vars), dtype=bool)
    is_input[data.inputs] = True
    new = np.flatnonzero(~is_input)
    colmap[new] = base + np.arange(len(new))
    lo, hi, integ, names = m.col_arrays()
    if inputs is None:
        colmap[data.inputs] = base + len(new) + np.arange(n_in)
        order = np.concatenate([new, np.asarray(data.inputs, dtype=np.int64)])
    else:
        cols = _user_columns(h, inputs, n_in)
        colmap[data.inputs] = cols
        order = new
    _add_columns(h, highspy, order, lo, hi, integ, names)
    if inputs is not None:  # their bounds cut to the box the big-M constants hold on
        # HiGHS's index-set calls want increasing indices (unsorted, getCols returns garbage
        # with an error status), so go through the columns in sorted order.
        order_in = np.argsort(cols)
        sorted_cols = cols[order_in].astype(np.int32)
        status, _, _, clo, chi, _ = h.getCols(n_in, sorted_cols)
        _check(status, highspy, "reading the input columns' bounds")
        in_lo, in_hi = lo[data.inputs][order_in], hi[data.inputs][order_in]
        new_lo, new_hi = np.maximum(np.asarray(clo), in_lo), np.minimum(np.asarray(chi), in_hi)
        _check(h.changeColsBounds(n_in, sorted_cols, new_lo, new_hi), highspy,
               "changing the input columns' bounds")
    start, index, value, row_lo, row_hi, row_names = m.csr()
    if len(row_lo):
        r0 = h.getNumRow()
        _check(h.addRows(len(row_lo), row_lo, row_hi, len(index), start[:-1].astype(np.int32),
                         colmap[index].astype(np.int32), value), highspy, "adding rows")
        for k, nm in enumerate(row_names):
            h.passRowName(r0 + k, nm)

    def cm(v):
        return int(colmap[v])

    neurons = {k: Neurons([cm(v) for v in n.pre], [cm(v) for v in n.post])
               for k, n in data.neurons.items()}
    notes = [n for n in data.notes if n != box_note(net)]
    notes.insert(0, box_note(net) + ("; the given input columns' bounds were intersected with "
                                     "it" if inputs is not None else ""))
    return Embedding("highs", net, [cm(v) for v in data.inputs], [cm(v) for v in data.outputs],
                     neurons, {k: cm(v) for k, v in data.binaries.items()}, data.bounds, False,
                     notes, model=m)


def _user_columns(h, inputs, n_in: int) -> np.ndarray:
    cols = np.asarray([int(c) for c in inputs], dtype=np.int64)
    if len(cols) != n_in:
        raise ValueError(f"inputs has {len(cols)} columns; the network has {n_in} inputs")
    if len(np.unique(cols)) != n_in:
        raise ValueError("inputs repeats a column")
    if n_in and (cols.min() < 0 or cols.max() >= h.getNumCol()):
        raise ValueError(f"inputs must be column indices of the model (0 .. "
                         f"{h.getNumCol() - 1})")
    return cols


def _add_columns(h, highspy, order, lo, hi, integ, names) -> None:
    n = len(order)
    if n == 0:
        return
    c0 = h.getNumCol()
    _check(h.addCols(n, np.zeros(n), lo[order], hi[order], 0, np.zeros(n, dtype=np.int32),
                     np.zeros(0, dtype=np.int32), np.zeros(0)), highspy, "adding columns")
    ints = np.flatnonzero(integ[order])
    if len(ints):
        kinds = np.full(len(ints), highspy.HighsVarType.kInteger)
        _check(h.changeColsIntegrality(len(ints), (c0 + ints).astype(np.int32), kinds), highspy,
               "marking the binaries")
    for k, j in enumerate(order.tolist()):
        h.passColName(c0 + k, names[j])


def _check(status, highspy, what: str) -> None:
    if status == highspy.HighsStatus.kError:
        raise BackendError(f"HiGHS refused the embedding while {what}")
