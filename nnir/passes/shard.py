"""Tensor-parallel rewriting of a chain of dense layers (Megatron-LM style), with optional bugs.

`shard_network` splits consecutive layer pairs across `ways` devices:
- "megatron": the first layer column-parallel (its rows split into shards, one dense ReLU layer
  per shard), the second row-parallel (shard k multiplies the matching block of columns; the
  partial sums are added by an `add` node, the all-reduce; the bias is added once, on shard 0);
- "gather": the shards of the first layer are concatenated (`concat`) and the second layer runs
  whole;
- "scatter": the first layer runs whole, the second reads `slice`s of it row-parallel.
A layer left without a partner is copied. Weights are copied exactly (float weights stay the same
floats), so the sharded network computes the same function, exactly. `bug` plants one of the
classic mistakes, for examples and tests: "missing_sum" (one partial result never added),
"swapped_concat" (shards concatenated in the wrong order, with `gather`), "double_bias" (the
bias added on every shard).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from nnir.ir.const import Const
from nnir.ir.nodes import Add, Concat, Dense, Network, Slice
from nnir.ir.verifier import verify_network

STYLES = ("megatron", "gather", "scatter")
BUGS = ("missing_sum", "swapped_concat", "double_bias")


def _blocks(n: int, ways: int) -> list[np.ndarray]:
    return [b for b in np.array_split(np.arange(n), min(ways, n)) if len(b)]


def shard_network(net: Network, ways: int, styles=("megatron",), name: str | None = None,
                  bug: str | None = None) -> Network:
    """The `ways`-way tensor-parallel version of a chain of dense layers (see the module doc).

    Args:
        net: a chain of dense layers (each reads the one before) with known weights.
        ways: number of shards (a layer narrower than that gets one shard per neuron).
        styles: the style of each layer pair in turn (cycled).
        name: the new network's name (default `<name>_tp<ways>`).
        bug: None or one of `BUGS` (planted in the first pair it fits).
    Returns:
        the sharded network; the output keeps its name.
    Raises:
        ValueError: not a chain of dense layers, an unknown style or bug.
    """
    chain = [lay.src for lay in net.layers] == [net.input.name] + [
        lay.name for lay in net.layers[:-1]]
    if not (net.is_dense_only and chain) or net.has_unknowns:
        raise ValueError(f"network '{net.name}' is not a chain of dense layers with known weights")
    if bug is not None and bug not in BUGS:
        raise ValueError(f"unknown bug {bug!r}; use one of {BUGS}")
    out, src, k, pair = [], net.input.name, 0, 0
    layers = list(net.layers)
    planted = bug is None
    while k < len(layers):
        if k + 1 >= len(layers):
            out.append(replace(layers[k], src=src))
            break
        style = styles[pair % len(styles)]
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}; use one of {STYLES}")
        this_bug = None if planted else bug
        if (this_bug == "swapped_concat") != (style == "gather") or \
                min(ways, layers[k].size) < 2:
            this_bug = None  # this kind of bug needs this style and two shards
        nodes, planted = _pair(layers[k], layers[k + 1], src, ways, style, this_bug), \
            planted or this_bug is not None
        out.extend(nodes)
        src, k, pair = layers[k + 1].name, k + 2, pair + 1
    res = replace(net, name=name or f"{net.name}_tp{ways}", layers=tuple(out), facts=None)
    verify_network(res)
    return res


def _pair(first: Dense, second: Dense, src: str, ways: int, style: str, bug) -> list:
    blocks = _blocks(first.size, ways)
    if style == "gather":
        shards = [Dense(f"{first.name}_s{i}", len(b), src, first.weight.part(rows=b),
                        first.bias.part(rows=b), first.act) for i, b in enumerate(blocks)]
        names = [s.name for s in shards]
        if bug == "swapped_concat":
            names[0], names[1] = names[1], names[0]
        cat = Concat(first.name, first.size, tuple(names))
        return shards + [cat, replace(second, src=first.name)]
    if style == "megatron":
        nodes = [Dense(f"{first.name}_s{i}", len(b), src, first.weight.part(rows=b),
                       first.bias.part(rows=b), first.act) for i, b in enumerate(blocks)]
        inputs = [n.name for n in nodes]
    else:  # scatter
        nodes = [replace(first, src=src)]
        nodes += [Slice(f"{first.name}_s{i}", len(b), first.name, int(b[0]))
                  for i, b in enumerate(blocks)]
        inputs = [n.name for n in nodes[1:]]
    parts = []
    for i, (b, inp) in enumerate(zip(blocks, inputs)):
        with_bias = i == 0 or bug == "double_bias"
        bias = second.bias if with_bias else Const.zeros((second.size,))
        parts.append(Dense(f"{second.name}_p{i}", second.size, inp,
                           second.weight.part(cols=b), bias, "linear"))
    summed = [p.name for p in parts][: len(parts) - (bug == "missing_sum")]
    return nodes + parts + [Add(second.name, second.size, tuple(summed), second.act)]
