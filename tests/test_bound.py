"""`bound` queries: exact ranges agree across HiGHS/z3/cvc5, arg-optima replay, bound passes
contain the exact range, and `nnirc run` answers them end to end."""
import json
import subprocess
import sys
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import networks

from nnir.backends import registry
from nnir.backends.smtlib.bound import simplest_between
from nnir.ir.const import parse_number
from nnir.ir.evaluate import evaluate
from nnir.ir.nodes import Bound, Program
from nnir.passes.interval import IntervalBounds
from nnir.passes.manager import PassManager
from nnir.passes.symbolic import SymbolicBounds
from nnir.queries.run import run_query

EXACT = [n for n in ("z3", "cvc5") if registry.backend_class(n).available()]
ALL = (["highs"] if registry.backend_class("highs").available() else []) + EXACT + ["bab"]

TWO_LAYER = """
net n {
  input x[2] in [-1, 1]
  where x[0] + x[1] <= 1.5
  relu   h[3] = [[1, 0.5], [0.3, 1], [1, 1]] x + [0, 0, -0.5]
  relu   g[2] = [[1, -1, 0.7], [0, 1, 1]] h + [0.1, -0.2]
  linear y[1] = [[1, -2]] g
}
"""


def _bound(net, layer, index, backend, method=None, **options):
    prog = Program(networks=(net,))
    return run_query(prog, Bound("b", net.name, layer, index, method), backend, timeout=120,
                     **options)


def _exact(res, sense):
    return parse_number(res.bounds[f"{sense}_exact"])


def _check_replay(net, layer, index, res):
    for sense in ("min", "max"):
        x = [parse_number(v) for v in res.bounds[f"arg{sense}"]]
        v = evaluate(net, x, exact=True)[layer + ".pre"][index]
        assert v == _exact(res, sense)
        lo, hi = res.bounds[f"{sense}_interval"]
        assert lo <= v <= hi


@pytest.mark.skipif(len(ALL) < 2, reason="needs two bound backends")
@settings(max_examples=20, deadline=None)
@given(st.data())
def test_exact_bounds_agree_across_backends(data):
    net = data.draw(networks(max_depth=3, max_width=3, max_inputs=2))
    k = data.draw(st.integers(0, len(net.layers) - 1))
    lay = net.layers[k]
    i = data.draw(st.integers(0, lay.size - 1))
    ibp = PassManager([IntervalBounds()]).run(net).facts
    sym = PassManager([IntervalBounds(), SymbolicBounds()]).run(net).facts
    got = {}
    for name in ALL:
        res = _bound(net, lay.name, i, name, confirm=False)
        assert res.status in ("optimal", "bounded"), (name, res.message)
        _check_replay(net, lay.name, i, res)
        got[name] = res
        for facts in (ibp, sym):  # the exact range lies within the passes' bounds
            assert Fraction(facts.lo[lay.name][i]) <= _exact(res, "min")
            assert _exact(res, "max") <= Fraction(facts.hi[lay.name][i])
    for sense in ("min", "max"):
        exact = [_exact(got[n], sense) for n in EXACT if got[n].bounds["exact_sides"][sense]]
        assert len(set(exact)) <= 1, (sense, exact)
        for n, res in got.items():  # every interval holds the exact value
            lo, hi = res.bounds[f"{sense}_interval"]
            for v in exact:
                assert lo <= v <= hi, (n, sense, lo, hi, v)
    if "z3" in got:
        assert got["z3"].bounds["exact"]


@pytest.mark.skipif(not EXACT or "highs" not in ALL, reason="needs HiGHS and an exact backend")
def test_auto_confirms_highs_exactly():
    from nnir.frontend import parse as loads

    prog = loads(TWO_LAYER + "bound n.y[0] as b\n")
    res = run_query(prog, prog.queries[0], "auto")
    assert res.status == "optimal" and res.bounds["exact"], res.render()
    assert _exact(res, "max") == Fraction(109, 100) and _exact(res, "min") == Fraction(-13, 4)
    assert "confirmed" in " ".join(res.notes)
    _check_replay(prog.network("n"), "y", 0, res)


@pytest.mark.parametrize("method,passes", [("ibp", [IntervalBounds()]),
                                           ("symbolic", [IntervalBounds(), SymbolicBounds()])])
def test_pass_methods_report_the_facts(method, passes):
    from nnir.frontend import parse as loads

    prog = loads(TWO_LAYER + f"bound n.g[0] as b method {method}\n")
    net = prog.network("n")
    facts = PassManager(passes).run(net).facts
    res = run_query(prog, prog.queries[0], "auto")
    assert res.status == "bounded" and res.backend == method
    assert res.bounds["min"] == facts.lo["g"][0] and res.bounds["max"] == facts.hi["g"][0]
    assert not res.bounds["exact"]
    # --method (an option) overrides the query's own method
    res2 = run_query(prog, prog.queries[0], "auto", method="ibp")
    assert res2.bounds["method"] == "ibp"


def test_unknown_method_is_an_error():
    from nnir.frontend import parse as loads

    prog = loads(TWO_LAYER + "bound n.g[0] as b method magic\n")
    res = run_query(prog, prog.queries[0], "auto")
    assert res.status == "error" and "unknown bound method" in res.message


def test_empty_domain_is_empty():
    from nnir.frontend import parse as loads

    prog = loads(TWO_LAYER.replace("<= 1.5", ">= 2.5") + "bound n.h[0] as b\n")
    for name in ALL:
        res = run_query(prog, prog.queries[0], name)
        assert res.status == "empty", (name, res.render())


def test_simplest_between():
    F = Fraction
    assert simplest_between(F(2, 7) - F(1, 10**6), F(2, 7) + F(1, 10**7)) == F(2, 7)
    assert simplest_between(F(-5, 2) - F(1, 10**6), F(-5, 2)) == F(-5, 2)
    assert simplest_between(F(13, 10), F(14, 10)) == F(4, 3)
    assert simplest_between(F(-1), F(1)) == 0


@pytest.mark.skipif(not EXACT, reason="needs an exact backend")
def test_cli_bound_exact(tmp_path):
    path = tmp_path / "b.nnir"
    path.write_text(TWO_LAYER + "bound n.h[0] as hb method exact\n")
    r = subprocess.run([sys.executable, "-m", "nnir", "run", str(path), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    (res,) = json.loads(r.stdout)["results"]
    assert res["kind"] == "bound" and res["status"] == "optimal"
    assert parse_number(res["bounds"]["max_exact"]) == Fraction(5, 4) and res["bounds"]["exact"]
    assert parse_number(res["bounds"]["min_exact"]) == Fraction(-3, 2)
    r = subprocess.run([sys.executable, "-m", "nnir", "bound", str(path), "--method", "ibp"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "max: <= " in r.stdout, r.stdout + r.stderr
