"""Hypothesis strategies for small random networks and properties (shared by the test files)."""
from __future__ import annotations

from fractions import Fraction

from hypothesis import strategies as st

from nnir.ir.const import Const
from nnir.ir.nodes import And, Atom, Dense, Input, Network, Or, Program, Ref, Verify

# Small rationals (halves and quarters included) keep solvers fast and exercise exactness.
small = st.builds(lambda n, d: Fraction(n, d), st.integers(-6, 6), st.sampled_from([1, 2, 4, 3]))


@st.composite
def networks(draw, max_depth: int = 3, max_width: int = 4, max_inputs: int = 3,
             graph: bool = False) -> Network:
    """Small random chains of dense layers; with `graph`, tensor-parallel versions of them
    (slice, concat and add nodes; `nnir.passes.shard`), which compute the same function."""
    net = draw(_dense_networks(max_depth, max_width, max_inputs))
    if not graph:
        return net
    from nnir.passes.shard import STYLES, shard_network

    styles = tuple(draw(st.lists(st.sampled_from(STYLES), min_size=1, max_size=2)))
    return shard_network(net, draw(st.integers(2, 3)), styles, name=net.name)


@st.composite
def _dense_networks(draw, max_depth: int, max_width: int, max_inputs: int) -> Network:
    n_in = draw(st.integers(1, max_inputs))
    lo = [draw(st.integers(-3, 1)) for _ in range(n_in)]
    hi = [a + draw(st.integers(0, 3)) for a in lo]
    inp = Input("x", n_in, Const.exact_of(lo), Const.exact_of(hi))
    depth = draw(st.integers(1, max_depth))
    layers, src, width = [], "x", n_in
    for k in range(depth):
        last = k == depth - 1
        size = draw(st.integers(1, 2 if last else max_width))
        W = [[draw(small) for _ in range(width)] for _ in range(size)]
        b = [draw(small) for _ in range(size)]
        name = "y" if last else f"h{k + 1}"
        act = "linear" if last else "relu"
        layers.append(Dense(name, size, src, Const.exact_of(W), Const.exact_of(b), act))
        src, width = name, size
    return Network("n", inp, tuple(layers), src)


@st.composite
def atoms_over(draw, net: Network, nodes: list[str] | None = None) -> Atom:
    nodes = nodes or [net.output]
    node = draw(st.sampled_from(nodes))
    size = net.size_of(node)
    idx = draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=2, unique=True))
    terms = tuple((Ref(node, i), draw(small.filter(lambda q: q != 0))) for i in idx)
    rel = draw(st.sampled_from(["<=", ">=", "<", ">", "=="] if len(idx) > 1
                               else ["<=", ">=", "<", ">"]))
    return Atom(terms, rel, draw(small))


@st.composite
def formulas(draw, net: Network, depth: int = 2):
    if depth == 0 or draw(st.booleans()):
        return draw(atoms_over(net))
    args = tuple(draw(formulas(net, depth - 1)) for _ in range(draw(st.integers(2, 3))))
    return draw(st.sampled_from([And, Or]))(args)


def float_network(seed: int, depth: int):
    """A random network whose weights have full float64 mantissas and magnitudes 1e-3..1e3,
    on the box [-1.5, 0.7]; returns it with sample points (random, and the two corners)."""
    import numpy as np

    import nnir

    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(1, 6)) for _ in range(depth + 1)]
    layers = []
    for k in range(depth):
        W = rng.normal(size=(sizes[k + 1], sizes[k])) * 10.0 ** rng.integers(-3, 4)
        b = rng.normal(size=sizes[k + 1])
        layers.append((W, b, "relu" if k < depth - 1 else "linear"))
    net = nnir.network("f", layers, lo=-1.5, hi=0.7)
    pts = [[Fraction(float(v)) for v in rng.uniform(-1.5, 0.7, size=sizes[0])]
           for _ in range(4)]
    return net, pts + [[Fraction(-3, 2)] * sizes[0], [Fraction(7, 10)] * sizes[0]]


def assert_facts_sound(net, facts, points) -> None:
    """Exact pre-activations at `points` lie within `facts`' bounds, and its stable marks hold."""
    from nnir.ir.evaluate import evaluate

    for x in points:
        vals = evaluate(net, x, exact=True)
        for lay in net.layers:
            lo, hi, st = facts.lo[lay.name], facts.hi[lay.name], facts.stable[lay.name]
            for i, v in enumerate(vals[lay.name + ".pre"]):
                assert Fraction(lo[i]) <= v <= Fraction(hi[i])
                if st[i] > 0:
                    assert v >= 0
                if st[i] < 0:
                    assert v <= 0


@st.composite
def verify_programs(draw, net: Network):
    """A one-query program on `net`: a random formula, with at most one random input
    constraint as `where` (shared by the engines' agreement-with-z3 tests)."""
    prop = draw(formulas(net))
    where = tuple(draw(st.lists(atoms_over(net, [net.input.name]), max_size=1)))
    return Program((net,), (), (Verify("q", net.name, where, prop),))

