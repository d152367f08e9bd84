"""Branch and bound over ReLU splits on the whole input box.

The loop keeps a frontier of sub-problems (a split vector over all ReLUs: +1 active, -1
inactive, 0 free), highest parent score first (the worst bound: the sub-problem furthest from
closing), and treats them in batches: bound every row of the formula under the splits; drop the
sub-problems that are empty or where the formula is certainly false (`props.closed_and_critical`);
try the critical row's relaxation optimum with a few gradient steps and replay promising points
exactly; try a safe LP bound on sub-problems with at most `lp_unstable` free unstable ReLUs and
hand one with none left (an LP) to the exact route (`split.handoff`); split the others on the
free unstable ReLU with the largest score.

Bounds (`Options.crown`, default on): alpha/beta-CROWN (`crown.py`). At the root, alpha-CROWN on
the forward intervals, and when that does not close it, again after tightening the intermediate
bounds layer by layer (`root_iters`). Each batch then optimises alphas and betas per sub-problem
and row (`crown_iters` Adam steps, children warm-started from their parent's parameters,
`_Warm`), and only a bound re-evaluated with rigorous rounding-error terms closes anything.
Branching: the BaBSR-like score of `crown.crown_branch_scores`; `fsb` > 1 picks among that many
best-scored ReLUs by their children's bounds (FSB-lite). With `crown=False`, the forward
symbolic intervals under the splits of `bounds.py` (the first version).

Measured (`benchmarks/bab_bounds.py`, 120 s per instance, 2 shared cores under load 8-12):
mnist_fc 256x2/4/6 eps 0.03 (15 + 5 + 5): 23 -> 24 solved (256x2 prop_6: timeout -> 3.3 s),
eps 0.05 (5 + 5 + 5): 7 -> 8 (256x4 prop_3: timeout -> 21 s), 0 wrong (`benchmarks/results/
bab_{before,after}*.csv`). FSB-lite (k = 3, 6) needed 30
instead of 108 sub-problems on 256x2 prop_6 and lowered the worst open bound on 256x4 prop_0
eps 0.05 (2.6 -> 1.3-1.6 in 60 s), but did not finish 256x4 prop_3 eps 0.05 in 120 s where
BaBSR proves it with 1,274 sub-problems: off by default. LP leaves took seconds each on 784
inputs (256x2 prop_6: 15 sub-problems in 100 s with `lp_unstable` 64, unsat in 9 s without),
hence `lp_unstable` 8.

Convolutional networks (chains of conv, gather, slice and dense nodes) go through the same code:
a conv layer's W is its sparse tap matrix (`split.forward.Layer`). Measured on VNN-COMP 2022
(`benchmarks/vnncomp.py --backend bab`, 2 shared cores, load 2-3): collins_rul_cnn, every 4th
instance (16), timeouts x 0.2: 13 solved (9 sat, 4 unsat), 3 timeouts, and one "wrong" that is
the 2022 verdict's (small_window_20 if_then_7levels: our witness, replayed exactly, gives 23.66
in [18, 107] under onnxruntime too; alpha-beta-CROWN reported sat as well); oval21 base, first 3
instances, 72 s: 1 unsat (38 s), 2 timeouts. One base instance for 100 s: 2,056 sub-problems
(about 20 a second, batches of 215), 1.5 GB peak. On cifar_deep_kw the root's tightening takes
about 100 s (10 + 50 steps per layer, 1,317 -> 1,243 unstable ReLUs, almost all in the first 10).

Residual networks (add and concat nodes) go through their exact chain form (`split.chain`:
each node one chain layer, values read later carried as identity rows, stably active in ReLU
layers). On VNN-COMP 2022 sri_resnet_a (CIFAR ResNet, 3,072 inputs, 18,532 chain ReLUs of
which 1,516 unstable at the root) the chain costs 1.2 s to build and 1.75 GB peak; of a 60 s
budget the default bound passes take about 30 s and the root gradient search about 18 s
before alpha-CROWN starts (one instance, 2 shared cores), so at `--scale 0.2` it answers only
what the gradient search finds: `benchmarks/vnncomp.py sri_resnet_a --backend bab --select 6:0
--scale 0.2` (12 instances, 60 s each, load 3-4): 1 solved (sat, 59 s), 0 wrong, 11 timeouts
(2022 tools solved 5-6 of the 7 with known verdicts in 300 s); peak 1.8 GB.

Before any of this, `relax.contradictory` asks z3 whether the formula can hold at all with the
network cut out, and a gradient search with random starts looks for a witness on the whole box.

`unsat` is returned only when every sub-problem was closed by a sound float64 bound, found
empty by one, or decided unsat by an exact solver; `sat` only with a witness replayed exactly.
The deadline is checked between batches, inside the alpha/beta optimisation and before each LP;
no sub-problem is ever dropped (a timeout reports how many were open).

Progress: `Search.on_progress` (a callable taking a dict with open, closed, bounded, depth,
best (the worst open parent bound), elapsed) is called about once a second; with
`Options.progress` and no callable, the same goes to stderr as one line.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from nnir import progress
from nnir.backends.bab.bounds import ReluIndex, bound_subproblems, branch_scores
from nnir.backends.bab.crown import Crown, crown_branch_scores, fsb_choice
from nnir.backends.bab.lp_leaf import lp_row_bounds
from nnir.backends.base import Answer
from nnir.backends.split import attack
from nnir.backends.split.forward import prepare_network
from nnir.backends.split.handoff import decide, sub_problem
from nnir.backends.split.props import closed_and_critical, compile_problem
from nnir.backends.split.relax import contradictory
from nnir.passes.interval import input_box
from nnir.queries.problem import VerifyProblem


@dataclass
class Options:
    """Search settings (all can be passed to the backend as options of the same name)."""

    batch: int = 256  # sub-problems bounded together (fewer when the network is wide)
    memory_mb: float = 512.0  # rough cap on a batch's symbolic-interval arrays
    max_queue: int = 200_000  # open sub-problems kept; beyond this the answer is `unknown`
    lp_leaves: bool = True  # try a safe LP dual bound (HiGHS duals, exact rationals) ...
    lp_unstable: int = 8  # ... on sub-problems with at most this many free unstable ReLUs
    handoff_timeout: float = 20.0  # seconds for the exact solver on an LP leaf
    attack_starts: int = 256  # random starts of the gradient search on the whole box
    attack_steps: int = 30
    sub_steps: int = 2  # gradient steps from each open sub-problem's relaxation optimum
    max_failed_replays: int = 200
    seed: int = 0
    crown: bool = True  # alpha/beta-CROWN bounds (`crown.py`); False: forward (`bounds.py`)
    crown_iters: int = 20  # Adam steps of alpha/beta per batch of sub-problems
    root_iters: int = 50  # ... per layer, tightening the root's intermediate bounds
    root_final_iters: int = 50  # ... on the rows at the root (their alphas start every child)
    refine: bool = False  # crown: recompute intermediate bounds under each sub-problem's splits
    fsb: int = 0  # crown: choose among this many best-scored ReLUs by their children's bounds
    progress: bool = False  # one line on stderr about every second (see `Search.on_progress`)


class _Frontier:
    """Open sub-problems, their parents' scores and warm-start keys (-1: none); `pop` takes
    the highest scores first."""

    def __init__(self, n: int):
        self.chunks = [(np.zeros((0, n), dtype=np.int8), np.empty(0), np.empty(0, np.int64))]
        self.size = 0

    def push(self, fixed, score, keys=None):
        if len(fixed):
            if keys is None:
                keys = np.full(len(fixed), -1, dtype=np.int64)
            self.chunks.append((fixed, score, keys))
            self.size += len(fixed)

    def top(self) -> float:
        """The highest score open (the worst parent bound), -inf when none."""
        return max((float(c[1].max()) for c in self.chunks if len(c[1])), default=-np.inf)

    def pop(self, k: int):
        fixed, score, keys = (np.concatenate([c[j] for c in self.chunks]) for j in range(3))
        if len(fixed) > k:
            part = np.argpartition(-score, k - 1)
            take, rest = part[:k], part[k:]
        else:
            take, rest = np.arange(len(fixed)), np.arange(0)
        self.chunks = [(fixed[rest], score[rest], keys[rest])]
        self.size = len(rest)
        return fixed[take], keys[take]


class _Warm:
    """Parents' optimised alphas and betas (`Crown.pack`), shared by their two children, within
    a memory budget (a child without one starts from the root's alphas and zero betas)."""

    def __init__(self, budget_bytes: float):
        self.store: dict = {}
        self.bytes, self.budget, self.next = 0, budget_bytes, 0

    def put(self, packed: np.ndarray) -> np.ndarray:
        """Store one payload per parent; the keys (one per parent, -1 when over budget)."""
        keys = np.full(len(packed), -1, dtype=np.int64)
        for i, p in enumerate(packed):
            if self.bytes + p.nbytes > self.budget:
                break
            self.store[self.next] = [p, 2]
            self.bytes += p.nbytes
            keys[i] = self.next
            self.next += 1
        return keys

    def take(self, key: int):
        item = self.store.get(int(key))
        if item is None:
            return None
        item[1] -= 1
        if item[1] <= 0:
            del self.store[int(key)]
            self.bytes -= item[0].nbytes
        return item[0]


@dataclass
class _Batch:
    """A batch's bounds: row bounds U (B, R), which are empty, the (B, m) pre-activation bounds
    per layer, free unstable ReLUs per sub-problem, and `scores(keep, row)` -> (branching scores
    (K, N), input coefficients (K, d) of each kept sub-problem's critical row)."""

    U: np.ndarray
    empty: np.ndarray
    zlo: dict
    zhi: dict
    n_free: np.ndarray
    scores: object
    params: tuple = ()  # crown: the optimised (alpha, beta) of the batch


class Search(attack.Witnesses):
    """One ReLU-split branch-and-bound run on a `VerifyProblem`.

    `on_progress`, when set (a callable taking a dict: open, closed, bounded, depth, best,
    elapsed), is called about once a second while the search runs; `Options.progress` without
    it writes the same as one line to stderr.
    """

    def __init__(self, problem: VerifyProblem, opts: Options, deadline: float | None,
                 exact_name: str | None):
        self.problem, self.opts, self.deadline = problem, opts, deadline
        self.exact_name = exact_name
        self.net = problem.net
        self.prep = prepare_network(problem.net)
        self.idx = ReluIndex.of(self.prep)
        self.comp = compile_problem(problem)
        self.comp.rows = self.prep.pad_rows(self.comp.rows)  # a DAG's chain: carried entries
        self.strict = np.array([self.comp.atoms[k].rel in ("<", ">") for k in
                                self.comp.row_atom], dtype=bool)
        self.stats = Counter()
        self.rng = np.random.default_rng(opts.seed)
        self.undecided = 0
        self.lo0, self.hi0 = input_box(self.net)
        d = len(self.lo0)
        width = max([d] + [len(lay.b) for lay in self.prep.layers])
        if opts.crown:  # (B, R, d) corners and coefficients, (B, R, width) per layer, copies
            R = max(1, len(self.comp.rows.const))
            per = 8.0 * R * (3 * d + 8 * sum(len(lay.b) for lay in self.prep.layers))
        else:
            per = 8.0 * (d + 1) * 2 * width * 4  # A, its product and copies, per sub-problem
        self.batch = int(max(1, min(opts.batch, opts.memory_mb * 2 ** 20 // per)))
        self.crown: Crown | None = None
        self.root_alpha = None
        self.warm = _Warm(opts.memory_mb * 2 ** 20 / 2)
        self.on_progress = None
        self.started = time.monotonic()
        self.last_report = self.started

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def run(self) -> Answer:
        if contradictory(self.problem, self.deadline):
            self.stats["closed_by_relaxation"] += 1
            return self.answer("unsat", "the formula is unsat with the network cut out (every "
                               "named value free within its sound bounds; z3)")
        found = self.root_attack(self.lo0, self.hi0)
        if found is not None:
            return found
        if self.opts.crown:
            found = self.crown_root()
            if found is not None:
                return found
        front = _Frontier(self.idx.size)
        front.push(np.zeros((1, self.idx.size), dtype=np.int8), np.zeros(1))
        while front.size:
            self.report(front)
            if self.out_of_time():
                return self.answer("timeout", f"time limit reached with {front.size} "
                                   "sub-problems open")
            if front.size > self.opts.max_queue:
                return self.answer("unknown", f"{front.size} sub-problems open, more than "
                                   f"max_queue={self.opts.max_queue}")
            found = self.step(*front.pop(self.batch), front)
            if found is not None:
                return found
        if self.undecided:
            return self.answer("unknown", f"{self.undecided} LP sub-problems could not be "
                               "decided")
        return self.answer("unsat", "every sub-problem closed")

    def crown_root(self):
        """alpha-CROWN at the root, first on the forward intervals (cheap: often enough), then,
        while the root stays open, with the intermediate bounds tightened by alpha-CROWN too
        (`Crown.tighten`: 10 steps per layer, then `root_iters` more from those bounds; later
        sub-problems use the result)."""
        self.crown = Crown(self.prep, self.lo0, self.hi0)
        n = self.opts.root_iters
        stages = [min(10, n), n] if n > 10 else [n]
        for iters in stages if n > 0 else []:
            if self.out_of_time():
                break
            root = np.zeros((1, self.idx.size), dtype=np.int8)
            closed = closed_and_critical(self.comp, self.bound_crown(root, [-1]).U)[0][0]
            self.stats["bounded"] += 1
            if closed:
                self.stats["closed_by_bounds"] += 1
                return self.answer("unsat", "every sub-problem closed")
            self.crown.tighten(iters, lambda: not self.out_of_time())
            self.root_alpha = None
        self.stats["root_unstable"] = sum(len(c) for c in self.crown.cols.values())
        return None

    def report(self, front, force: bool = False) -> None:
        """Progress, about once a second: to `on_progress`, or a line on stderr (`progress`),
        or the terminal's status line when `nnirc` enabled it (`nnir.progress`)."""
        now = time.monotonic()
        if not force and now - self.last_report < 1.0:
            return
        self.last_report = now
        if self.on_progress is None and not self.opts.progress and not progress.enabled():
            return
        s = self.stats
        closed = sum(v for k, v in s.items() if k.startswith("closed_"))
        info = {"open": int(front.size), "closed": int(closed), "bounded": int(s["bounded"]),
                "depth": int(s["max_depth"]), "best": front.top(),
                "elapsed": now - self.started}
        line = (f"bab: {info['open']} open, {info['closed']} closed, {info['bounded']} "
                f"bounded, depth {info['depth']}, worst open bound {info['best']:.4g}, "
                f"{info['elapsed']:.1f} s")
        if self.on_progress is not None:
            self.on_progress(info)
        elif self.opts.progress:
            print(line, file=sys.stderr, flush=True)
        else:
            progress.show(line, force=True)

    def bound_forward(self, fixed) -> _Batch:
        """Forward symbolic intervals under the splits, CROWN 0/1 slopes (`bounds.py`)."""
        B = len(fixed)
        lo = np.broadcast_to(self.lo0, (B, len(self.lo0)))
        hi = np.broadcast_to(self.hi0, (B, len(self.hi0)))
        U, empty, fb = bound_subproblems(self.prep, self.idx, self.comp.rows, lo, hi, fixed)

        def scores(keep, row):
            sub_fb = type(fb)(lo[keep], hi[keep], fb.mx[keep],
                              {n: v[keep] for n, v in fb.zlo.items()},
                              {n: v[keep] for n, v in fb.zhi.items()},
                              {n: v[keep] for n, v in fb.mag.items()},
                              {n: tuple(x[keep] for x in v) for n, v in fb.relax.items()}, {})
            return branch_scores(self.prep, self.idx, self.comp.rows, sub_fb, row, fixed[keep])
        return _Batch(U, empty, fb.zlo, fb.zhi, fb.unstable(), scores)

    def bound_crown(self, fixed, keys) -> _Batch:
        """alpha/beta-CROWN under the splits (`crown.py`), sound; alphas and betas start from
        the parent's (`keys` into `self.warm`), else from the root's alphas and zero betas."""
        cr, rows = self.crown, self.comp.rows
        B, R = len(fixed), len(rows.const)
        if self.opts.refine:
            sub, empty = cr.refine(fixed, self.idx.offset, stop=self.out_of_time)
        else:
            sub, empty = cr.sub(fixed, self.idx.offset), np.zeros(B, dtype=bool)
        root = self.root_alpha is None
        if root:
            alpha = cr.init_alpha(sub, R)
        else:
            alpha = {k: np.repeat(v, B, axis=0) for k, v in self.root_alpha.items()}
        beta = {n: np.zeros((B, R, sub.sign[n].shape[1])) for n, c in cr.cols.items() if len(c)}
        got = [(i, self.warm.take(k)) for i, k in enumerate(keys) if k >= 0]
        got = [(i, p) for i, p in got if p is not None]
        if got and alpha:
            cr.unpack(np.stack([p for _, p in got]), alpha, beta, np.array([i for i, _ in got]))
            self.stats["warm_started"] += len(got)
        iters = self.opts.root_final_iters if root else self.opts.crown_iters
        (alpha, beta), _ = cr.optimise(rows, sub, alpha, beta, iters, self.row_done,
                                       self.out_of_time)
        U, tr = cr.backward(rows, sub, alpha, beta, sound=True, trace=True)
        if root:
            self.root_alpha = alpha

        def scores(keep, row):
            return crown_branch_scores(cr, self.idx, sub.take(keep), tr, keep, row)
        return _Batch(U, empty, sub.zlo, sub.zhi, sub.free_unstable(), scores, (alpha, beta))

    def row_done(self, U: np.ndarray) -> np.ndarray:
        """(B, R): rows whose float bound already makes them certainly false, and every row
        of a sub-problem those close (no more optimisation needed there)."""
        false_row = np.where(self.strict, U <= 0, U < 0)
        return false_row | closed_and_critical(self.comp, U)[0][:, None]

    def step(self, fixed, keys, front):
        B = len(fixed)
        bb = (self.bound_crown(fixed, keys) if self.crown is not None
              else self.bound_forward(fixed))
        U, empty = bb.U, bb.empty
        closed, score, row = closed_and_critical(self.comp, U)
        self.stats["bounded"] += B
        self.stats["closed_empty"] += int(empty.sum())
        self.stats["closed_by_bounds"] += int((closed & ~empty).sum())
        self.stats["max_depth"] = max(self.stats["max_depth"], int((fixed != 0).sum(1).max()))
        keep = np.nonzero(~(closed | empty))[0]
        if not len(keep):
            return None
        if self.out_of_time():  # the bounds took the time left: stop here, dropping nothing
            return self.answer("timeout", f"time limit reached with {front.size + len(keep)} "
                               "sub-problems open")
        fixed, row, score = fixed[keep], row[keep], score[keep]
        zlo = {n: v[keep] for n, v in bb.zlo.items()}
        zhi = {n: v[keep] for n, v in bb.zhi.items()}
        bs, lx = bb.scores(keep, row)
        # the critical row's relaxation optimum, then a few gradient steps from it
        lk = np.broadcast_to(self.lo0, (len(keep), len(self.lo0)))
        hk = np.broadcast_to(self.hi0, (len(keep), len(self.hi0)))
        X = np.where(lx > 0, hk, lk)
        best, bm = attack.ascend(self.net, self.comp, lk, hk, X, self.opts.sub_steps)
        found = self.try_points(best, bm, "gradient search from a sub-problem's relaxation "
                                "optimum", limit=2)
        if found is not None:
            return found
        n_free = bb.n_free[keep]
        free = n_free > 0
        for i in np.nonzero(n_free <= self.opts.lp_unstable)[0]:
            # few unstable ReLUs left: a safe LP bound (triangle relaxation), then for an LP
            # leaf (none left) the exact solver
            if self.out_of_time():  # never drop a sub-problem: stop here
                return self.answer("timeout", f"time limit reached with {front.size + len(keep)}"
                                   " sub-problems open")
            zlo_i = self.prep.node_bounds({n: v[i] for n, v in zlo.items()})
            zhi_i = self.prep.node_bounds({n: v[i] for n, v in zhi.items()})
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
        if bb.params and self.opts.fsb > 1:
            alpha, beta = ({n: v[keep[s]] for n, v in P.items()} for P in bb.params)
            j = fsb_choice(self.crown, self.idx.offset, self.comp.rows, fixed[s], bs[s], row[s],
                           alpha, beta, self.opts.fsb)
        else:
            j = np.argmax(bs[s], axis=1)
        assert np.isfinite(bs[s][np.arange(len(s)), j]).all(), "split on a fixed or stable ReLU"
        left, right = fixed[s].copy(), fixed[s].copy()
        ar = np.arange(len(s))
        left[ar, j], right[ar, j] = 1, -1
        self.stats["splits"] += len(s)
        wk = None
        if bb.params and bb.params[0]:
            wk = self.warm.put(self.crown.pack(*bb.params, keep[s]))
            wk = np.concatenate([wk, wk])
        front.push(np.concatenate([left, right]), np.concatenate([score[s], score[s]]), wk)
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
        kind = ("alpha/beta-CROWN bounds" if self.opts.crown else "forward-interval bounds")
        if s["bounded"]:
            parts = [f"{s['bounded']} sub-problems bounded, {s['closed_by_bounds']} closed by "
                     f"sound float64 {kind}, {s['closed_empty']} empty"]
        if s["closed_by_safe_lp"]:
            parts.append(f"{s['closed_by_safe_lp']} LP sub-problems closed by a safe LP dual "
                         "bound (exact rationals)")
        parts += [f"{v} LP sub-problems closed exactly by {k}" for k, v in exact.items()]
        if s["undecided"]:
            parts.append(f"{s['undecided']} LP sub-problems undecided")
        msg = f"bab: {why}" + ("; " + ", ".join(parts) if parts else "")
        info = {k: int(v) for k, v in s.items()}
        if status == "unsat":
            msg += ("; no step rests on floating-point tolerances" + (
                " (alpha/beta are optimised in plain float64; every bound that closes a "
                "sub-problem is evaluated with rigorous rounding-error terms)"
                if self.opts.crown else ""))
            how = ", ".join([f"sound float64 {kind}"] + [f"exact {k}" for k in exact]
                            + (["safe LP dual bounds"] if s["closed_by_safe_lp"] else []))
            info["certified"] = f"exact (bab: every ReLU-split sub-problem closed by {how})"
            if s["closed_by_relaxation"]:
                info["certified"] = ("exact (z3, QF_LRA: the formula alone is unsat over the "
                                     "box and the sound bounds of the values it names)")
        return Answer(status, inputs, msg, info)
