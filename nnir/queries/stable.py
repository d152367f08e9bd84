"""`stable NET [using DATA]`: every stably active and stably inactive ReLU over the input domain
(box and input constraints), each verdict proven, and each observed instability replayed.

The pipeline (issue 4), cheapest first:

1. bound passes (IBP, symbolic, and LP: option `lp`, default on for method `isa`): a neuron
   with `lo >= 0` is stably active, with `hi <= 0` stably inactive (sound, outward-rounded);
2. data (when `using DATA`): in-domain points, forward-evaluated in float64 to *pick* points, are
   then replayed in exact arithmetic; only exact `pre > 0` / `pre < 0` count as observed
   states. Data never make a neuron stable, only unstable; then the same for the inputs of a
   gradient search aimed at each open state (`stable_search.py`; not in the `full` baseline);
3. method `isa` (default; HiGHS): the single ISA MILP of Serra et al. (NeurIPS 2021) over the
   states not yet observed, as an interrupt-and-resolve loop (`backends/milp/isa.py`); every
   input it produces is replayed exactly, and states it proves unreachable (optimum 0, margin
   theta) are stable. The joint MILP gets `joint_s` seconds (default 10); the states it leaves
   are proved one at a time, layer by layer (`backends/milp/isa_each.py`). Close calls are left
   to step 4;
4. method `per-neuron` (Tjeng et al.'s baseline), and after ISA for its close calls: for each
   neuron still undecided, the exact max (is the active state possible?) and/or min of its
   pre-activation through the backend's `solve_bound`. Every arg-optimum is replayed exactly
   and all the states it shows (in every layer) are marked observed, unless option `full`
   (the benchmark's baseline: each neuron decided on its own).

Exact replay runs in integer arithmetic (`nnir/ir/intexact.py`). A conv layer's result also lists
its stable channels (`channels`: every position stably active, or every one stably inactive).

Soundness of a stable verdict: it rests on a bound pass, on an exact backend's proven optimum
(z3, cvc5), on HiGHS's dual bound widened by its safety margin and at least `CLOSE` (1e-6) on
the safe side of zero, or on HiGHS proving the ISA optimum 0 with the same margin; a closer call,
or an inexact answer replay cannot use, is re-decided by an exact backend when one is installed
(option `confirm`, default on) or reported as undecided. The result says, per neuron, on what the
verdict rests (`how`).
"""
from __future__ import annotations

import time

import numpy as np

from nnir.data import load_dataset
from nnir.deadline import Deadline
from nnir.errors import UnsupportedQuery
from nnir.ir.evaluate import evaluate_batch
from nnir.ir.nodes import Network, Program, Stable
from nnir.options import parse
from nnir.passes.interval import IntervalBounds, inner_box
from nnir.passes.lp import LpBounds
from nnir.passes.manager import PassManager, default_pipeline
from nnir.queries import stable_search
from nnir.queries.options import StableOptions
from nnir.queries.result import Result
from nnir.queries.stable_solve import ON_TOLERANCES, certify, inexact_left, isa, per_neuron
from nnir.queries.stable_state import StableState, in_domain
from nnir.queries.status import stable as stable_status

METHODS = ("isa", "per-neuron")
MAX_REPLAYS = 2000  # data points replayed exactly, at most


# ----------------------------------------------------------------------------- running
def run_stable(prog: Program, q: Stable, backend: str, timeout, options: dict) -> Result:
    """Answer a `stable` query.

    Args:
        prog: the program holding the network and dataset.
        q: the query.
        backend: a backend answering `bound` queries (`auto`: HiGHS, else an exact one).
        timeout: seconds for the whole query (None: no limit); neurons left when it runs out
            are reported as undecided.
        options: `method` (isa or per-neuron), `lp` (add the LP bound pass), `confirm`
            (re-decide close HiGHS calls exactly, default True), `full` (per-neuron without
            sharing arg-max points), `theta`/`eps` (ISA margins), backend options.
    Returns:
        A `sat` result with `info["stable"]`: per layer the indices stably active, stably
        inactive, unstable and undecided, and `how` each was decided.
    Raises:
        UnsupportedQuery: an unknown method or a backend that does not answer bound queries.
    """
    data = None
    if q.data:
        data = load_dataset(prog.dataset(q.data), prog.base_dir)
    try:
        st, name, counts, notes = analyse(prog.network(q.net), data, backend, timeout, options)
    except UnsupportedQuery as exc:
        raise UnsupportedQuery(exc.message, exc.span or q.span, exc.hint) from None
    return _result(q, st, name, parse(StableOptions, options).method or "isa", counts, notes)


def analyse(net: Network, data=None, backend: str = "auto", timeout: float | None = None,
            options: dict | None = None) -> tuple[StableState, str, dict, list[str]]:
    """The stable analysis behind `stable` (and `compress`): passes, data, ISA, per-neuron.

    Args:
        net: the network (no unknown weights).
        data: a loaded dataset (`nnir.data.LoadedData`) or None.
        backend, timeout, options: as for `run_stable`.
    Returns:
        (state with the proven stable marks, the solver backend's name, timing counts, notes).
    """
    options = options or {}
    o = parse(StableOptions, options)
    method = o.method or "isa"
    if method not in METHODS:
        raise UnsupportedQuery(f"unknown stable method '{method}'", None,
                               "methods: " + ", ".join(METHODS))
    start = time.perf_counter()
    deadline = Deadline.of(timeout)
    notes = []
    net, st = _bound_passes(net, bool(o.lp), deadline.at, notes)
    counts = {"passes": time.perf_counter() - start}
    st.show_progress("after the bound passes")
    t = time.perf_counter()
    if data is not None:
        counts["data_points"] = _data_pass(st, data, o.max_replays, deadline)
    counts["data_s"] = time.perf_counter() - t
    st.show_progress("after data")
    if (method == "isa" or not o.full) and not deadline.expired():
        # (the full baseline gets no search)
        t = time.perf_counter()
        counts["search_points"] = _search_pass(st, o.search_steps)
        counts["search_s"] = time.perf_counter() - t
        st.show_progress("after search")
    if o.lp is None and method == "isa" and not deadline.expired() and st.open_states():
        # LP tightening before the ISA MILP, only when states are left for it: its bounds
        # halved the MILP's proof time on 2x50 MNIST over an L-infinity ball (68 s -> 33 s)
        t = time.perf_counter()
        if _lp_pass(st, deadline.at):
            notes.append("the LP bound pass stopped at the time limit (its bounds so far kept)")
        counts["lp_s"] = time.perf_counter() - t
        st.show_progress("after LP bounds")
    t = time.perf_counter()

    if deadline.expired():
        notes.append("time limit reached before the solver steps")
    if method == "isa" and backend in ("auto", "highs"):
        notes += isa(st, deadline, options, counts)
    name, more = per_neuron(st, backend, deadline, options)
    notes += more
    notes += certify(st, backend, deadline, options)
    if not inexact_left(st):
        notes = [n for n in notes if not n.endswith(ON_TOLERANCES)]
    counts["solver_s"] = time.perf_counter() - t
    return st, name, counts, notes


def _bound_passes(net: Network, lp: bool = False, deadline=None,
                  notes: list | None = None) -> tuple[Network, StableState]:
    """Run IBP, then the default pipeline, then (option `lp`) LP, which stops at `deadline`
    keeping what it found; credit each stable mark to the first pass that found it (each pass
    only tightens the one before)."""
    stages = [("ibp", PassManager([IntervalBounds()]).run(net))]
    stages.append(("symbolic", default_pipeline().run(net)))
    if lp:
        lp = LpBounds(deadline=deadline)
        stages.append(("lp", PassManager([lp]).run(stages[-1][1])))
        if lp.stopped and notes is not None:
            notes.append("the LP bound pass stopped at the time limit (its bounds so far kept)")
    net = stages[-1][1]
    st = StableState(net)
    for lay in st.relus:
        for i, s in enumerate(net.facts.stable[lay.name]):
            if s != 0:
                by = next(n for n, m in stages if m.facts.stable[lay.name][i] == s)
                st.set_stable(lay.name, i, int(s), by)
    return net, st


def _lp_pass(st: StableState, deadline=None) -> bool:
    """Tighten the facts with the LP pass (sound bounds only, stopped at `deadline`); credit
    new stable marks to it. Returns whether it stopped at the deadline."""
    lp = LpBounds(deadline=deadline)
    st.net = PassManager([lp]).run(st.net)
    st.credit_facts("lp")
    return lp.stopped


def _search_pass(st: StableState, steps: int) -> int | None:
    """Replay, exactly, the inputs a gradient search finds for the open states
    (`stable_search.py`); returns how many were replayed (None: no search ran). They only ever
    show states."""
    states = st.open_states()
    if not states or steps <= 0 or not stable_search.applies(st.net):
        return None
    lo, hi = inner_box(st.net)
    if np.any(lo > hi):
        return None
    X = stable_search.search_inputs(st.net, states, lo, hi, steps)
    vals = evaluate_batch(st.net, X)
    replayed = 0
    for r, (layer, i, c) in enumerate(states):
        z = vals[layer + ".pre"][r, i]
        if st.seen[layer][i, c] or not (z > 0 if c == 0 else z < 0):
            continue  # already shown by an earlier replay, or not even by float
        replayed += st.mark_float_point(X[r], "search")
    return replayed


def _data_pass(st: StableState, data, max_replays: int, deadline=None) -> int:
    """Mark the states shown by the data, every one replayed exactly. Returns points replayed.

    Float64 evaluation only chooses which points to replay: greedily the in-box point showing
    the most still-unseen states (by float sign), then the exact replay decides.
    """
    net = st.net
    X = np.asarray(data.X, dtype=np.float64)
    inp = net.input
    inbox = np.all((X >= inp.lo.f64) & (X <= inp.hi.f64), axis=1)  # a pre-filter only
    idx = np.flatnonzero(inbox)
    if len(idx) == 0 or not st.relus:
        return 0
    vals = evaluate_batch(net, X[idx])
    signs = np.concatenate([np.stack([vals[lay.name + ".pre"] > 0, vals[lay.name + ".pre"] < 0],
                                     axis=2).reshape(len(idx), -1) for lay in st.relus], axis=1)
    tried = 0
    deadline = deadline or Deadline.none()
    while tried < max_replays and not (tried and deadline.expired()):
        seen = np.concatenate([st.seen[lay.name].reshape(-1) for lay in st.relus])
        stab = np.concatenate([np.repeat(st.stable[lay.name] != 0, 2) for lay in st.relus])
        want = ~seen & ~stab
        gain = (signs & want).sum(axis=1)
        k = int(np.argmax(gain))
        if gain[k] == 0:
            break
        x = data.exact_row(int(idx[k]))
        signs[k] = False  # never pick this point again
        tried += 1
        if in_domain(net, x):
            st.mark_point(x, "data")
    return tried


# ----------------------------------------------------------------------------- reporting
def stable_channels(lay, s: np.ndarray) -> dict:
    """A conv layer's channels whose every position is stably active / stably inactive (a
    channel of mixed stable states is in neither list)."""
    per = np.asarray(s).reshape(lay.out_shape[0], -1)
    return {"channels": int(lay.out_shape[0]),
            "active": [int(c) for c in np.flatnonzero(np.all(per == 1, axis=1))],
            "inactive": [int(c) for c in np.flatnonzero(np.all(per == -1, axis=1))]}


def _result(q: Stable, st: StableState, name: str, method: str, counts: dict,
            notes: list[str]) -> Result:
    table = {}
    rows = [("layer", "neurons", "active", "inactive", "unstable", "undecided",
             "by data", "by search", "by bounds", "by solver")]
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
        if lay.kind == "conv":
            table[lay.name]["channels"] = stable_channels(lay, s)
        by = list(how.values())
        rows.append((lay.name, str(lay.size), str(len(table[lay.name]["active"])),
                     str(len(table[lay.name]["inactive"])), str(len(unstable)),
                     str(len(undecided)), str(by.count("data")), str(by.count("search")),
                     str(sum(h in ("ibp", "symbolic", "lp") for h in by)),
                     str(sum(h in ("milp", "exact-bound", "isa") for h in by))))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    text = "\n".join("  ".join(v.rjust(w) if c else v.ljust(w)
                               for c, (v, w) in enumerate(zip(r, widths))) for r in rows)
    n_undecided = sum(len(t["undecided"]) for t in table.values())
    chans = {name: t["channels"] for name, t in table.items() if "channels" in t}
    if chans:
        text += "\nstable channels (every position stable): " + "; ".join(
            f"{name}: {len(c['active'])} active, {len(c['inactive'])} inactive of "
            f"{c['channels']}" for name, c in chans.items())
    res = Result(q.name, "stable", stable_status(n_undecided), name, message=text, notes=notes,
                 span=q.span)
    res.info = {"stable": table, "method": method,
                **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in counts.items()}}
    by = {h for t in table.values() for i, h in t["how"].items()
          if i in t["active"] or i in t["inactive"]}
    res.certified = ("stable verdicts proven by sound bound passes"
                     + (", the ISA MILP optimum (HiGHS, margin-widened)" if "isa" in by else "")
                     + (", HiGHS's margin-widened dual bounds" if "milp" in by else "")
                     + (", exact bounds" if "exact-bound" in by else "")
                     + "; every unstable neuron shown by exactly replayed inputs"
                     + (f"; {n_undecided} neurons undecided" if n_undecided else ""))
    return res
