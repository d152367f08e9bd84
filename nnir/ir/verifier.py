"""The IR verifier: every invariant a well-formed program keeps, checked with pointed errors.

Run after the front end and (when checks are on) after every pass, in the manner of JAX's
`check_jaxpr`: a broken invariant is reported at the source span of the offending node.
"""
from __future__ import annotations

from nnir.errors import IrError
from nnir.ir.const import Const
from nnir.ir.formula import atoms
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
        if lay.src not in seen:
            _fail(f"layer '{lay.src}' is not defined", lay.span,
                  f"a layer reads the input or an earlier layer; {_names_hint(seen)}", source)
        n_in = seen[lay.src]
        _check_shape(lay.weight, (lay.size, n_in), lay, "weight",
                     f"{lay.size} neurons reading '{lay.src}' of size {n_in}", source)
        _check_shape(lay.bias, (lay.size,), lay, "bias", f"{lay.size} neurons", source)
        seen[lay.name] = lay.size
    if net.output not in seen:
        _fail(f"output '{net.output}' is not defined in network '{net.name}'", net.span,
              _names_hint(seen), source)


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

    for q in prog.queries:
        if isinstance(q, Equiv):
            need_net(q.a, q.span)
            need_net(q.b, q.span)
            continue
        net = need_net(q.net, q.span)
        if isinstance(q, Verify):
            if net.has_unknowns:
                _fail(f"network '{net.name}' has unknown weights, so it cannot be verified",
                      q.span, "train it first (a `train` query writes the trained network)",
                      source)
            for a in q.where:
                _check_atom(a, {net.input.name: net.input.size}, "a where-constraint", source)
            sizes = {name: net.size_of(name) for name in net.node_names()}
            for a in atoms(q.prop):
                _check_atom(a, sizes, "a property", source)
        elif isinstance(q, Train):
            need_data(q.data, q.span)
            if q.test is not None:
                need_data(q.test, q.span)
            if q.margin is not None and q.margin < 0:
                _fail("the margin must be non-negative", q.span, source=source)
        elif isinstance(q, Bound):
            try:
                lay = net.layer(q.layer)
            except KeyError:
                _fail(f"layer '{q.layer}' is not defined in network '{net.name}'", q.span,
                      _names_hint(lay.name for lay in net.layers), source)
            if not 0 <= q.index < lay.size:
                _fail(f"index {q.index} is out of range for layer '{q.layer}' of size "
                      f"{lay.size}", q.span, source=source)
        elif isinstance(q, Stable) and q.data is not None:
            need_data(q.data, q.span)
        elif isinstance(q, Compress) and q.output is not None and q.output in top:
            _fail(f"'{q.output}' is already defined", q.span, source=source)
