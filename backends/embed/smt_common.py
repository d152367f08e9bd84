"""The SMT embeddings' shared driver: one real variable per neuron with its exact definition,
built through a small table of term constructors (`TermOps`) that z3 and PySMT each supply.

Every weight enters as the exact rational nnir holds (a float weight at its binary value), so
the constraints are the network's function exactly. With bound facts (any `bounds` but "none")
the box is asserted on the inputs, stable ReLUs become equalities and the facts are added as
redundant hints: all of it holds only over the box, which is why the box is asserted. Without
facts nothing is assumed about the inputs and the embedding holds for every real input.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Protocol

from nnir.backends.embed.data import Embedding, Neurons, affine_form, check_choice, facts_bounds
from nnir.ir.nodes import Network

SMT_RELU = ("ite", "or", "hull")
_RELU_EXACT = {"ite": True, "or": True, "hull": True}  # hull adds the disjunction: exact


class TermOps(Protocol):
    """Term constructors of one solver API (numbers are exact `Fraction`s)."""

    def real(self, name: str) -> Any: ...

    def linear(self, terms: list[tuple[Any, Fraction]], const: Fraction) -> Any: ...

    def num(self, q: Fraction) -> Any: ...

    def eq(self, a, b) -> Any: ...

    def le(self, a, b) -> Any: ...

    def lt(self, a, b) -> Any: ...

    def ite(self, c, a, b) -> Any: ...

    def and_(self, *args) -> Any: ...

    def or_(self, *args) -> Any: ...


def symbol(prefix: str, node: str, i: int) -> str:
    """The name of coordinate i of a node: `prefix.node[i]` (as in nnir's SMT-LIB scripts)."""
    return f"{prefix}.{node}[{i}]"


def relu_constraint(ops: TermOps, pre, post, flag: int, relu: str, lu) -> Any:
    """`post = max(pre, 0)`; `flag` +1/-1 for a stably active/inactive ReLU (from the facts),
    `lu` sound bounds (l, u) of `pre` or None. The same encodings as `smtlib/lower.py`."""
    zero = ops.num(Fraction(0))
    if flag > 0:
        return ops.eq(post, pre)
    if flag < 0:
        return ops.eq(post, zero)
    if relu == "ite":
        return ops.eq(post, ops.ite(ops.le(zero, pre), pre, zero))
    if relu == "or":
        return ops.or_(ops.and_(ops.le(zero, pre), ops.eq(post, pre)),
                       ops.and_(ops.lt(pre, zero), ops.eq(post, zero)))
    # hull: the triangle relaxation (Ehlers, ATVA 2017) plus the two-case disjunction
    parts = [ops.le(zero, post), ops.le(pre, post)]
    if lu is not None and math.isfinite(lu[0]) and math.isfinite(lu[1]) and lu[0] < 0 < lu[1]:
        lo, hi = Fraction(lu[0]), Fraction(lu[1])
        slope = hi / (hi - lo)
        parts.append(ops.le(post, ops.linear([(pre, slope)], -lo * slope)))
    parts.append(ops.or_(ops.eq(post, pre), ops.eq(post, zero)))
    return ops.and_(*parts)


def embed_terms(target: str, ops: TermOps, net: Network, inputs=None, relu: str = "ite",
                prefix: str | None = None) -> Embedding:
    """Build the constraints of `net` (bound facts attached or None) over `inputs`.

    Args:
        target: "z3" or "pysmt" (recorded in the result).
        ops: the solver's term constructors.
        net: the network; with `net.facts` the box is asserted and the facts are used.
        inputs: the user's input terms (None: new variables `prefix.x[i]`).
        relu: one of `SMT_RELU`.
        prefix: the variables' name prefix (default: the network's name).
    Returns:
        The `Embedding`; `constraints` holds every constraint, in order (nothing is asserted).
    Raises:
        ValueError: an unknown encoding or `inputs` of the wrong length.
    """
    check_choice("SMT relu encoding", relu, SMT_RELU)
    prefix = net.name if prefix is None else prefix
    inp, facts = net.input, net.facts
    if inputs is None:
        xs = [ops.real(symbol(prefix, inp.name, i)) for i in range(inp.size)]
    else:
        xs = list(inputs)
        if len(xs) != inp.size:
            raise ValueError(f"inputs has {len(xs)} terms; the network has {inp.size} inputs")
    cons, notes = [], []
    if facts is not None:
        for x, a, b in zip(xs, inp.lo.exact, inp.hi.exact):
            cons += [ops.le(ops.num(a), x), ops.le(x, ops.num(b))]
        notes.append(f"inputs restricted to the exact box of '{net.name}': the bound facts "
                     "(hints, stable ReLUs, hull) hold only there")
    else:
        notes.append("no bound facts: the constraints hold for every real input, no box added")
    vals = {inp.name: xs}
    neurons = {}
    for lay in net.layers:
        how, body = affine_form(lay, vals)
        if how == "copy":
            vals[lay.name] = list(body)
            neurons[lay.name] = Neurons(list(body), list(body))
            continue
        relu_lay = lay.act == "relu"
        pre = [ops.real(symbol(prefix, lay.name + ".pre" if relu_lay else lay.name, j))
               for j in range(lay.size)]
        for p, (terms, b) in zip(pre, body):
            cons.append(ops.eq(p, ops.linear(terms, b)))
        lo = hi = stable = None
        if facts is not None and lay.name in facts.lo:
            lo, hi, stable = facts.lo[lay.name], facts.hi[lay.name], facts.stable.get(lay.name)
            for p, a, c in zip(pre, lo, hi):  # a float bound enters at its exact value
                if math.isfinite(a):
                    cons.append(ops.le(ops.num(Fraction(float(a))), p))
                if math.isfinite(c):
                    cons.append(ops.le(p, ops.num(Fraction(float(c)))))
        if not relu_lay:
            vals[lay.name] = pre
            neurons[lay.name] = Neurons(pre, pre)
            continue
        post = [ops.real(symbol(prefix, lay.name, j)) for j in range(lay.size)]
        for j, (p, q) in enumerate(zip(pre, post)):
            flag = int(stable[j]) if stable is not None else 0
            lu = (float(lo[j]), float(hi[j])) if lo is not None else None
            cons.append(relu_constraint(ops, p, q, flag, relu, lu))
        vals[lay.name] = post
        neurons[lay.name] = Neurons(pre, post)
    return Embedding(target, net, xs, list(vals[net.output]), neurons, {}, facts_bounds(net),
                     _RELU_EXACT[relu], notes, constraints=cons)
