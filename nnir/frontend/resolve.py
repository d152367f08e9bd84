"""Sugar that needs every network known: expand `sum(v)`, give unknown weights their shapes."""
from __future__ import annotations

from dataclasses import replace

from nnir import limits
from nnir.errors import DslError
from nnir.ir.formula import atoms
from nnir.ir.nodes import And, Atom, Dense, Network, Not, Or, Program, Ref, Unknown


def resolve(prog: Program) -> Program:
    _count_sum_terms(prog)
    nets = tuple(_resolve_net(n) for n in prog.networks)
    by_name = {n.name: n for n in nets}
    queries = []
    for q in prog.queries:
        net = by_name.get(getattr(q, "net", None))
        if q.kind == "verify" and net is not None:
            q = replace(q, where=tuple(_expand(a, net) for a in q.where),
                        prop=_expand_formula(q.prop, net))
        queries.append(q)
    return replace(prog, networks=nets, queries=tuple(queries))


def check_sizes(prog: Program) -> None:
    """Refuse a network with more than `limits.MAX_WEIGHTS` weights (known or unknown), before
    anything of that size is made."""
    for net in prog.networks:
        sizes = {net.input.name: net.input.size}
        total = 0
        for lay in net.layers:
            sizes.setdefault(lay.name, lay.size)
            if lay.kind == "dense":  # the only kind with weights
                total += lay.size * (max(sizes.get(lay.src, 0), 0) + 1)
            if total > limits.MAX_WEIGHTS:
                raise DslError(f"network '{net.name}' has more than {limits.MAX_WEIGHTS:,} "
                               f"weights (at layer '{lay.name}')", lay.span,
                               "nnir reads networks within the bounds of nnir/limits.py")


def _count_sum_terms(prog: Program) -> None:
    """Refuse, before expanding any, `sum(v)`s that would expand to more than
    `limits.MAX_SUM_TERMS` terms in all (one per coordinate of v, per use)."""
    by_name = {n.name: n for n in prog.networks}
    uses = [(a, n) for n in prog.networks for a in n.input.constraints]
    for q in prog.queries:
        net = by_name.get(getattr(q, "net", None))
        if q.kind == "verify" and net is not None:
            uses += [(a, net) for a in (*q.where, *atoms(q.prop))]
    left = limits.MAX_SUM_TERMS
    for a, net in uses:
        for ref, _ in a.terms:
            if ref.index < 0:
                left -= max(_size(net, ref.node) or 0, 0)
                if left < 0:
                    raise DslError(f"the sums `sum(v)` expand to more than "
                                   f"{limits.MAX_SUM_TERMS:,} terms", a.span,
                                   "nnir reads text within the bounds of nnir/limits.py")


def _resolve_net(net: Network) -> Network:
    sizes = {net.input.name: net.input.size}
    layers = []
    for lay in net.layers:
        lay = RULES[lay.kind](lay, sizes)
        layers.append(lay)
        sizes.setdefault(lay.name, lay.size)
    inp = replace(net.input, constraints=tuple(_expand(a, net) for a in net.input.constraints))
    return replace(net, input=inp, layers=tuple(layers))


def _dense(lay: Dense, sizes: dict) -> Dense:
    """Give `unknown` weights and biases their shapes (from the layer and source sizes)."""
    src = sizes.get(lay.src)
    w, b = lay.weight, lay.bias
    if isinstance(w, Unknown) and src is not None:
        w = replace(w, shape=(lay.size, src))
    if isinstance(b, Unknown):
        b = replace(b, shape=(lay.size,))
    return replace(lay, weight=w, bias=b)


def _graph_size(combine):
    """A rule filling in the size of a node written without one from its sources' sizes
    (`combine` of them); a mismatch or an undefined source is left for the verifier."""
    def rule(lay, sizes: dict):
        if lay.size >= 0 or any(s not in sizes for s in lay.srcs):
            return lay
        return replace(lay, size=combine([sizes[s] for s in lay.srcs]))

    return rule


# Per node kind: the node with what its declaration left implicit filled in (`nnir.ir.kinds`).
RULES = {"dense": _dense, "slice": _graph_size(lambda got: got[0]),
         "concat": _graph_size(sum), "add": _graph_size(lambda got: got[0]),
         "conv": lambda lay, sizes: lay,  # its shapes are written out
         "gather": lambda lay, sizes: lay}


def _size(net: Network, node: str) -> int | None:
    try:
        return net.size_of(node)
    except KeyError:
        return None


def _expand(a: Atom, net: Network) -> Atom:
    """Replace each `sum(v)` pseudo-reference (index -1) by one term per coordinate of v."""
    if all(r.index >= 0 for r, _ in a.terms):
        return a
    terms: dict[Ref, object] = {}
    for ref, c in a.terms:
        n = _size(net, ref.node) if ref.index < 0 else None
        expanded = [Ref(ref.node, i) for i in range(n)] if n is not None else [ref]
        for r in expanded:
            terms[r] = terms.get(r, 0) + c
    return replace(a, terms=tuple((r, c) for r, c in terms.items() if c != 0))


def _expand_formula(f, net: Network):
    if isinstance(f, Atom):
        return _expand(f, net)
    if isinstance(f, (And, Or)):
        return replace(f, args=tuple(_expand_formula(g, net) for g in f.args))
    if isinstance(f, Not):
        return replace(f, arg=_expand_formula(f.arg, net))
    return f
