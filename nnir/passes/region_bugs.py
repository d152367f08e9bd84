"""Pairs of networks that differ only on a small region of the input box, for tests and benchmarks.

`region_pair(seed, depth, kind)` builds a random dense ReLU network A (inputs in [-1, 1]) with one
"corner neuron" in its first hidden layer, active only where w . x > (1 - eps) |w|_1, a corner of
the box holding a tiny share of its volume, and B = A sharded Megatron style
(`shard.shard_network`) with one bug planted in the shard that holds that neuron:
- "out_weight": the corner neuron's outgoing weight to the second-layer neuron most active at
  the corner changed (in a partial-sum layer);
- "bias": the corner neuron's bias moved, so its region grows or shrinks a little;
- "in_weight": one incoming weight of the corner neuron scaled (the region's edge tilts);
- "deep_bias": a second-layer neuron that reads only the corner neuron (active on part of its
  region) gets a different bias in the partial sum that carries it;
- "harmless": as "out_weight", but to the second-layer neuron least active at the corner: when
  that neuron stays inactive wherever the corner neuron is active (the usual case), B computes
  exactly A's function although relation inference sees a different neuron;
- None: no bug (B is equivalent to A, exactly).
Random sampling of the box almost never meets the region, so these pairs need a search that
localises the difference.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

import nnir
from nnir.ir.const import Const
from nnir.ir.nodes import Network
from nnir.ir.verifier import verify_network
from nnir.passes.shard import shard_network

KINDS = ("out_weight", "bias", "in_weight", "deep_bias", "harmless")


def edit(net: Network, node: str, what: str, index, change) -> Network:
    """`net` with entry `index` of node `node`'s `what` ("weight" or "bias") set to
    change(old) (floats)."""
    lay = net.layer(node)
    arr = np.array(getattr(lay, what).f64, dtype=np.float64)
    arr[index] = change(arr[index])
    layers = tuple(replace(x, **{what: Const.of_floats(arr)}) if x.name == node else x
                   for x in net.layers)
    out = replace(net, layers=layers, facts=None)
    verify_network(out)
    return out


def region_pair(seed: int, depth: int = 2, kind: str | None = "out_weight", width: int = 16,
                n_in: int = 4, n_out: int = 2, ways: int = 4,
                eps: float = 0.08) -> tuple[Network, Network, dict]:
    """A network A and its `ways`-way sharded version B with bug `kind` (see the module doc).

    Args:
        seed: the random seed (weights, the corner, the bug's place and size).
        depth: hidden layers (at least 2 for "deep_bias").
        kind: one of `KINDS`, or None for a correct B.
        eps: the corner neuron's region: w . x > (1 - eps) |w|_1.
    Returns:
        (A, B, info) with info naming the corner neuron and the edit.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown bug kind {kind!r}; use one of {KINDS}")
    if depth < 2:
        raise ValueError("region pairs need at least 2 hidden layers")
    rng = np.random.default_rng(seed)
    sizes = [n_in] + [width] * depth + [n_out]
    Ws = [rng.normal(size=(sizes[k + 1], sizes[k])) / np.sqrt(sizes[k]) for k in range(depth + 1)]
    bs = [0.1 * rng.normal(size=sizes[k + 1]) for k in range(depth + 1)]
    j = int(rng.integers(width))
    u = rng.uniform(0.5, 1.5, size=n_in)
    signs = rng.choice([-1.0, 1.0], size=n_in)
    signs[rng.choice(n_in, size=2, replace=False)] = [-1.0, 1.0]  # not the box's lo or hi corner
    Ws[0][j] = signs * u
    bs[0][j] = -(1.0 - eps) * u.sum()
    Ws[1][:, j] *= 3.0  # the corner neuron matters downstream
    k = int(rng.integers(width))
    peak = eps * u.sum()  # the corner neuron's largest value on the box
    if kind == "deep_bias":
        Ws[1][k] = 0.0
        Ws[1][k, j] = 1.0
        bs[1][k] = -0.5 * peak
        Ws[2][:, k] = 3.0 * rng.choice([-1.0, 1.0], size=sizes[3])
    if kind in ("out_weight", "harmless"):  # the second-layer neuron at the corner
        h1 = np.maximum(Ws[0] @ signs + bs[0], 0.0)
        pre = Ws[1] @ h1 + bs[1]
        k = int(np.argmax(pre) if kind == "out_weight" else np.argmin(pre))
    layers = [(W, b, "relu" if i < depth else "linear") for i, (W, b) in enumerate(zip(Ws, bs))]
    a = nnir.network(f"region{seed}_d{depth}", layers, lo=-1, hi=1)
    b = shard_network(a, ways, name=f"{a.name}_tp{ways}" + (f"_{kind}" if kind else ""))
    blocks = [blk for blk in np.array_split(np.arange(width), min(ways, width)) if len(blk)]
    shard = next(i for i, blk in enumerate(blocks) if j in blk)
    jl = int(j - blocks[shard][0])
    info = {"corner_neuron": f"h1[{j}]", "kind": kind, "seed": seed, "depth": depth}
    if kind in ("out_weight", "harmless"):
        b = edit(b, f"h2_p{shard}", "weight", (k, jl), lambda v: v + 0.5)
        info["edit"] = f"h2_p{shard}.weight[{k}, {jl}] += 0.5"
    elif kind == "bias":
        delta = float(rng.choice([-0.3, 0.3])) * peak
        b = edit(b, f"h1_s{shard}", "bias", jl, lambda v: v + delta)
        info["edit"] = f"h1_s{shard}.bias[{jl}] += {delta:.4g}"
    elif kind == "in_weight":
        m = int(rng.integers(n_in))
        b = edit(b, f"h1_s{shard}", "weight", (jl, m), lambda v: v * 1.1)
        info["edit"] = f"h1_s{shard}.weight[{jl}, {m}] *= 1.1"
    elif kind == "deep_bias":
        b = edit(b, "h2_p0", "bias", k, lambda v: v + 0.2 * peak)
        info["edit"] = f"h2_p0.bias[{k}] += {0.2 * peak:.4g}"
    return a, b, info


def standard_pairs(seeds: int = 1) -> list[tuple[str, Network, Network, dict]]:
    """The benchmark's pairs: every bug kind at depths 2 and 3 (`seeds` seeds each), and 3
    correct pairs per depth (name, A, B, info); the s-th seed of kind n at depth d is
    10 d + n + 1000 s."""
    out = []
    for s in range(seeds):
        for depth in (2, 3):
            for n, kind in enumerate(KINDS):
                seed = 10 * depth + n + 1000 * s
                a, b, info = region_pair(seed, depth, kind)
                out.append((f"d{depth}_{kind}_s{seed}", a, b, info))
    for depth in (2, 3):
        for seed in (1, 2, 3):
            a, b, info = region_pair(100 + 10 * depth + seed, depth, None,
                                     ways=2 + (seed % 2) * 2)
            out.append((f"d{depth}_correct_s{100 + 10 * depth + seed}", a, b, info))
    return out
