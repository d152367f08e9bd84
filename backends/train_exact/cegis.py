"""Counterexample-guided point selection (CEGIS) for exact training.

Solve on a small active set (`init_points`, default 20, classes taken in turn), replay the
candidate on every point in exact arithmetic (`nnir.queries.train.replay_train`), add the worst
misfit points (up to `per_round`, default 20) and repeat. A `sat` is a network fitting every
point; an `unsat` on a subset is unsat on the whole set. With `cegis=False` every point is active.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from nnir import progress
from nnir.ir.nodes import Network, Unknown
from nnir.queries.train import replay_train


@dataclass
class Run:
    """What one training solve shares between rounds: options, deadline, statistics."""

    problem: object
    backend: str
    opts: dict
    deadline: float | None
    rounds: int = 0
    solves: int = 0

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def on(self, problem, seconds: float | None = None) -> Run:
        """The same backend and options for another problem (fresh statistics), with at most
        `seconds` of the time left."""
        deadline = self.deadline
        if seconds is not None:
            end = time.perf_counter() + seconds
            deadline = end if deadline is None else min(deadline, end)
        return Run(problem, self.backend, self.opts, deadline)


def initial(problem, opts: dict) -> list[int]:
    """The first active points: up to `init_points`, classes taken in turn (all without CEGIS)."""
    n = len(problem.y)
    if not opts.get("cegis", True):
        return list(range(n))
    want = int(opts.get("init_points", 20))
    by_class = [list(np.flatnonzero(problem.y == k)) for k in np.unique(problem.y)]
    out: list[int] = []
    while len(out) < min(want, n):
        for idx in by_class:
            if idx and len(out) < want:
                out.append(int(idx.pop(0)))
    return out


def box_violations(net: Network, weights) -> list[str]:
    """Names of the unknown tensors whose returned values leave their box (or change shape)."""
    bad = []
    for lay, (W, b) in zip(net.layers, weights):
        for part, t, v in (("weight", lay.weight, W), ("bias", lay.bias, b)):
            arr = np.array(v, dtype=object)
            if arr.shape != tuple(t.shape):
                bad.append(f"{lay.name}.{part} has shape {arr.shape}, expected {t.shape}")
            elif isinstance(t, Unknown):
                flat = arr.reshape(-1)
                if (t.lo is not None and any(x < t.lo for x in flat)) or \
                        (t.hi is not None and any(x > t.hi for x in flat)):
                    bad.append(f"{lay.name}.{part} leaves [{t.lo}, {t.hi}]")
            elif not bool(np.all(arr == t.exact)):
                bad.append(f"{lay.name}.{part} is known but was changed")
    return bad


def cegis(run: Run, solve_on, active: list[int]):
    """Solve on `active`, add the worst misfit points, repeat; `active` grows in place.

    Args:
        run: the shared state (problem, backend, options, deadline, counters).
        solve_on: `solve_on(active) -> (status, weights, message, info)` for one subset.
        active: indices of the active points.
    Returns:
        (status, weights or None, message, info of the last solve).
    """
    per_round = int(run.opts.get("per_round", 20))
    n = len(run.problem.y)
    while True:
        left = run.left()
        if left is not None and left <= 0:
            return "timeout", None, "time limit reached during training", None
        run.rounds += 1
        progress.show(f"train ({run.backend}): round {run.rounds}, {len(active)} of {n} "
                      "points in the solve")
        status, weights, msg, info = solve_on(active)
        run.solves += 1
        if status != "sat":
            return status, None, msg, info
        bad = box_violations(run.problem.net, weights)
        if bad:
            return "error", None, f"{run.backend}: returned weights break a box: {bad[0]}", info
        misfit = replay_train(run.problem, weights).worst
        if not misfit:
            return "sat", weights, f"weights fit all {n} points (replayed exactly)", info
        have = set(active)
        new = [i for i in misfit if i not in have][:per_round]
        if not new:  # only MILP rounding can misfit an active point
            return "unknown", None, f"{run.backend}: its weights misfit active point " \
                f"{misfit[0]} in exact replay (tolerances)", info
        active.extend(new)
