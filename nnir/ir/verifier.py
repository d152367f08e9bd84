"""The IR verifier: every invariant a well-formed program keeps, checked with pointed errors.

Run after the front end and (when checks are on) after every pass, in the manner of JAX's
`check_jaxpr`: a broken invariant is reported at the source span of the offending node.
"""
from __future__ import annotations

from dataclasses import dataclass

from nnir.errors import IrError
from nnir.ir.const import Const
from nnir.ir.conv import output_hw
from nnir.ir.formula import atoms
from nnir.ir.kinds import HAS_PRE
from nnir.ir.nodes import (
    ACTIVATIONS,
    RELATIONS,
    Atom,
    Bound,
    Compress,
    Equiv,
    Network,
    Program,
    Stable,
    Train,
    Unknown,
    Verify,
)


def _fail(msg, span, hint=None, source=None):
    raise IrError(msg, span, hint, source)


def _names_hint(names) -> str:
    names = list(names)
    return ("defined names are: " + ", ".join(names)) if names else "nothing is defined yet"


def verify_network(net: Network, source: str | None = None) -> None:
    """Check shapes, names, domains and activations of one network."""
    inp = net.input
    seen = {inp.name: inp.size}
    if inp.lo.shape != (inp.size,) or inp.hi.shape != (inp.size,):
        _fail(f"input '{inp.name}' box has the wrong length", inp.span, source=source)
    for i, (a, b) in enumerate(zip(inp.lo.exact, inp.hi.exact)):
        if a > b:
            _fail(f"input '{inp.name}[{i}]' has an empty domain [{a}, {b}]", inp.span,
                  source=source)
    for c in inp.constraints:
        _check_atom(c, {inp.name: inp.size}, "an input constraint", source)
    for lay in net.layers:
        if lay.name in seen:
            _fail(f"name '{lay.name}' is defined twice in network '{net.name}'", lay.span,
                  source=source)
        if lay.act not in ACTIVATIONS:
            _fail(f"unknown activation '{lay.act}'", lay.span, "use relu or linear", source)
        for src in lay.srcs:
            if src not in seen:
                _fail(f"layer '{src}' is not defined", lay.span,
                      f"a layer reads the input or an earlier layer; {_names_hint(seen)}",
                      source)
        rule = RULES.get(getattr(lay, "kind", None))
        if rule is None:
            _fail(f"'{lay.name}' is not a network node ({type(lay).__name__})", lay.span,
                  source=source)
        rule(lay, [seen[s] for s in lay.srcs], source)
        seen[lay.name] = lay.size
    if net.output not in seen:
        _fail(f"output '{net.output}' is not defined in network '{net.name}'", net.span,
              _names_hint(seen), source)
    graph = net.graph_nodes()
    if graph and net.has_unknowns:
        lay = net.layer(graph[0])
        _fail(f"network '{net.name}' has unknown weights and a {lay.kind} node '{lay.name}': "
              "training handles chains of dense layers only", lay.span,
              "train the dense network first, then shard the trained weights", source)


# Per node kind, its shape checks given the sizes `got` of its sources.
def _check_dense(lay, got: list, source) -> None:
    n_in = got[0]
    _check_shape(lay.weight, (lay.size, n_in), lay, "weight",
                 f"{lay.size} neurons reading '{lay.src}' of size {n_in}", source)
    _check_shape(lay.bias, (lay.size,), lay, "bias", f"{lay.size} neurons", source)


def _check_slice(lay, got: list, source) -> None:
    """A slice lies within its source."""
    if lay.start < 0 or lay.size <= 0 or lay.start + lay.size > got[0]:
        _fail(f"slice '{lay.name}' = {lay.src}[{lay.start}:{lay.start + lay.size}] is out of "
              f"range: '{lay.src}' has {got[0]} entries", lay.span,
              f"valid slices lie within 0..{got[0]}", source)


def _check_concat(lay, got: list, source) -> None:
    """A concat reads something and has the sum of its sources' sizes."""
    _check_reads(lay, source)
    _check_size(lay, sum(got), source)


def _check_add(lay, got: list, source) -> None:
    """An add reads something, all of the same size, and has that size."""
    _check_reads(lay, source)
    if any(g != got[0] for g in got):
        sizes = ", ".join(f"{s}[{g}]" for s, g in zip(lay.srcs, got))
        _fail(f"shape mismatch: add '{lay.name}' sums vectors of different sizes ({sizes})",
              lay.span, "every term of an add must have the same size", source)
    _check_size(lay, got[0], source)


def _check_reads(lay, source) -> None:
    if not lay.srcs:
        _fail(f"{lay.kind} node '{lay.name}' reads nothing", lay.span, source=source)


def _check_size(lay, want: int, source) -> None:
    if lay.size != want:
        _fail(f"shape mismatch: {lay.kind} '{lay.name}' has {want} entries, declared "
              f"{lay.size}", lay.span, f"write {lay.name}[{want}] or leave the size out",
              source)


def _check_gather(lay, got: list, source) -> None:
    """Every index lies within the source, and the size is the number of indices."""
    _check_size(lay, len(lay.index), source)
    bad = [i for i in lay.index if not 0 <= i < got[0]]
    if bad:
        _fail(f"gather '{lay.name}' reads {lay.src}[{bad[0]}], out of range: '{lay.src}' has "
              f"{got[0]} entries", lay.span, f"valid indices are 0..{got[0] - 1}", source)


def _check_conv(lay, got: list, source) -> None:
    """Source and output shapes agree with the sizes, the kernel with the channels and groups,
    and the output shape with the geometry (ONNX's formula)."""
    C, H, W = lay.in_shape
    if C * H * W != got[0]:
        _fail(f"shape mismatch: conv '{lay.name}' reads '{lay.src}' as {C}x{H}x{W} = "
              f"{C * H * W} entries, but it has {got[0]}", lay.span, source=source)
    if not isinstance(lay.weight, Const) or len(lay.weight.shape) != 4:
        _fail(f"conv '{lay.name}' needs a known 4-D kernel (out channels, in channels / groups,"
              f" kh, kw)", lay.span, source=source)
    Co, Cg, KH, KW = lay.weight.shape
    g = lay.groups
    if g < 1 or C % g or Co % g or Cg * g != C:
        _fail(f"conv '{lay.name}': a kernel of shape {Co}x{Cg}x{KH}x{KW} with groups {g} does "
              f"not read {C} channels", lay.span, "in channels / groups must be the kernel's "
              "second dimension, and groups must divide both channel counts", source)
    _check_shape(lay.bias, (Co,), lay, "bias", f"{Co} out channels", source)
    if min(lay.stride + lay.dilation) < 1 or min(lay.pads) < 0 or min(KH, KW) < 1:
        _fail(f"conv '{lay.name}': strides, dilations and kernel sizes must be positive and "
              "pads non-negative", lay.span, source=source)
    want = (Co, *output_hw((H, W), (KH, KW), lay.stride, lay.pads, lay.dilation))
    if tuple(lay.out_shape) != want or want[1] < 1 or want[2] < 1:
        _fail(f"shape mismatch: conv '{lay.name}' computes {list(want)}, declared "
              f"{list(lay.out_shape)}", lay.span, source=source)
    _check_size(lay, Co * want[1] * want[2], source)


RULES = {"dense": _check_dense, "slice": _check_slice, "concat": _check_concat,
         "add": _check_add, "conv": _check_conv, "gather": _check_gather}


def _check_shape(t, shape, lay, what, why, source):
    got = t.shape
    if got != shape:
        dims = "x".join(map(str, shape))
        gdims = "x".join(map(str, got)) if got else "unsized"
        _fail(f"shape mismatch: layer '{lay.name}' has {why}, so its {what} must be {dims}, "
              f"got {gdims}", getattr(t, "span", None) or lay.span, source=source)
    if isinstance(t, Unknown) and t.lo is not None and t.lo > t.hi:
        _fail(f"empty weight box for layer '{lay.name}'", t.span or lay.span, source=source)
    if not isinstance(t, (Const, Unknown)):
        _fail(f"layer '{lay.name}' {what} has an invalid type", lay.span, source=source)


def _check_atom(a: Atom, sizes: dict, where: str, source) -> None:
    if a.rel not in RELATIONS:
        _fail(f"unknown comparison '{a.rel}'", a.span, source=source)
    for ref, _ in a.terms:
        if ref.node not in sizes:
            _fail(f"'{ref.node}' is not defined here: {where} may use {', '.join(sizes)}",
                  a.span, source=source)
        if not 0 <= ref.index < sizes[ref.node]:
            _fail(f"index {ref.index} is out of range for '{ref.node}' of size "
                  f"{sizes[ref.node]}", a.span, f"valid indices are 0..{sizes[ref.node] - 1}",
                  source)


def verify_program(prog: Program, source: str | None = None) -> None:
    """Check every network, dataset and query of `prog`; raise `IrError` at the first problem."""
    top: dict[str, str] = {}
    for kind, items in (("network", prog.networks), ("dataset", prog.datasets),
                        ("query", prog.queries)):
        for it in items:
            if it.name in top:
                _fail(f"'{it.name}' is already defined as a {top[it.name]}", it.span,
                      "every network, dataset and query needs its own name", source)
            top[it.name] = kind
    nets = {n.name: n for n in prog.networks}
    datas = {d.name for d in prog.datasets}
    for n in prog.networks:
        verify_network(n, source)

    def need_net(name, span):
        if name not in nets:
            _fail(f"network '{name}' is not defined", span, _names_hint(nets), source)
        return nets[name]

    def need_data(name, span):
        if name not in datas:
            _fail(f"dataset '{name}' is not defined", span, _names_hint(datas), source)

    ctx = _QueryContext(need_net, need_data, top, source)
    for q in prog.queries:
        QUERY_RULES[q.kind](q, ctx)


@dataclass(frozen=True)
class _QueryContext:
    """What a query rule needs: name lookups that fail with a located error, and the names."""

    need_net: object
    need_data: object
    top: set
    source: str | None


def _verify_q(q: Verify, c: _QueryContext) -> None:
    net = c.need_net(q.net, q.span)
    if net.has_unknowns:
        _fail(f"network '{net.name}' has unknown weights, so it cannot be verified",
              q.span, "train it first (a `train` query writes the trained network)", c.source)
    for a in q.where:
        _check_atom(a, {net.input.name: net.input.size}, "a where-constraint", c.source)
    sizes = {name: net.size_of(name) for name in net.node_names()}
    for a in atoms(q.prop):
        _check_atom(a, sizes, "a property", c.source)


def _train_q(q: Train, c: _QueryContext) -> None:
    c.need_net(q.net, q.span)
    c.need_data(q.data, q.span)
    if q.test is not None:
        c.need_data(q.test, q.span)
    if q.margin is not None and q.margin < 0:
        _fail("the margin must be non-negative", q.span, source=c.source)


def _bound_q(q: Bound, c: _QueryContext) -> None:
    net = c.need_net(q.net, q.span)
    try:
        lay = net.layer(q.layer)
    except KeyError:
        _fail(f"layer '{q.layer}' is not defined in network '{net.name}'", q.span,
              _names_hint(lay.name for lay in net.layers), c.source)
    if not HAS_PRE[lay.kind]:
        _fail(f"'{q.layer}' is a {lay.kind} node: it has no pre-activation of its own",
              q.span, "bound the layer it reads instead", c.source)
    if not 0 <= q.index < lay.size:
        _fail(f"index {q.index} is out of range for layer '{q.layer}' of size "
              f"{lay.size}", q.span, source=c.source)


def _stable_q(q: Stable, c: _QueryContext) -> None:
    c.need_net(q.net, q.span)
    if q.data is not None:
        c.need_data(q.data, q.span)


def _compress_q(q: Compress, c: _QueryContext) -> None:
    c.need_net(q.net, q.span)
    if q.output is not None and q.output in c.top:
        _fail(f"'{q.output}' is already defined", q.span, source=c.source)
    if q.data is not None:
        c.need_data(q.data, q.span)


def _equiv_q(q: Equiv, c: _QueryContext) -> None:
    _check_equiv(q, c.need_net(q.a, q.span), c.need_net(q.b, q.span), c.source)


# Per query kind (`nnir.ir.nodes.QUERY_KINDS`; checked complete by tests/test_node_tables.py).
QUERY_RULES = {"verify": _verify_q, "train": _train_q, "bound": _bound_q, "stable": _stable_q,
               "compress": _compress_q, "equiv": _equiv_q}


def _check_equiv(q: Equiv, a: Network, b: Network, source) -> None:
    """Both networks read inputs of one size; the output map picks valid outputs of B."""
    for net in (a, b):
        if net.has_unknowns:
            _fail(f"network '{net.name}' has unknown weights, so equivalence cannot be checked",
                  q.span, "train it first", source)
    if a.input.size != b.input.size:
        _fail(f"networks '{a.name}' and '{b.name}' cannot be compared: they read "
              f"{a.input.size} and {b.input.size} inputs", q.span,
              "equiv needs networks with inputs of the same size (both run on "
              f"'{a.name}''s input domain)", source)
    if q.tol is not None and q.tol < 0:
        _fail("the tolerance must be non-negative", q.span, source=source)
    n_a, n_b = a.output_size, b.output_size
    if q.mapping is None:
        if n_a != n_b:
            _fail(f"networks '{a.name}' and '{b.name}' have {n_a} and {n_b} outputs", q.span,
                  f"add `map [i, ...]`: for each of the {n_a} outputs of '{a.name}', the output "
                  f"of '{b.name}' it is compared with", source)
        return
    if len(q.mapping) != n_a:
        _fail(f"the output map has {len(q.mapping)} entries but '{a.name}' has {n_a} outputs",
              q.span, f"give one output of '{b.name}' per output of '{a.name}'", source)
    bad = [i for i in q.mapping if not 0 <= i < n_b]
    if bad:
        _fail(f"output map entry {bad[0]} is out of range: '{b.name}' has {n_b} outputs",
              q.span, f"valid entries are 0..{n_b - 1}", source)
