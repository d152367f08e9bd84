"""`equiv` by input splitting: localise where two networks differ, or prove they never do.

For networks with few inputs whose difference hides in a small region of the box (a neuron
active only near a corner, a bug in its shard), random sampling misses the region and one
MILP or SMT formula over the whole box does not finish. Here the box is split instead:
1. the pool (`equiv_pool`): both networks over shared neurons, exactly; if the output
   differences cancel there, the networks are equal (exact algebra, no search);
2. for a batch of sub-boxes, sound float64 pre-activation bounds of every pool neuron (the split
   engine's symbolic intervals, `backends/split/forward.py`, on `equiv_pool.product_network`,
   whose last layer computes f_A - f_B) and sound upper bounds of +-(f_A[k] - f_B[map k])
   (back-substitution, `backsub.upper_bounds`);
3. a sub-box is closed when, with its stably inactive neurons set to 0, the differences cancel
   in exact algebra (`equiv_pool.equal_on`), or (tol > 0) when the sound bounds show every
   |difference| <= tol;
4. an open sub-box is sampled (its centre and random points, float64, on the product network);
   the point with the largest difference is replayed exactly in both networks
   (`equiv_solve.replay_difference`, integer arithmetic) and reported only if it differs;
5. the rest are split in two along the dimension the bounds' gap depends on most (the split
   engine's `choose_split`), the largest bound on |f_A - f_B| first; a sub-box split
   `max_depth` times is handed to an exact SMT solver (z3/cvc5) on that sub-box.
"equivalent" is claimed only when every sub-box was closed by (3) or an exact solver: exact.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np

from nnir.backends import registry
from nnir.backends.smtlib.equiv import solve_equiv_smt
from nnir.backends.split.backsub import Rows, upper_bounds
from nnir.backends.split.engine import choose_split
from nnir.backends.split.forward import forward_bounds, prepare_network
from nnir.deadline import Deadline
from nnir.errors import NnirError
from nnir.ir.const import Const
from nnir.ir.evaluate import evaluate_batch
from nnir.ir.nodes import Network
from nnir.passes.interval import input_box, round_down
from nnir.passes.manager import default_pipeline
from nnir.queries.equiv_pool import (
    MAX_WEIGHTS,
    SPLIT_MAX_WEIGHTS,
    Pool,
    TooLarge,
    build_pool,
    equal_on,
    inactive_by_facts,
    pool_weights,
    product_network,
)
from nnir.queries.equiv_replay import replay_difference

MAX_INPUTS = 8  # input splitting pays off on few inputs only
NOISE = 1e-9  # a float difference this small is not worth an exact replay (rounding)


@dataclass
class SearchOptions:
    batch: int = 256  # sub-boxes bounded together
    points: int = 8  # random points tried in each open sub-box (besides its centre)
    max_depth: int = 48  # a sub-box split this often goes to the exact solver
    handoff_timeout: float = 5.0  # seconds for each sub-box handed over
    max_failed_replays: int = 200
    seed: int = 0
    split: bool = True  # False: only the pool's exact algebra, no input splitting after it


@dataclass
class Outcome:
    """status: differs (rep: the exact replay), equivalent (exact), unknown or timeout."""

    status: str
    how: str
    rep: dict | None = None
    stats: dict = field(default_factory=dict)


def applies(a: Network, b: Network) -> str | None:
    """Why the search cannot take the pair (None: it can)."""
    if a.has_unknowns or b.has_unknowns:
        return "unknown weights"
    weights = pool_weights(a, b)
    if weights > MAX_WEIGHTS:
        return f"{weights} weights (the pool of shared neurons takes at most {MAX_WEIGHTS})"
    return None


class _Expired(Exception):
    pass


class _Frontier:
    """Sub-boxes waiting, highest score (a bound of max |f_A - f_B| on the parent) first."""

    def __init__(self, d: int):
        self.parts = [(np.empty((0, d)), np.empty((0, d)), np.empty(0, np.int64), np.empty(0))]
        self.size = 0

    def push(self, lo, hi, depth, score):
        if len(lo):
            self.parts.append((lo, hi, depth, score))
            self.size += len(lo)

    def pop(self, n: int):
        lo, hi, depth, score = (np.concatenate(x) for x in zip(*self.parts))
        order = np.argsort(-score, kind="stable")
        take, rest = order[:n], order[n:]
        self.parts = [(lo[rest], hi[rest], depth[rest], score[rest])]
        self.size = len(rest)
        return lo[take], hi[take], depth[take]


class Search:
    """One search on a pair (B already reads A's domain)."""

    def __init__(self, a: Network, b: Network, mapping, tol: Fraction, deadline: Deadline,
                 opts: SearchOptions | None = None):
        self.a, self.b, self.mapping, self.tol = a, b, list(mapping), Fraction(tol)
        self.deadline, self.opts = deadline, opts or SearchOptions()
        self.stats = {"boxes": 0, "closed_exact": 0, "closed_bounds": 0, "replays": 0,
                      "failed_replays": 0, "handed_off": 0, "undecided": 0, "max_depth": 0}
        self.rng = np.random.default_rng(self.opts.seed)
        self.memo: dict = {}

    def run(self) -> Outcome:
        start = time.perf_counter()
        def check():
            if self.deadline.expired():
                raise _Expired

        try:
            self.pool: Pool = build_pool(self.a, self.b, self.mapping, check)
        except TooLarge as exc:
            return Outcome("unknown", f"input splitting not tried: {exc}")
        except _Expired:
            return Outcome("timeout", "time limit reached while building the pool of neurons")
        self.stats["pool_neurons"] = len(self.pool.neurons)
        self.stats["pool_s"] = round(time.perf_counter() - start, 4)
        if equal_on(self.pool, frozenset(), self.tol):
            return Outcome("equivalent", "the output differences cancel over the pool of "
                           "shared neurons (exact algebra, no search)", stats=self.stats)
        # the neurons the bound passes prove inactive on the whole domain are 0 everywhere:
        # what a compressed network dropped, for one (exact algebra, any number of inputs)
        facts = {k: n.facts for k, n in (("A", self.a), ("B", self.b)) if n.facts is not None}
        dead = inactive_by_facts(self.pool, facts)
        if dead and equal_on(self.pool, dead, self.tol):
            return Outcome("equivalent", f"the output differences cancel over the pool of "
                           f"shared neurons once the {len(dead)} the bound passes prove "
                           "inactive on the whole domain are 0 (exact algebra, no search)",
                           stats=self.stats)
        if not self.opts.split:
            return Outcome("unknown", "the pool's algebra did not settle it (no input "
                           "splitting asked for)", stats=self.stats)
        if self.a.input.size > MAX_INPUTS:
            return Outcome("unknown", f"input splitting not tried: {self.a.input.size} inputs "
                           f"(it takes at most {MAX_INPUTS})", stats=self.stats)
        if pool_weights(self.a, self.b) > SPLIT_MAX_WEIGHTS:
            return Outcome("unknown", "input splitting not tried: more than "
                           f"{SPLIT_MAX_WEIGHTS} weights", stats=self.stats)
        self.net, self.neuron_at = product_network(self.pool, self.a.input.hi.exact)
        self.prep = prepare_network(self.net)
        n_out = len(self.mapping)
        coef = np.vstack([np.eye(n_out), -np.eye(n_out)])
        self.rows = Rows({self.net.output: coef}, np.zeros(2 * n_out))
        t = round_down(self.tol)
        self.tol_f = t if Fraction(t) <= self.tol else float(np.nextafter(t, -np.inf))
        out = self._loop()
        out.stats = dict(self.stats, search_s=round(time.perf_counter() - start, 4))
        return out

    def _loop(self) -> Outcome:
        lo0, hi0 = input_box(self.a)
        front = _Frontier(len(lo0))
        front.push(lo0[None], hi0[None], np.zeros(1, np.int64), np.zeros(1))
        while front.size:
            if self.deadline.expired():
                return Outcome("timeout", f"time limit reached with {front.size} sub-boxes "
                               "open")
            lo, hi, depth = front.pop(self.opts.batch)
            found = self._step(lo, hi, depth, front)
            if found is not None:
                return found
        if self.stats["undecided"]:
            return Outcome("unknown", f"{self.stats['undecided']} sub-boxes undecided")
        return Outcome("equivalent", self._proof())

    def _proof(self) -> str:
        s = self.stats
        parts = [f"{s['closed_exact']} by exact algebra over their stably inactive neurons"]
        if s["closed_bounds"]:
            parts.append(f"{s['closed_bounds']} by sound float64 bounds of |f_A - f_B| <= tol")
        if s["handed_off"]:
            parts.append(f"{s['handed_off']} by an exact SMT solver")
        return (f"input splitting: {s['boxes']} sub-boxes bounded, every leaf closed (" +
                ", ".join(parts) + "); no step rests on floating-point tolerances")

    def _step(self, lo, hi, depth, front):
        s = self.stats
        s["boxes"] += len(lo)
        s["max_depth"] = max(s["max_depth"], int(depth.max()))
        fb = forward_bounds(self.prep, lo, hi)
        U, smear = upper_bounds(self.prep, fb, self.rows)
        closed = np.all(U <= self.tol_f, axis=1) if self.tol > 0 else np.zeros(len(lo), bool)
        s["closed_bounds"] += int(closed.sum())
        for i in np.nonzero(~closed)[0]:
            if self._exact_closed(fb, i):
                closed[i] = True
                s["closed_exact"] += 1
        keep = np.nonzero(~closed)[0]
        if not len(keep):
            return None
        lo, hi, depth, U, smear = lo[keep], hi[keep], depth[keep], U[keep], smear[keep]
        found = self._sample(lo, hi)
        if found is not None:
            return found
        row = np.argmax(U, axis=1)
        dim, mid, can = choose_split(lo, hi, smear, row)
        deep = (depth >= self.opts.max_depth) | ~can
        for i in np.nonzero(deep)[0]:
            found = self._hand_off(lo[i], hi[i])
            if found is not None:
                return found
        sp = np.nonzero(~deep)[0]
        ar = np.arange(len(sp))
        left_hi, right_lo = hi[sp].copy(), lo[sp].copy()
        left_hi[ar, dim[sp]] = mid[sp]
        right_lo[ar, dim[sp]] = mid[sp]
        score = U[sp].max(axis=1)
        front.push(np.concatenate([lo[sp], right_lo]), np.concatenate([left_hi, hi[sp]]),
                   np.concatenate([depth[sp], depth[sp]]) + 1, np.concatenate([score, score]))
        return None

    def _exact_closed(self, fb, i: int) -> bool:
        inactive = []
        for lev, syms in enumerate(self.neuron_at):
            zhi = fb.zhi[f"p{lev + 1}"][i]
            inactive.extend(s for s, z in zip(syms, zhi) if s is not None and z <= 0)
        key = frozenset(inactive)
        if key not in self.memo:
            self.memo[key] = equal_on(self.pool, key, self.tol)
        return self.memo[key]

    def _sample(self, lo, hi):
        """Centres and random points of the open boxes on the product network; the largest
        differences are replayed exactly."""
        k = self.opts.points
        B, d = lo.shape
        X = np.concatenate([(lo + hi) / 2] + [lo + (hi - lo) * self.rng.random((B, d))
                                             for _ in range(k)])
        D = np.abs(evaluate_batch(self.net, X)[self.net.output]).max(axis=1)
        for j in np.argsort(-D)[:3]:
            if not D[j] > float(self.tol) + NOISE or \
                    self.stats["failed_replays"] >= self.opts.max_failed_replays:
                break
            found = self._replay(X[j].tolist(), "sampling a sub-box")
            if found is not None:
                return found
        return None

    def _replay(self, x, how: str):
        self.stats["replays"] += 1
        rep = replay_difference(self.a, self.b, self.mapping, x, self.tol, self.deadline)
        if rep is not None and rep["ok"]:
            return Outcome("differs", f"input splitting ({how}, {self.stats['boxes']} "
                           "sub-boxes bounded)", rep)
        self.stats["failed_replays"] += 1
        return None

    def _hand_off(self, lo, hi):
        """Decide one sub-box with an exact SMT solver (a sat answer is replayed)."""
        have = registry.exact_backends()
        name = "z3" if "z3" in have else next(iter(have), None)
        if name is None or self.deadline.expired():
            self.stats["undecided"] += 1
            return None
        sub_lo = [max(Fraction(float(v)), e) for v, e in zip(lo, self.a.input.lo.exact)]
        sub_hi = [min(Fraction(float(v)), e) for v, e in zip(hi, self.a.input.hi.exact)]
        if any(p > q for p, q in zip(sub_lo, sub_hi)):
            return None  # outside the exact box: nothing to decide
        self.stats["handed_off"] += 1
        box = {"lo": Const.exact_of(sub_lo), "hi": Const.exact_of(sub_hi)}
        pipe = default_pipeline()  # B's input already carries A's constraints (on_domain)
        a2 = pipe.run(replace(self.a, input=replace(self.a.input, **box), facts=None))
        b2 = pipe.run(replace(self.b, input=replace(self.b.input, **box), facts=None))
        left = self.deadline.cap(self.opts.handoff_timeout).left()
        try:
            found, names = solve_equiv_smt(name, a2, b2, self.mapping, self.tol, left)
        except NnirError:
            self.stats["undecided"] += 1
            return None
        if found.status == "sat":
            got = self._replay([found.values[n] for n in names], f"{name} on a sub-box")
            if got is not None:
                return got
        if found.status != "unsat":
            self.stats["undecided"] += 1
        return None


def search_equiv(a: Network, b: Network, mapping, tol: Fraction, deadline: Deadline,
                 opts: SearchOptions | None = None) -> Outcome:
    """Decide f_A = f_B (within tol) on A's box by input splitting (see the module doc); B
    must read A's domain (`equiv.on_domain`)."""
    return Search(a, b, mapping, tol, deadline, opts).run()
