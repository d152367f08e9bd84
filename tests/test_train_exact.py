"""Exact training (backends/train_exact/): fits replay exactly, impossible fits are refuted
by every backend, and the sign-normalised encoding agrees with the naive QF_NRA one."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import nnir
from nnir.backends.registry import get_backend
from nnir.backends.train_exact import solve_train_exact
from nnir.backends.train_exact.cegis import box_violations
from nnir.backends.train_exact.normalise import signed_form, split
from nnir.data import sphere_planes
from nnir.ir.const import to_fraction
from nnir.ir.evaluate import evaluate
from nnir.queries.problem import TrainProblem
from nnir.queries.train import with_weights

BACKENDS = ("z3", "cvc5", "highs")
XOR = ([[0, 0], [1, 1], [1, 0], [0, 1]], [0, 0, 1, 1])


def one_hidden(d: int, h: int, box: str = "", out_box: str = "", classes: int = 2) -> str:
    return (f"net n {{ input x[{d}] in [-1, 1]\n"
            f"  relu h[{h}] = unknown{box} x + unknown{box}\n"
            f"  linear y[{classes}] = unknown{out_box} h + unknown{out_box} }}")


def problem(text: str, X, y, margin) -> TrainProblem:
    net = nnir.parse(text).networks[0]
    X = np.asarray(X, dtype=np.float64)
    Xe = np.empty(X.shape, dtype=object)
    Xe[:] = [[to_fraction(v) for v in row] for row in X]
    return TrainProblem(net, X, Xe, np.asarray(y, dtype=np.int64), Fraction(margin))


def assert_fits(p: TrainProblem, weights) -> None:
    """The trained network, built from the returned weights, fits every point exactly."""
    assert len(weights) == len(p.net.layers)
    assert box_violations(p.net, weights) == []
    net = with_weights(p.net, weights)
    for x, label in zip(p.X_exact, p.y):
        out = evaluate(net, list(x), exact=True)[net.output]
        for k, v in enumerate(out):
            if k != label:
                gap = out[label] - v
                assert gap >= p.margin and (p.margin > 0 or gap > 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fits_the_lune(backend):
    X, y = sphere_planes(n=40, dim=3, planes=2, rule="and", seed=1, min_gap=0.1)
    p = problem(one_hidden(3, 4), X, y, Fraction(1, 10))
    ans = get_backend(backend).solve_train(p, timeout=300)
    assert ans.status == "sat", ans.message
    assert ans.info["encoding"] == "signed"
    assert all(isinstance(v, Fraction) for W, b in ans.weights for row in W for v in row)
    assert_fits(p, ans.weights)


@pytest.mark.parametrize("backend", ["cvc5", "highs"])
def test_fits_the_lune_boxed_and_wider(backend):
    """Boxes hold on the returned (de-normalised) network; an asymmetric output box too."""
    X, y = sphere_planes(n=40, dim=3, planes=2, rule="and", seed=2, min_gap=0.1)
    p = problem(one_hidden(3, 6, " in [-1, 1]", " in [-1/2, 2]"), X, y, Fraction(1, 20))
    ans = solve_train_exact(p, backend, timeout=300)
    assert ans.status == "sat", ans.message
    assert_fits(p, ans.weights)


def circle_xor():
    X, y = sphere_planes(n=40, dim=2, planes=2, rule="xor", seed=0, min_gap=0.1)
    # One hidden unit makes the positive class a half-plane: one arc of the circle. The four
    # xor arcs alternate, so if each holds a point no arc can hold both positive ones only.
    arcs = {(bool(a), bool(b)) for a, b in (X @ _normals(0).T > 0)}
    assert len(arcs) == 4
    return X, y


def _normals(seed):
    rng = np.random.default_rng(seed)
    n = rng.normal(size=(2, 2))
    return n / np.linalg.norm(n, axis=1, keepdims=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["xor4", "circle"])
def test_one_unit_cannot_fit_xor(backend, case):
    """d = s relu(l(x)) + c: with l(00) + l(11) = l(10) + l(01), xor's labels contradict."""
    X, y = XOR if case == "xor4" else circle_xor()
    for margin in (0, Fraction(1, 10)):
        ans = get_backend(backend).solve_train(problem(one_hidden(2, 1), X, y, margin), 30)
        assert ans.status == "unsat", ans.message
        if backend == "highs":
            assert ans.info["exact"] is False and "tolerances" in ans.message


def test_two_units_fit_xor_and_naive_handles_depth():
    p = problem(one_hidden(2, 2), *XOR, 1)
    ans = solve_train_exact(p, "z3", 30)
    assert ans.status == "sat" and ans.info["signs"]
    assert_fits(p, ans.weights)
    deep = ("net n { input x[2] in [-1, 1]\n relu h[2] = unknown x + unknown\n"
            " relu g[2] = unknown h + unknown\n linear y[2] = unknown g + unknown }")
    p = problem(deep, *XOR, 1)
    ans = solve_train_exact(p, "z3", 30, {"encoding": "naive"})
    assert ans.status == "sat" and ans.info["encoding"] == "naive"
    assert_fits(p, ans.weights)


def test_fallbacks():
    three = problem(one_hidden(2, 3, classes=3), [[0, 0], [1, 0], [0, 1]], [0, 1, 2], 1)
    assert signed_form(three.net)[0] is None
    ans = solve_train_exact(three, "z3", 30)
    assert ans.status == "sat" and ans.info["encoding"] == "naive"
    assert_fits(three, ans.weights)
    assert solve_train_exact(three, "highs", 30).status == "error"
    # a hidden box without 0 has no normalised form; the naive encoding respects it
    p = problem(one_hidden(2, 2, " in [1, 2]"), *XOR, 0)
    assert signed_form(p.net)[0] is None
    ans = solve_train_exact(p, "z3", 30)
    assert ans.info["encoding"] == "naive"
    if ans.status == "sat":
        assert_fits(p, ans.weights)


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_output_bias_and_no_cegis(backend):
    """A known output bias is kept (it fixes the offset c); cegis=False solves on all points."""
    text = one_hidden(2, 2).replace("h + unknown", "h + [0, 1/2]")
    p = problem(text, *XOR, Fraction(1, 4))
    ans = solve_train_exact(p, backend, 30, {"cegis": False, "warm_start": "none"})
    assert ans.status == "sat", ans.message
    assert ans.weights[1][1] == [0, Fraction(1, 2)] and ans.info["rounds"] == 1
    assert_fits(p, ans.weights)


@pytest.mark.parametrize("lo,hi", [(None, None), (Fraction(-1), Fraction(2)),
                                   (None, Fraction(1)), (Fraction(0), None)])
def test_split_stays_in_box(lo, hi):
    for u in (Fraction(0), Fraction(3), Fraction(-3), Fraction(1, 3)):
        if lo is not None and hi is not None and abs(u) > hi - lo:
            continue
        a, b = split(u, lo, hi)
        assert a - b == u
        assert all((lo is None or v >= lo) and (hi is None or v <= hi) for v in (a, b))


points = st.lists(st.tuples(st.integers(-2, 2), st.integers(-2, 2)), min_size=4, max_size=6,
                  unique=True)


@settings(max_examples=15)
@example(XOR[0], XOR[1] + [0, 0], 1, 0, "")  # unsat: needs two units
@given(points, st.lists(st.integers(0, 1), min_size=6, max_size=6), st.integers(1, 2),
       st.sampled_from([0, 1]), st.sampled_from(["", " in [-1, 1]"]))
def test_normalisation_loses_no_solution(pts, labels, h, margin, box):
    """Sign-normalised QF_LRA and naive QF_NRA give the same verdict (z3), boxes included."""
    y = labels[:len(pts)]
    p = problem(one_hidden(2, h, box, box), pts, y, margin)
    norm = solve_train_exact(p, "z3", 5, {"encoding": "signed"})
    naive = solve_train_exact(p, "z3", 5, {"encoding": "naive"})
    if {norm.status, naive.status} & {"timeout", "unknown"}:
        return  # QF_NRA is hard even at this size on rare draws; nothing to compare
    assert norm.status == naive.status, (norm.message, naive.message)
    for ans in (norm, naive):
        if ans.status == "sat":
            assert_fits(p, ans.weights)


DEEP_3442 = ("net n { input x[3] in [-1, 1]\n relu h[4] = unknown x + unknown\n"
             " relu g[4] = unknown h + unknown\n linear y[2] = unknown g + unknown }")


@pytest.mark.parametrize("backend", BACKENDS)
def test_layerwise_trains_two_hidden_layers(backend):
    """auto picks layerwise for 3-4-4-2 (46 unknowns); the network fits exactly on replay."""
    X, y = sphere_planes(n=60, dim=3, planes=2, rule="and", seed=3, min_gap=0.05)
    p = problem(DEEP_3442, X, y, 0)
    ans = get_backend(backend).solve_train(p, timeout=300)
    assert ans.status == "sat", ans.message
    assert ans.info["encoding"] == "layerwise" and ans.info["sign_counts_tried"]
    assert ans.info["active_points"] <= 60 and ans.info["rounds"] >= 1
    assert_fits(p, ans.weights)


def test_layerwise_never_claims_unsat():
    """A tail that cannot fit (one unit per layer, xor) gives unknown, not unsat."""
    deep = ("net n { input x[2] in [-1, 1]\n relu h[1] = unknown x + unknown\n"
            " relu g[1] = unknown h + unknown\n linear y[2] = unknown g + unknown }")
    p = problem(deep, *XOR, 0)
    for warm in ("sgd", "random"):
        ans = solve_train_exact(p, "highs", 30, {"encoding": "layerwise", "warm": warm,
                                                 "restarts": 2, "warm_epochs": 50})
        assert ans.status == "unknown" and "cannot prove unsat" in ans.message, ans.message
        assert ans.info["encoding"] == "layerwise"


@pytest.mark.parametrize("backend", BACKENDS)
def test_encoding_option_is_honoured_and_reported(backend):
    p = problem(one_hidden(2, 2), *XOR, 1)
    signed = solve_train_exact(p, backend, 30, {"encoding": "signed", "warm_start": "none"})
    assert signed.status == "sat" and signed.info["encoding"] == "signed"
    assert signed.info["sign_counts_tried"][0] == 1 and "active_points" in signed.info
    naive = solve_train_exact(p, backend, 30, {"encoding": "naive"})
    if backend == "highs":
        assert naive.status == "error" and "no naive encoding" in naive.message
    else:
        assert naive.status == "sat" and naive.info["encoding"] == "naive"
        assert naive.info["rounds"] >= 1 and "sign_counts_tried" not in naive.info
        assert_fits(p, naive.weights)
    deep = problem(DEEP_3442, [[0, 0, 1], [1, 0, 0]], [0, 1], 0)
    wrong = solve_train_exact(deep, backend, 30, {"encoding": "signed"})
    assert wrong.status == "error" and "signed: 3 layers" in wrong.message
    bad = solve_train_exact(p, backend, 30, {"encoding": "quantum"})
    assert bad.status == "error" and "unknown train encoding" in bad.message


@pytest.mark.parametrize("backend", BACKENDS)
def test_warm_start_finds_and_never_proves(backend):
    """The sgd warm start answers in the find phase; an unsat comes from the full model only."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, size=(60, 2))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0.1).astype(int)
    p = problem(one_hidden(2, 4), [[Fraction(v).limit_denominator(1000) for v in x] for x in X],
                list(y), Fraction(1, 100))
    ans = solve_train_exact(p, backend, 30)
    assert ans.status == "sat" and ans.info["warm_start"] == "sgd", ans.message
    assert ans.info["phase"] == "find"
    assert_fits(p, ans.weights)
    xor = problem(one_hidden(2, 1), *XOR, 1)
    no = solve_train_exact(xor, backend, 30)
    assert no.status == "unsat" and no.info["phase"] == "prove"
    assert no.info["sign_counts_tried"] == [no.info["warm_k"]] + \
        [k for k in range(2) if k != no.info["warm_k"]]


tiny_points = st.lists(st.tuples(st.integers(-2, 2), st.integers(-2, 2)), min_size=4,
                       max_size=6, unique=True)


@settings(max_examples=10)
@example(XOR[0], XOR[1] + [0, 0], 1, 0)  # unsat: needs two units
@given(tiny_points, st.lists(st.integers(0, 1), min_size=6, max_size=6), st.integers(1, 2),
       st.sampled_from([0, 1]))
def test_backends_agree_on_tiny_architectures(pts, labels, h, margin):
    """z3, cvc5 and HiGHS give the same verdict on 2-1-2 / 2-2-2 (HiGHS within its box)."""
    p = problem(one_hidden(2, h), pts, labels[:len(pts)], margin)
    answers = {b: solve_train_exact(p, b, 10) for b in BACKENDS}
    verdicts = {b: a.status for b, a in answers.items()}
    if set(verdicts.values()) - {"sat", "unsat"}:
        return  # a timeout on a rare hard draw: nothing to compare
    assert len(set(verdicts.values())) == 1, verdicts
    for ans in answers.values():
        if ans.status == "sat":
            assert_fits(p, ans.weights)
