"""`compress NET [-> NAME]`: the exactly equivalent smaller network (LEO++), checked twice: exact
agreement on random domain samples and box corners, then max |f - g| over the domain by MILP.

The stable sets come from `nnir.queries.stable` when it offers them (the stronger ISA query),
else from the facts of the default bound passes; either way they are sound, so the compression is
exact. Any exact disagreement is a bug and makes the result an `error`. The MILP check encodes
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
from nnir.ir.nodes import Compress, Network, Program
from nnir.passes.compress import LayerChange, compress_with_report
from nnir.passes.manager import default_pipeline
from nnir.queries.result import Result

N_SAMPLES = 200
MAX_CORNERS = 64
SEED = 0


def stable_sets(net: Network) -> tuple[dict, str]:
    """Proven stable sets of `net` and where they came from (the stable query, or bound passes)."""
    try:
        from nnir.queries import stable as stable_mod
    except ImportError:
        stable_mod = None
    for fn_name in ("stable_sets", "find_stable", "compute_stable"):
        fn = getattr(stable_mod, fn_name, None) if stable_mod is not None else None
        if fn is None:
            continue
        try:
            got = fn(net)
            sets = getattr(got, "stable", got)
            if isinstance(sets, dict) and all(
                    np.shape(sets.get(lay.name, np.zeros(lay.size))) == (lay.size,)
                    for lay in net.layers):
                return {k: np.asarray(v, dtype=np.int8) for k, v in sets.items()}, \
                    f"stable query ({fn_name})"
        except Exception:  # noqa: BLE001 - a colleague's module in flux: fall back to the passes
            pass
    facts = default_pipeline().run(net).facts
    return dict(facts.stable), "bound passes (ibp, symbolic)"


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
    return [p for p in points if not np.all(evaluate(f, p, exact=True)[f.output] ==
                                            evaluate(g, p, exact=True)[g.output])]


def milp_max_difference(f: Network, g: Network, timeout: float | None = None) -> dict:
    """Max and min of each `f_k - g_k` over the domain by HiGHS, both networks in one model.

    Returns:
        {"max_abs": float or None, "per_output": [(min, max), ...], "status": text}; the
        numbers rest on HiGHS's float tolerances.
    """
    import highspy

    from nnir.backends.milp.highs_backend import _HIGHS_TOLS, build_highs, milp_tolerances
    from nnir.backends.milp.lower import _Lowering
    from nnir.ir.nodes import BoolConst
    from nnir.queries.problem import VerifyProblem

    pipe = default_pipeline()
    f = pipe.run(f)
    g = pipe.run(replace(g, name=f.name + "__cmp"))  # distinct column names
    low = _Lowering(VerifyProblem(f, (), BoolConst(True), "compress_check"), 0.0, "none")
    low.inputs()
    for lay in f.layers:
        low.layer(lay, f.facts.lo[lay.name], f.facts.hi[lay.name], f.facts.stable[lay.name])
    fv = low.vars[f.output].copy()
    # Same input columns; g's layers get their own columns (names carry g's network name).
    low.net = g
    inp_cols = low.vars[f.input.name]
    low.vars = {g.input.name: inp_cols}
    for lay in g.layers:
        low.layer(lay, g.facts.lo[lay.name], g.facts.hi[lay.name], g.facts.stable[lay.name])
    gv = low.vars[g.output]
    model = low.m
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
    net = prog.network(q.net)
    stable, origin = stable_sets(net)
    out_name = q.output or f"{q.net}_compressed"
    small, changes = compress_with_report(net, stable, out_name)
    pts = domain_samples(net, int(options.get("samples", N_SAMPLES)),
                         int(options.get("seed", SEED)))
    bad = exact_disagreements(net, small, pts)
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
    res.info["exact_points"] = len(pts)
    table = render_table(changes)
    if bad:
        res.status = "error"
        res.message = (f"BUG: the compressed network '{out_name}' differs from '{q.net}' at "
                       f"{len(bad)} of {len(pts)} points in exact arithmetic, e.g. at "
                       f"{[str(v) for v in bad[0]]}\n" + table)
        return res
    res.trained = small
    res.certified = (f"stable sets proven by {origin}; compressed network equal to the "
                     f"original on {len(pts)} domain points in exact rational arithmetic")
    if options.get("milp_check", True):
        try:
            chk = milp_max_difference(net, small, timeout)
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
