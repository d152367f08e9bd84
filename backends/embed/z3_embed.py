"""Add a network to the user's z3 `Solver` or `Optimize` as exact QF_LRA constraints over z3
`Real`s (`smt_common.embed_terms` with z3's term constructors)."""
from __future__ import annotations

from fractions import Fraction

from nnir.backends.embed.data import Embedding
from nnir.backends.embed.smt_common import embed_terms
from nnir.ir.nodes import Network


class Z3Ops:
    """z3's term constructors in one context (the user's solver's)."""

    def __init__(self, ctx=None):
        import z3

        self.z3, self.ctx = z3, ctx

    def real(self, name: str):
        return self.z3.Real(name, self.ctx)

    def num(self, q: Fraction):
        # z3 parses "n/d" exactly; going through a float would round
        return self.z3.RealVal(str(Fraction(q)), self.ctx)

    def linear(self, terms, const: Fraction):
        z3 = self.z3
        parts = [t if c == 1 else self.num(c) * t for t, c in terms if c != 0]
        if const != 0 or not parts:
            parts.append(self.num(const))
        return parts[0] if len(parts) == 1 else z3.Sum(*parts)

    def eq(self, a, b):
        return a == b

    def le(self, a, b):
        return a <= b

    def lt(self, a, b):
        return a < b

    def ite(self, c, a, b):
        return self.z3.If(c, a, b)

    def and_(self, *args):
        return self.z3.And(*args)

    def or_(self, *args):
        return self.z3.Or(*args)


def add_to_z3(target, net: Network, inputs=None, relu: str = "hull",
              prefix: str | None = None) -> Embedding:
    """Embed `net` in a z3 `Solver`/`Optimize` (or, with `target` None, only build the
    constraints).

    Args:
        target: the user's `z3.Solver` or `z3.Optimize`, or None.
        net: the network (bound facts attached, or None for no box and no hints).
        inputs: the user's z3 real terms for the inputs (None: new `Real`s `prefix.x[i]`).
        relu: "ite", "or" or "hull" (see `smt_common.relu_constraint`).
        prefix: the variables' name prefix (default: the network's name); z3 identifies
            constants by name, so two copies of a network need two prefixes.
    Returns:
        The `Embedding` (z3 terms); its constraints were added to `target`.
    """
    ctx = target.ctx if target is not None else None
    emb = embed_terms("z3", Z3Ops(ctx), net, inputs, relu, prefix)
    if target is not None:
        target.add(*emb.constraints)
    return emb
