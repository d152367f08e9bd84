"""Two networks over one pool of shared neurons, exactly: the algebra behind `equiv_search`.

Both networks are walked from the shared input; every value is an exact affine form over
"symbols" (input coordinates and ReLU neurons). A ReLU neuron is identified by its pre-activation
form scaled to a leading coefficient of +-1 (relu(c z) = c relu(z) for c > 0), so a neuron of B
that computes the same thing as one of A, even split across shards and summed, *is* that neuron.
The outputs' differences f_A[k] - f_B[map k] are forms over the pool; for a correct
tensor-parallel pair they cancel to 0 at once.

On a sub-box where some neurons are stably inactive, `equal_on` substitutes 0 for them and merges
neurons whose pre-activation forms become identical; when every difference then cancels, the
networks agree on the sub-box, exactly (the values of equal formal expressions over the same
symbols are equal). `product_network` lays the pool out as one chain of dense layers (each
neuron at its depth, earlier values passed through as relu(h) = h for h >= 0 and relu(x - lo) for
inputs) whose last layer computes the differences, for the split engine's sound bounds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from math import gcd, lcm

import numpy as np

import nnir
from nnir.ir import conv
from nnir.ir.nodes import Network

MAX_WEIGHTS = 1_000_000  # exact forms beyond this many weights take too long to build
SPLIT_MAX_WEIGHTS = 100_000  # and beyond this many, too slow for a per-box search

ZERO = Fraction(0)
ONE = -1  # in `equal_on`, the "symbol" whose value is 1: rep[s] = (ONE, v) makes s the constant v


class TooLarge(Exception):
    """The networks are too large for the pool (see `MAX_WEIGHTS`)."""


@dataclass
class Neuron:
    """A ReLU neuron: relu(sum c * symbol + const), terms over earlier symbols."""

    terms: tuple  # ((symbol, int), ...) sorted by symbol: the normal form's integers
    const: int
    level: int  # 1 + the deepest symbol it reads (inputs are level 0)
    syms: frozenset  # the symbols it reads
    owners: set = field(default_factory=set)  # "A" and/or "B"
    sites: list = field(default_factory=list)  # (owner, layer, index) of the nodes it is


@dataclass
class Pool:
    """Symbols 0..n_in-1 are the inputs, then neurons in creation (topological) order."""

    n_in: int
    lo: list  # exact input box
    neurons: dict  # symbol -> Neuron
    keys: dict  # normalised pre-activation -> symbol
    diffs: list  # per output k: ({symbol: Fraction}, const) of f_A[k] - f_B[map k]

    def level(self, s: int) -> int:
        return 0 if s < self.n_in else self.neurons[s].level


def _combine(forms, coefs, const) -> tuple[dict, Fraction]:
    acc: dict = {}
    c0 = Fraction(const)
    for (t, c), w in zip(forms, coefs):
        if not w:
            continue
        for s, v in t.items():
            acc[s] = acc.get(s, ZERO) + w * v
        c0 += w * c
    return {s: v for s, v in acc.items() if v}, c0


def normal_form(terms: dict, const) -> tuple[tuple, Fraction]:
    """(key, scale > 0) with sum c s + const = scale * (the form the key names): the key is
    the symbols and the primitive integer vector of the coefficients and constant (integers
    over their lcm, divided by their gcd), an exact normal form up to positive scaling that
    hashes as plain integers."""
    order = sorted(terms)
    vals = [terms[t] for t in order] + [const]  # ints or Fractions (both have numerator)
    den = lcm(*(v.denominator for v in vals))
    ints = [v.numerator * (den // v.denominator) for v in vals]
    g = gcd(*ints)
    return (tuple(order), tuple(i // g for i in ints)), Fraction(g, den)


def _relu(pool: Pool, pre, owner: str, site=None):
    """The form of relu(pre): a neuron of the pool (new or shared), or a constant."""
    terms, c = pre
    if not terms:
        return {}, max(c, ZERO)
    key, scale = normal_form(terms, c)
    sym = pool.keys.get(key)
    if sym is None:
        sym = pool.n_in + len(pool.neurons)
        syms, ints = key
        pool.neurons[sym] = Neuron(tuple(zip(syms, ints[:-1])), ints[-1],
                                   1 + max(pool.level(t) for t in syms), frozenset(syms))
        pool.keys[key] = sym
    pool.neurons[sym].owners.add(owner)
    if site is not None:
        pool.neurons[sym].sites.append((owner, *site))
    return {sym: scale}, ZERO


# Per node kind, its entries' exact affine forms from its sources' forms `vals`.
def _dense_forms(lay, vals: dict) -> list:
    src = vals[lay.src]
    W, b = lay.weight.exact, lay.bias.exact
    return [_combine(src, W[r], b[r]) for r in range(lay.size)]


def _conv_forms(lay, vals: dict) -> list:
    """One form per output entry over its kernel taps (`nnir.ir.conv.rows`), exact weights."""
    src = vals[lay.src]
    w = lay.weight.exact.reshape(-1)
    bias = conv.bias_vector(lay, exact=True)
    return [_combine([src[c] for c in cols], w[widx], bias[r])
            for r, (cols, widx) in enumerate(conv.rows(lay))]


def _add_forms(lay, vals: dict) -> list:
    parts = [vals[s] for s in lay.srcs]
    return [_combine(col, [1] * len(col), 0) for col in zip(*parts)]


FORM_RULES = {
    "dense": _dense_forms,
    "conv": _conv_forms,
    "slice": lambda lay, vals: vals[lay.src][lay.start:lay.start + lay.size],
    "concat": lambda lay, vals: [f for s in lay.srcs for f in vals[s]],
    "gather": lambda lay, vals: [vals[lay.src][i] for i in lay.index],
    "add": _add_forms,
}


def _walk(pool: Pool, net: Network, owner: str, check) -> list:
    # an input coordinate fixed by its box (lo == hi) is that constant, not a symbol: neurons
    # that differ only in its weight are the same neuron (found by hypothesis: without this a
    # search over a box with a zero-width side never closes the boxes along such a neuron's
    # hyperplane)
    lo, hi = net.input.lo.exact, net.input.hi.exact
    vals = {net.input.name: [({}, lo[i]) if lo[i] == hi[i] else ({i: Fraction(1)}, ZERO)
                             for i in range(pool.n_in)]}
    for lay in net.layers:
        check()
        pre = FORM_RULES[lay.kind](lay, vals)
        vals[lay.name] = [_relu(pool, p, owner, (lay.name, i)) for i, p in enumerate(pre)] \
            if lay.act == "relu" else pre
    return vals[net.output]


def pool_weights(a: Network, b: Network) -> int:
    """The weights the pool's forms are built from: dense weights and conv taps."""
    return sum(int(np.prod(lay.weight.shape)) if lay.kind == "dense"
               else conv.taps_of(lay)[1].size for n in (a, b) for lay in n.layers
               if lay.kind in ("dense", "conv"))


def build_pool(a: Network, b: Network, mapping, check=None) -> Pool:
    """The pool of `a` and `b` (B reads A's input) and the output differences; `check` is
    called before each layer (it may raise to stop, e.g. at a deadline).

    Raises:
        TooLarge: more than `MAX_WEIGHTS` weights in the two networks.
    """
    weights = pool_weights(a, b)
    if weights > MAX_WEIGHTS:
        raise TooLarge(f"{weights} weights (the pool takes at most {MAX_WEIGHTS})")
    pool = Pool(a.input.size, list(a.input.lo.exact), {}, {}, [])
    check = check or (lambda: None)
    ya, yb = _walk(pool, a, "A", check), _walk(pool, b, "B", check)
    pool.diffs = [_combine([ya[k], yb[j]], [1, -1], 0) for k, j in enumerate(mapping)]
    return pool


def inactive_by_facts(pool: Pool, facts: dict) -> frozenset:
    """The neurons some site of which the bound passes prove inactive on the whole domain
    (`facts`: owner "A"/"B" -> that network's `Facts`, sound over A's domain): a neuron is a
    positive multiple of each of its sites' pre-activations, so one site with hi <= 0 makes it
    0 everywhere."""
    out = set()
    for s, nrn in pool.neurons.items():
        for owner, layer, i in nrn.sites:
            f = facts.get(owner)
            if f is not None and layer in f.hi and f.hi[layer][i] <= 0:
                out.add(s)
                break
    return frozenset(out)


def equal_on(pool: Pool, inactive, tol: Fraction = ZERO) -> bool:
    """Do all output differences cancel (|constant| <= tol, no symbol left) once the neurons in
    `inactive` are 0 and neurons with identical reduced pre-activations are merged? Exact.

    Invariant: value(s) = scale * value(r) for rep[s] = (r, scale) (r = ONE: the constant
    scale), value(s) = 0 for rep[s] = None, and a symbol without an entry stands for itself;
    a reduced form is the neuron's pre-activation written over those representatives, so equal
    forms mean equal values."""
    if all(not t and abs(c) <= tol for t, c in pool.diffs):
        return True
    rep: dict = {}
    local: dict = {}  # reduced key -> (representative, its scale) met on this box
    touched: set = set()  # symbols with an entry in rep

    for s, nrn in pool.neurons.items():
        if s in inactive:
            rep[s] = None
            touched.add(s)
            continue
        if touched.isdisjoint(nrn.syms):
            continue  # its pre-activation reads every symbol as itself: nothing to merge
        acc: dict = {}
        for t, c in nrn.terms:
            if t in rep:
                r = rep[t]
                if r is not None:
                    acc[r[0]] = acc.get(r[0], 0) + c * r[1]
            else:
                acc[t] = acc.get(t, 0) + c
        const = nrn.const + acc.pop(ONE, 0)
        acc = {k: v for k, v in acc.items() if v}
        if not acc:  # a constant on this box: value(s) = relu(const)
            rep[s] = (ONE, const) if const > 0 else None
            touched.add(s)
            continue
        key, scale = normal_form(acc, const)
        # value(s) = relu(scale * key) = scale * relu(key)
        if key in local:
            r, sc = local[key]
            rep[s] = (r, scale / sc)
            touched.add(s)
        elif key in pool.keys and pool.keys[key] != s:
            other = pool.keys[key]  # value(other) = relu(key)
            r = rep.get(other, (other, 1))
            rep[s] = None if r is None else (r[0], r[1] * scale)
            touched.add(s)
        else:
            local[key] = (s, scale)
    for terms, c in pool.diffs:
        acc = {}
        for t, v in terms.items():
            r = rep.get(t, (t, 1))
            if r is not None:
                acc[r[0]] = acc.get(r[0], ZERO) + v * r[1]
        c = c + acc.pop(ONE, 0)
        if any(acc.values()) or abs(c) > tol:
            return False
    return True


def product_network(pool: Pool, hi) -> tuple[Network, list]:
    """The pool as one chain of dense layers whose output is the differences (see module doc).

    Args:
        pool: the pool.
        hi: the exact input box's upper corner (for the network's domain).
    Returns:
        (network, neuron_at): neuron_at[l] lists the symbol of each row of chain layer l that
        computes a pool neuron (None for a pass-through row).
    """
    n_in = pool.n_in
    n_sym = n_in + len(pool.neurons)
    depth = max([n.level for n in pool.neurons.values()], default=0)
    need = [0] * n_sym  # the deepest chain layer reading each symbol
    for nrn in pool.neurons.values():
        for t, _ in nrn.terms:
            need[t] = max(need[t], nrn.level)
    for terms, _ in pool.diffs:
        for t in terms:
            need[t] = depth + 1
    layers, neuron_at = [], []
    where = {i: (i, None) for i in range(n_in)}  # symbol -> (column of the previous layer, shift)
    for lev in range(1, depth + 1):
        own = [s for s, nrn in pool.neurons.items() if nrn.level == lev]
        passing = [s for s in range(n_sym) if pool.level(s) < lev and need[s] > lev]
        rows = [(dict(pool.neurons[s].terms), pool.neurons[s].const) for s in own]
        # relu(h) = h for a neuron (h >= 0), relu(x - lo) = x - lo for an input
        rows += [({s: Fraction(1)}, -pool.lo[s] if s < n_in else ZERO) for s in passing]
        layers.append((*_matrix(rows, where), "relu"))
        neuron_at.append(own + [None] * len(passing))
        where = {s: (r, None) for r, s in enumerate(own)}
        where.update({s: (len(own) + r, pool.lo[s] if s < n_in else None)
                      for r, s in enumerate(passing)})
    layers.append((*_matrix([(dict(t), c) for t, c in pool.diffs], where), "linear"))
    net = nnir.network("product", layers, lo=pool.lo, hi=list(hi),
                       layer_names=[f"p{i + 1}" for i in range(depth)] + ["d"])
    return net, neuron_at


def _matrix(rows, where) -> tuple[list, list]:
    """Weights over the previous layer's columns: a symbol passed through as x - lo adds its
    coefficient times lo to the constant."""
    ncol = 1 + max((c for c, _ in where.values()), default=-1)
    W = [[ZERO] * ncol for _ in rows]
    bvec = []
    for r, (terms, c) in enumerate(rows):
        for s, v in terms.items():
            col, shift = where[s]
            W[r][col] += v
            if shift is not None:
                c += v * shift
        bvec.append(c)
    return W, bvec
