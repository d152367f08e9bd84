"""The IR: frozen, typed node classes for networks, datasets, formulas and queries.

Conventions: a dense layer computes `act(W @ src + b)` with `W` of shape (size, len(src)); a
neuron is addressed as (layer name, index); every node carries the `Span` it came from, which
takes no part in equality (so `parse(print(ir)) == ir`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from nnir.errors import Span
from nnir.ir.const import Const

ACTIVATIONS = ("relu", "linear")
RELATIONS = ("<=", "<", "==", ">=", ">")


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


# ----------------------------------------------------------------------------- tensors
@dataclass(frozen=True)
class Unknown:
    """A tensor of weights to be found by `train`, optionally boxed to [lo, hi]."""

    shape: tuple[int, ...]
    lo: Fraction | None = None
    hi: Fraction | None = None
    span: Span | None = _span()


Tensor = Const | Unknown


# ----------------------------------------------------------------------------- linear algebra
@dataclass(frozen=True)
class Ref:
    """One scalar value of a network: entry `index` of the vector named `node`."""

    node: str
    index: int

    def __str__(self) -> str:
        return f"{self.node}[{self.index}]"


@dataclass(frozen=True)
class Atom:
    """A linear constraint `sum(c * ref) REL rhs`, with terms merged and in first-use order."""

    terms: tuple[tuple[Ref, Fraction], ...]
    rel: str
    rhs: Fraction
    span: Span | None = _span()

    def refs(self) -> list[Ref]:
        return [r for r, _ in self.terms]


@dataclass(frozen=True)
class And:
    """A conjunction: every formula of `args` holds."""

    args: tuple[Formula, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Or:
    """A disjunction: some formula of `args` holds."""

    args: tuple[Formula, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Not:
    """A negation: `arg` does not hold."""

    arg: Formula
    span: Span | None = _span()


@dataclass(frozen=True)
class BoolConst:
    """The formula `true` or `false`."""

    value: bool
    span: Span | None = _span()


Formula = Atom | And | Or | Not | BoolConst


# ----------------------------------------------------------------------------- networks
@dataclass(frozen=True)
class Input:
    """The input vector and its domain: a box [lo, hi] plus optional linear constraints."""

    name: str
    size: int
    lo: Const
    hi: Const
    constraints: tuple[Atom, ...] = ()
    span: Span | None = _span()


@dataclass(frozen=True)
class Dense:
    """A dense layer `name = act(weight @ src + bias)`."""

    name: str
    size: int
    src: str
    weight: Tensor
    bias: Tensor
    act: str
    span: Span | None = _span()
    kind = "dense"

    @property
    def srcs(self) -> tuple[str, ...]:
        return (self.src,)


@dataclass(frozen=True)
class Slice:
    """`name = src[start:start+size]`: a contiguous part of a vector (no activation, exact)."""

    name: str
    size: int
    src: str
    start: int
    span: Span | None = _span()
    act = "linear"  # not a field: a slice never has an activation
    kind = "slice"

    @property
    def srcs(self) -> tuple[str, ...]:
        return (self.src,)


@dataclass(frozen=True)
class Concat:
    """`name = [a, b, ...]`: the vectors `srcs` one after the other (no activation, exact)."""

    name: str
    size: int
    srcs: tuple[str, ...]
    span: Span | None = _span()
    act = "linear"
    kind = "concat"


@dataclass(frozen=True)
class Add:
    """`name = act(a + b + ...)`: the sum of equally long vectors (the all-reduce of partial
    sums), optionally through a ReLU."""

    name: str
    size: int
    srcs: tuple[str, ...]
    act: str = "linear"
    span: Span | None = _span()
    kind = "add"


@dataclass(frozen=True)
class Conv:
    """`name = act(conv(src, weight) + bias)`: a 2-D convolution (a 1-D one has height 1).

    The source's vector is read as a (channels, height, width) tensor in row-major order (ONNX's
    NCHW layout without the batch), and so is the output. `weight` has shape (out channels,
    in channels / groups, kernel height, kernel width), `bias` one value per out channel;
    `pads` are (top, left, bottom, right) zeros around the input (ONNX's begin_h, begin_w,
    end_h, end_w). `nnir.ir.conv` turns the geometry into index tables and sparse matrices.
    """

    name: str
    size: int
    src: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    weight: Tensor
    bias: Tensor
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    act: str = "linear"
    span: Span | None = _span()
    kind = "conv"

    @property
    def srcs(self) -> tuple[str, ...]:
        return (self.src,)


@dataclass(frozen=True)
class Gather:
    """`name = src[index]`: entries of a vector in any order, repeats allowed (an index map:
    transposes, reshapes between layouts, ONNX Gather with constant indices; exact, no
    activation)."""

    name: str
    size: int
    src: str
    index: tuple[int, ...]
    span: Span | None = _span()
    act = "linear"
    kind = "gather"

    @property
    def srcs(self) -> tuple[str, ...]:
        return (self.src,)


Node = Dense | Slice | Concat | Add | Conv | Gather
NODE_KINDS = ("dense", "slice", "concat", "add", "conv", "gather")


@dataclass(frozen=True)
class Facts:
    """What bound passes proved about a network: pre-activation bounds and stable ReLUs.

    `lo`/`hi` map a layer name to float64 arrays that are *sound* (outward-rounded) bounds on the
    layer's pre-activation over the input domain; `stable` maps a layer name to an int8 array
    (+1 stably active, -1 stably inactive, 0 unknown). `origin` names the pass per layer.
    """

    lo: dict
    hi: dict
    stable: dict
    origin: dict


@dataclass(frozen=True)
class Network:
    """A network: its input, its nodes in topological order and the name of its output node;
    `facts` holds the bound passes' results (None before they run)."""

    name: str
    input: Input
    layers: tuple[Node, ...]  # in topological order: a node reads the input or earlier nodes
    output: str
    span: Span | None = _span()
    facts: Facts | None = field(default=None, compare=False, repr=False)

    def layer(self, name: str) -> Node:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(name)

    def size_of(self, node: str) -> int:
        if node == self.input.name:
            return self.input.size
        return self.layer(node).size

    def node_names(self) -> list[str]:
        return [self.input.name] + [lay.name for lay in self.layers]

    @property
    def output_size(self) -> int:
        return self.size_of(self.output)

    @property
    def has_unknowns(self) -> bool:
        return any(isinstance(t, Unknown) for lay in self.dense_layers
                   for t in (lay.weight, lay.bias))

    @property
    def dense_layers(self) -> tuple[Dense, ...]:
        return tuple(lay for lay in self.layers if lay.kind == "dense")

    @property
    def is_dense_only(self) -> bool:
        """True when every node is a dense layer (no slice, concat, add, conv or gather)."""
        return all(lay.kind == "dense" for lay in self.layers)

    def graph_nodes(self) -> list[str]:
        """Names of the nodes that are not dense layers (consumers that need dense layers say
        so)."""
        return [lay.name for lay in self.layers if lay.kind != "dense"]


# ----------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class InlineData:
    points: tuple[tuple[Fraction, ...], ...]
    labels: tuple[int, ...]


@dataclass(frozen=True)
class FileData:
    """A dataset read from a file; `format` is csv, npy or npz, `options` sorted (key, value)."""

    format: str
    path: str
    options: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class GeneratedData:
    """A dataset made by a named generator (e.g. `sphere_planes`) with keyword arguments."""

    generator: str
    params: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Dataset:
    name: str
    source: InlineData | FileData | GeneratedData
    span: Span | None = _span()


# ----------------------------------------------------------------------------- queries
@dataclass(frozen=True)
class Verify:
    """Is there an input in the domain (and `where`) whose values satisfy `prop`? (VNN-LIB form)."""

    name: str
    net: str
    where: tuple[Atom, ...]
    prop: Formula
    span: Span | None = _span()
    kind = "verify"


@dataclass(frozen=True)
class Train:
    """`train NET on DATA`: find the unknown weights of `net` fitting every point of `data`."""

    name: str
    net: str
    data: str
    margin: Fraction | None = None
    weights: tuple[Fraction, Fraction] | None = None
    test: str | None = None  # a held-out dataset: accuracy reported, not trained on
    span: Span | None = _span()
    kind = "train"


@dataclass(frozen=True)
class Bound:
    """`bound NET.layer[index]`: min and max of a pre-activation over the input domain."""

    name: str
    net: str
    layer: str
    index: int
    method: str | None = None
    span: Span | None = _span()
    kind = "bound"


@dataclass(frozen=True)
class Stable:
    """`stable NET [using DATA]`: the provably stable ReLUs of `net`."""

    name: str
    net: str
    data: str | None = None
    span: Span | None = _span()
    kind = "stable"


@dataclass(frozen=True)
class Compress:
    """`compress NET [-> output] [using DATA]`: the exactly equivalent smaller network."""

    name: str
    net: str
    output: str | None = None
    data: str | None = None  # a dataset the check also replays, and the stable analysis uses
    span: Span | None = _span()
    kind = "compress"


@dataclass(frozen=True)
class Equiv:
    """`equiv A B [tol T] [map [...]]`: do `a` and `b` compute the same function on A's
    domain (each output within `tol`)?"""

    name: str
    a: str
    b: str
    tol: Fraction | None = None
    mapping: tuple[int, ...] | None = None
    span: Span | None = _span()
    kind = "equiv"


Query = Verify | Train | Bound | Stable | Compress | Equiv
QUERY_KINDS = ("verify", "train", "bound", "stable", "compress", "equiv")


# ----------------------------------------------------------------------------- program
@dataclass(frozen=True)
class Program:
    """Everything one `.nnir` file declares, in source order."""

    networks: tuple[Network, ...] = ()
    datasets: tuple[Dataset, ...] = ()
    queries: tuple[Query, ...] = ()
    path: str = field(default="<string>", compare=False)
    base_dir: str = field(default=".", compare=False, repr=False)

    def network(self, name: str) -> Network:
        for n in self.networks:
            if n.name == name:
                return n
        raise KeyError(name)

    def dataset(self, name: str) -> Dataset:
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(name)

    def query(self, name: str) -> Query:
        for q in self.queries:
            if q.name == name:
                return q
        raise KeyError(name)
