"""Exact compression by ReLU stability (LEO++): the compressed network equals the original."""
from fractions import Fraction

import numpy as np
from helpers import HAND_NET
from hypothesis import given, settings
from strategies import networks

from nnir.ir.const import Const
from nnir.ir.evaluate import evaluate
from nnir.ir.nodes import Compress, Dense, Input, Network, Program
from nnir.passes.compress import compress_network, compress_with_report
from nnir.passes.manager import default_pipeline
from nnir.queries.compress import domain_samples, milp_max_difference, run_compress


def _same(f, g, points):
    for p in points:
        a, b = evaluate(f, p, exact=True)[f.output], evaluate(g, p, exact=True)[g.output]
        assert list(a) == list(b), p


@settings(max_examples=20, deadline=None)
@given(networks(max_depth=4, max_width=4))
def test_compressed_equals_original_on_random_rationals(net):
    stable = default_pipeline().run(net).facts.stable
    small = compress_network(net, stable, "small")
    assert small.output == net.output and small.output_size == net.output_size
    assert sum(lay.size for lay in small.layers) <= sum(lay.size for lay in net.layers)
    _same(net, small, domain_samples(net, n=30, seed=1))
    assert milp_max_difference(net, small)["max_abs"] < 1e-6  # float tolerances only


def _chain():
    """x in [0,1]^2; h1 partly stable (active, inactive, unstable); h2 entirely stable."""
    inp = Input("x", 2, Const.exact_of([0, 0]), Const.exact_of([1, 1]))
    h1 = Dense("h1", 3, "x", Const.exact_of([[1, 1], [-1, -1], [1, -1]]),
               Const.exact_of([1, -1, 0]), "relu")  # >= 1 ; <= -1 ; in [-1, 1]
    h2 = Dense("h2", 3, "h1", Const.exact_of([[1, 0, 1], [1, 5, 0], ["1/2", 0, -1]]),
               Const.exact_of([0, -7, 2]), "relu")  # >= 1 ; <= -4 ; >= 1/2 + 2 - 1 > 0
    y = Dense("y", 1, "h2", Const.exact_of([[2, 3, -1]]), Const.exact_of(["1/3"]), "linear")
    return Network("n", inp, (h1, h2, y), "y")


def test_whole_stable_layer_disappears():
    net = _chain()
    stable = default_pipeline().run(net).facts.stable
    assert list(stable["h1"]) == [1, -1, 0] and list(stable["h2"]) == [1, -1, 1]
    small, changes = compress_with_report(net, stable, "small")
    assert [lay.name for lay in small.layers] == ["h1", "y"]
    y = small.layer("y")
    assert y.src == "h1" and small.layer("h1").size == 2
    # y' = W_y[:, act] @ W_h2[act][:, kept h1]: act = {0, 2}, kept h1 = {0, 2}
    assert y.weight.exact.tolist() == [[Fraction(3, 2), Fraction(3)]]
    assert y.bias.exact.tolist() == [Fraction(1, 3) - 2]
    _same(net, small, domain_samples(net, n=50))
    by = {c.name: c for c in changes}
    assert (by["h1"].neurons_removed, by["h1"].connections_removed) == (1, 2)
    assert (by["h2"].neurons_removed, by["h2"].connections_removed, by["h2"].folded) == (3, 9, True)
    assert (by["y"].neurons_removed, by["y"].connections_removed) == (0, 1)


def test_all_inactive_layer_folds_to_constant():
    inp = Input("x", 1, Const.exact_of([0]), Const.exact_of([1]))
    h = Dense("h", 2, "x", Const.exact_of([[-1], [-2]]), Const.exact_of([0, -1]), "relu")
    y = Dense("y", 1, "h", Const.exact_of([[1, 1]]), Const.exact_of([5]), "linear")
    net = Network("n", inp, (h, y), "y")
    small = compress_network(net, default_pipeline().run(net).facts.stable)
    assert [lay.name for lay in small.layers] == ["y"] and small.layer("y").src == "x"
    _same(net, small, [[Fraction(0)], [Fraction(1, 2)], [Fraction(1)]])


def test_unstable_network_unchanged():
    inp = Input("x", 1, Const.exact_of([-1]), Const.exact_of([1]))
    h = Dense("h", 1, "x", Const.exact_of([[1]]), Const.exact_of([0]), "relu")
    y = Dense("y", 1, "h", Const.exact_of([[1]]), Const.exact_of([0]), "linear")
    net = Network("n", inp, (h, y), "y")
    assert compress_network(net, {"h": np.zeros(1, np.int8)}) == net


def test_milp_check_finds_no_difference():
    net = _chain()
    small = compress_network(net, default_pipeline().run(net).facts.stable, "small")
    chk = milp_max_difference(net, small)
    assert chk["max_abs"] is not None and chk["max_abs"] < 1e-6


def test_run_compress_query():
    net = _chain()
    prog = Program(networks=(net,))
    res = run_compress(prog, Compress("c", "n"), "auto", None, {})
    assert res.status == "compressed", res.message
    assert res.trained.name == "n_compressed"
    info = res.info["compress"]
    assert info["h2"]["folded"] and info["h1"]["neurons_removed"] == 1
    assert res.info["milp_max_abs_difference"] < 1e-6
    assert "total" in res.message and "h2" in res.message


def test_compress_uses_the_stable_analysis_and_checks_the_data():
    """A neuron that IBP and symbolic bounds cannot prove stable (the LP pass or the MILP do)
    is removed, and the compressed network is checked on the dataset's in-domain points too."""
    from nnir.api import parse_fragment

    prog = parse_fragment(HAND_NET + "compress n -> small using pts\n")
    res = run_compress(prog, prog.queries[0], "auto", 60, {})
    assert res.status == "compressed", res.message
    # g[2] is stably inactive only under the input constraint: LP tightening or ISA proves it
    assert res.info["compress"]["g"]["neurons_removed"] >= 1
    assert any(h in res.info["stable_from"] for h in ("lp", "isa", "milp"))
    assert res.info["data_points"] == 3  # [2, 2] lies outside the box
    assert "data points" in res.certified
