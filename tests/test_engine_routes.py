"""The ReLU-split engine (`bab`) where a query needs an exact answer beyond SMT's reach: auto's
verify route on many inputs, bound's inexact HiGHS sides, and stable's HiGHS verdicts, each
re-decided exactly (issue 13, item 4)."""
from fractions import Fraction

import numpy as np
import pytest
from test_bound import TWO_LAYER  # z3's exact range of y[0] is known there

import nnir
from nnir.backends import registry
from nnir.frontend import parse as loads
from nnir.ir.const import parse_number
from nnir.ir.evaluate import evaluate
from nnir.queries import route as routing
from nnir.queries.run import run_query

HAVE_HIGHS = registry.backend_class("highs").available()



def test_plan_names_the_engine_per_kind():
    rng = np.random.default_rng(0)
    wide = nnir.network("w", [(rng.normal(size=(3, 12)), rng.normal(size=3), "relu"),
                              (rng.normal(size=(1, 3)), np.zeros(1), "linear")], lo=0, hi=1)
    narrow = nnir.network("s", [(rng.normal(size=(3, 2)), rng.normal(size=3), "relu"),
                                (rng.normal(size=(1, 3)), np.zeros(1), "linear")], lo=0, hi=1)

    class P:  # the plan reads only the problem's network
        def __init__(self, net):
            self.net = net

    assert routing.plan("verify", "auto", problem=P(wide)).pre == "bab"
    assert routing.plan("verify", "auto", problem=P(narrow)).pre == "split"
    if HAVE_HIGHS:
        assert routing.plan("verify", "highs", problem=P(wide)).after == "bab"
        assert routing.plan("bound", "auto").after == "bab"
        assert routing.plan("stable", "highs").after == "bab"
        assert routing.plan("bound", "auto", confirm=False).after is None


@pytest.mark.skipif(not HAVE_HIGHS, reason="needs HiGHS")
def test_bound_beyond_smt_is_re_decided_by_the_engine(monkeypatch):
    """With SMT out of reach (limit forced to -1 unstable ReLUs), HiGHS's inexact sides are
    re-decided by bab: the attained ends replay exactly and the proven ends hold z3's optimum."""
    monkeypatch.setattr(routing, "SMT_MAX_UNSTABLE", -1)
    prog = loads(TWO_LAYER + "bound n.y[0] as b\n")
    res = run_query(prog, prog.queries[0], "auto", timeout=120)
    assert res.status in ("optimal", "bounded"), res.render()
    assert "bab" in res.backend and "re-decided by 'bab'" in " ".join(res.notes)
    net = prog.network("n")
    exact = {"max": Fraction(109, 100), "min": Fraction(-13, 4)}  # z3's (test_bound.py)
    for sense in ("min", "max"):
        x = [parse_number(v) for v in res.bounds[f"arg{sense}"]]
        v = evaluate(net, x, exact=True)["y.pre"][0]
        assert v == parse_number(res.bounds[f"{sense}_exact"])
        lo, hi = res.bounds[f"{sense}_interval"]
        assert lo <= exact[sense] <= hi


def _isa_net():
    # found by search: HiGHS's ISA MILP proves some neurons stable that the bound passes do not
    rng = np.random.default_rng(4)
    return nnir.network("n", [(rng.normal(size=(6, 3)), rng.normal(size=6), "relu"),
                              (rng.normal(size=(6, 6)), rng.normal(size=6), "relu"),
                              (rng.normal(size=(1, 6)), np.zeros(1), "linear")], lo=-1, hi=1)


@pytest.mark.skipif(not HAVE_HIGHS, reason="needs HiGHS")
def test_stable_verdicts_of_highs_become_exact():
    prog = nnir.program(_isa_net(), queries="stable n as s")
    raw = nnir.solve(prog, "s", backend="highs", confirm=False, timeout=120)
    res = nnir.solve(prog, "s", backend="highs", timeout=120)
    hows_raw = [h for t in raw.info["stable"].values() for h in t["how"].values()]
    assert "isa" in hows_raw  # the case this test is about
    for k, t in res.info["stable"].items():
        assert t["active"] == raw.info["stable"][k]["active"]
        assert t["inactive"] == raw.info["stable"][k]["inactive"]
        stable = set(t["active"]) | set(t["inactive"])
        assert not any(h in ("isa", "milp") for i, h in t["how"].items() if int(i) in stable)
    assert any("re-decided exactly" in n for n in res.notes), res.notes
    assert not any("float tolerances" in n for n in res.notes), res.notes
    # every verdict the engine made exact: sampled points never contradict it
    net = prog.network("n")
    rng = np.random.default_rng(1)
    for x in rng.uniform(-1, 1, size=(200, 3)):
        vals = evaluate(net, [Fraction(float(v)) for v in x], exact=True)
        for k, t in res.info["stable"].items():
            for i in t["active"]:
                assert vals[k + ".pre"][i] >= 0
            for i in t["inactive"]:
                assert vals[k + ".pre"][i] <= 0
