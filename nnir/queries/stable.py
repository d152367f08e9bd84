"""`stable NET [using DATA]`: every stably active and stably inactive ReLU over the input domain
(box and input constraints), each verdict proven, and each observed instability replayed.

The pipeline (issue 4), cheapest first:

1. bound passes (IBP, symbolic, optionally LP with option `lp`): a neuron with `lo >= 0` is
   stably active, with `hi <= 0` stably inactive (sound, outward-rounded facts);
2. data (when `using DATA`): in-domain points, forward-evaluated in float64 to *pick* points, are
   then replayed in exact rational arithmetic; only exact `pre > 0` / `pre < 0` count as
   observed states. Data never make a neuron stable, only unstable;
3. solver, method `per-neuron` (Tjeng et al.'s baseline): for each neuron still undecided, the
   exact max (is the active state possible?) and/or min (the inactive state?) of its
   pre-activation through the backend's `solve_bound`. Every arg-optimum is replayed exactly
   and all the states it shows (in every layer) are marked observed, so later neurons need
   fewer solves.

Soundness of a stable verdict: it rests on a bound pass, on an exact backend's proven optimum
(z3, cvc5), or on HiGHS's dual bound widened by its safety margin -- and only when that bound is
at least `CLOSE` (1e-6) on the safe side of zero; a closer call is re-decided by an exact
backend when one is installed (option `confirm`, default on) or reported as undecided. The
result says, per neuron, on what the verdict rests (`how`).
"""
from __future__ import annotations

import time
from dataclasses import replace
from fractions import Fraction

import numpy as np

from nnir.errors import UnsupportedQuery
from nnir.ir.evaluate import evaluate, evaluate_batch, holds
from nnir.ir.nodes import Network, Program, Stable
from nnir.queries.result import Result

METHODS = ("per-neuron",)
CLOSE = Fraction(1, 10**6)  # an inexact bound this close to 0 needs an exact confirmation
MAX_REPLAYS = 2000  # data points replayed exactly, at most


class StableState:
    """What is known so far about the ReLUs of one network.

    `seen[layer]` is a (size, 2) bool array: column 0 the active state (pre > 0) was attained
    at an exactly replayed input, column 1 the inactive state (pre < 0). `stable[layer]` is
    +1 / -1 / 0 as in `Facts.stable`; `how[layer]` maps an index to what decided it.
    """

    def __init__(self, net: Network):
        self.net = net
        self.relus = [lay for lay in net.layers if lay.act == "relu"]
        self.seen = {lay.name: np.zeros((lay.size, 2), dtype=bool) for lay in self.relus}
        self.stable = {lay.name: np.zeros(lay.size, dtype=np.int8) for lay in self.relus}
        self.how: dict[str, dict[int, str]] = {lay.name: {} for lay in self.relus}
        self.undecided: dict[str, dict[int, str]] = {lay.name: {} for lay in self.relus}

    def decided(self, layer: str, i: int) -> bool:
        return bool(self.stable[layer][i] != 0 or self.seen[layer][i].all())

    def mark_point(self, x, how: str) -> int:
        """Replay input `x` (exact, in the domain) and mark every state it shows; returns how
        many neurons it made unstable."""
        vals = evaluate(self.net, x, exact=True)
        new = 0
        for lay in self.relus:
            pre = vals[lay.name + ".pre"]
            seen = self.seen[lay.name]
            for i, v in enumerate(pre):
                if self.stable[lay.name][i] != 0:
                    continue  # proven stable: a replayed point can never contradict that
                was = seen[i].all()
                if v > 0:
                    seen[i, 0] = True
                elif v < 0:
                    seen[i, 1] = True
                if not was and seen[i].all():
                    self.how[lay.name][i] = how
                    new += 1
        return new

    def set_stable(self, layer: str, i: int, sign: int, how: str) -> None:
        self.stable[layer][i] = sign
        self.how[layer][i] = how
        self.undecided[layer].pop(i, None)


def in_domain(net: Network, x) -> bool:
    """Is the exact input `x` in the box and does it meet the input constraints, exactly?"""
    inp = net.input
    if any(not a <= v <= b for v, a, b in zip(x, inp.lo.exact, inp.hi.exact)):
        return False
    return all(holds(a, {inp.name: np.array(x, dtype=object)}) for a in inp.constraints)


# ----------------------------------------------------------------------------- running
def run_stable(prog: Program, q: Stable, backend: str, timeout, options: dict) -> Result:
    """Answer a `stable` query.

    Args:
        prog: the program holding the network and dataset.
        q: the query.
        backend: a backend answering `bound` queries (`auto`: HiGHS, else an exact one).
        timeout: seconds for the whole query (None: no limit); neurons left when it runs out
            are reported as undecided.
        options: `method` (per-neuron), `lp` (add the LP bound pass), `confirm` (re-decide
            close HiGHS calls exactly, default True), backend options.
    Returns:
        A `sat` result with `info["stable"]`: per layer the indices stably active, stably
        inactive, unstable and undecided, and `how` each was decided.
    Raises:
        UnsupportedQuery: an unknown method or a backend that does not answer bound queries.
    """
    method = options.get("method") or "per-neuron"
    if method not in METHODS:
        raise UnsupportedQuery(f"unknown stable method '{method}'", q.span,
                               "methods: " + ", ".join(METHODS))
    start = time.perf_counter()
    deadline = None if timeout is None else time.monotonic() + timeout
    net0 = prog.network(q.net)
    net, st = _bound_passes(net0, options)
    counts = {"passes": time.perf_counter() - start}
    t = time.perf_counter()
    if q.data:
        from nnir.data import load_dataset

        data = load_dataset(prog.dataset(q.data), prog.base_dir)
        counts["data_points"] = _data_pass(st, data, int(options.get("max_replays", MAX_REPLAYS)))
    counts["data_s"] = time.perf_counter() - t
    t = time.perf_counter()
    name, notes = _per_neuron(st, backend, deadline, options)
    counts["solver_s"] = time.perf_counter() - t
    return _result(q, st, name, method, counts, notes)


def _bound_passes(net: Network, options: dict) -> tuple[Network, StableState]:
    """Run IBP, then the default pipeline, then (option `lp`) LP; credit each stable mark to
    the first pass that found it (each pass only tightens the one before)."""
    from nnir.passes.interval import IntervalBounds
    from nnir.passes.manager import PassManager, default_pipeline

    stages = [("ibp", PassManager([IntervalBounds()]).run(net))]
    stages.append(("symbolic", default_pipeline().run(net)))
    if options.get("lp"):
        from nnir.passes.lp import LpBounds

        stages.append(("lp", PassManager([LpBounds()]).run(stages[-1][1])))
    net = stages[-1][1]
    st = StableState(net)
    for lay in st.relus:
        for i, s in enumerate(net.facts.stable[lay.name]):
            if s != 0:
                by = next(n for n, m in stages if m.facts.stable[lay.name][i] == s)
                st.set_stable(lay.name, i, int(s), by)
    return net, st


def _data_pass(st: StableState, data, max_replays: int) -> int:
    """Mark the states shown by the data, every one replayed exactly. Returns points replayed.

    Float64 evaluation only chooses which points to replay: greedily the in-box point showing
    the most still-unseen states (by float sign), then the exact replay decides.
    """
    net = st.net
    X = np.asarray(data.X, dtype=np.float64)
    inp = net.input
    inbox = np.all((X >= inp.lo.f64) & (X <= inp.hi.f64), axis=1)  # a pre-filter only
    idx = np.flatnonzero(inbox)
    if len(idx) == 0:
        return 0
    vals = evaluate_batch(net, X[idx])
    signs = np.concatenate([np.stack([vals[lay.name + ".pre"] > 0, vals[lay.name + ".pre"] < 0],
                                     axis=2).reshape(len(idx), -1) for lay in st.relus], axis=1)
    exact = None
    tried = 0
    while tried < max_replays:
        seen = np.concatenate([st.seen[lay.name].reshape(-1) for lay in st.relus])
        stab = np.concatenate([np.repeat(st.stable[lay.name] != 0, 2) for lay in st.relus])
        want = ~seen & ~stab
        gain = (signs & want).sum(axis=1)
        k = int(np.argmax(gain))
        if gain[k] == 0:
            break
        if exact is None:
            exact = data.exact
        x = list(exact[idx[k]])
        signs[k] = False  # never pick this point again
        tried += 1
        if in_domain(net, x):
            st.mark_point(x, "data")
    return tried


def _per_neuron(st: StableState, backend: str, deadline, options: dict):
    """Decide every undecided neuron by exact max/min of its pre-activation (per neuron)."""
    from nnir.backends import registry

    notes = []
    exact_names = [n for n in registry.exact_backends()
                   if "bound" in registry.backend_class(n).kinds]
    name = backend
    if backend == "auto":
        milp, _ = registry.auto_plan("bound", 0)
        name = milp or exact_names[0]
    solver = registry.get_backend(name, **_backend_options(options))
    if "bound" not in solver.kinds:
        raise UnsupportedQuery(f"backend '{name}' does not answer bound queries", None,
                               "bound backends: " + ", ".join(registry.names_for("bound")))
    confirm = None
    if not solver.exact and options.get("confirm", True) and exact_names:
        confirm = registry.get_backend(exact_names[0], **_backend_options(options))
    tag = "exact-bound" if solver.exact else "milp"
    stats = {"solves": 0, "confirmed": 0}
    for k, lay in enumerate(st.net.layers):
        if lay.act != "relu":
            continue
        for i in range(lay.size):
            if st.decided(lay.name, i):
                continue
            if deadline is not None and time.monotonic() >= deadline:
                st.undecided[lay.name][i] = "time limit"
                continue
            problem = _problem(st.net, k, i)
            for sense, col, sign in (("max", 0, -1), ("min", 1, 1)):
                # max <= 0 proves inactive (sign -1); min >= 0 proves active (sign +1)
                if st.seen[lay.name][i, col] or st.stable[lay.name][i] != 0:
                    continue
                verdict = _side(st, problem, solver, sense, deadline, stats)
                if verdict == "close" and confirm is not None:
                    stats["confirmed"] += 1
                    verdict = _side(st, problem, confirm, sense, deadline, stats)
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
    notes.append(f"per-neuron: {stats['solves']} bound solves on '{name}'"
                 + (f", {stats['confirmed']} close calls re-decided by '{confirm.name}'"
                    if stats["confirmed"] else ""))
    if not solver.exact:
        notes.append(f"'{name}' verdicts rest on its dual bound widened by a safety margin and "
                     f"at least {float(CLOSE):g} from 0 (float tolerances, not an exact proof)")
    return name, notes


def _backend_options(options: dict) -> dict:
    return {k: v for k, v in options.items() if k not in ("method", "lp", "confirm",
                                                           "max_replays")}


def _problem(net: Network, k: int, i: int):
    from nnir.queries.bound import BoundProblem

    lay = net.layers[k]
    return BoundProblem(replace(net, layers=net.layers[:k + 1], output=lay.name,
                                facts=net.facts), lay.name, i, f"stable_{lay.name}_{i}")


def _side(st: StableState, problem, solver, sense: str, deadline, stats: dict) -> str:
    """One solve: "stable" (s * pre <= 0 proven), "observed" (s * pre > 0 replayed: the state
    is marked, with every other state the arg-optimum shows), "close", or why undecided."""
    from nnir.queries.bound import _replay

    left = None if deadline is None else max(0.01, deadline - time.monotonic())
    stats["solves"] += 1
    ans = solver.solve_bound(problem, timeout=left, senses=(sense,))
    d = _replay(problem, sense, ans.sides[sense], solver.exact)
    if d.status == "unsat":
        return "the input domain is empty"
    if d.status != "sat":
        return f"{solver.name}: {d.status} ({d.message})"
    if d.arg is not None:
        st.mark_point(d.arg, "exact-bound" if solver.exact else "milp")
    if d.lo > 0:
        return "observed"
    if d.hi <= 0 and (d.exact or solver.exact or d.how == "bound passes" or d.hi <= -CLOSE):
        return "stable"
    return "close"


# ----------------------------------------------------------------------------- reporting
def _result(q: Stable, st: StableState, name: str, method: str, counts: dict,
            notes: list[str]) -> Result:
    table = {}
    rows = [("layer", "neurons", "active", "inactive", "unstable", "undecided",
             "by data", "by bounds", "by solver")]
    for lay in st.relus:
        s, how = st.stable[lay.name], st.how[lay.name]
        unstable = [i for i in range(lay.size) if s[i] == 0 and st.seen[lay.name][i].all()]
        undecided = [i for i in range(lay.size) if s[i] == 0 and not st.seen[lay.name][i].all()]
        for i in undecided:
            st.undecided[lay.name].setdefault(i, "not decided")
        table[lay.name] = {
            "active": [int(i) for i in np.flatnonzero(s == 1)],
            "inactive": [int(i) for i in np.flatnonzero(s == -1)],
            "unstable": unstable, "undecided": undecided,
            "how": {int(i): h for i, h in sorted(how.items())},
            "why_undecided": {int(i): w for i, w in sorted(st.undecided[lay.name].items())},
        }
        by = list(how.values())
        rows.append((lay.name, str(lay.size), str(len(table[lay.name]["active"])),
                     str(len(table[lay.name]["inactive"])), str(len(unstable)),
                     str(len(undecided)), str(by.count("data")),
                     str(sum(h in ("ibp", "symbolic", "lp") for h in by)),
                     str(sum(h in ("milp", "exact-bound") for h in by))))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    text = "\n".join("  ".join(v.rjust(w) if c else v.ljust(w)
                               for c, (v, w) in enumerate(zip(r, widths))) for r in rows)
    res = Result(q.name, "stable", "sat", name, message=text, notes=notes, span=q.span)
    res.info = {"stable": table, "method": method,
                **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in counts.items()}}
    n_undecided = sum(len(t["undecided"]) for t in table.values())
    res.certified = ("stable verdicts proven by sound bound passes and "
                     + ("exact bounds" if name in ("z3", "cvc5") else
                        f"{name}'s margin-widened dual bounds (close calls exactly)")
                     + "; every unstable neuron shown by exactly replayed inputs"
                     + (f"; {n_undecided} neurons undecided" if n_undecided else ""))
    return res
