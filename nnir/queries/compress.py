"""`compress NET [-> NAME] [using DATA]`: the exactly equivalent smaller network (LEO++), checked
twice: exact agreement on random domain samples, box corners and the in-domain points of DATA,
then max |f - g| over the domain by MILP.

The stable sets come from the stable analysis of `nnir.queries.stable` (bound passes, DATA when
given, then the ISA MILP with close calls confirmed exactly); they are proven, so the compression
is exact. Any exact disagreement is a bug and makes the result an `error`. The MILP check encodes
both networks over shared input columns (the big-M lowering of `backends/milp/lower.py`) and
maximises and minimises each output difference with HiGHS; its numbers rest on float tolerances
and are reported, not used as a proof.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import replace
from fractions import Fraction

import numpy as np

from nnir.backends.milp.equiv import difference_ranges
from nnir.data import load_dataset
from nnir.deadline import Deadline
from nnir.errors import NnirError
from nnir.ir.evaluate import evaluate, holds
from nnir.ir.intexact import IntegerReplay
from nnir.ir.nodes import Compress, Network, Program
from nnir.options import names, parse
from nnir.passes.compress import LayerChange, compress_with_report
from nnir.passes.manager import default_pipeline
from nnir.queries import status as st
from nnir.queries.equiv import on_domain
from nnir.queries.equiv_search import SearchOptions, search_equiv
from nnir.queries.options import CompressOptions, StableOptions
from nnir.queries.result import Result
from nnir.queries.stable import analyse
from nnir.queries.stable_state import in_domain

N_SAMPLES = CompressOptions.samples
MAX_CORNERS = 64
SEED = CompressOptions.seed
MILP_GAP = 1e-7  # absolute gap at which a check solve stops (the optimum is 0 up to tolerances)
MILP_CHECK_S = CompressOptions.milp_check_s  # seconds for the MILP check without a limit
STABLE_SHARE = 0.6  # of a time limit, at most this for the stable analysis (the checks follow)


def stable_sets(net: Network, data=None, timeout: float | None = None,
                options: dict | None = None) -> tuple[dict, str, list[str]]:
    """Proven stable sets of `net` by the stable analysis (bound passes, the data, ISA; see
    `nnir.queries.stable`), what they rest on, and its notes. A neuron it leaves undecided
    (time limit) counts as unstable, which only makes the compression smaller in effect."""
    opts = {"method": "isa", **(options or {})}
    st, name, _, notes = analyse(net, data, "auto", timeout, opts)
    hows = sorted({st.how[k][int(i)] for k, s in st.stable.items() for i in np.flatnonzero(s)})
    origin = f"the stable analysis ({', '.join(hows)})" if hows else \
        "the stable analysis (no neuron is stable)"
    return dict(st.stable), origin, notes


def domain_samples(net: Network, n: int = N_SAMPLES, seed: int = SEED) -> list[list[Fraction]]:
    """`n` seeded random rational points of the input box, plus its corners (at most
    `MAX_CORNERS`), the ones meeting the input constraints."""
    inp = net.input
    lo, hi = list(inp.lo.exact), list(inp.hi.exact)
    rng = np.random.default_rng(seed)
    pts = []
    for _ in range(n):
        t = rng.integers(0, 1025, size=inp.size)
        pts.append([a + (b - a) * Fraction(int(k), 1024) for a, b, k in zip(lo, hi, t)])
    for corner in itertools.islice(itertools.product(*zip(lo, hi)), MAX_CORNERS):
        pts.append(list(corner))
    return [p for p in pts if all(holds(c, {inp.name: p}) for c in inp.constraints)]


def exact_disagreements(f: Network, g: Network, points, deadline: float | None = None) -> list:
    """Points where the outputs of `f` and `g` differ in exact rational arithmetic (checked in
    order until `deadline`, a `time.monotonic()` value; see `exact_check`)."""
    return exact_check(f, g, points, deadline)[0]


def exact_check(f: Network, g: Network, points, deadline: float | None = None) -> tuple[list, int]:
    """(the points where `f` and `g` differ exactly, how many points were checked): all of
    them, or as many as fit before `deadline`; the first is always checked."""
    def runner(net):
        if IntegerReplay.applies(net):  # the same exact values, in integer arithmetic
            return IntegerReplay(net).output
        return lambda x: evaluate(net, x, exact=True)[net.output]

    rf, rg = runner(f), runner(g)
    bad, n = [], 0
    for p in points:
        if n and deadline is not None and time.monotonic() >= deadline:
            break
        n += 1
        if not np.all(rf(p) == rg(p)):
            bad.append(p)
    return bad, n


def data_points(net: Network, data, n: int) -> list[list[Fraction]]:
    """Up to `n` points of the dataset that lie in the domain (checked exactly), in order."""
    out = []
    for i in range(len(data.X)):
        x = data.exact_row(i)
        if in_domain(net, x):
            out.append(x)
            if len(out) == n:
                break
    return out


def milp_max_difference(f: Network, g: Network, timeout: float | None = None) -> dict:
    """Max and min of each `f_k - g_k` over the domain by HiGHS, both networks in one model
    (`backends/milp/equiv.py`, `difference_ranges`; the bound passes run here first).

    The `2 * outputs` solves share `timeout` (None: no limit): each gets the time left divided
    by the solves left, so a hard one cannot starve the others, and what an easy one leaves
    goes to the rest. A solve stopped by its share keeps HiGHS's dual bound, so the result can
    still bound |f - g| while naming the solves that did not finish.

    Args:
        f, g: the original and the compressed network (the same input domain).
        timeout: seconds for the passes and all solves together (None: no limit).
    Returns:
        {"max_abs": float or None (None unless every solve finished), "per_output":
        [(min, max), ...] (None where unfinished), "status": text, "unfinished": ["y[k] max",
        ...], "bound_abs": max |f_k - g_k| <= this by the dual bounds (None when a solve has
        none), "solves": n}; the numbers rest on HiGHS's float tolerances.
    """
    start = time.monotonic()
    pipe = default_pipeline()
    f = pipe.run(f)
    g = pipe.run(replace(g, name=f.name + "__cmp"))  # distinct column names
    left = None if timeout is None else timeout - (time.monotonic() - start)
    # The gap only decides when a solve may stop: f = g exactly, so the optimum is about 0 and
    # MILP_GAP above it is proof enough for a check that is reported, not relied on.
    return difference_ranges(f, g, left, gap=MILP_GAP)


def run_compress(prog: Program, q: Compress, backend: str, timeout, options: dict) -> Result:
    """Answer a `compress` query: compress, check exactly on samples, then by MILP.

    Options: `samples` (default 200), `seed` (0), `milp_check` (default True).
    Returns:
        `sat` with `trained` = the compressed network and `info["compress"]` per-layer counts;
        `error` if the compressed network differs from the original anywhere it was checked.
    """
    net = prog.network(q.net)
    deadline = Deadline.of(timeout)
    o = parse(CompressOptions, options)
    data = None
    if q.data:
        data = load_dataset(prog.dataset(q.data), prog.base_dir)
    # The stable analysis gets at most STABLE_SHARE of the limit: the exact check must follow
    # (neurons it leaves undecided count as unstable, which only compresses less).
    own = set(names(CompressOptions)) - set(names(StableOptions))  # the rest tunes the analysis
    stable, origin, stable_notes = stable_sets(net, data, deadline.share(STABLE_SHARE),
                                               {k: v for k, v in options.items() if k not in own})
    out_name = q.output or f"{q.net}_compressed"
    small, changes = compress_with_report(net, stable, out_name)
    changed = any(c.neurons_removed or c.connections_removed or c.folded for c in changes)
    res = Result(q.name, "compress", st.compress(changed),
                 "highs" if o.milp_check else None, span=q.span)
    res.info["compress"] = {c.name: {"neurons_before": c.neurons_before,
                                     "neurons_after": c.neurons_after,
                                     "neurons_removed": c.neurons_removed,
                                     "connections_before": c.connections_before,
                                     "connections_after": c.connections_after,
                                     "connections_removed": c.connections_removed,
                                     "folded": c.folded} for c in changes}
    res.info["stable_from"] = origin
    res.notes.extend(stable_notes)
    table = render_table(changes)
    res.trained = small
    res.message = f"'{q.net}' -> '{out_name}'\n" + table
    if not changed:
        # nothing removed or folded: the "compressed" network is the original, layer for layer
        res.info.update(exact_points=0, data_points=0, milp_max_abs_difference=0.0,
                        milp_status="not needed")
        res.certified = (f"nothing was removed or folded (stable sets from {origin}): the "
                         "network is unchanged, so no check is needed")
        res.notes.append("no neuron could be removed: the network is unchanged")
        return res
    n = o.samples
    pts = domain_samples(net, n, o.seed)
    on_data = data_points(net, data, n) if data is not None else []
    bad, checked = exact_check(net, small, pts + on_data, deadline.at)
    n_dom, n_data = min(checked, len(pts)), max(0, checked - len(pts))
    res.info["exact_points"] = checked
    res.info["data_points"] = n_data
    if bad:
        res.status, res.trained = "error", None
        res.message = (f"BUG: the compressed network '{out_name}' differs from '{q.net}' at "
                       f"{len(bad)} of {checked} points in exact arithmetic, e.g. at "
                       f"{[str(v) for v in bad[0]]}\n" + table)
        return res
    res.certified = (f"stable sets proven by {origin}; compressed network equal to the "
                     f"original on {n_dom} domain points"
                     + (f" and {n_data} data points" if n_data else "")
                     + " in exact rational arithmetic")
    if checked < len(pts) + len(on_data):
        res.notes.append(f"time limit: the exact check covered {checked} of "
                         f"{len(pts) + len(on_data)} points")
    proof = pool_proof(net, small, deadline)
    res.info["exact_equivalence"] = proof is not None
    if proof is not None:  # an exact proof on the whole domain: no MILP needed
        res.certified += f"; equal on the whole domain: {proof}"
        res.info["milp_status"] = "not needed"
        return res
    if o.milp_check:
        res.info["milp_status"] = "skipped"
        left = o.milp_check_s if not deadline.bounded else deadline.remaining()
        if left <= 0.1:
            res.notes.append("MILP check skipped: no time left")
            return res
        try:
            chk = milp_max_difference(net, small, left)
        except (NnirError, ImportError) as exc:
            res.notes.append(f"MILP check skipped: {exc}")
            return res
        res.info["milp_max_abs_difference"] = chk["max_abs"]
        res.info["milp_status"] = chk["status"]
        res.info["milp_unfinished"] = chk["unfinished"]
        res.info["milp_bound_abs"] = chk["bound_abs"]
        if chk["max_abs"] is not None:
            res.notes.append(f"MILP check: max |f - g| over the domain = "
                             f"{chk['max_abs']:.3g} (HiGHS, float tolerances)")
        else:
            why = "time limit" if deadline is not None else \
                f"its {left:g} s budget, option milp_check_s"
            un = chk["unfinished"]
            res.notes.append(
                f"MILP check incomplete ({why}; HiGHS: {chk['status']}): {len(un)} of "
                f"{chk['solves']} solves not finished ({', '.join(un[:6])}"
                f"{', ...' if len(un) > 6 else ''})"
                + (f"; their dual bounds give max |f - g| <= {chk['bound_abs']:.3g}"
                   if chk["bound_abs"] is not None else ""))
    return res


POOL_SHARE = 0.5  # of the time left, for the exact equivalence proof before the MILP check


def pool_proof(net: Network, small: Network, deadline: Deadline) -> str | None:
    """How `small` is proved equal to `net` on the whole domain in exact algebra, or None.

    The pool of shared neurons (`equiv_search`): both networks over one set of exact ReLU
    forms, the neurons the bound passes prove inactive on the domain set to 0; a compressed
    network only drops such neurons and folds stable ones, so the differences cancel. No
    input splitting after it (the MILP check follows when the algebra does not settle it).
    Needs no solver and rests on no tolerance.
    """
    pipe = default_pipeline()
    try:
        a, b = pipe.run(net), pipe.run(on_domain(small, net))
        out = search_equiv(a, b, list(range(net.output_size)), Fraction(0),
                           deadline.cap(deadline.share(POOL_SHARE)), SearchOptions(split=False))
    except NnirError:
        return None
    return out.how if out.status == "equivalent" else None


def render_table(changes: list[LayerChange]) -> str:
    """Per-layer neurons and connections before/after, with totals."""
    rows = [("layer", "neurons", "removed", "connections", "removed", "")]
    for c in changes:
        rows.append((c.name, f"{c.neurons_before}->{c.neurons_after}", str(c.neurons_removed),
                     f"{c.connections_before}->{c.connections_after}",
                     str(c.connections_removed), "folded" if c.folded else ""))
    nb, na = sum(c.neurons_before for c in changes), sum(c.neurons_after for c in changes)
    cb, ca = (sum(c.connections_before for c in changes),
              sum(c.connections_after for c in changes))
    rows.append(("total", f"{nb}->{na}", str(nb - na), f"{cb}->{ca}", str(cb - ca), ""))
    w = [max(len(r[i]) for r in rows) for i in range(6)]
    return "\n".join("  ".join(s.ljust(w[i]) for i, s in enumerate(r)).rstrip() for r in rows)


