"""What a backend is handed: a query reduced to a network with bound facts and a formula."""
from __future__ import annotations

from dataclasses import dataclass

from nnir.ir.formula import nnf
from nnir.ir.nodes import Atom, Formula, Network, Verify


@dataclass(frozen=True)
class VerifyProblem:
    """Find an input x in the box of `net.input`, satisfying `net.input.constraints` and `where`,
    such that the network's values satisfy `prop`. `prop` is in negation normal form (no `Not`).
    `net.facts` holds sound pre-activation bounds (from the bound passes) when present.
    """

    net: Network
    where: tuple[Atom, ...]
    prop: Formula
    name: str = "query"

    @classmethod
    def from_query(cls, q: Verify, net: Network) -> VerifyProblem:
        return cls(net, tuple(q.where), nnf(q.prop), q.name)

    @property
    def input_constraints(self) -> tuple[Atom, ...]:
        return tuple(self.net.input.constraints) + tuple(self.where)
