"""What the stable analysis knows so far about a network's ReLUs (`StableState`), shared by the
query (`nnir/queries/stable.py`) and its solver steps (`nnir/queries/stable_solve.py`)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from nnir import progress
from nnir.ir.evaluate import evaluate, holds
from nnir.ir.intexact import IntegerReplay
from nnir.ir.nodes import Network

CLOSE = Fraction(1, 10**6)  # an inexact bound this close to 0 needs an exact confirmation


class StableState:
    """What is known so far about the ReLUs of one network.

    `seen[layer]` is a (size, 2) bool array: column 0 the active state (pre > 0) was attained
    at an exactly replayed input, column 1 the inactive state (pre < 0). `stable[layer]` is
    +1 / -1 / 0 as in `Facts.stable`; `how[layer]` maps an index to what decided it.
    """

    def __init__(self, net: Network):
        self.net = net
        self.relus = [lay for lay in net.layers if lay.act == "relu"]
        self.seen = {lay.name: np.zeros((lay.size, 2), dtype=bool) for lay in self.relus}
        self.stable = {lay.name: np.zeros(lay.size, dtype=np.int8) for lay in self.relus}
        self.how: dict[str, dict[int, str]] = {lay.name: {} for lay in self.relus}
        self.undecided: dict[str, dict[int, str]] = {lay.name: {} for lay in self.relus}
        self.fast = IntegerReplay(net) if IntegerReplay.applies(net) else None

    def decided(self, layer: str, i: int) -> bool:
        return bool(self.stable[layer][i] != 0 or self.seen[layer][i].all())

    def mark_point(self, x, how: str) -> int:
        """Replay input `x` (exact, in the domain) and mark every state it shows; returns how
        many neurons it made unstable."""
        if self.fast is not None:  # the same exact signs, in integer arithmetic
            signs = self.fast.pre_signs(x)
        else:
            vals = evaluate(self.net, x, exact=True)
            signs = {lay.name: np.array([(v > 0) - (v < 0) for v in vals[lay.name + ".pre"]])
                     for lay in self.relus}
        new = 0
        for lay in self.relus:
            sg, seen = signs[lay.name], self.seen[lay.name]
            free = self.stable[lay.name] == 0  # proven stable: a replay can never contradict it
            was = seen.all(axis=1)
            seen[:, 0] |= free & (sg > 0)
            seen[:, 1] |= free & (sg < 0)
            for i in np.flatnonzero(~was & seen.all(axis=1)):
                self.how[lay.name][int(i)] = how
                new += 1
        return new

    def mark_float_point(self, x, how: str) -> bool:
        """`mark_point` for a float64 input (taken at its exact value) when it lies in the
        domain, checked exactly; returns whether it was replayed."""
        xe = [Fraction(float(v)) for v in x]
        if not in_domain(self.net, xe):
            return False
        self.mark_point(xe, how)
        return True

    def show_progress(self, step: str) -> None:
        """The status line of a long `stable` (`nnir.progress`; nothing unless it is on)."""
        if not progress.enabled():
            return
        total = sum(lay.size for lay in self.relus)
        done = sum(self.decided(lay.name, i) for lay in self.relus for i in range(lay.size))
        progress.show(f"stable: {step}: {done} of {total} ReLUs decided")

    def open_states(self) -> list[tuple[str, int, int]]:
        """(layer, index, col) of every state not yet seen of a neuron not proven stable."""
        return [(lay.name, i, c) for lay in self.relus for i in range(lay.size)
                if self.stable[lay.name][i] == 0 for c in (0, 1) if not self.seen[lay.name][i, c]]

    def credit_facts(self, how: str) -> None:
        """Mark every neuron the facts of `self.net` make stable and nothing yet has, credited
        to `how`. A state seen by exact replay never contradicts a sound bound; the check on the
        opposite state (stably active: the inactive state, column 1) only keeps a bug from
        turning into a wrong "stable"."""
        for lay in self.relus:
            seen = self.seen[lay.name]
            for i, s in enumerate(self.net.facts.stable[lay.name]):
                if s != 0 and self.stable[lay.name][i] == 0 and not seen[i, int(s > 0)]:
                    self.set_stable(lay.name, i, int(s), how)

    def set_stable(self, layer: str, i: int, sign: int, how: str) -> None:
        self.stable[layer][i] = sign
        self.how[layer][i] = how
        self.undecided[layer].pop(i, None)


def in_domain(net: Network, x) -> bool:
    """Is the exact input `x` in the box and does it meet the input constraints, exactly?"""
    inp = net.input
    if any(not a <= v <= b for v, a, b in zip(x, inp.lo.exact, inp.hi.exact)):
        return False
    return all(holds(a, {inp.name: np.array(x, dtype=object)}) for a in inp.constraints)
