"""NNet, the ACAS Xu text format (Kyle Julian, Stanford 2016), read exactly.

Layout: `//` comment lines; then comma-separated lines: layer count, input size, output size,
largest layer; the layer sizes; a flag (unused); input minimums; input maximums; means (one per
input, then one for the outputs); ranges (likewise); then per layer its weight rows and its
biases, one value per line. Hidden layers are ReLU, the last is linear. The network evaluates
`y = range_out * f((x - mean) / range) + mean_out` on inputs clipped to [min, max].

Every number is the exact rational its decimal text denotes. With `normalize=True` the input and
output normalisation are folded exactly into the first and last layer, and the input box is
[min, max] (inside it the clipping does nothing); with `normalize=False` the network is the bare
`f` (as in the ONNX versions of these networks) over the normalised box.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from nnir import limits
from nnir.errors import InputFileError, Span, clip
from nnir.formats import names
from nnir.io import read_text
from nnir.ir.const import Const, parse_decimal
from nnir.ir.nodes import Dense, Input, Network
from nnir.ir.verifier import verify_network


class _Lines:
    """The file's data lines as lists of exact numbers, with positions for errors."""

    def __init__(self, path: str, text: str):
        self.path, self.text = path, text
        self.rows = [(k, ln) for k, ln in enumerate(text.splitlines(), 1)
                     if ln.strip() and not ln.lstrip().startswith("//")]
        self.pos = 0

    def error(self, msg: str, line: int | None = None, hint: str | None = None):
        line = line if line is not None else (self.rows[self.pos - 1][0] if self.pos else 1)
        return InputFileError(msg, Span(self.path, line, 1), hint, self.text)

    def next(self, count: int | None, what: str) -> list[Fraction]:
        if self.pos >= len(self.rows):
            raise self.error(f"the file ends early: {what} missing",
                             len(self.text.splitlines()) or 1, "the file may be truncated")
        line, text = self.rows[self.pos]
        self.pos += 1
        cells = [c.strip() for c in text.split(",")]
        cells = cells[:-1] if cells and cells[-1] == "" else cells
        vals = []
        for c in cells:
            try:
                vals.append(parse_decimal(c))
            except ValueError as exc:
                raise self.error(f"'{clip(c)}' is not a number ({what}: {exc})", line) from None
        if count is not None and len(vals) < count:
            raise self.error(f"{what}: expected {count} values, found {len(vals)}", line)
        return vals[:count] if count is not None else vals


def _ints(vals, lines: _Lines, what: str) -> list[int]:
    if any(v.denominator != 1 or v <= 0 for v in vals):
        raise lines.error(f"{what} must be positive integers")
    if any(v > limits.MAX_VECTOR for v in vals):
        raise lines.error(f"{what} must be at most {limits.MAX_VECTOR:,}")
    return [int(v) for v in vals]


def _matrix(rows) -> np.ndarray:
    arr = np.empty((len(rows), len(rows[0])), dtype=object)
    for i, row in enumerate(rows):
        arr[i, :] = row
    return arr


def _vector(vals) -> np.ndarray:
    arr = np.empty(len(vals), dtype=object)
    arr[:] = vals
    return arr


def read_nnet(path: str, name: str | None = None, normalize: bool = True) -> Network:
    """Read an `.nnet` file as a network (see the module doc for `normalize`).

    Args:
        path: the `.nnet` file.
        name: the network's name (default: from the file name).
        normalize: fold the file's input and output normalisation into the network.
    Returns:
        The network, its input box taken from the file.
    Raises:
        InputFileError: missing file, bad numbers, wrong counts (with file:line).
    """
    text = read_text(path, "NNet file")
    lines = _Lines(path, text)
    n_layers, n_in, n_out, _ = _ints(lines.next(4, "the header"), lines, "the header values")
    sizes = _ints(lines.next(n_layers + 1, "the layer sizes"), lines, "layer sizes")
    if sum(a * (b + 1) for a, b in zip(sizes[1:], sizes)) > limits.MAX_WEIGHTS:
        raise lines.error(f"the layers have more than {limits.MAX_WEIGHTS:,} weights")
    if sizes[0] != n_in or sizes[-1] != n_out:
        raise lines.error(f"layer sizes {sizes} do not start with {n_in} inputs and end with "
                          f"{n_out} outputs")
    lines.next(None, "the flag line")
    lo, hi = lines.next(n_in, "input minimums"), lines.next(n_in, "input maximums")
    mean, rng = lines.next(n_in + 1, "means"), lines.next(n_in + 1, "ranges")
    if any(r == 0 for r in rng):
        raise lines.error("a normalisation range is 0")
    layers = []
    for k in range(n_layers):
        n_src, n_dst = sizes[k], sizes[k + 1]
        W = _matrix([lines.next(n_src, f"weights of layer {k + 1}") for _ in range(n_dst)])
        b = _vector([lines.next(1, f"biases of layer {k + 1}")[0] for _ in range(n_dst)])
        layers.append((W, b))
    if normalize:
        layers, box = _fold(layers, mean, rng), (lo, hi)
    else:
        box = ([(a - m) / r for a, m, r in zip(lo, mean, rng)],
               [(a - m) / r for a, m, r in zip(hi, mean, rng)])
    return _network(path, name, layers, box)


def _fold(layers, mean, rng):
    """Fold x_n = (x - mean) / range into layer 1 and y = range_o y_n + mean_o into the last."""
    n_in = len(layers[0][0][0])
    W, b = layers[0]
    inv = _vector([Fraction(1) / r for r in rng[:n_in]])
    shift = _vector([m / r for m, r in zip(mean[:n_in], rng[:n_in])])
    layers = [(W * inv[None, :], b - W.dot(shift))] + layers[1:]
    W, b = layers[-1]
    layers[-1] = (W * rng[n_in], b * rng[n_in] + mean[n_in])
    return layers


def _network(path, name, layers, box) -> Network:
    n_in = len(layers[0][0][0])
    inp = Input("x", n_in, Const.exact_of(box[0]), Const.exact_of(box[1]))
    dense, src = [], "x"
    for k, (W, b) in enumerate(layers, 1):
        last = k == len(layers)
        lname = "y" if last else f"h{k}"
        dense.append(Dense(lname, len(b), src, Const(exact=W), Const(exact=b),
                           "linear" if last else "relu"))
        src = lname
    net = Network(name or names.from_path(path), inp, tuple(dense), src)
    verify_network(net)
    return net


__all__ = ["read_nnet"]
