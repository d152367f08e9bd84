"""The `.nnir` forms that read files of other tools (called by the front end's tree builder).

    net acas = onnx "acas.onnx" [input in BOX]      an ONNX network (box optional)
    net n = nnet "n.nnet" [input in BOX]            an NNet network (box: the file's min/max)
    verify acas [as q] from vnnlib "prop.vnnlib"    a VNN-LIB property, as verify queries

Paths are relative to the `.nnir` file. A property becomes one ordinary `verify` query per input
region, its box written as `where` bounds (so the printer writes plain queries that parse back
to the same IR); with several regions they are named `q_1`, `q_2`, ... and the property holds
iff all are unsat. An ONNX network given no box takes the smallest box holding the regions of
its properties; it must then be used by `from vnnlib` queries only. A region outside a network's
explicit box is an error (usually a property in other units, e.g. a raw-unit NNet).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from lark import Token, Tree

from nnir.errors import DslError, InputFileError
from nnir.formats.nnet import read_nnet
from nnir.formats.onnx_io import box_of, load_network, with_box
from nnir.formats.vnnlib import read_vnnlib
from nnir.ir.const import Const
from nnir.ir.nodes import Atom, BoolConst, Network, Ref, Verify


@dataclass(frozen=True)
class VnnlibQuery:
    """A `verify ... from vnnlib` query until every network is known (see `expand`)."""

    name: str
    net: str
    path: str
    token: Token
    span: object


def _wrap(b, exc: InputFileError, tok: Token) -> InputFileError:
    """A file's error re-raised at the path in the `.nnir` source (its own place in the text)."""
    where = f"{exc.span}: " if exc.span is not None else ""
    return b.error(where + exc.message, tok, exc.hint, cls=InputFileError)


def import_net(b, t: Tree) -> Network:
    """`net NAME = onnx|nnet "PATH" [input in BOX]`."""
    name_tok, fmt, path_tok = t.children[:3]
    fmt = str(fmt.children[0]) if isinstance(fmt, Tree) else str(fmt)
    rel = b.path(path_tok)
    full = b.resolve(rel)
    try:
        if fmt == "onnx":
            net, recorded = load_network(full, str(name_tok))
            if recorded:
                net = with_box(net, *box_of(full, net.input.size, recorded=recorded))
            elif len(t.children) == 3:
                b.unboxed = getattr(b, "unboxed", set()) | {str(name_tok)}
        else:
            net = read_nnet(full, str(name_tok))
    except InputFileError as exc:
        if "not found" in exc.message and exc.span is None:
            raise b.error(f"{fmt} file '{rel}' not found", path_tok,
                          f"paths are relative to the .nnir file's folder ({b.base_dir})",
                          cls=InputFileError) from None
        raise _wrap(b, exc, path_tok) from None
    if len(t.children) > 3:
        net = _boxed(b, net, t.children[3])
    span = b.span(name_tok)
    return replace(net, span=span, input=replace(net.input, span=span))


def _boxed(b, net: Network, box: Tree) -> Network:
    n = net.input.size
    if box.data == "box_uniform":
        pairs = [b.interval(box.children[0])] * n
    else:
        pairs = [b.interval(c) for c in box.children]
        if len(pairs) != n:
            raise b.error(f"the box gives {len(pairs)} intervals but the network's input has "
                          f"{n} coordinates", box)
    inp = replace(net.input, lo=Const.exact_of([p[0] for p in pairs]),
                  hi=Const.exact_of([p[1] for p in pairs]))
    return replace(net, input=inp)


def vnnlib_query(b, t: Tree) -> VnnlibQuery:
    """`verify NET [as Q] from vnnlib "PATH"`, kept whole until `expand`."""
    path_tok = t.children[-1]
    return VnnlibQuery(b.qname("verify", t.children), str(t.children[0]), b.path(path_tok),
                       path_tok, b.span(t.children[0]))


def expand(b, nets: list, queries: list) -> tuple[list, list]:
    """Replace each `VnnlibQuery` by verify queries; give unboxed ONNX networks their box."""
    by_name = {n.name: n for n in nets}
    unboxed = getattr(b, "unboxed", set())
    hulls: dict[str, tuple[list, list]] = {}
    out, made = [], set()  # made: ids of the queries made from properties
    for q in queries:
        if not isinstance(q, VnnlibQuery):
            out.append(q)
            continue
        net = by_name.get(q.net)
        if net is None:
            raise DslError(f"network '{q.net}' is not defined", q.span,
                           "define it, e.g. net NAME = onnx \"file.onnx\"", b.text)
        try:
            problems = read_vnnlib(b.resolve(q.path), net, name=q.name)
        except InputFileError as exc:
            if exc.span is not None:
                raise  # it points into the .vnnlib file itself
            raise _wrap(b, exc, q.token) from None
        for p in problems:
            lo, hi = list(p.net.input.lo.exact), list(p.net.input.hi.exact)
            if net.name in unboxed:
                h = hulls.setdefault(net.name, (lo, hi))
                hulls[net.name] = ([min(x, y) for x, y in zip(h[0], lo)],
                                   [max(x, y) for x, y in zip(h[1], hi)])
            else:
                _inside(b, net, lo, hi, q)
            out.append(Verify(p.name, net.name, _box_atoms(net, lo, hi) + tuple(p.where),
                              p.prop, q.span))
            made.add(id(out[-1]))
        if not problems:  # every region empty: nothing can be found
            out.append(Verify(q.name, net.name, (), BoolConst(False), q.span))
            made.add(id(out[-1]))
    others = [q for q in out if id(q) not in made]
    return [_finish(b, n, hulls, others) if n.name in unboxed else n for n in nets], out


def _box_atoms(net: Network, lo, hi) -> tuple[Atom, ...]:
    atoms = []
    for i, (a, c) in enumerate(zip(lo, hi)):
        ref = ((Ref(net.input.name, i), Fraction(1)),)
        atoms += [Atom(ref, ">=", a), Atom(ref, "<=", c)]
    return tuple(atoms)


def _inside(b, net: Network, lo, hi, q: VnnlibQuery) -> None:
    for i, (a, c, na, nc) in enumerate(zip(lo, hi, net.input.lo.exact, net.input.hi.exact)):
        if a < na or c > nc:
            raise b.error(f"the property's box X_{i} in [{float(a):g}, {float(c):g}] leaves "
                          f"network '{net.name}''s domain [{float(na):g}, {float(nc):g}]",
                          q.token, "is the property in the network's units? (an NNet network "
                          "reads raw units; VNN-LIB properties of ACAS Xu are normalised)")


def _finish(b, net: Network, hulls: dict, others: list) -> Network:
    """An unboxed network gets the hull of its properties' boxes, if nothing else reads it."""
    users = [q for q in others if net.name in {getattr(q, f, None) for f in ("net", "a", "b")}]
    if net.name not in hulls or users:
        raise DslError(f"network '{net.name}' has no input box (ONNX files carry none)",
                       net.span, f"give one: net {net.name} = onnx \"...\" input in [lo, hi]; "
                       f"or use the network only in `verify {net.name} from vnnlib \"...\"` "
                       "queries, which give it their box", b.text)
    lo, hi = hulls[net.name]
    inp = replace(net.input, lo=Const.exact_of(lo), hi=Const.exact_of(hi))
    return replace(net, input=inp)
