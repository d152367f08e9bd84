"""`equiv` on convolutional networks (issue 14): equal, channel-permuted and channel-sharded conv
layers are proved equivalent, also after an ONNX round trip of the sharded model; a changed
weight is found different with a replayed input."""
from __future__ import annotations

import numpy as np
import pytest

import nnir
from nnir.deadline import Deadline
from nnir.ir.const import Const
from nnir.ir.nodes import Concat, Conv, Dense, Equiv, Input, Network, Program
from nnir.passes.manager import default_pipeline
from nnir.queries.equiv import on_domain
from nnir.queries.equiv_search import search_equiv
from nnir.queries.run import run_query

C, H, W, CO = 2, 6, 6, 4
OH = OW = 3


def _conv(name, w, b):
    return Conv(name, w.shape[0] * OH * OW, "x", (C, H, W), (w.shape[0], OH, OW),
                Const.of_floats(w), Const.of_floats(b), (2, 2), (1, 1, 1, 1), (1, 1), 1, "relu")


def _nets(seed: int):
    rng = np.random.default_rng(seed)
    n = C * H * W
    inp = Input("x", n, Const.of_floats(np.zeros(n)), Const.of_floats(np.ones(n)))
    w1 = np.round(rng.normal(size=(CO, C, 3, 3)), 2)
    b1 = np.round(rng.normal(size=CO), 2)
    w2 = np.round(rng.normal(size=(3, CO * OH * OW)), 2)

    def head(w):
        return Dense("y", 3, "h", Const.of_floats(w), Const.zeros((3,)), "linear")

    a = Network("A", inp, (_conv("h", w1, b1), head(w2)), "y")
    perm = list(rng.permutation(CO))
    w2p = w2.reshape(3, CO, OH * OW)[:, perm].reshape(3, -1)
    p = Network("P", inp, (_conv("h", w1[perm], b1[perm]), head(w2p)), "y")
    s = Network("S", inp, (_conv("h0", w1[:2], b1[:2]), _conv("h1", w1[2:], b1[2:]),
                           Concat("h", CO * OH * OW, ("h0", "h1")), head(w2)), "y")
    wb = w2.copy()
    wb[int(rng.integers(3)), int(rng.integers(CO * OH * OW))] += 0.5
    bug = Network("Bug", inp, (_conv("h", w1, b1), head(wb)), "y")
    return a, p, s, bug


def _equiv(a, b, method="auto"):
    prog = Program(networks=(a, b), queries=(Equiv("q", a.name, b.name),))
    return run_query(prog, prog.queries[0], "auto", 60, method=method)


@pytest.mark.parametrize("seed", range(3))
def test_permuted_and_sharded_conv_layers_are_equivalent(seed):
    a, p, s, bug = _nets(seed)
    assert _equiv(a, p).status == "equivalent"
    assert _equiv(a, s).status == "equivalent"
    res = _equiv(a, bug)
    assert res.status == "differs"
    assert res.witness is not None  # replayed exactly before it is reported


@pytest.mark.parametrize("seed", range(2))
def test_input_splitting_search_on_conv_networks(seed):
    """`--method search` builds the pool of shared neurons through conv and concat nodes
    (exact forms over the kernel taps): the same verdicts, the bug replayed."""
    a, p, s, bug = _nets(seed)
    assert _equiv(a, p, "search").status == "equivalent"
    assert _equiv(a, s, "search").status == "equivalent"
    assert _equiv(a, bug, "search").status == "differs"


def test_sharded_conv_model_through_onnx(tmp_path):
    a, _, s, _ = _nets(7)
    path = str(tmp_path / "s.onnx")
    nnir.write_onnx(s, path)
    back = nnir.read_onnx(path, lo=0, hi=1)
    assert _equiv(a, back).status == "equivalent"


def test_pool_forms_through_conv_and_concat():
    """The pool's exact forms (`equiv_pool.build_pool`) of a conv network equal its exact
    evaluation at random points, and permuted/sharded copies cancel to zero differences."""
    from fractions import Fraction

    from nnir.ir.evaluate import evaluate
    from nnir.queries.equiv_pool import build_pool

    a, p, s, bug = _nets(5)
    for other in (p, s):
        pool = build_pool(a, other, [0, 1, 2])
        assert all(not terms and c == 0 for terms, c in pool.diffs)
    pool = build_pool(a, bug, [0, 1, 2])
    assert any(terms or c for terms, c in pool.diffs)
    rng = np.random.default_rng(0)
    for _ in range(3):  # the difference forms evaluate to the exact output differences
        x = [Fraction(int(v), 8) for v in rng.integers(0, 9, size=a.input.size)]
        va, vb = evaluate(a, x, exact=True), evaluate(bug, x, exact=True)
        vals = {i: x[i] for i in range(a.input.size)}
        for sym in sorted(pool.neurons):
            n = pool.neurons[sym]
            z = sum((vals[t] * c for t, c in n.terms), Fraction(n.const))
            vals[sym] = max(z, Fraction(0))  # the normal form is a positive multiple
        for k, (terms, c) in enumerate(pool.diffs):
            got = sum((vals[t] * v for t, v in terms.items()), c)
            assert got == va["y"][k] - vb["y"][k]


def test_compressed_network_proved_equal_by_the_pool_and_facts():
    """Beyond input splitting's 8 inputs: the neurons the bound passes prove inactive on the
    whole domain are 0 in the pool's algebra, so a network with them removed is proved
    equivalent exactly; a network missing a neuron that is not inactive is not."""
    from fractions import Fraction

    from nnir.ir.nodes import Compress

    rng = np.random.default_rng(11)
    n = C * H * W  # 72 inputs
    inp = Input("x", n, Const.of_floats(np.zeros(n)), Const.of_floats(np.full(n, 0.1)))
    w1 = np.round(rng.normal(size=(CO, C, 3, 3)), 2)
    b1 = np.array([-9.0, 0.5, -9.0, 0.4])  # channels 0 and 2 can never fire on the box
    w2 = np.round(rng.normal(size=(3, CO * OH * OW)), 2)
    a = Network("A", inp, (_conv("h", w1, b1), Dense("y", 3, "h", Const.of_floats(w2),
                                                      Const.zeros((3,)), "linear")), "y")
    prog = Program(networks=(a,), queries=(Compress("k", "A", "small"),))
    small = run_query(prog, prog.queries[0], "auto", 60).trained
    assert small is not None and small.layers[0].size < a.layers[0].size
    assert _equiv(a, small).status == "equivalent"  # (relation inference, on a net this small)
    # the pool on its own, as on cifar_base_kw where relation inference gives up
    pipe = default_pipeline()
    pa = pipe.run(a)

    def search(b):
        return search_equiv(pa, pipe.run(on_domain(b, a)), [0, 1, 2], Fraction(0),
                            Deadline.after(60))

    out = search(small)
    assert out.status == "equivalent" and "inactive on the whole domain" in out.how
    # dropping a live channel (1) instead is not equivalent, and the pool does not say so
    keep = [0, 2, 3]
    w2k = w2.reshape(3, CO, OH * OW)[:, keep].reshape(3, -1)
    bad = Network("Bad", inp, (_conv("h", w1[keep], b1[keep]),
                               Dense("y", 3, "h", Const.of_floats(w2k), Const.zeros((3,)),
                                     "linear")), "y")
    assert search(bad).status == "unknown"  # > 8 inputs: no splitting after the pool
    assert _equiv(a, bad).status == "differs"
