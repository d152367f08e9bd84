"""A network as a PySMT formula over `REAL` symbols of the user's (or a fresh) PySMT
`Environment` (`smt_common.embed_terms` with PySMT's term constructors)."""
from __future__ import annotations

from fractions import Fraction

from nnir.backends.embed.data import Embedding
from nnir.backends.embed.smt_common import embed_terms
from nnir.ir.nodes import Network


class PysmtOps:
    """PySMT's term constructors in one environment's formula manager."""

    def __init__(self, env):
        from pysmt.typing import REAL

        self.m, self.REAL = env.formula_manager, REAL

    def real(self, name: str):
        return self.m.Symbol(name, self.REAL)

    def num(self, q: Fraction):
        return self.m.Real(Fraction(q))

    def linear(self, terms, const: Fraction):
        m = self.m
        parts = [t if c == 1 else m.Times(self.num(c), t) for t, c in terms if c != 0]
        if const != 0 or not parts:
            parts.append(self.num(const))
        return parts[0] if len(parts) == 1 else m.Plus(parts)

    def eq(self, a, b):
        return self.m.Equals(a, b)

    def le(self, a, b):
        return self.m.LE(a, b)

    def lt(self, a, b):
        return self.m.LT(a, b)

    def ite(self, c, a, b):
        return self.m.Ite(c, a, b)

    def and_(self, *args):
        return self.m.And(*args)

    def or_(self, *args):
        return self.m.Or(*args)


def pysmt_embedding(net: Network, inputs=None, env=None, relu: str = "hull",
                    prefix: str | None = None) -> Embedding:
    """`net` as PySMT constraints; `Embedding.formula` is their conjunction.

    Args:
        net: the network (bound facts attached, or None for no box and no hints).
        inputs: the user's PySMT real terms for the inputs (None: new symbols `prefix.x[i]`).
        env: the PySMT `Environment` the user's terms live in (None: PySMT's global one).
        relu: "ite", "or" or "hull".
        prefix: the symbols' name prefix (default: the network's name).
    Returns:
        The `Embedding` (PySMT `FNode`s), `formula` set.
    """
    if env is None:
        from pysmt.environment import get_env

        env = get_env()
    emb = embed_terms("pysmt", PysmtOps(env), net, inputs, relu, prefix)
    emb.formula = env.formula_manager.And(emb.constraints)
    return emb
