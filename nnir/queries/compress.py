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
from dataclasses import replace
from fractions import Fraction

import numpy as np

from nnir.errors import NnirError
from nnir.ir.evaluate import evaluate
from nnir.ir.intexact import IntegerReplay
from nnir.ir.nodes import Compress, Network, Program
from nnir.passes.compress import LayerChange, compress_with_report
from nnir.passes.manager import default_pipeline
from nnir.queries.result import Result

N_SAMPLES = 200
MAX_CORNERS = 64
SEED = 0


def stable_sets(net: Network, data=None, timeout: float | None = None,
                options: dict | None = None) -> tuple[dict, str, list[str]]:
    """Proven stable sets of `net` by the stable analysis (bound passes, the data, ISA; see
    `nnir.queries.stable`), what they rest on, and its notes. A neuron it leaves undecided
    (time limit) counts as unstable, which only makes the compression smaller in effect."""
    from nnir.queries.stable import analyse

    opts = {"method": "isa", **(options or {})}
    st, name, _, notes = analyse(net, data, "auto", timeout, opts)
    hows = sorted({st.how[k][int(i)] for k, s in st.stable.items() for i in np.flatnonzero(s)})
    origin = f"the stable analysis ({', '.join(hows)})" if hows else \
        "the stable analysis (no neuron is stable)"
    return dict(st.stable), origin, notes


def domain_samples(net: Network, n: int = N_SAMPLES, seed: int = SEED) -> list[list[Fraction]]:
    """`n` seeded random rational points of the input box, plus its corners (at most
    `MAX_CORNERS`), the ones meeting the input constraints."""
    from nnir.ir.evaluate import holds

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


def exact_disagreements(f: Network, g: Network, points) -> list:
    """Points where the outputs of `f` and `g` differ in exact rational arithmetic."""
    def runner(net):
        if IntegerReplay.applies(net):  # the same exact values, in integer arithmetic
            return IntegerReplay(net).output
        return lambda x: evaluate(net, x, exact=True)[net.output]

    rf, rg = runner(f), runner(g)
    return [p for p in points if not np.all(rf(p) == rg(p))]


def data_points(net: Network, data, n: int) -> list[list[Fraction]]:
    """Up to `n` points of the dataset that lie in the domain (checked exactly), in order."""
    from nnir.queries.stable import in_domain

    out = []
    for i in range(len(data.X)):
        x = data.exact_row(i)
        if in_domain(net, x):
            out.append(x)
            if len(out) == n:
                break
    return out


def milp_max_difference(f: Network, g: Network, timeout: float | None = None) -> dict:
    """Max and min of each `f_k - g_k` over the domain by HiGHS, both networks in one model.

    Returns:
        {"max_abs": float or None, "per_output": [(min, max), ...], "status": text}; the
        numbers rest on HiGHS's float tolerances.
    """
    import highspy

    from nnir.backends.milp.highs_backend import _HIGHS_TOLS, build_highs, milp_tolerances
    from nnir.backends.milp.joint import lower_networks

    pipe = default_pipeline()
    f = pipe.run(f)
    g = pipe.run(replace(g, name=f.name + "__cmp"))  # distinct column names
    joint = lower_networks([f, g], "compress_check")  # g on f's input columns
    fv, gv = joint.vars[0][f.output], joint.vars[1][g.output]
    model = joint.model
    per, status = [], "optimal"
    # The verify backend's tight feasibility tolerances: with HiGHS's default 1e-6 integrality
    # tolerance a big-M ReLU may leak u * 1e-6, seen here as a spurious difference.
    opts = {k: v for k, v in milp_tolerances().items() if k in _HIGHS_TOLS}
    opts.update(mip_rel_gap=1e-9, mip_abs_gap=1e-9)
    if timeout is not None:
        opts["time_limit"] = float(timeout)
    for k in range(len(fv)):
        obj = {}
        if fv[k] >= 0:
            obj[int(fv[k])] = obj.get(int(fv[k]), 0.0) + 1.0
        if gv[k] >= 0:
            obj[int(gv[k])] = obj.get(int(gv[k]), 0.0) - 1.0
        ends = []
        for sense in ("min", "max"):
            if not obj:
                ends.append(0.0)
                continue
            model.objective, model.sense = obj, sense
            h = build_highs(model, opts)
            h.run()
            ms = h.getModelStatus()
            if ms != highspy.HighsModelStatus.kOptimal:
                status = h.modelStatusToString(ms)
                ends.append(None)
            else:
                ends.append(float(h.getInfo().objective_function_value))
        per.append(tuple(ends))
    vals = [abs(v) for e in per for v in e if v is not None]
    done = all(v is not None for e in per for v in e)
    return {"max_abs": max(vals, default=0.0) if done else None, "per_output": per,
            "status": status}


def run_compress(prog: Program, q: Compress, backend: str, timeout, options: dict) -> Result:
    """Answer a `compress` query: compress, check exactly on samples, then by MILP.

    Options: `samples` (default 200), `seed` (0), `milp_check` (default True).
    Returns:
        `sat` with `trained` = the compressed network and `info["compress"]` per-layer counts;
        `error` if the compressed network differs from the original anywhere it was checked.
    """
    import time

    net = prog.network(q.net)
    deadline = None if timeout is None else time.monotonic() + timeout
    data = None
    if q.data:
        from nnir.data import load_dataset

        data = load_dataset(prog.dataset(q.data), prog.base_dir)
    stable, origin, stable_notes = stable_sets(net, data, timeout, _stable_options(options))
    out_name = q.output or f"{q.net}_compressed"
    small, changes = compress_with_report(net, stable, out_name)
    n = int(options.get("samples", N_SAMPLES))
    pts = domain_samples(net, n, int(options.get("seed", SEED)))
    on_data = data_points(net, data, n) if data is not None else []
    bad = exact_disagreements(net, small, pts + on_data)
    res = Result(q.name, "compress", "sat", "highs" if options.get("milp_check", True) else None,
                 span=q.span)
    res.info["compress"] = {c.name: {"neurons_before": c.neurons_before,
                                     "neurons_after": c.neurons_after,
                                     "neurons_removed": c.neurons_removed,
                                     "connections_before": c.connections_before,
                                     "connections_after": c.connections_after,
                                     "connections_removed": c.connections_removed,
                                     "folded": c.folded} for c in changes}
    res.info["stable_from"] = origin
    res.info["exact_points"] = len(pts) + len(on_data)
    res.info["data_points"] = len(on_data)
    res.notes.extend(stable_notes)
    table = render_table(changes)
    if bad:
        res.status = "error"
        res.message = (f"BUG: the compressed network '{out_name}' differs from '{q.net}' at "
                       f"{len(bad)} of {len(pts) + len(on_data)} points in exact arithmetic, "
                       f"e.g. at "
                       f"{[str(v) for v in bad[0]]}\n" + table)
        return res
    res.trained = small
    res.certified = (f"stable sets proven by {origin}; compressed network equal to the "
                     f"original on {len(pts)} domain points"
                     + (f" and {len(on_data)} data points" if on_data else "")
                     + " in exact rational arithmetic")
    if options.get("milp_check", True):
        try:
            left = None if deadline is None else max(1.0, deadline - time.monotonic())
            chk = milp_max_difference(net, small, left)
            res.info["milp_max_abs_difference"] = chk["max_abs"]
            res.info["milp_status"] = chk["status"]
            if chk["max_abs"] is None:
                res.notes.append(f"MILP check incomplete (HiGHS: {chk['status']})")
            else:
                res.notes.append(f"MILP check: max |f - g| over the domain = "
                                 f"{chk['max_abs']:.3g} (HiGHS, float tolerances)")
        except (NnirError, ImportError) as exc:
            res.notes.append(f"MILP check skipped: {exc}")
    res.message = f"'{q.net}' -> '{out_name}'\n" + table
    return res


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


def _stable_options(options: dict) -> dict:
    """The options of a compress query that tune its stable analysis."""
    return {k: options[k] for k in ("method", "lp", "confirm", "theta", "eps", "threads",
                                    "joint_s")
            if k in options}
