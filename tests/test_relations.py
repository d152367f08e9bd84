"""Relation inference: shardings proven equal without a solver, corruptions caught and located."""
from dataclasses import replace
from fractions import Fraction

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import networks

import nnir
from nnir.ir.const import Const
from nnir.ir.nodes import Dense, Input, Network
from nnir.passes.compress import compress_network
from nnir.passes.interval import IntervalBounds
from nnir.passes.relations import infer
from nnir.passes.shard import BUGS, STYLES, shard_network
from nnir.queries.equiv import on_domain
from nnir.queries.equiv_solve import _smt, replay_difference
from nnir.queries.result import Result


def _stable(net):
    return IntervalBounds().run(net, None).facts.stable


def _infer(a, b, mapping=None):
    b = on_domain(b, a)
    return infer(a, b, mapping, _stable(a), _stable(b))


def _exact_verdict(a, b):
    """The exact solver's verdict (z3), with its counterexample replayed."""
    b = on_domain(b, a)
    res = _smt(Result("q", "equiv", "unknown"), a, b, list(range(a.output_size)), Fraction(0),
               "z3", None, {})
    assert res.status in ("differs", "equivalent"), res.message
    return res


def _pos_multiple(r, s) -> bool:
    nz = [k for k in range(len(s)) if s[k] != 0]
    if not nz or any(r[k] == 0 for k in nz) != 0 or any(r[k] != 0 and s[k] == 0
                                                       for k in range(len(s))):
        return False
    d = Fraction(r[nz[0]]) / Fraction(s[nz[0]])
    return d > 0 and all(Fraction(r[k]) == d * Fraction(s[k]) for k in range(len(s)))


@st.composite
def unstable_mlps(draw, max_depth=3):
    """Dense chains on [-1, 1]^n whose first layer has zero biases and pairwise
    non-proportional, nonzero rows: every first-layer neuron takes both signs."""
    n_in = draw(st.integers(2, 3))
    sizes = [n_in] + [draw(st.integers(2, 4)) for _ in range(draw(st.integers(1, max_depth)))]
    sizes.append(draw(st.integers(1, 2)))
    ints = st.integers(-4, 4)
    layers, src = [], "x"
    for k in range(len(sizes) - 1):
        W = [[draw(ints) for _ in range(sizes[k])] for _ in range(sizes[k + 1])]
        b = [0] * sizes[k + 1] if k == 0 else [draw(ints) for _ in range(sizes[k + 1])]
        if k == 0:
            rows = [tuple(r) for r in W]
            assume(all(any(r) for r in rows))
            assume(all(np.linalg.matrix_rank(np.array([r, s], dtype=float)) == 2
                       for i, r in enumerate(rows) for s in rows[i + 1:]))
        last = k == len(sizes) - 2
        name = "y" if last else f"h{k + 1}"
        layers.append(Dense(name, sizes[k + 1], src, Const.exact_of(W), Const.exact_of(b),
                            "linear" if last else "relu"))
        src = name
    inp = Input("x", n_in, Const.exact_of([-1] * n_in), Const.exact_of([1] * n_in))
    return Network("a", inp, tuple(layers), src)


@settings(max_examples=40, deadline=None)
@given(networks(max_depth=4), st.integers(2, 4),
       st.lists(st.sampled_from(STYLES), min_size=1, max_size=3))
def test_random_shardings_are_proven_equivalent_by_inference(net, ways, styles):
    tp = shard_network(net, ways, tuple(styles))
    res = _infer(net, tp)
    assert res.equivalent, res.stuck and res.stuck.describe(tp.name)
    assert res.chain[-1].startswith("output")


@settings(max_examples=25, deadline=None)
@given(unstable_mlps(), st.data())
def test_single_weight_corruptions_are_caught_and_located(a, data):
    styles = tuple(data.draw(st.lists(st.sampled_from(STYLES), min_size=1, max_size=2)))
    b = shard_network(a, data.draw(st.integers(2, 3)), styles, name="b")
    # Corrupt a dense layer of B that reads the input (a first-layer shard) or computes the
    # output: their rows are compared with A's directly, so the culprit must be named.
    first = [lay for lay in b.layers if isinstance(lay, Dense) and lay.src == "x"]
    last = [lay for lay in b.layers if isinstance(lay, Dense) and
            lay.name.startswith("y") and lay.act == "linear"]
    lay = data.draw(st.sampled_from(first + last))
    W = np.array(lay.weight.exact, dtype=object)
    i, j = data.draw(st.integers(0, W.shape[0] - 1)), data.draw(st.integers(0, W.shape[1] - 1))
    delta = data.draw(st.sampled_from([Fraction(1), Fraction(-1), Fraction(1, 2)]))
    assume(W[i, j] + delta != 0 or any(W[i, k] != 0 for k in range(W.shape[1]) if k != j))
    W[i, j] += delta
    if lay.src == "x":  # the new row must not be a positive multiple of another neuron's
        A1 = np.array(a.layers[0].weight.exact, dtype=object)
        assume(not any(_pos_multiple(W[i], r) for r in A1))
    bad = replace(b, layers=tuple(replace(x, weight=Const(exact=W)) if x.name == lay.name
                                  else x for x in b.layers))
    inf = _infer(a, bad)
    exact = _exact_verdict(a, bad)
    if inf.equivalent:  # sound: inference never proves a wrong equivalence
        assert exact.status == "equivalent"
        return
    assert inf.stuck.node == lay.name or lay.name in inf.stuck.via, \
        (lay.name, inf.stuck.describe("b"))
    if exact.status == "differs":  # the counterexample was replayed exactly in both
        assert exact.replay["exact"] and exact.info["max_difference"] > 0


@settings(max_examples=25, deadline=None)
@given(networks(max_depth=3, max_width=3), st.sampled_from(BUGS), st.integers(2, 3))
def test_inference_and_solver_agree_on_buggy_shardings(net, bug, ways):
    tp = shard_network(net, ways, ("gather", "megatron"), bug=bug)
    inf = _infer(net, tp)
    exact = _exact_verdict(net, tp)
    if inf.equivalent:
        assert exact.status == "equivalent"
    if exact.status == "differs":
        assert not inf.equivalent and inf.stuck is not None
        rep = replay_difference(net, on_domain(tp, net), range(net.output_size),
                                exact.witness["inputs_float"], Fraction(0))
        assert rep["diffs"] == [Fraction(d) for d in exact.info["differences"]] or rep["ok"]


def test_permutation_and_positive_scaling_are_relations():
    a = nnir.parse("""net a {
      input x[2] in [-1, 1]
      relu h[3] = [[1, -1], [0.5, 2], [-1, -1]] x + [0, 0.5, 0.25]
      linear y[1] = [[1, 2, -1]] h + [1]
    }""").network("a")
    # rows permuted (2, 0, 1) and scaled by (3, 1/2, 2); the readers undo the scales exactly
    b = nnir.parse("""net b {
      input x[2] in [-1, 1]
      relu g[3] = [[-3, -3], [0.5, -0.5], [1, 4]] x + [0.75, 0, 1]
      linear y[1] = [[-1/3, 2, 1]] g + [1]
    }""").network("b")
    res = _infer(a, b)
    assert res.equivalent, res.stuck.describe("b")
    assert "positively scaled" in res.chain[0]


def test_negative_scaling_is_not_a_relation():
    a = nnir.parse("net a { input x[1] in [-1, 1] relu h[1] = [[1]] x linear y[1] = [[1]] h }")
    b = nnir.parse("net b { input x[1] in [-1, 1] relu h[1] = [[-1]] x "
                   "linear y[1] = [[-1]] h }")
    res = _infer(a.network("a"), b.network("b"))
    assert not res.equivalent and res.stuck.node == "h"


def test_a_compressed_network_is_related_to_its_original():
    a = nnir.parse("""net a {
      input x[2] in [0, 1]
      relu h[3] = [[1, 1], [-1, -1], [1, 0]] x + [1, -3, 0.5]
      relu g[2] = [[1, -1, 2], [0.5, 1, -1]] h + [-1, 0]
      linear y[1] = [[1, -2]] g
    }""").network("a")
    small = compress_network(a, _stable(a), "small")
    assert sum(lay.size for lay in small.layers) < sum(lay.size for lay in a.layers)
    res = _infer(a, small)
    assert res.equivalent, res.stuck and res.stuck.describe("small")


def test_the_tensor_parallel_mlp_of_width_256_is_proven_fast():
    rng = np.random.default_rng(1)
    sizes = [16, 256, 256, 256, 256, 4]
    layers = [(rng.normal(size=(sizes[k + 1], sizes[k])), rng.normal(size=sizes[k + 1]),
               "relu" if k < len(sizes) - 2 else "linear") for k in range(len(sizes) - 1)]
    a = nnir.network("mlp", layers, lo=-1, hi=1)
    res = _infer(a, shard_network(a, 4))
    assert res.equivalent and res.seconds < 5
