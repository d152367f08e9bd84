"""Several networks in one MILP on shared input columns: the joint model behind `equiv` (max
|f_A - f_B|) and the `compress` check. Each network is lowered node by node as in `lower.py`."""
from __future__ import annotations

from dataclasses import dataclass, replace

from nnir.backends.milp.lower import Lowering, legal_name
from nnir.backends.milp.model import MilpModel
from nnir.errors import UnsupportedQuery
from nnir.ir.nodes import BoolConst, Network
from nnir.passes.interval import IntervalBounds
from nnir.queries.problem import VerifyProblem


@dataclass
class Lowered:
    """Several networks in one MILP: `vars[k]` / `bounds[k]` map each node of network k to its
    columns (-1: the constant 0) and value bounds; the input columns are shared."""

    model: MilpModel
    vars: list[dict]
    bounds: list[dict]


def lower_networks(nets: list[Network], name: str = "joint") -> Lowered:
    """Lower networks reading the same input onto shared input columns, with no property.

    The domain is the first network's: its input box and linear input constraints. Every
    network must carry bound facts sound over that domain (run the passes with that input);
    a network missing them gets IBP over its own box, which is sound only when the boxes agree.

    Args:
        nets: networks with known weights and inputs of the same size.
        name: the model's name.
    Returns:
        the model (no objective) and each network's columns.
    Raises:
        UnsupportedQuery: unknown weights, input sizes that differ, unbounded boxes.
    """
    first = nets[0]
    if any(n.input.size != first.input.size for n in nets):
        raise UnsupportedQuery("networks lowered together must read inputs of the same size")
    low = Lowering(VerifyProblem(first, (), BoolConst(True), name), 0.0, "none")
    low.m.name = legal_name(name)
    low.inputs()
    for k, atom in enumerate(first.input.constraints):
        low.formula(atom, None, f"where_{k}")
    shared, box = low.vars[first.input.name], low.bounds[first.input.name]
    out_vars, out_bounds, used = [], [], set()
    for k, net in enumerate(nets):
        if net.has_unknowns:
            raise UnsupportedQuery(f"network '{net.name}' has unknown weights; train it first",
                                   net.span)
        if net.facts is None or any(lay.name not in net.facts.lo for lay in net.layers):
            net = IntervalBounds().run(net, None)
        tag = net.name if net.name not in used else f"{net.name}_{k}"  # distinct column names
        used.add(tag)
        low.net = replace(net, name=tag)
        low.vars, low.bounds = {net.input.name: shared}, {net.input.name: box}
        for lay in net.layers:
            low.node(lay, net.facts)
        out_vars.append(low.vars)
        out_bounds.append(low.bounds)
    return Lowered(low.m, out_vars, out_bounds)
