"""What a backend is handed: a query reduced to a network with bound facts and a formula."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

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


@dataclass(frozen=True)
class TrainProblem:
    """Find values for the unknown weights of `net` such that, for every point X[i], the logit of
    class y[i] exceeds every other logit by at least `margin` (strictly, when `margin` is 0).

    `net` has `Unknown` tensors (each with a box `lo`/`hi`, or None when unbounded; a query's
    `weights in [lo, hi]` has already been applied to unboxed tensors) and possibly known ones.
    The output layer has one logit per class; labels are 0 .. n_classes - 1. `X` is float64
    (n, d); `X_exact` the same points as Fractions (object array), which replay uses.
    """

    net: Network
    X: np.ndarray
    X_exact: np.ndarray
    y: np.ndarray
    margin: Fraction
    name: str = "train"

    @property
    def n_classes(self) -> int:
        return self.net.output_size
