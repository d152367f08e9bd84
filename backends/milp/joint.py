"""Several networks in one MILP on shared input columns: the joint model behind `equiv` (max
|f_A - f_B|) and the `compress` check. Each network is lowered node by node as in `lower.py`."""
from __future__ import annotations

from dataclasses import dataclass, replace

from nnir.backends.milp.lower import _Lowering, legal_name
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
    low = _Lowering(VerifyProblem(first, (), BoolConst(True), name), 0.0, "none")
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


GRACE = 0.5  # seconds a killed HiGHS child may run past its limit to report


def run_killable(model: MilpModel, options: dict, timeout: float | None, read):
    """Solve `model` with HiGHS (`options`, `time_limit` = `timeout`) and return `read(h)`,
    in a killable child (`nnir.proc.call`) when there is a limit; None when it was killed.

    Why: HiGHS's presolve does not poll its time limit. On the joint model of two MNIST 2x50
    networks (820 rows, 86k nonzeros, 200 binaries) presolve alone ran 4.7 s under a 1.5 s
    `time_limit`. The child resets HiGHS's thread pool first: a pool inherited by fork from a
    parent that ran HiGHS has no threads behind it, and the solve would hang.

    Args:
        read: `read(h)` of the solved `highspy.Highs`, a picklable value (status, objective,
            dual bound, the columns needed).
    """
    from nnir import proc
    from nnir.backends.milp.highs_backend import build_highs

    opts = dict(options)
    if timeout is not None:
        opts["time_limit"] = float(max(timeout, 0.01))

    def solve(child: bool):
        if child:
            import highspy

            highspy.Highs.resetGlobalScheduler(False)
        h = build_highs(model, opts)
        h.run()
        return read(h)

    if timeout is None or not proc.available():
        return solve(False)
    reply = proc.call(solve, True, timeout=max(timeout, 0.01) + GRACE)
    if reply is proc.TIMEOUT or isinstance(reply, proc.Gone):
        return None
    if isinstance(reply, proc.Failure):
        from nnir.errors import BackendError

        raise BackendError(f"HiGHS failed: {reply.message.splitlines()[0]}")
    return reply
