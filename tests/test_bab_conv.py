"""The branch-and-bound engines on convolutional networks (issue 14): chains of conv, gather,
slice and dense nodes. The engines keep a convolution as its sparse tap matrix
(`nnir.ir.conv.matrix`); their bounds must hold at exact points of every sub-problem, their
verdicts must agree with z3 on the equivalent dense network (each conv, gather and slice written
out as an exact dense matrix), and removing the rounding allowance must make a conv verdict
wrong (the mutation check)."""
import time
from fractions import Fraction

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import atoms_over, small, verify_programs
from test_bab import check_split_bounds
from test_bab_crown import _check

from nnir.backends.bab.bab_backend import BabBackend
from nnir.backends.bab.crown import Crown
from nnir.backends.bab.engine import Options, Search
from nnir.backends.split import forward
from nnir.backends.split.forward import prepare_network
from nnir.backends.split.props import compile_problem, supported
from nnir.backends.split.split_backend import SplitBackend
from nnir.ir import conv
from nnir.ir.const import Const
from nnir.ir.formula import nnf
from nnir.ir.nodes import Add, And, Conv, Dense, Gather, Input, Network, Program, Slice, Verify
from nnir.ir.verifier import verify_network
from nnir.passes.interval import input_box
from nnir.passes.manager import default_pipeline
from nnir.queries.problem import VerifyProblem
from nnir.queries.run import run_query

SMALL = {"attack_starts": 0, "sub_steps": 0}  # no attack: the bounds and leaves must decide

SEARCH_S = 60  # seconds for one engine search in the agreement tests


@st.composite
def conv_networks(draw, max_inputs: int = 18):
    """An input (C, H, W), one or two conv layers (kernel 1-3, stride 1-2, padding 0-1, relu),
    sometimes a gather (a reordering subset of the last conv's outputs) or a slice, a dense
    head of 1-2 outputs; small rational weights (so z3 stays quick on the dense equivalent)."""
    while True:
        C = draw(st.integers(1, 2))
        H, W = draw(st.integers(2, 4)), draw(st.integers(2, 4))
        if C * H * W <= max_inputs:
            break
    lo = [draw(st.integers(-2, 0)) for _ in range(C * H * W)]
    hi = [a + draw(st.integers(1, 2)) for a in lo]
    n = C * H * W
    layers, src, shape = [], "x", (C, H, W)
    for k in range(draw(st.integers(1, 2))):
        c, h, w = shape
        oc = draw(st.integers(1, 2))
        KH, KW = draw(st.integers(1, min(3, h))), draw(st.integers(1, min(3, w)))
        stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        pads = tuple(draw(st.integers(0, 1)) for _ in range(4))
        OH, OW = conv.output_hw((h, w), (KH, KW), stride, pads, (1, 1))
        if OH * OW * oc > 12 or OH < 1 or OW < 1:  # keep the ReLUs few for z3
            break
        wt = [[[[draw(small) for _ in range(KW)] for _ in range(KH)] for _ in range(c)]
              for _ in range(oc)]
        b = [draw(small) for _ in range(oc)]
        name = f"c{k + 1}"
        layers.append(Conv(name, oc * OH * OW, src, shape, (oc, OH, OW), Const.exact_of(wt),
                           Const.exact_of(b), stride, pads, (1, 1), 1, "relu"))
        src, shape = name, (oc, OH, OW)
    size = n if not layers else layers[-1].size
    pick = draw(st.sampled_from(["none", "gather", "slice"])) if layers else "none"
    if pick == "gather":
        idx = tuple(draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=size)))
        layers.append(Gather("g", len(idx), src, idx))
        src, size = "g", len(idx)
    elif pick == "slice":
        start = draw(st.integers(0, size - 1))
        k = draw(st.integers(1, size - start))
        layers.append(Slice("s", k, src, start))
        src, size = "s", k
    if draw(st.booleans()):
        m = draw(st.integers(1, 3))
        layers.append(Dense("h", m, src, Const.exact_of([[draw(small) for _ in range(size)]
                                                         for _ in range(m)]),
                            Const.exact_of([draw(small) for _ in range(m)]), "relu"))
        src, size = "h", m
    out = draw(st.integers(1, 2))
    layers.append(Dense("y", out, src, Const.exact_of([[draw(small) for _ in range(size)]
                                                       for _ in range(out)]),
                        Const.exact_of([draw(small) for _ in range(out)]), "linear"))
    net = Network("n", Input("x", n, Const.exact_of(lo), Const.exact_of(hi)), tuple(layers), "y")
    verify_network(net)
    return net


def dense_equivalent(net: Network) -> Network:
    """The same network with every conv, gather and slice node written as an exact dense
    layer."""
    layers = []
    for lay in net.layers:
        if lay.kind == "conv":
            indptr, cols, widx = conv.taps_of(lay)
            W = np.full((lay.size, net.size_of(lay.src)), Fraction(0), dtype=object)
            w = lay.weight.exact.reshape(-1)
            for r in range(lay.size):
                for j, k in zip(cols[indptr[r]:indptr[r + 1]], widx[indptr[r]:indptr[r + 1]]):
                    W[r, j] += w[k]
            lay = Dense(lay.name, lay.size, lay.src, Const.exact_of(W.tolist()),
                        Const.exact_of(list(conv.bias_vector(lay, exact=True))), lay.act)
        elif lay.kind in ("gather", "slice"):
            index = (lay.index if lay.kind == "gather"
                     else range(lay.start, lay.start + lay.size))
            W = [[Fraction(int(j == i)) for j in range(net.size_of(lay.src))] for i in index]
            lay = Dense(lay.name, lay.size, lay.src, Const.exact_of(W),
                        Const.exact_of([0] * lay.size), "linear")
        layers.append(lay)
    return Network(net.name, net.input, tuple(layers), net.output)


def _problem(net: Network, q: Verify) -> VerifyProblem:
    return VerifyProblem.from_query(q, default_pipeline().run(net))


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_bab_on_conv_agrees_with_z3_on_the_dense_equivalent(data):
    net = data.draw(conv_networks())
    search_agrees_with_z3(data, net, dense_equivalent(net))


def search_agrees_with_z3(data, net: Network, reference: Network) -> None:
    """bab's verdict on a drawn property of `net` is z3's on `reference` (the same function:
    `net` itself, or its dense equivalent), with CROWN and LP leaves drawn on or off."""
    q = data.draw(verify_programs(net)).queries[0]
    want = run_query(Program((reference,), (), (q,)), q, "z3", timeout=60)
    assert want.status in ("sat", "unsat")
    got = Search(_problem(net, q), Options(crown=data.draw(st.booleans()),
                                           lp_leaves=data.draw(st.booleans()), **SMALL),
                 time.monotonic() + SEARCH_S, "z3").run()
    # a search out of time says nothing (an exactly tight bound can keep sub-problems open);
    # a verdict must be z3's
    assume(got.status != "timeout")
    assert got.status == want.status, got.message
    if got.status == "sat":
        assert got.inputs is not None


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_crown_bounds_on_conv_contain_exact_values(data):
    """alpha/beta-CROWN on conv networks (sparse taps): the root's tightened bounds, refined
    and clamped sub-problem bounds and the row bounds hold at exact points
    (`test_bab_crown._check`)."""
    net = default_pipeline().run(data.draw(conv_networks(max_inputs=32)))
    nodes = [net.input.name] + [lay.name for lay in net.layers]
    atoms = [data.draw(atoms_over(net, nodes)) for _ in range(2)]
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    lo0, hi0 = input_box(net)
    pts = [[Fraction(float(v)) for v in lo0 + (hi0 - lo0) * rng.random(len(lo0))]
           for _ in range(3)]
    _check(net, atoms, data, rng, pts)


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_forward_intervals_on_conv_contain_exact_values(data):
    """The batched forward intervals under splits (`bounds.bound_subproblems`) on conv nets."""
    check_split_bounds(data.draw(conv_networks(max_inputs=32)), data, points=1)


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_sparse_layers_bound_like_dense_ones(data):
    """The sparse conv path and the dense equivalent give the same CROWN bounds (up to
    rounding): the tap matrices are the convolution."""
    net = default_pipeline().run(data.draw(conv_networks(max_inputs=32)))
    dense = default_pipeline().run(dense_equivalent(net))
    atoms = [data.draw(atoms_over(net)) for _ in range(2)]
    comp = compile_problem(VerifyProblem(net, (), nnf(And(tuple(atoms)))))
    lo0, hi0 = input_box(net)
    out = []
    for n in (net, dense):
        cr = Crown(prepare_network(n), lo0, hi0, root_iters=2)
        sub = cr.sub(np.zeros((1, 0), dtype=np.int8), {})
        out.append(cr.backward(comp.rows, sub, cr.init_alpha(sub, len(comp.rows.const)), {},
                               sound=True)[0])
    assert np.allclose(out[0], out[1], rtol=1e-9, atol=1e-9)


# 8.2 * 15 = 123 exactly, but float(8.2) * 15 rounds to 123 - 1 ulp: here through a 1x1 conv
def _ulp_conv() -> VerifyProblem:
    inp = Input("x", 2, Const.exact_of([15, 0]), Const.exact_of([15, 1]))
    c = Conv("c", 2, "x", (1, 1, 2), (1, 1, 2), Const.exact_of([[[[Fraction(41, 5)]]]]),
             Const.exact_of([0]), act="relu")
    y = Dense("y", 1, "c", Const.exact_of([[1, 0]]), Const.exact_of([0]), "linear")
    net = Network("u", inp, (c, y), "y")
    prop = Verify("q", "u", (), atoms_over_value("y", Fraction(123)))
    return _problem(net, prop)


def atoms_over_value(node: str, rhs: Fraction):
    from nnir.ir.nodes import Atom, Ref
    return Atom(((Ref(node, 0), Fraction(1)),), ">=", rhs)


def test_removing_the_rounding_allowance_makes_conv_wrong(monkeypatch):
    problem = _ulp_conv()
    opts = Options(lp_leaves=False, **SMALL)
    assert Search(problem, opts, None, "z3").run().status == "sat"
    from nnir.backends.bab import crown as crown_mod
    monkeypatch.setattr(forward, "_U", 0.0)
    monkeypatch.setattr(forward, "TINY", 0.0)
    monkeypatch.setattr(crown_mod, "TINY", 0.0)
    monkeypatch.setattr(np, "nextafter", lambda a, b: np.asarray(a, dtype=np.float64) + 0.0)
    assert Search(problem, opts, None, "z3").run().status == "unsat"  # wrong: caught


@settings(max_examples=6, deadline=None)
@given(st.data())
def test_attack_and_input_splitting_on_conv(data):
    """With the gradient search on (it back-propagates through the tap matrices) and with the
    split engine (input splitting, conv nets with few inputs), verdicts still agree with z3."""
    net = data.draw(conv_networks(max_inputs=8))
    prog = data.draw(verify_programs(net))
    q = prog.queries[0]
    want = run_query(Program((dense_equivalent(net),), (), (q,)), q, "z3", timeout=60)
    problem = _problem(net, q)
    for ans in (Search(problem, Options(attack_starts=16), None, "z3").run(),
                SplitBackend().solve_verify(problem), BabBackend().solve_verify(problem)):
        assert ans.status == want.status, ans.message


def test_residual_networks_are_taken():
    """An add node (a residual connection) makes a DAG: the engines take it through the exact
    chain form (`backends/split/chain.py`) and answer as z3 does (y = 2 x0 + 2 x1 <= 4)."""
    inp = Input("x", 2, Const.exact_of([0, 0]), Const.exact_of([1, 1]))
    h = Dense("h", 2, "x", Const.exact_of([[1, 0], [0, 1]]), Const.exact_of([0, 0]), "relu")
    a = Add("a", 2, ("h", "x"), "relu")
    y = Dense("y", 1, "a", Const.exact_of([[1, 1]]), Const.exact_of([0]), "linear")
    net = Network("r", inp, (h, a, y), "y")
    assert supported(net) is None
    for bound, want in ((Fraction(5), "unsat"), (Fraction(3), "sat")):
        q = Verify("q", "r", (), atoms_over_value("y", bound))
        ans = BabBackend(input_split=False).solve_verify(_problem(net, q))
        assert ans.status == want, ans.message
