"""Per-state proofs for the activation states the joint ISA MILP (`isa.py`) could not settle in
its time budget, layer by layer.

Why not only the joint MILP: once data and the gradient search have shown the reachable states,
what is left is mostly a proof that the rest are unreachable, and HiGHS proves the joint optimum 0
far more slowly than it proves the states one at a time. Measured in issue 4 (2 cores, MNIST,
L-infinity ball 0.05, after data, search and LP): 2x100 without L1, 39 states: the joint proof
did not finish in 300 s, one proof per state took 222 s in all; 2x50 without L1, 14 states:
joint 79 s, per state 18 s. HiGHS's primal heuristics only cost time here (they look for a
solution that is not there): turning them off made one proof 31 s -> 7.7 s.

Each proof reuses the ISA model and its row for the state, with the state's binary fixed to 1
and every other binary to 0:
    p = 1:  z >= -theta   (is the active state reachable?)     objective max z
    q = 1:  z <= +theta   (is the inactive state reachable?)   objective min z
HiGHS reporting the model infeasible proves the state unreachable with margin theta (the same
float-tolerance basis and margin as the joint ISA verdict). A feasible solution stops the solve
(`mip_max_improving_sols` 1); its input is replayed exactly by the caller: it either shows the
state (and any other it shows), or it is a close call, decided exactly later.

Layers are taken in order, and the model of each is cut after that layer (`IsaMilp` does so),
so a proof never carries the binaries of later layers. After each layer the caller may tighten
the facts with what was proven (`tighten`): a proven-stable neuron needs no binary in the next
layer's model, and the bound passes re-run with it give later layers tighter big-M constants.
"""
from __future__ import annotations

import time

import numpy as np

from nnir.backends.milp.highs import minimize_sense, outcome, status_text
from nnir.backends.milp.isa import IsaMilp, IsaOutcome

HEURISTICS_OFF = {
    "mip_heuristic_effort": 0.0,
    "mip_heuristic_run_feasibility_jump": False,
    "mip_heuristic_run_rins": False,
    "mip_heuristic_run_rens": False,
    "mip_heuristic_run_root_reduced_cost": False,
    "mip_heuristic_run_zi_round": False,
    "mip_heuristic_run_shifting": False,
}


def prove_each(net, states: list, replay, deadline: float | None, options: dict | None = None,
               tighten=None) -> IsaOutcome:
    """Decide `states` one at a time, layer by layer.

    Args:
        net: the network with sound facts.
        states: (layer, index, col) states not yet observed.
        replay: callable(list of float64 inputs) -> set of states exact replay has now observed.
        deadline: `time.monotonic()` value to stop at, or None. Each proof gets the time left
            shared evenly among the states left (time a quick proof saves goes to later ones).
        options: as for `IsaMilp` (`theta`, tolerances, `threads`).
        tighten: callable(net, proven states) -> net with tighter facts, called after a layer.
    Returns:
        An outcome: `proven` (unreachable states), `close`, `status` ("optimal" when every
        state was decided, else "timeout" or the first HiGHS failure), and `stats`.
    """
    out = IsaOutcome()
    out.stats.update(proofs=0, found=0, timeouts=0)
    order = {lay.name: k for k, lay in enumerate(net.layers)}
    todo = sorted(states, key=lambda s: (order[s[0]], s[1], s[2]))
    done: set = set()
    for layer in sorted({s[0] for s in todo}, key=order.get):
        mine = [s for s in todo if s[0] == layer and s not in done]
        if not mine:
            continue
        model = IsaMilp(net, mine, {**(options or {}), "eps": 0.0})
        proven, queue, tried = [], list(mine), set()
        while queue:
            s = queue.pop(0)
            if s in done:  # an earlier proof's solution showed it
                continue
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                out.status = "timeout"
                return out
            n_left = sum(1 for t in todo if t not in done)
            verdict, seen = _prove(model, s, replay, None if left is None else left / n_left)
            out.stats["proofs"] += 1
            done |= seen
            if verdict == "proven":
                proven.append(s)
                done.add(s)
            elif verdict == "close":
                out.close.append(s)
                done.add(s)
            elif verdict == "found":
                out.stats["found"] += 1
            elif verdict == "timeout" and s not in tried:
                tried.add(s)  # once more after the layer's other states, with what they leave
                queue.append(s)
            elif verdict == "timeout":
                out.stats["timeouts"] += 1
                out.status = "timeout"
            elif out.status == "optimal":
                out.status = verdict
        out.proven += proven
        if proven and tighten is not None:
            net = tighten(net, proven)
            # states of neurons the tightened facts now make stable are the caller's (credited
            # to the bound pass that found them), not proofs of this loop
            done |= {t for t in todo if net.facts.stable[t[0]][t[1]] != 0}
    return out


def _prove(m: IsaMilp, s, replay, limit: float | None) -> tuple[str, set]:
    """One state: "proven", "found" (replay showed it), "close", "timeout" or a HiGHS status;
    with the states the replayed input showed."""
    h = m.h
    for b in m.cols.values():
        h.changeColBounds(b, 0.0, 0.0)
    lo, hi = m.lu[s]
    active = s[2] == 0
    h.changeCoeff(m.rows[s], m.cols[s], lo + m.theta if active else hi - m.theta)
    h.changeColBounds(m.cols[s], 1.0, 1.0)
    n = h.getNumCol()
    h.changeColsCost(n, np.arange(n, dtype=np.int32), np.zeros(n))
    h.changeColCost(m.zcols[s], -1.0 if active else 1.0)  # toward the state, so the LP moves
    minimize_sense(h)
    for k, v in HEURISTICS_OFF.items():
        h.setOptionValue(k, v)
    h.setOptionValue("mip_max_improving_sols", 1)
    h.setOptionValue("time_limit", float("inf") if limit is None else float(max(limit, 0.01)))
    h.run()
    status = outcome(h)
    if h.getModelStatus().name == "kInfeasible":  # not "unbounded or infeasible"
        return "proven", set()
    if h.getInfo().primal_solution_status == 2:  # a feasible solution: replay decides
        seen = replay([m.input_of(h.getSolution().col_value)])
        return ("found" if s in seen else "close"), seen
    if status == "timeout":
        return "timeout", set()
    return f"HiGHS: {status_text(h)}", set()
