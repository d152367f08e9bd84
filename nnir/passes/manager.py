"""The pass manager: passes are small pure functions from network to network, run in order.

A pass has a `name`, a cheap `accepts(net)`, and `run(net, ctx)` returning a new network (the
input is never mutated). With `ctx.check` on (as in tests) the IR verifier runs after every pass;
`ctx.dump_after` names a pass whose result is kept for `nnirc dump-ir --after`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from nnir.ir.nodes import Network
from nnir.ir.verifier import verify_network
from nnir.passes.interval import IntervalBounds
from nnir.passes.lp import LpBounds
from nnir.passes.symbolic import SymbolicBounds


class Pass(Protocol):
    name: str

    def accepts(self, net: Network) -> bool: ...

    def run(self, net: Network, ctx: PassContext) -> Network: ...


@dataclass
class PassContext:
    """Options shared by a pipeline run; passed explicitly, never global."""

    check: bool = False
    dump_after: str | None = None
    dumped: Network | None = None
    log: list[str] = field(default_factory=list)


class PassManager:
    def __init__(self, passes: list[Pass]):
        self.passes = list(passes)

    def run(self, net: Network, ctx: PassContext | None = None) -> Network:
        ctx = ctx or PassContext()
        for p in self.passes:
            if not p.accepts(net):
                ctx.log.append(f"{p.name}: skipped")
                continue
            net = p.run(net, ctx)
            ctx.log.append(f"{p.name}: done")
            if ctx.check:
                verify_network(net)
            if ctx.dump_after == p.name:
                ctx.dumped = net
        return net


def registered_passes() -> dict[str, Pass]:
    """Every pass by name (the names `--after` accepts)."""
    return {p.name: p for p in (IntervalBounds(), SymbolicBounds(), LpBounds())}


def default_pipeline() -> PassManager:
    """The passes run before lowering a query: IBP, then symbolic bounds (each tightens)."""
    passes = registered_passes()
    return PassManager([passes["ibp"], passes["symbolic"]])
