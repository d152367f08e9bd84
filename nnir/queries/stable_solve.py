"""The solver steps of the stable analysis (`nnir/queries/stable.py`): the ISA MILP loop and the
per-neuron exact bounds that decide what it leaves (close calls), or everything with method
`per-neuron`. Both only ever mark a state observed through an exactly replayed input.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from nnir.backends import registry
from nnir.backends.milp.isa import THETA, IsaMilp
from nnir.backends.milp.isa_each import prove_each
from nnir.backends.options import HighsOptions
from nnir.deadline import Deadline
from nnir.ir.const import to_fraction
from nnir.ir.nodes import Network
from nnir.options import names, parse
from nnir.passes.interval import merge
from nnir.passes.manager import default_pipeline
from nnir.queries import route as routing
from nnir.queries.bound import BoundProblem, replay_side
from nnir.queries.options import StableOptions
from nnir.queries.stable_state import CLOSE, StableState

# Ends every note saying some verdicts rest on HiGHS (dropped once `certify` made them exact).
ON_TOLERANCES = "(float tolerances, not an exact proof)"
ISA_OWN = ("theta", "eps")  # the stable options the ISA MILP reads (besides HiGHS's own)


def isa(st: StableState, deadline: Deadline, options: dict, counts: dict) -> list[str]:
    """Decide the open states with the single ISA MILP (`backends/milp/isa.py`) for at most
    `joint_s` seconds (option; default 10, None: no limit), then prove what it leaves one
    state at a time, layer by layer (`backends/milp/isa_each.py`, which says why); close calls
    stay undecided for the per-neuron step, which confirms them exactly."""
    states = st.open_states()
    if not states:
        return []

    def replay(xs) -> set:
        before = {k: v.copy() for k, v in st.seen.items()}
        for x in xs:
            st.mark_float_point(x, "isa")
        return {(k, int(i), int(c)) for k in st.seen
                for i, c in zip(*np.nonzero(st.seen[k] & ~before[k]))}

    t = time.perf_counter()

    o = parse(StableOptions, options)
    isa_opts = {k: v for k, v in options.items()
                if (k in ISA_OWN or k in names(HighsOptions)) and v is not None}
    if counts.get("search_points") is not None:
        isa_opts.setdefault("eps", 0.0)  # the gradient search ran: go straight to proving
    joint = o.joint_s
    out = IsaMilp(st.net, states, isa_opts).solve(replay, deadline.cap(joint).at)
    counts["isa"] = out.stats
    _credit(st, out.proven)
    notes = [f"isa: {out.stats['solves']} MILP solves, {out.stats['interrupts']} interrupts, "
             f"{out.stats['inputs'] + out.stats['lp_inputs']} solver inputs replayed exactly; "
             f"{len(out.proven)} states proven unreachable, {len(out.close)} close calls"]
    proven, status = len(out.proven), out.status
    left = [s for s in st.open_states() if s not in set(out.close)]
    if status == "timeout" and left and not deadline.expired():
        each = prove_each(st.net, left, replay, deadline.at, isa_opts, _tightener(st))
        _credit(st, each.proven)
        counts["isa_each"] = each.stats
        proven, status = proven + len(each.proven), each.status
        notes.append(f"isa per state (the joint MILP stopped after {joint} s): "
                     f"{each.stats['proofs']} proofs, {len(each.proven)} states proven "
                     f"unreachable, {each.stats['found']} shown, {len(each.close)} close calls")
    counts["isa_s"] = time.perf_counter() - t
    if proven:
        notes.append(f"isa verdicts rest on HiGHS proving the ISA optimum 0 (or a state's model "
                     f"infeasible) with margin {THETA if o.theta is None else o.theta:g} "
                     + ON_TOLERANCES)
    if status != "optimal":
        notes.append(f"isa stopped early: {status}")
    return notes


def _credit(st: StableState, proven: list) -> None:
    """Mark the neurons whose one state was proven unreachable; both states unreachable means an
    empty domain, left to the per-neuron step to report."""
    both = set(proven)
    for layer, i, c in proven:
        if (layer, i, 1 - c) not in both and not st.seen[layer][i, c] \
                and st.stable[layer][i] == 0:
            st.set_stable(layer, i, -1 if c == 0 else 1, "isa")


def _tightener(st: StableState):
    """After a layer's per-state proofs: the proven neurons' bounds clipped at 0 in the facts,
    then IBP and symbolic bounds re-run on them (later layers get tighter big-M constants);
    neurons they newly make stable are credited to those passes."""
    def tighten(net: Network, proven: list) -> Network:
        _credit(st, proven)
        lo = {k: v.copy() for k, v in net.facts.lo.items()}
        hi = {k: v.copy() for k, v in net.facts.hi.items()}
        for layer, i, _ in proven:
            sign = st.stable[layer][i]  # 0 when not credited (an empty domain)
            if sign < 0:
                hi[layer][i] = min(hi[layer][i], 0.0)
            elif sign > 0:
                lo[layer][i] = max(lo[layer][i], 0.0)
        st.net = default_pipeline().run(merge(net, "isa", lo, hi))
        st.credit_facts("symbolic")
        return st.net

    return tighten


def per_neuron(st: StableState, backend: str, deadline: Deadline, options: dict):
    """Decide every undecided neuron by exact max/min of its pre-activation (per neuron), on
    the backend `route.plan` picks for stable queries; its close calls go to the route's
    exact backend."""
    notes = []
    o = parse(StableOptions, options)
    plan = routing.plan("stable", backend, confirm=o.confirm)
    name = plan.first
    solver = registry.get_backend(name, **options)
    confirm = None
    if plan.confirm is not None:
        confirm = registry.get_backend(plan.confirm, **options)
    tag = "exact-bound" if solver.exact else "milp"
    stats = {"solves": 0, "confirmed": 0}
    full = o.full
    for k, lay in enumerate(st.net.layers):
        if lay.act != "relu":
            continue
        for i in range(lay.size):
            if st.decided(lay.name, i):
                continue
            if deadline.expired():
                st.undecided[lay.name][i] = "time limit"
                continue
            st.show_progress(f"per-neuron {name}, {lay.name}[{i}]")
            problem = _problem(st.net, k, i)
            for sense, col, sign in (("max", 0, -1), ("min", 1, 1)):
                # max <= 0 proves inactive (sign -1); min >= 0 proves active (sign +1)
                if st.seen[lay.name][i, col] or st.stable[lay.name][i] != 0:
                    continue
                verdict = _side(st, problem, solver, sense, deadline, stats, full)
                # a close call, or an inexact answer replay could not use (e.g. an arg-max on
                # the boundary of a strict input constraint): the exact backend decides
                if verdict not in ("stable", "observed") and confirm is not None \
                        and "timeout" not in verdict and "empty" not in verdict:
                    stats["confirmed"] += 1
                    verdict = _side(st, problem, confirm, sense, deadline, stats, full)
                    if verdict == "stable":
                        verdict = "stable-exact"
                if verdict in ("stable", "stable-exact"):
                    how = "exact-bound" if verdict == "stable-exact" or solver.exact else tag
                    st.set_stable(lay.name, i, sign, how)
                elif verdict == "observed":
                    if st.seen[lay.name][i].all():
                        st.how[lay.name][i] = tag
                else:
                    st.undecided[lay.name][i] = verdict
            if st.decided(lay.name, i):
                st.undecided[lay.name].pop(i, None)
    if not stats["solves"]:
        return name, notes
    notes.append(f"per-neuron{' (full)' if full else ''}: {stats['solves']} bound solves "
                 f"on '{name}'"
                 + (f", {stats['confirmed']} close calls re-decided by '{confirm.name}'"
                    if stats["confirmed"] else ""))
    if not solver.exact:
        notes.append(f"'{name}' verdicts rest on its dual bound widened by a safety margin and "
                     f"at least {float(CLOSE):g} from 0 " + ON_TOLERANCES)
    return name, notes


# Verdicts that rest on HiGHS's float tolerances (the ISA MILP, a per-neuron MILP bound).
INEXACT = frozenset({"isa", "milp"})
# Seconds for one exact re-decision: a neuron the engine cannot settle quickly keeps HiGHS's
# verdict rather than take the time of the others (on MNIST 2x100 a hard one ran past 30 s).
CERTIFY_S = 20.0


def inexact_left(st: StableState) -> int:
    """Stable verdicts that still rest on HiGHS's tolerances."""
    return sum(h in INEXACT for lay in st.relus for i, h in st.how[lay.name].items()
               if st.stable[lay.name][i] != 0)


def certify(st: StableState, backend: str, deadline: Deadline, options: dict) -> list[str]:
    """Re-decide exactly, on the route's sound engine (`bab`), every stable verdict that rests
    on HiGHS's tolerances: one decision per neuron, "is pre > 0 (stably inactive) or pre < 0
    (stably active) possible?". An unsat makes the verdict exact; a witness (replayed exactly)
    shows HiGHS was wrong, and the neuron is unstable; what is left undecided at the deadline
    keeps its HiGHS verdict, which the notes say rests on tolerances."""
    o = parse(StableOptions, options)
    plan = routing.plan("stable", backend, confirm=o.confirm)
    todo = [(k, lay.name, i) for k, lay in enumerate(st.net.layers) if lay.name in st.how
            for i in range(lay.size)
            if st.stable[lay.name][i] != 0 and st.how[lay.name][i] in INEXACT]
    if not todo or plan.after is None:
        return []
    engine = registry.get_backend(plan.after, **options)
    done = wrong = 0
    for k, layer, i in todo:
        if deadline.expired():
            break
        st.show_progress(f"{plan.after} re-decides {layer}[{i}] ({done} of {len(todo)} done)")
        sign = int(st.stable[layer][i])
        # stably inactive (-1): is pre > 0 possible (max)? stably active: is -pre > 0 (min)?
        problem = _problem(st.net, k, i).exceeds("max" if sign < 0 else "min", 0)
        ans = engine.solve_verify(problem, timeout=deadline.cap(CERTIFY_S).left())
        if ans.info.get("unsupported"):
            return [f"{plan.after} could not re-decide HiGHS's verdicts: {ans.message}"]
        if ans.status == "unsat":
            st.how[layer][i] = plan.after
            done += 1
        elif ans.status == "sat":  # HiGHS was wrong: the replayed input shows the state
            st.stable[layer][i] = 0
            st.how[layer].pop(i, None)
            st.mark_point([to_fraction(v) for v in ans.inputs], plan.after)
            wrong += 1
    left = len(todo) - done - wrong
    notes = [f"{plan.after}: {done} of {len(todo)} stable verdicts of HiGHS re-decided exactly"
             + (f", {wrong} shown wrong by an exactly replayed input" if wrong else "")]
    if left:
        notes.append(f"{left} stable verdicts still rest on HiGHS's tolerances ({plan.after} "
                     "did not decide them in time)")
    return notes


def _problem(net: Network, k: int, i: int):
    lay = net.layers[k]
    return BoundProblem(replace(net, layers=net.layers[:k + 1], output=lay.name,
                                facts=net.facts), lay.name, i, f"stable_{lay.name}_{i}")


def _side(st: StableState, problem, solver, sense: str, deadline, stats: dict,
          full: bool = False) -> str:
    """One solve: "stable" (s * pre <= 0 proven), "observed" (s * pre > 0 replayed: the state
    is marked, with every other state the arg-optimum shows unless `full`, the baseline that
    decides each neuron on its own), "close", or why undecided."""
    left = deadline.left()
    stats["solves"] += 1
    ans = solver.solve_bound(problem, timeout=left, senses=(sense,))
    d = replay_side(problem, sense, ans.sides[sense], solver.exact)
    if d.status == "unsat":
        return "the input domain is empty"
    if d.status != "sat":
        return f"{solver.name}: {d.status} ({d.message})"
    if d.arg is not None and not full:
        st.mark_point(d.arg, "exact-bound" if solver.exact else "milp")
    if d.lo > 0:
        if full:
            st.seen[problem.layer][problem.index, 0 if sense == "max" else 1] = True
        return "observed"
    if d.hi <= 0 and (d.exact or solver.exact or d.how == "bound passes" or d.hi <= -CLOSE):
        return "stable"
    return "close"
