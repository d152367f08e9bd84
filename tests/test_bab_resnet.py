"""Residual (DAG) networks in the bab/split engines through their exact chain form
(`backends/split/chain.py`): random small networks with add (relu and linear) and concat nodes,
skips from the input, dense and conv variants. The chain computes exactly the DAG's values, bab's
verdicts agree with z3 (which reads the DAG directly), alpha/beta-CROWN bounds on the chain
hold at exact points, and removing the rounding allowance makes a residual verdict wrong."""
from fractions import Fraction

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import atoms_over
from test_bab_conv import search_agrees_with_z3

import nnir
from nnir.backends.bab import crown as crown_mod
from nnir.backends.bab.bab_backend import BabBackend
from nnir.backends.bab.bounds import ReluIndex
from nnir.backends.bab.crown import Crown
from nnir.backends.bab.engine import Options, Search
from nnir.backends.split import forward
from nnir.backends.split.chain import is_chain, state_pre
from nnir.backends.split.forward import prepare_network
from nnir.backends.split.props import compile_problem, supported
from nnir.backends.split.split_backend import SplitBackend
from nnir.ir import conv
from nnir.ir.const import Const
from nnir.ir.evaluate import atom_value, evaluate
from nnir.ir.formula import nnf
from nnir.ir.nodes import Add, And, Concat, Conv, Dense, Input, Network, Program
from nnir.passes.interval import input_box
from nnir.passes.manager import default_pipeline
from nnir.queries.problem import VerifyProblem
from nnir.queries.run import run_query

SMALL = {"attack_starts": 0, "sub_steps": 0}  # no attack: the bounds and leaves must decide
quarter = st.builds(lambda n: Fraction(n, 4), st.integers(-6, 6))  # exact as floats
third = st.builds(lambda n, d: Fraction(n, d), st.integers(-6, 6), st.sampled_from([1, 3, 5]))



def _dense(draw, name, src, n, m, act, w):
    return Dense(name, m, src, Const.exact_of([[draw(w) for _ in range(n)] for _ in range(m)]),
                 Const.exact_of([draw(w) for _ in range(m)]), act)


@st.composite
def residual_networks(draw, weights=quarter):
    """A random DAG: dense nodes (relu or linear) and add nodes (relu or linear) over any two
    earlier values of one size (the input included: skips from the input), sometimes a concat,
    a dense linear head; at most about 10 ReLUs (z3 stays quick)."""
    n = draw(st.integers(1, 3))
    lo = [draw(st.integers(-2, 1)) for _ in range(n)]
    hi = [a + draw(st.integers(1, 2)) for a in lo]
    inp = Input("x", n, Const.exact_of(lo), Const.exact_of(hi))
    sizes = {"x": n}
    layers = []
    for k in range(draw(st.integers(2, 5))):
        name = f"h{k}"
        kind = draw(st.sampled_from(["dense", "add", "add", "concat"]))
        act = draw(st.sampled_from(["relu", "linear"]))
        pairs = [(a, b) for a in sizes for b in sizes if sizes[a] == sizes[b] and a != b]
        if kind == "add" and pairs:
            a, b = draw(st.sampled_from(pairs))
            layers.append(Add(name, sizes[a], (a, b), act))
        elif kind == "concat" and len(sizes) > 1 and sum(sizes.values()) <= 6:
            srcs = tuple(draw(st.lists(st.sampled_from(sorted(sizes)), min_size=2, max_size=2)))
            layers.append(Concat(name, sum(sizes[s] for s in srcs), srcs))
        else:
            src = draw(st.sampled_from(sorted(sizes)))
            m = draw(st.sampled_from(sorted({1, 2, sizes[src]})))
            layers.append(_dense(draw, name, src, sizes[src], m, act, weights))
        sizes[name] = layers[-1].size
    last = layers[-1].name
    layers.append(_dense(draw, "y", last, sizes[last], draw(st.integers(1, 2)), "linear",
                         weights))
    net = Network("r", inp, tuple(layers), "y")
    assume(not is_chain(net))
    return net


@st.composite
def residual_conv_networks(draw):
    """A ResNet block in small: conv relu, conv linear, add (relu) with the block's input or
    a 1x1 conv projection of it, a dense head."""
    C, H, W = draw(st.integers(1, 2)), draw(st.integers(2, 3)), draw(st.integers(2, 3))
    d = C * H * W
    lo = [draw(st.integers(-1, 0)) for _ in range(d)]
    inp = Input("x", d, Const.exact_of(lo), Const.exact_of([a + 1 for a in lo]))

    def cv(name, src, cin, cout, k, act):
        wt = [[[[draw(quarter) for _ in range(k)] for _ in range(k)] for _ in range(cin)]
              for _ in range(cout)]
        p = k // 2
        return Conv(name, cout * H * W, src, (cin, H, W), (cout, H, W), Const.exact_of(wt),
                    Const.exact_of([draw(quarter) for _ in range(cout)]), (1, 1), (p, p, p, p),
                    (1, 1), 1, act)

    oc = 1
    c1 = cv("c1", "x", C, oc, draw(st.sampled_from([1, 3])), "relu")
    c2 = cv("c2", "c1", oc, oc, draw(st.sampled_from([1, 3])), "linear")
    layers = [c1, c2]
    if C == oc and draw(st.booleans()):
        skip = "x"
    else:
        layers.append(cv("p", "x", C, oc, 1, "linear"))
        skip = "p"
    layers.append(Add("a", c2.size, ("c2", skip), draw(st.sampled_from(["relu", "linear"]))))
    layers.append(_dense(draw, "y", "a", c2.size, draw(st.integers(1, 2)), "linear", quarter))
    assert conv.output_hw((H, W), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1)) == (H, W)
    return Network("rc", inp, tuple(layers), "y")


def _points(net, rng, k):
    lo0, hi0 = input_box(net)
    for _ in range(k):
        yield [min(max(Fraction(float(v)), a), b) for v, a, b in
               zip(lo0 + (hi0 - lo0) * rng.random(len(lo0)), net.input.lo.exact,
                   net.input.hi.exact)]


def _chain_values(prep, x):
    """Run the chain itself in exact arithmetic on the floats it holds (weights exact here)."""
    h = [Fraction(v) for v in x]
    out = {}
    for lay in prep.layers:
        W = lay.W.tocsr()
        z = []
        for r in range(W.shape[0]):
            a, b = W.indptr[r], W.indptr[r + 1]
            z.append(sum((Fraction(float(w)) * h[c] for w, c in zip(W.data[a:b],
                                                                   W.indices[a:b])),
                         Fraction(float(lay.b[r]))))
        out[lay.name] = z
        h = [max(v, Fraction(0)) for v in z] if lay.act == "relu" else z
    return out


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_chain_computes_the_dags_values_exactly(data):
    net = data.draw(st.one_of(residual_networks(), residual_conv_networks()))
    prep = prepare_network(net)
    assert prep.chain and supported(net) is None
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    for x in _points(net, rng, 3):
        vals = evaluate(net, x, exact=True)
        got = _chain_values(prep, x)
        for lay in prep.chain:
            assert got[lay.name] == state_pre(lay, vals)  # every entry, carried ones too
            assert got[lay.name][:lay.size] == list(vals[lay.name + ".pre"])


def _problem(net, q):
    return VerifyProblem.from_query(q, default_pipeline().run(net))


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_bab_on_residual_networks_agrees_with_z3(data):
    net = data.draw(st.one_of(residual_networks(weights=third), residual_conv_networks()))
    search_agrees_with_z3(data, net, net)  # z3 reads add and concat nodes itself


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_crown_bounds_on_the_chain_contain_exact_values(data):
    """Root (tightened) bounds of every chain entry, and sound alpha/beta-CROWN row bounds under
    the split pattern of exact points (and coarser ones), for random and optimised alpha/beta."""
    net = default_pipeline().run(data.draw(st.one_of(residual_networks(weights=third),
                                                     residual_conv_networks())))
    nodes = [net.input.name] + [lay.name for lay in net.layers]
    atoms = [data.draw(atoms_over(net, nodes)) for _ in range(2)]
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    problem = VerifyProblem(net, (), nnf(And(tuple(atoms))))
    comp = compile_problem(problem)
    prep = prepare_network(net)
    rows = prep.pad_rows(comp.rows)
    idx = ReluIndex.of(prep)
    lo0, hi0 = input_box(net)
    cr = Crown(prep, lo0, hi0, root_iters=data.draw(st.integers(0, 8)))
    R = len(rows.const)
    width = {lay.name: len(lay.b) for lay in prep.layers}
    for x in _points(net, rng, 3):
        vals = evaluate(net, x, exact=True)
        pre = {lay.name: state_pre(lay, vals) for lay in prep.chain}
        for name, zs in pre.items():
            for i, v in enumerate(zs):
                assert Fraction(cr.zlo[name][i]) <= v <= Fraction(cr.zhi[name][i])
        pattern = np.concatenate([[1 if v >= 0 else -1 for v in pre[n]] for n in idx.names]
                                 or [np.zeros(0)]).astype(np.int8)
        keep = rng.random((3, idx.size)) < np.array([[1.0], [0.5], [0.0]])
        fixed = np.where(keep, pattern, 0).astype(np.int8)
        sub = cr.sub(fixed, idx.offset)
        alpha = {n: rng.random((3, R, width[n])) for n in cr.cols}
        beta = {n: rng.exponential(1.0, (3, R, width[n])) for n in cr.cols}
        if data.draw(st.booleans()):
            (alpha, beta), _ = cr.optimise(rows, sub, alpha, beta, 5)
        U, _ = cr.backward(rows, sub, alpha, beta, sound=True)
        for b in range(3):
            for r, (k, s) in enumerate(zip(comp.row_atom, comp.row_sign)):
                assert int(s) * atom_value(comp.atoms[k], vals) <= Fraction(U[b, r])


def test_carried_entries_are_stable_and_never_split():
    """A skip from an input box crossing 0 over a ReLU layer is carried as relu(x), relu(-x);
    ReLU outputs carried through a ReLU layer are stably active (root lower bound >= 0)."""
    text = ("net s { input x[2] in [-1, 1]\n relu h[2] = [[1, 2], [-1, 1]] x\n"
            " relu g[2] = [[1, -1], [1, 1]] h + [0.5, -0.5]\n add a = relu(g + h)\n"
            " add b = a + x\n linear y[1] = [[1, -1]] b }\nverify s: y[0] >= 2")
    prog = nnir.parse(text)
    net = default_pipeline().run(prog.network("s"))
    prep = prepare_network(net)
    forms = {lay.name: [(n, f) for n, f, _ in lay.parts] for lay in prep.chain}
    assert ("x", "pos") in forms["h"] and ("x", "neg") in forms["h"]
    assert ("h", "val") in forms["g"]
    for lay in prep.chain:
        if lay.act == "relu":
            assert (lay.lo[lay.size:] >= 0).all() or any(f != "val" for _, f, _ in lay.parts)
    q = prog.queries[0]
    want = run_query(Program((prog.network("s"),), (), (q,)), q, "z3", timeout=60)
    for ans in (Search(_problem(prog.network("s"), q), Options(**SMALL), None, "z3").run(),
                SplitBackend().solve_verify(_problem(prog.network("s"), q)),
                BabBackend(input_split=False).solve_verify(_problem(prog.network("s"), q))):
        assert ans.status == want.status, ans.message


# 8.2 * 15 = 123 exactly, but float(8.2) * 15 rounds to 123 - 1 ulp; the residual add reads it
# next to g = 0 (so the back-substituted coefficient on x stays float(8.2)), with x carried
# through the ReLU layer h and h through g.
ULP = ("net u { input x[1] in [15, 15]\n relu h[1] = [[8.2]] x\n relu g[1] = [[0]] x\n"
       " add a = relu(h + g)\n linear y[1] = [[1]] a }\nverify u: y[0] >= 123")


def test_removing_the_rounding_allowance_makes_a_residual_verdict_wrong(monkeypatch):
    prog = nnir.parse(ULP)
    q = prog.queries[0]
    problem = _problem(prog.network(q.net), q)
    assert prepare_network(problem.net).chain
    ok = Search(problem, Options(lp_leaves=False, **SMALL), None, "z3").run()
    assert ok.status == "sat", ok.message
    monkeypatch.setattr(forward, "_U", 0.0)
    monkeypatch.setattr(crown_mod, "TINY", 0.0)
    monkeypatch.setattr(np, "nextafter", lambda a, b: np.asarray(a, dtype=np.float64) + 0.0)
    bad = Search(problem, Options(lp_leaves=False, **SMALL), None, "z3")
    ans = bad.run()
    assert ans.status == "unsat" and bad.stats["closed_by_bounds"] >= 1  # caught


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_bound_queries_on_residual_networks(data):
    """`bound` on an add node's pre-activation: bab's interval holds z3's exact optimum and its
    arg-optimum replays exactly."""
    from nnir.ir.const import parse_number
    from nnir.ir.nodes import Bound

    net = data.draw(residual_networks(weights=third))
    adds = [lay for lay in net.layers if lay.kind == "add"]
    assume(adds)
    lay = data.draw(st.sampled_from(adds))
    i = data.draw(st.integers(0, lay.size - 1))
    prog = Program(networks=(net,))
    got = {b: run_query(prog, Bound("b", net.name, lay.name, i), b, timeout=60, confirm=False)
           for b in ("bab", "z3")}
    for sense in ("min", "max"):
        want = parse_number(got["z3"].bounds[f"{sense}_exact"])
        lo, hi = got["bab"].bounds[f"{sense}_interval"]
        assert lo <= want <= hi, (sense, got["bab"].message)
        x = [parse_number(v) for v in got["bab"].bounds[f"arg{sense}"]]
        v = evaluate(net, x, exact=True)[lay.name + ".pre"][i]
        assert lo <= v <= hi
