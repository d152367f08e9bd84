"""ISA on HiGHS: find the stable ReLUs with one MILP (Serra, Yu, Kumar & Ramalingam, "Scaling Up
Exact Neural Network Compression by ReLU Stability", NeurIPS 2021, formulation (7)-(12)).

The model is the network's big-M lowering (`lower.py`) cut after the last layer that still has an
undecided neuron, that layer kept linear (only its pre-activations are needed: this alone made the
model 15x-200x faster in issue 4's measurements), plus one binary per activation state not yet
observed: for neuron z with sound bounds l < 0 < u,
    p = 1  =>  z >= -theta      as the row   z + (l + theta) p >= l
    q = 1  =>  z <= +theta      as the row   z + (u - theta) q <= u
and the objective max sum(p) + sum(q). An optimum proven 0 says that no input reaches z >= -theta
for any free p (so z < -theta < 0 everywhere: stably inactive) or z <= theta for any free q
(stably active). theta puts the verdict on the safe side of zero by more than HiGHS's feasibility
tolerances; it is a float argument all the same, and the query reports it as such.

The paper adds lazy constraints whenever a solution shows new states. HiGHS 1.15 never calls its
lazy-constraint callback, so this is an interrupt-and-resolve loop: `cbMipSolution` fires for each
feasible solution; when a solution's input shows a new state (by float sign: only a cheap filter,
the caller replays exactly), a flag is set, and `cbMipInterrupt` interrupts (interrupting inside
`cbMipSolution` is ignored). The caller replays the inputs exactly and says which states are now
observed; their p/q are fixed to 0 (bound changes), the model is warm-started from the last input
(still feasible with those p/q at 0) and solved again. Inputs from LP-relaxation solutions (the
paper's section 5.2) are replayed before the first MILP solve.

A solution with p = 1 whose exact replay shows z <= 0 is a *close call* (some input puts z within
theta of 0 from below): once an optimal solution shows nothing new, its close calls are taken out
(fixed to 0) and returned for an exact per-neuron decision.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from nnir.backends.milp.highs import (
    build_highs,
    clip_to_box,
    highs_tolerances,
    mip_solution,
    outcome,
    status_text,
)
from nnir.backends.milp.lower import legal_name, to_milp
from nnir.ir.evaluate import evaluate_batch
from nnir.ir.nodes import BoolConst, Network
from nnir.passes.interval import inner_box
from nnir.queries.problem import VerifyProblem

THETA = 1e-6  # the safe-side margin of every ISA verdict (see the module docstring)
EPS = 1e-4  # the search phase asks for states shown by this much (so solutions show them clearly);
# eps <= 0 skips the search phase (when a gradient search has already shown the easy states)
INF = float("inf")


@dataclass
class IsaOutcome:
    """What the loop decided: `proven` states (layer, index, col) no input shows (col 0: the
    active state, so the neuron is stably inactive; col 1: the inactive state, stably active);
    `close` states handed back for an exact decision; `status` "optimal", "timeout" or a HiGHS
    status; `stats` counts solves, interrupts and replayed inputs."""

    proven: list = field(default_factory=list)
    close: list = field(default_factory=list)
    status: str = "optimal"
    stats: dict = field(default_factory=dict)


class IsaMilp:
    """The ISA model for `net` (with sound facts) and the activation states still unobserved.

    Args:
        net: the network, `net.facts` holding sound pre-activation bounds.
        states: (layer name, index, col) triples, col 0 = active state, 1 = inactive state.
        options: HiGHS tolerances (`milp_tolerances`), `theta`, `threads`.
    """

    def __init__(self, net: Network, states: list, options: dict | None = None):
        options = options or {}
        self.net, self.theta = net, float(options.get("theta", THETA))
        self.eps = float(options.get("eps", EPS))
        order = {lay.name: k for k, lay in enumerate(net.layers)}
        last = max(order[s[0]] for s in states)
        lays = list(net.layers[:last + 1])
        lays[-1] = replace(lays[-1], act="linear")  # pre-activations only
        cut = replace(net, layers=tuple(lays), output=lays[-1].name, facts=net.facts)
        self.model_last = lays[-1].name  # kept linear: its columns are pre-activations
        self.model = to_milp(VerifyProblem(cut, (), BoolConst(True)), margin=0.0, slack="none")
        names = {v.name: k for k, v in enumerate(self.model.vars)}
        # state -> binary column, row, (l, u), pre-activation column
        self.cols, self.rows, self.lu, self.zcols = {}, {}, {}, {}
        for layer, i, c in states:
            base = legal_name(f"{net.name}_{layer}")
            zc = names[f"{base}_pre_{i}" if order[layer] < last else f"{base}_{i}"]
            lo, hi = float(net.facts.lo[layer][i]), float(net.facts.hi[layer][i])
            b = self.model.add_var(f"isa_{'pq'[c]}_{base}_{i}", 0.0, 1.0, integer=True)
            self.rows[layer, i, c] = len(self.model.rows)
            if c == 0:  # p = 1 => z >= t:  z + (l - t) p >= l
                self.model.add_row([zc, b], [1.0, lo - self.eps], lo, INF, f"isa_p_{base}_{i}")
            else:  # q = 1 => z <= -t:  z + (u + t) q <= u
                self.model.add_row([zc, b], [1.0, hi + self.eps], -INF, hi, f"isa_q_{base}_{i}")
            self.cols[layer, i, c], self.lu[layer, i, c] = b, (lo, hi)
            self.zcols[layer, i, c] = zc
        self.model.objective = {b: 1.0 for b in self.cols.values()}
        self.model.sense = "max"
        opts = highs_tolerances(options)
        if "threads" in options:
            opts["threads"] = int(options["threads"])
        self.h = build_highs(self.model, opts)
        self.free = set(self.cols)
        self.box = inner_box(net)  # solver inputs are clipped into it (once per solution)
        self.threshold = self.eps  # p = 1 => z >= threshold; q = 1 => z <= -threshold
        # columns a warm start fills from a forward pass: (layer, index, what, column), by the
        # names `lower.py` gives them
        self.warm_cols = []
        for lay in cut.layers:
            base = legal_name(f"{net.name}_{lay.name}")
            for j in range(lay.size):
                for what, key in (("pre", f"{base}_pre_{j}"), ("post", f"{base}_{j}"),
                                  ("on", f"a_{base}_{j}")):
                    if key in names:
                        self.warm_cols.append((lay.name, j, what, names[key]))

    # ------------------------------------------------------------------ pieces
    def input_of(self, sol) -> np.ndarray:
        """The network input of a solution vector, clipped into the inward-rounded box."""
        x = np.asarray(sol)[self.model.input_vars]
        return np.asarray(clip_to_box(self.net, x, self.box))

    def _new_by_float(self, x: np.ndarray) -> set:
        """The free states input x shows by float sign (a filter only: replay decides)."""
        vals = evaluate_batch(self.net, x[None, :])
        return {(layer, i, c) for layer, i, c in self.free
                if ((vals[layer + ".pre"][0, i] > 0) if c == 0
                    else (vals[layer + ".pre"][0, i] < 0))}

    def _fix(self, states) -> None:
        for s in states:
            if s in self.free:
                self.free.discard(s)
                self.h.changeColBounds(self.cols[s], 0.0, 0.0)

    def _warm(self, x: np.ndarray) -> None:
        """Start the next solve from input x: every column from a float forward pass, each free
        binary 1 only where its row holds with room to spare (so the point stays feasible)."""
        vals = evaluate_batch(self.net, x[None, :])
        sol = np.zeros(len(self.model.vars))
        sol[self.model.input_vars] = x
        for layer, j, what, col in self.warm_cols:
            z = vals[layer + ".pre"][0, j]
            sol[col] = z if what == "pre" else float(z > 0) if what == "on" else \
                (max(z, 0.0) if self.net.layer(layer).act == "relu" and
                 layer != self.model_last else z)
        room = abs(self.threshold) / 2
        for s, b in self.cols.items():
            z = vals[s[0] + ".pre"][0, s[1]]
            ok = z >= self.threshold + room if s[2] == 0 else z <= -self.threshold - room
            sol[b] = 1.0 if s in self.free and ok else 0.0
        self.h.setSolution(mip_solution(sol))

    # ------------------------------------------------------------------ the loop
    def solve(self, replay, deadline: float | None) -> IsaOutcome:
        """Search with threshold `eps` until no solution shows a free state by `eps`, then prove:
        thresholds moved to `-theta` and solved until the optimum is proven 0.

        Args:
            replay: callable(list of float64 inputs) -> set of states (layer, index, col) that
                exact replay has now observed (the caller checks the domain and replays).
            deadline: `time.monotonic()` value to stop at, or None.
        Returns:
            The outcome; `proven` states rest on HiGHS's optimum with margin `theta`.
        """
        out, h = IsaOutcome(), self.h
        out.stats.update(solves=0, interrupts=0, inputs=0, lp_inputs=0)
        self._lp_inputs(replay, out.stats, deadline)
        self.pending, self.flag, self.claimed = [], False, set()

        def on_solution(e):
            x = self.input_of(e.data_out.mip_solution)
            shown = self._new_by_float(x)
            if shown:
                self.pending.append(x)
                self.claimed |= shown
                self.flag = True

        def on_interrupt(e):
            e.interrupt(self.flag)  # also resets a flag left from the previous run

        h.cbMipSolution.subscribe(on_solution)
        h.cbMipInterrupt.subscribe(on_interrupt)
        try:
            out.status = self._loop(replay, deadline, out, proving=False) if self.eps > 0 \
                else "optimal"
            if out.status == "optimal" and self.free:
                self.threshold = -self.theta
                for s in self.free:  # thresholds to -theta: p = 1 => z >= -theta, etc.
                    lo, hi = self.lu[s]
                    coef = lo + self.theta if s[2] == 0 else hi - self.theta
                    h.changeCoeff(self.rows[s], self.cols[s], coef)
                out.status = self._loop(replay, deadline, out, proving=True)
        finally:
            h.cbMipSolution.clear()
            h.cbMipInterrupt.clear()
        if out.status == "optimal":
            out.proven, self.free = sorted(self.free), set()
        return out

    def _loop(self, replay, deadline, out: IsaOutcome, proving: bool) -> str:
        """Interrupt-and-resolve until the optimum is proven 0 ("optimal"), or a stop status."""
        h, stats, last_x = self.h, out.stats, None
        while self.free:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                h.setOptionValue("time_limit", float(left))
            self.flag = False
            self.pending.clear()
            self.claimed = set()
            if last_x is not None:
                self._warm(last_x)
            stats["solves"] += 1
            h.run()
            status = outcome(h)
            if self.pending:  # interrupted (or finished) with inputs showing new states
                stats["interrupts"] += self.flag
                stats["inputs"] += len(self.pending)
                seen = replay(list(self.pending))
                self._fix(seen)
                last_x = self.pending[-1]
                if seen & set(self.cols):
                    continue
                # float said new, exact replay disagrees (a point on a strict input constraint's
                # boundary, or a sign within rounding of 0): close calls, decided exactly later
                close = sorted(self.claimed & self.free)
                out.close.extend(close)
                self._fix(close)
                if close:
                    continue
            if status == "optimal":
                info = h.getInfo()
                if info.objective_function_value < 0.5 and info.mip_dual_bound < 0.5:
                    return "optimal"
                sol = np.asarray(h.getSolution().col_value)
                x = last_x = self.input_of(sol)
                stats["inputs"] += 1
                seen = replay([x])
                self._fix(seen)
                if not seen & set(self.cols):  # nothing new: its p/q = 1 are close calls
                    close = [s for s in self.free if sol[self.cols[s]] > 0.5]
                    out.close.extend(close)
                    self._fix(close)
            elif status in ("timeout", "interrupted"):
                if deadline is not None and time.monotonic() >= deadline:
                    return "timeout"
            else:
                return f"HiGHS: {status_text(h)}"
        return "optimal"

    def _lp_inputs(self, replay, stats: dict, deadline: float | None) -> None:
        """Replay the input of the LP relaxation's optimum (the paper's section 5.2). The LP
        gets the deadline too: on some models simplex stalls for minutes (seen on MNIST)."""
        h = self.h
        if deadline is not None:
            h.setOptionValue("time_limit", float(max(deadline - time.monotonic(), 0.01)))
        h.setOptionValue("solve_relaxation", True)
        h.run()
        h.setOptionValue("solve_relaxation", False)
        if outcome(h) == "optimal":
            x = self.input_of(h.getSolution().col_value)
            stats["lp_inputs"] += 1
            self._fix(replay([x]))
