"""Branch and bound on the input box: close sub-boxes by sound bounds, find witnesses, split.

The loop keeps a frontier of sub-boxes, highest parent score first (`_Frontier`), and treats
them in batches: bound every row of the formula on each box (`forward`, `backsub`); drop the
boxes where the formula is certainly false (`props.closed_and_critical`); try each open box's
centre, with a few gradient steps, and replay promising points exactly; hand a box to the exact
route (`handoff`) when it has few unstable ReLUs left (while that is cheap), cannot be split
further or is too deep; split the others in two along the input dimension with the largest
"smear" of the critical row (`choose_split`; ReluVal's heuristic, Wang et al. 2018, extended to
the relaxation gaps in `backsub.upper_bounds`).

Before any of this, `relax.contradictory` asks z3 whether the formula can hold at all with the
network cut out (a contradiction between atoms no single box bound shows).

`unsat` is returned only when every box was closed, by a sound float64 bound or an exact solver.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from nnir import progress
from nnir.backends.base import Answer
from nnir.backends.split import attack
from nnir.backends.split.backsub import upper_bounds
from nnir.backends.split.forward import forward_bounds, prepare_network
from nnir.backends.split.handoff import decide, sub_problem
from nnir.backends.split.props import closed_and_critical, compile_problem
from nnir.backends.split.relax import contradictory
from nnir.passes.interval import input_box
from nnir.queries.problem import VerifyProblem


@dataclass
class Options:
    """Search settings (all can be passed to the backend as options of the same name)."""

    batch: int = 512  # boxes bounded together
    handoff_unstable: int = 3  # hand a box over once it has at most this many unstable ReLUs,
    cheap_timeout: float = 2.0  # ... with this many seconds (undecided: split on, and stop
    # handing over by count: exact arithmetic on big float-weighted nets is slow; a 3-unstable
    # ACAS Xu sub-box took cvc5 over 20 s)
    max_depth: int = 100  # a box split this often, or too small to split, is handed over
    handoff_timeout: float = 20.0  # ... with this many seconds
    attack_starts: int = 256  # random starts of the gradient search on the whole box
    attack_steps: int = 30
    box_steps: int = 2  # gradient steps from each open box's centre
    max_failed_replays: int = 200  # candidates that failed exact replay before we stop trying
    seed: int = 0


class _Frontier:
    """Sub-boxes waiting, with the score of their parent (an upper bound of how well the formula
    can hold in them); `pop` takes the highest scores first, so witnesses are met early (for an
    unsat problem every box is treated anyway, so the order costs nothing there)."""

    def __init__(self, d: int):
        self.chunks = [(np.empty((0, d)), np.empty((0, d)), np.empty(0, dtype=np.int64),
                        np.empty(0))]
        self.size = 0

    def push(self, lo, hi, depth, score):
        if len(lo):
            self.chunks.append((lo, hi, depth, score))
            self.size += len(lo)

    def pop(self, n: int):
        lo, hi, depth, score = (np.concatenate(x) for x in zip(*self.chunks))
        if len(lo) > n:
            part = np.argpartition(-score, n - 1)
            take, rest = part[:n], part[n:]
        else:
            take, rest = np.arange(len(lo)), np.arange(0)
        self.chunks = [(lo[rest], hi[rest], depth[rest], score[rest])]
        self.size = len(rest)
        return lo[take], hi[take], depth[take]


def choose_split(lo, hi, smear, row):
    """The dimension to split each box along and its midpoint: the largest smear of the box's
    critical row among the dimensions that can still be halved in float64 (the widest, relative
    to nothing, where the smear is all zero or there is no critical row).

    Returns:
        (dim, mid, splittable) per box; a box is not splittable when no dimension is.
    """
    B = len(lo)
    width = hi - lo
    mid_all = lo + width / 2
    can = (lo < mid_all) & (mid_all < hi)
    s = smear[np.arange(B), np.maximum(row, 0)]
    s = np.where(np.isfinite(s) & (row >= 0)[:, None], s, 0.0)
    s = np.where(s.max(1, keepdims=True) > 0, s, width)
    dim = np.argmax(np.where(can, s, -1.0), axis=1)
    ar = np.arange(B)
    return dim, mid_all[ar, dim], can.any(axis=1)


class Search(attack.Witnesses):
    """One branch-and-bound run on a `VerifyProblem`."""

    def __init__(self, problem: VerifyProblem, opts: Options, deadline: float | None,
                 exact_name: str | None):
        self.problem, self.opts, self.deadline = problem, opts, deadline
        self.exact_name = exact_name
        self.net = problem.net
        self.prep = prepare_network(problem.net)
        self.comp = compile_problem(problem)
        self.comp.rows = self.prep.pad_rows(self.comp.rows)  # a DAG's chain: carried entries
        self.stats = Counter()
        self.rng = np.random.default_rng(opts.seed)
        self.undecided = 0
        self.cheap = True  # hand over boxes with few unstable ReLUs (until that proves slow)
        self.last_decided = True

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def run(self) -> Answer:
        self.t0 = time.monotonic()
        lo0, hi0 = input_box(self.net)
        if contradictory(self.problem, self.deadline):
            self.stats["closed_by_relaxation"] += 1
            return self.answer("unsat", "the formula is unsat with the network cut out (every "
                               "named value free within its sound bounds; z3)")
        found = self.root_attack(lo0, hi0)
        if found is not None:
            return found
        stack = _Frontier(len(lo0))
        stack.push(lo0[None, :], hi0[None, :], np.zeros(1, dtype=np.int64), np.zeros(1))
        while stack.size:
            if self.out_of_time():
                return self.answer("timeout", f"time limit reached with {stack.size} sub-boxes "
                                   "left")
            lo, hi, depth = stack.pop(self.opts.batch)
            found = self.step(lo, hi, depth, stack)
            s = self.stats
            progress.show(f"split: {stack.size} sub-boxes open, {s['bounded']} bounded, "
                          f"depth {s['max_depth']}, {time.monotonic() - self.t0:.0f} s")
            if found is not None:
                return found
        if self.undecided:
            return self.answer("unknown", f"{self.undecided} sub-boxes could not be decided")
        return self.answer("unsat", "every sub-box closed")

    def step(self, lo, hi, depth, stack):
        o = self.opts
        fb = forward_bounds(self.prep, lo, hi)
        U, smear = upper_bounds(self.prep, fb, self.comp.rows)
        closed, score, row = closed_and_critical(self.comp, U)
        self.stats["bounded"] += len(lo)
        self.stats["closed_by_bounds"] += int(closed.sum())
        self.stats["max_depth"] = max(self.stats["max_depth"], int(depth.max()))
        keep = np.nonzero(~closed)[0]
        if not len(keep):
            return None
        lo, hi, depth, row, smear = lo[keep], hi[keep], depth[keep], row[keep], smear[keep]
        score = score[keep]
        X = lo + (hi - lo) / 2
        X = np.minimum(np.maximum(X, lo), hi)
        best, bm = attack.ascend(self.net, self.comp, lo, hi, X, o.box_steps)
        found = self.try_points(best, bm, "gradient search in a sub-box", limit=2)
        if found is not None:
            return found
        dim, mid, splittable = choose_split(lo, hi, smear, row)
        forced = (depth >= o.max_depth) | ~splittable
        hand = forced | ((fb.unstable()[keep] <= o.handoff_unstable) & self.cheap)
        for i in np.nonzero(hand)[0]:
            found = self.hand_off(lo[i], hi[i],
                                  self.prep.node_bounds({k: v[keep[i]] for k, v in fb.zlo.items()}),
                                  self.prep.node_bounds({k: v[keep[i]] for k, v in fb.zhi.items()}),
                                  forced[i])
            if found is not None:
                return found
            if not forced[i] and not self.last_decided:
                hand[i] = False  # a cheap attempt failed: split the box after all
        s = np.nonzero(~hand)[0]
        left_hi, right_lo = hi[s].copy(), lo[s].copy()
        left_hi[np.arange(len(s)), dim[s]] = mid[s]
        right_lo[np.arange(len(s)), dim[s]] = mid[s]
        stack.push(np.concatenate([right_lo, lo[s]]), np.concatenate([hi[s], left_hi]),
                   np.concatenate([depth[s], depth[s]]) + 1, np.concatenate([score[s]] * 2))
        return None

    def hand_off(self, lo, hi, zlo, zhi, forced: bool):
        """Decide one box exactly; `last_decided` says whether it was (else, unless `forced`,
        the caller splits it on)."""
        self.last_decided = True
        sub = sub_problem(self.problem, lo, hi, zlo, zhi)
        if sub is None:  # the float box only touches the outward rounding of the domain
            self.stats["closed_empty"] += 1
            return None
        self.stats["handed_off"] += 1
        budget = self.opts.handoff_timeout if forced else self.opts.cheap_timeout
        start = time.monotonic()
        dec = decide(self.problem, sub, self.deadline, budget, self.exact_name)
        if not forced and time.monotonic() - start > self.opts.cheap_timeout / 2:
            self.cheap = False  # exact checks are expensive here: hand over only when forced
        if dec.status == "sat":
            return self.answer("sat", f"witness from {dec.how}", dec.inputs)
        if dec.status == "unsat":
            self.stats[f"closed_by_{dec.how}"] += 1
        elif forced:
            self.undecided += 1
            self.stats["undecided"] += 1
        else:
            self.last_decided = False
            self.stats["cheap_handoffs_undecided"] += 1
        return None

    def answer(self, status: str, why: str, inputs=None) -> Answer:
        s = self.stats
        closed_exact = {k[len("closed_by_"):]: v for k, v in s.items()
                        if k.startswith("closed_by_") and k != "closed_by_bounds"}
        parts = [f"{s['bounded']} sub-boxes bounded, {s['closed_by_bounds']} closed by sound "
                 "float64 bounds (symbolic intervals and back-substitution, rounding included)"]
        if not s["bounded"]:
            parts = []
        parts += [f"{v} closed exactly by {k}" for k, v in closed_exact.items()
                  if k != "relaxation"]
        if s["undecided"]:
            parts.append(f"{s['undecided']} handed-over sub-boxes undecided")
        msg = f"split: {why}" + ("; " + ", ".join(parts) if parts else "")
        if status == "unsat":
            msg += "; no step rests on floating-point tolerances"
        info = {k: int(v) for k, v in s.items()}
        if status == "unsat":
            how = ", ".join(["sound float64 bounds"] + [f"exact {k}" for k in closed_exact])
            info["certified"] = f"exact (split: every sub-box closed by {how})"
            if s["closed_by_relaxation"]:
                info["certified"] = ("exact (z3, QF_LRA: the formula alone is unsat over the "
                                     "box and the sound bounds of the values it names)")
        return Answer(status, inputs, msg, info)
