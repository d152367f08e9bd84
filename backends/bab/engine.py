"""Branch and bound over ReLU splits on the whole input box.

The loop keeps a frontier of sub-problems (a split vector over all ReLUs: +1 active, -1
inactive, 0 free), highest parent score first, and treats them in batches: bound every row of
the formula under the splits (`bounds.bound_subproblems`, sound in float64); drop the
sub-problems that are empty or where the formula is certainly false (`props.closed_and_critical`);
try the critical row's relaxation optimum with a few gradient steps and replay promising points
exactly; hand a sub-problem with no free unstable ReLU left (an LP) to the exact route
(`split.handoff`); split the others on the free unstable ReLU with the largest score
(`bounds.branch_scores`).

Before any of this, `relax.contradictory` asks z3 whether the formula can hold at all with the
network cut out, and a gradient search with random starts looks for a witness on the whole box.

`unsat` is returned only when every sub-problem was closed by a sound float64 bound, found
empty by one, or decided unsat by an exact solver; `sat` only with a witness replayed exactly.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from nnir.backends.bab.bounds import ReluIndex, bound_subproblems, branch_scores
from nnir.backends.bab.lp_leaf import lp_row_bounds
from nnir.backends.base import Answer
from nnir.backends.split import attack
from nnir.backends.split.forward import prepare_network
from nnir.backends.split.handoff import decide, sub_problem
from nnir.backends.split.props import closed_and_critical, compile_problem
from nnir.backends.split.relax import contradictory
from nnir.passes.interval import input_box
from nnir.queries.problem import VerifyProblem
from nnir.queries.replay import replay_verify


@dataclass
class Options:
    """Search settings (all can be passed to the backend as options of the same name)."""

    batch: int = 256  # sub-problems bounded together (fewer when the network is wide)
    memory_mb: float = 512.0  # rough cap on a batch's symbolic-interval arrays
    max_queue: int = 200_000  # open sub-problems kept; beyond this the answer is `unknown`
    lp_leaves: bool = True  # try a safe LP dual bound (HiGHS duals, exact rationals) ...
    lp_unstable: int = 64  # ... on sub-problems with at most this many free unstable ReLUs
    handoff_timeout: float = 20.0  # seconds for the exact solver on an LP leaf
    attack_starts: int = 256  # random starts of the gradient search on the whole box
    attack_steps: int = 30
    sub_steps: int = 2  # gradient steps from each open sub-problem's relaxation optimum
    max_failed_replays: int = 200
    seed: int = 0


class _Frontier:
    """Open sub-problems and their parents' scores; `pop` takes the highest scores first."""

    def __init__(self, n: int):
        self.chunks = [(np.zeros((0, n), dtype=np.int8), np.empty(0))]
        self.size = 0

    def push(self, fixed, score):
        if len(fixed):
            self.chunks.append((fixed, score))
            self.size += len(fixed)

    def pop(self, k: int):
        fixed = np.concatenate([c[0] for c in self.chunks])
        score = np.concatenate([c[1] for c in self.chunks])
        if len(fixed) > k:
            part = np.argpartition(-score, k - 1)
            take, rest = part[:k], part[k:]
        else:
            take, rest = np.arange(len(fixed)), np.arange(0)
        self.chunks = [(fixed[rest], score[rest])]
        self.size = len(rest)
        return fixed[take]


class Search:
    """One ReLU-split branch-and-bound run on a `VerifyProblem`."""

    def __init__(self, problem: VerifyProblem, opts: Options, deadline: float | None,
                 exact_name: str | None):
        self.problem, self.opts, self.deadline = problem, opts, deadline
        self.exact_name = exact_name
        self.net = problem.net
        self.prep = prepare_network(problem.net)
        self.idx = ReluIndex.of(self.prep)
        self.comp = compile_problem(problem)
        self.stats = Counter()
        self.rng = np.random.default_rng(opts.seed)
        self.undecided = 0
        self.lo0, self.hi0 = input_box(self.net)
        d = len(self.lo0)
        width = max([d] + [len(lay.b) for lay in self.prep.layers])
        per = 8.0 * (d + 1) * 2 * width * 4  # A, its product and copies, per sub-problem
        self.batch = int(max(1, min(opts.batch, opts.memory_mb * 2 ** 20 // per)))

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def run(self) -> Answer:
        if contradictory(self.problem, self.deadline):
            self.stats["closed_by_relaxation"] += 1
            return self.answer("unsat", "the formula is unsat with the network cut out (every "
                               "named value free within its sound bounds; z3)")
        found = self.root_attack()
        if found is not None:
            return found
        front = _Frontier(self.idx.size)
        front.push(np.zeros((1, self.idx.size), dtype=np.int8), np.zeros(1))
        while front.size:
            if self.out_of_time():
                return self.answer("timeout", f"time limit reached with {front.size} "
                                   "sub-problems open")
            if front.size > self.opts.max_queue:
                return self.answer("unknown", f"{front.size} sub-problems open, more than "
                                   f"max_queue={self.opts.max_queue}")
            found = self.step(front.pop(self.batch), front)
            if found is not None:
                return found
        if self.undecided:
            return self.answer("unknown", f"{self.undecided} LP sub-problems could not be "
                               "decided")
        return self.answer("unsat", "every sub-problem closed")

    def root_attack(self):
        o = self.opts
        if o.attack_starts <= 0:
            return None
        X = attack.random_starts(self.lo0, self.hi0, o.attack_starts, self.rng)
        L, H = np.broadcast_to(self.lo0, X.shape), np.broadcast_to(self.hi0, X.shape)
        best, bm = attack.ascend(self.net, self.comp, L, H, X, o.attack_steps)
        return self.try_points(best, bm, "gradient search on the whole box")

    def try_points(self, X, m, how: str, limit: int = 8):
        """Replay the most promising points exactly; a witness that passes is the answer."""
        for i in np.argsort(-m)[:limit]:
            if not m[i] >= -1e-9 or self.stats["failed_replays"] >= self.opts.max_failed_replays:
                break
            rep = replay_verify(self.problem, [float(v) for v in X[i]], clip=True)
            self.stats["replays"] += 1
            if rep.exact:
                return self.answer("sat", f"witness from {how}", rep.inputs)
            self.stats["failed_replays"] += 1
        return None

    def step(self, fixed, front):
        B = len(fixed)
        lo = np.broadcast_to(self.lo0, (B, len(self.lo0)))
        hi = np.broadcast_to(self.hi0, (B, len(self.hi0)))
        U, empty, fb = bound_subproblems(self.prep, self.idx, self.comp.rows, lo, hi, fixed)
        closed, score, row = closed_and_critical(self.comp, U)
        self.stats["bounded"] += B
        self.stats["closed_empty"] += int(empty.sum())
        self.stats["closed_by_bounds"] += int((closed & ~empty).sum())
        self.stats["max_depth"] = max(self.stats["max_depth"], int((fixed != 0).sum(1).max()))
        keep = np.nonzero(~(closed | empty))[0]
        if not len(keep):
            return None
        fixed, row, score = fixed[keep], row[keep], score[keep]
        fbk = {n: (fb.zlo[n][keep], fb.zhi[n][keep]) for n in fb.zlo}
        sub_fb = type(fb)(lo[keep], hi[keep], fb.mx[keep],
                          {n: v[0] for n, v in fbk.items()}, {n: v[1] for n, v in fbk.items()},
                          {n: v[keep] for n, v in fb.mag.items()},
                          {n: tuple(x[keep] for x in v) for n, v in fb.relax.items()},
                          {})
        bs, lx = branch_scores(self.prep, self.idx, self.comp.rows, sub_fb, row, fixed)
        # the critical row's relaxation optimum, then a few gradient steps from it
        lk, hk = lo[keep], hi[keep]
        X = np.where(lx > 0, hk, lk)
        best, bm = attack.ascend(self.net, self.comp, lk, hk, X, self.opts.sub_steps)
        found = self.try_points(best, bm, "gradient search from a sub-problem's relaxation "
                                "optimum", limit=2)
        if found is not None:
            return found
        n_free = sub_fb.unstable()
        free = n_free > 0
        for i in np.nonzero(n_free <= self.opts.lp_unstable)[0]:
            # few unstable ReLUs left: a safe LP bound (triangle relaxation), then for an LP
            # leaf (none left) the exact solver
            if self.out_of_time():  # never drop a sub-problem: stop here
                return self.answer("timeout", f"time limit reached with {front.size + len(keep)}"
                                   " sub-problems open")
            zlo_i = {n: v[0][i] for n, v in fbk.items()}
            zhi_i = {n: v[1][i] for n, v in fbk.items()}
            if self.opts.lp_leaves:
                Ui = lp_row_bounds(self.net, self.comp, zlo_i, zhi_i, U[keep[i]])
                if closed_and_critical(self.comp, Ui[None])[0][0]:
                    self.stats["closed_by_safe_lp"] += 1
                    free[i] = False
                    continue
            if free[i]:
                continue
            found = self.hand_off(zlo_i, zhi_i)
            if found is not None:
                return found
        s = np.nonzero(free)[0]
        if not len(s):
            return None
        j = np.argmax(bs[s], axis=1)
        assert np.isfinite(bs[s][np.arange(len(s)), j]).all(), "split on a fixed or stable ReLU"
        left, right = fixed[s].copy(), fixed[s].copy()
        ar = np.arange(len(s))
        left[ar, j], right[ar, j] = 1, -1
        self.stats["splits"] += len(s)
        front.push(np.concatenate([left, right]), np.concatenate([score[s], score[s]]))
        return None

    def hand_off(self, zlo, zhi):
        """Decide one LP sub-problem exactly (z3 on the box with the clamped bounds as facts;
        an unsat there covers the sub-problem, a witness is replayed on the original problem)."""
        sub = sub_problem(self.problem, self.lo0, self.hi0, zlo, zhi)
        if sub is None:
            self.stats["closed_empty"] += 1
            return None
        self.stats["handed_off"] += 1
        dec = decide(self.problem, sub, self.deadline, self.opts.handoff_timeout,
                     self.exact_name)
        if dec.status == "sat":
            return self.answer("sat", f"witness from {dec.how}", dec.inputs)
        if dec.status == "unsat":
            self.stats[f"closed_by_{dec.how}"] += 1
        else:
            self.undecided += 1
            self.stats["undecided"] += 1
        return None

    def answer(self, status: str, why: str, inputs=None) -> Answer:
        s = self.stats
        exact = {k[len("closed_by_"):]: v for k, v in s.items()
                 if k.startswith("closed_by_") and k not in ("closed_by_bounds",
                                                              "closed_by_relaxation",
                                                              "closed_by_safe_lp")}
        parts = []
        if s["bounded"]:
            parts = [f"{s['bounded']} sub-problems bounded, {s['closed_by_bounds']} closed by "
                     f"sound float64 bounds, {s['closed_empty']} empty"]
        if s["closed_by_safe_lp"]:
            parts.append(f"{s['closed_by_safe_lp']} LP sub-problems closed by a safe LP dual "
                         "bound (exact rationals)")
        parts += [f"{v} LP sub-problems closed exactly by {k}" for k, v in exact.items()]
        if s["undecided"]:
            parts.append(f"{s['undecided']} LP sub-problems undecided")
        msg = f"bab: {why}" + ("; " + ", ".join(parts) if parts else "")
        info = {k: int(v) for k, v in s.items()}
        if status == "unsat":
            msg += "; no step rests on floating-point tolerances (no alpha/beta optimisation)"
            how = ", ".join(["sound float64 bounds"] + [f"exact {k}" for k in exact]
                            + (["safe LP dual bounds"] if s["closed_by_safe_lp"] else []))
            info["certified"] = f"exact (bab: every ReLU-split sub-problem closed by {how})"
            if s["closed_by_relaxation"]:
                info["certified"] = ("exact (z3, QF_LRA: the formula alone is unsat over the "
                                     "box and the sound bounds of the values it names)")
        return Answer(status, inputs, msg, info)
