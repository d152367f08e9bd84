"""Witness replay reads exact values in integer arithmetic where it applies: they must equal the
Fraction evaluation, node by node, on every node kind (dense chains and sharded graphs)."""
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import networks, small

from nnir.ir.evaluate import evaluate
from nnir.queries.replay import exact_values


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_integer_replay_values_equal_fraction_values(data):
    net = data.draw(networks(graph=data.draw(st.booleans())))
    x = [data.draw(st.one_of(small, st.floats(-4, 4).map(Fraction)))
         for _ in range(net.input.size)]
    want = evaluate(net, x, exact=True)
    got = exact_values(net, x)
    assert set(got) >= set(want)
    for k, v in want.items():
        assert list(got[k]) == list(v), k
