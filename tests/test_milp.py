"""MILP lowering, the HiGHS backend and the .lp/.mps writer: golden text, agreement, replay.

The golden file pins the format only (regenerate with NNIR_UPDATE_GOLDEN=1). Meaning is checked
against an exact oracle: z3 on the same problem built from the exact Fractions. HiGHS decides in
floating point, so a HiGHS witness may fail exact replay, and HiGHS may miss sat points, only
when the property is within about 1e-6 of its boundary (the backend's margin).
"""
from __future__ import annotations

import os
import time
from fractions import Fraction

import numpy as np
import pytest
import z3
from helpers import EXAMPLES, GOLDEN
from hypothesis import event, example, given
from hypothesis import strategies as st
from strategies import atoms_over, networks

import nnir.frontend
from nnir.backends.milp import to_milp, write_model
from nnir.backends.milp.highs_backend import HighsBackend, build_highs, milp_tolerances
from nnir.ir.const import Const
from nnir.ir.evaluate import evaluate, holds
from nnir.ir.formula import nnf
from nnir.ir.nodes import And, Atom, BoolConst, Dense, Input, Network, Or, Ref
from nnir.passes.manager import default_pipeline
from nnir.queries.problem import VerifyProblem

NEAR = 2e-6  # the backend's 1e-6 margin plus the solver's feasibility error


def tiny(query: str) -> VerifyProblem:
    prog = nnir.frontend.load(str(EXAMPLES / "tiny.nnir"))
    return VerifyProblem.from_query(prog.query(query), default_pipeline().run(prog.network("tiny")))


# ----------------------------------------------------------------------------- oracle
def z3_sat(problem: VerifyProblem, delta: Fraction = Fraction(0)) -> bool:
    """Exact satisfiability by z3; `delta` > 0 demands that much slack on every inequality."""
    net = problem.net
    s = z3.Solver()
    x = [z3.Real(f"x{i}") for i in range(net.input.size)]
    vals = {net.input.name: x}
    for xi, lo, hi in zip(x, net.input.lo.exact, net.input.hi.exact):
        s.add(xi >= z3.RealVal(lo), xi <= z3.RealVal(hi))
    for lay in net.layers:
        src = vals[lay.src]
        pre = [z3.Sum([z3.RealVal(w) * v for w, v in zip(row, src)]) + z3.RealVal(b)
               for row, b in zip(lay.weight.exact, lay.bias.exact)]
        vals[lay.name] = [z3.If(p > 0, p, 0) for p in pre] if lay.act == "relu" else pre

    def enc(f):
        if isinstance(f, BoolConst):
            return z3.BoolVal(f.value)
        if isinstance(f, (And, Or)):
            return (z3.And if isinstance(f, And) else z3.Or)([enc(a) for a in f.args])
        d = z3.Sum([z3.RealVal(c) * vals[r.node][r.index] for r, c in f.terms]) \
            - z3.RealVal(f.rhs)
        if f.rel == "==":
            return d == 0
        if delta:
            return d >= z3.RealVal(delta) if f.rel[0] == ">" else d <= -z3.RealVal(delta)
        return {"<=": d <= 0, "<": d < 0, ">=": d >= 0, ">": d > 0}[f.rel]

    s.add(*[enc(a) for a in problem.input_constraints], enc(problem.prop))
    return s.check() == z3.sat


def replays(problem: VerifyProblem, x, tol: float = 0.0) -> bool:
    """Exact replay of a float witness (tol > 0: the float check, loosened by tol)."""
    vals = evaluate(problem.net, [Fraction(v) for v in x], exact=True)
    if tol:
        vals = {k: np.array([float(v) for v in a]) for k, a in vals.items()}
    return all(holds(a, vals, tol) for a in problem.input_constraints) and \
        holds(problem.prop, vals, tol)


def solve_file(path: str) -> tuple[str, float]:
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.readModel(path)
    h.run()
    return h.modelStatusToString(h.getModelStatus()), h.getInfo().objective_function_value


# ----------------------------------------------------------------------------- tiny
def test_golden_lp(tmp_path):
    out = tmp_path / "reach.lp"
    write_model(to_milp(tiny("reach")), str(out), "lp")
    golden = GOLDEN / "milp_tiny_reach.lp"
    if os.environ.get("NNIR_UPDATE_GOLDEN"):
        golden.write_text(out.read_text())
    assert _lp_tokens(out.read_text()) == _lp_tokens(golden.read_text())


def _lp_tokens(text: str) -> list:
    """The LP file's tokens, numbers as floats rounded to 12 significant digits: HiGHS 1.15
    writes 15 significant digits, 1.16 writes 17; the golden file pins the format, not that."""
    out = []
    for tok in text.split():
        try:
            out.append(float(f"{float(tok):.12g}"))
        except ValueError:
            out.append(tok)
    return out


def test_tiny_answers():
    reach = HighsBackend().solve_verify(tiny("reach"))
    assert reach.status == "sat" and replays(tiny("reach"), reach.inputs)
    cap = HighsBackend().solve_verify(tiny("cap"))  # sup y = 0.5 exactly: decided by the slack
    assert cap.status == "unsat" and cap.info["exact"] is False
    assert cap.info["primal_feasibility_tolerance"] == 1e-9 and "tolerances" in cap.message
    relaxed = HighsBackend(strict="relax").solve_verify(tiny("cap"))  # y > 0.5 as y >= 0.5
    assert relaxed.status == "sat" and not replays(tiny("cap"), relaxed.inputs)
    assert any("relaxed to non-strict" in n for n in relaxed.info["notes"])


def test_margin_and_polish():
    assert milp_tolerances({"margin": 0})["margin"] == 0.0
    # unpolished, the witness may sit on the loosened boundary y = 0.4 - 1e-6
    for opts, margin in (({"polish": False}, None), ({"polish": False}, 0.0)):
        ans = HighsBackend(**opts).solve_verify(tiny("reach"), margin=margin)
        assert ans.status == "sat" and replays(tiny("reach"), ans.inputs, tol=NEAR)
    ans = HighsBackend().solve_verify(tiny("reach"))
    assert ans.info.get("polished") and ans.info["slack"] > 1e-6
    assert replays(tiny("reach"), ans.inputs)


def test_constant_properties():
    p = tiny("reach")
    assert HighsBackend().solve_verify(VerifyProblem(p.net, (), BoolConst(False))).status == "unsat"
    assert HighsBackend().solve_verify(VerifyProblem(p.net, (), BoolConst(True))).status == "sat"


def test_stable_neurons_get_no_binary():
    # h0 = x + 2 >= 1 (stably active), h1 = -x - 2 <= -1 (stably inactive), h2 = x (unstable)
    W, b = Const.exact_of([[1], [-1], [1]]), Const.exact_of([2, -2, 0])
    net = Network("s", Input("x", 1, Const.exact_of([-1]), Const.exact_of([1])),
                  (Dense("h", 3, "x", W, b, "relu"),
                   Dense("y", 1, "h", Const.exact_of([[1, 1, 1]]), Const.exact_of([0]), "linear")),
                  "y")
    net = default_pipeline().run(net)
    prop = Atom(((Ref("y", 0), Fraction(1)), (Ref("h", 1), Fraction(1))), ">=", Fraction(7, 2))
    model = to_milp(VerifyProblem(net, (), prop))
    assert model.num_integer == 1 and [v.name for v in model.vars if v.integer] == ["a_s_h_2"]
    assert "s_h_1" not in {v.name for v in model.vars}  # inactive: the constant 0
    ans = HighsBackend().solve_verify(VerifyProblem(net, (), prop))
    assert ans.status == "sat" and replays(VerifyProblem(net, (), prop), ans.inputs)


def test_lowering_is_fast():
    rng = np.random.default_rng(0)
    n, m = 800, 100
    net = Network("big", Input("x", n, Const.of_floats(np.zeros(n)), Const.of_floats(np.ones(n))),
                  (Dense("h", m, "x", Const.of_floats(rng.normal(size=(m, n))),
                         Const.of_floats(rng.normal(size=m)), "relu"),), "h")
    net = default_pipeline().run(net)
    start = time.perf_counter()
    model = to_milp(VerifyProblem(net, (), Atom(((Ref("h", 0), Fraction(1)),), ">", Fraction(1))))
    model.csr()
    assert time.perf_counter() - start < 0.5
    assert len(model.input_vars) == n


# ----------------------------------------------------------------------------- random
@st.composite
def problems(draw):
    net = draw(networks(max_depth=3, max_width=4))
    nodes = net.node_names()

    def formula(depth):
        if depth == 0 or draw(st.booleans()):
            return draw(atoms_over(net, nodes))
        args = tuple(formula(depth - 1) for _ in range(draw(st.integers(2, 3))))
        return draw(st.sampled_from([And, Or]))(args)

    where = tuple(draw(st.lists(atoms_over(net, [net.input.name]), max_size=1)))
    return VerifyProblem(default_pipeline().run(net), where, nnf(formula(2)))


def _unstable(net) -> int:
    return sum(int(np.sum(net.facts.stable[lay.name] == 0)) for lay in net.layers
               if lay.act == "relu")


@given(problems())
@example(tiny("cap"))
@example(tiny("reach"))
def test_highs_agrees_with_exact_oracle(tmp_path_factory, problem):
    ans = HighsBackend().solve_verify(problem)
    assert ans.status in ("sat", "unsat"), ans.message
    truth = z3_sat(problem)
    if ans.status == "sat":
        assert ans.inputs is not None and len(ans.inputs) == problem.net.input.size
        box = zip(ans.inputs, problem.net.input.lo.exact, problem.net.input.hi.exact)
        assert all(lo <= Fraction(v) <= hi for v, lo, hi in box)
        if replays(problem, ans.inputs):
            assert truth
            event("sat, replayed")
        else:  # only a near-boundary witness may fail exact replay
            assert replays(problem, ans.inputs, tol=NEAR)
            event(f"sat, near the boundary (truly {'sat' if truth else 'unsat'})")
    elif truth:  # HiGHS missed sat points: all of them must be near the boundary
        assert not z3_sat(problem, Fraction(1, 10**5))
        event("unsat, but sat near the boundary")
    else:
        event("unsat")

    # stable ReLUs get no binary: binaries are one per unstable ReLU plus disjunct selectors
    model = to_milp(problem, margin=1e-6, slack="all")
    assert sum(v.name.startswith("a_") for v in model.vars if v.integer) == _unstable(problem.net)
    assert all(v.name.startswith(("a_", "d_")) for v in model.vars if v.integer)

    # the .lp and .mps files say what the model says
    h = build_highs(model)
    h.run()
    want = h.modelStatusToString(h.getModelStatus()), h.getInfo().objective_function_value
    folder = tmp_path_factory.mktemp("milp")
    for fmt in ("lp", "mps"):
        path = str(folder / f"model.{fmt}")
        write_model(model, path, fmt)
        got = solve_file(path)
        assert got[0] == want[0]
        if want[0] == "Optimal":  # equal up to HiGHS's default MIP gaps (1e-6 abs, 1e-4 rel)
            # MPS has no OBJSENSE that GLPK and CBC read: a maximised objective is written
            # negated (and minimised), so HiGHS reports its negation
            sign = -1 if fmt == "mps" and model.sense == "max" else 1
            assert got[1] == pytest.approx(sign * want[1], abs=1e-5, rel=1e-3)


def test_time_limit_maps_to_timeout():
    rng = np.random.default_rng(1)
    n, m = 100, 60
    layers, src, width = [], "x", n
    for name, size, act in (("h", m, "relu"), ("g", m, "relu"), ("y", 1, "linear")):
        layers.append(Dense(name, size, src, Const.of_floats(rng.normal(size=(size, width))),
                            Const.of_floats(rng.normal(size=size)), act))
        src, width = name, size
    net = Network("m", Input("x", n, Const.of_floats(np.zeros(n)), Const.of_floats(np.ones(n))),
                  tuple(layers), "y")
    net = default_pipeline().run(net)
    rhs = Fraction(float(net.facts.hi["y"][0]) * 0.9)  # near the IBP bound: a hard query
    ans = HighsBackend().solve_verify(VerifyProblem(net, (), Atom(((Ref("y", 0), Fraction(1)),),
                                                                  ">=", rhs)), timeout=0.02)
    assert ans.status == "timeout" and "time limit" in ans.message
