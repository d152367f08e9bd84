"""What every embedding shares: the result type, the bound passes, each node's exact affine form,
and the plain MILP data (a `MilpModel`, its matrix form and a name map).

The MILP is built by the verify lowering itself (`backends/milp/lower.py`, its `Lowering` and
rule table), so an embedded network is encoded exactly as `nnirc verify` encodes it: float64
rows, one column per pre-activation, stable ReLUs linear, one binary per unstable ReLU with
big-M constants taken from the bound passes' sound (outward-rounded) facts. Only the input
columns and the names of the post-activations of stably inactive ReLUs (fixed 0 columns, so
every neuron is addressable) are added here.

The SMT embeddings need exact coefficients, so `affine_form` gives each node's definition in
Fractions through a per-kind table (the same cases as the lowerings' tables).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np
import scipy.sparse as sp

from nnir.backends.milp.lower import M_ABS_PAD, M_REL_PAD, Lowering, legal_name
from nnir.backends.milp.model import INF, MilpModel
from nnir.errors import UnsupportedQuery
from nnir.ir import conv
from nnir.ir.const import Const
from nnir.ir.evaluate import evaluate
from nnir.ir.nodes import BoolConst, Network
from nnir.ir.verifier import verify_network
from nnir.passes.interval import IntervalBounds, input_box
from nnir.passes.lp import LpBounds
from nnir.passes.manager import PassContext, PassManager
from nnir.passes.symbolic import SymbolicBounds
from nnir.queries.problem import VerifyProblem

BOUND_METHODS = ("none", "ibp", "symbolic", "lp")
MILP_RELU = ("bigm", "triangle")
# Kinds whose lowering makes pre-activation columns (the others reuse their sources' columns).
AFFINE_KINDS = ("dense", "add", "conv")


@dataclass(frozen=True)
class Neurons:
    """One node's variables: `pre[i]` and `post[i]` for neuron i (the same variables for a
    linear node, and for slices, concatenations and gathers, which only reuse their sources')."""

    pre: list
    post: list


@dataclass
class Embedding:
    """A network embedded in a model: the variables of its inputs, outputs and every neuron.

    Attributes:
        target: "milp", "highs", "z3" or "pysmt".
        net: the network as embedded (its box cut by `box=`, bound facts attached).
        inputs, outputs: one variable per input and per output coordinate (HiGHS and MILP:
            column indices; z3: `ArithRef`s; PySMT: `FNode` symbols).
        neurons: node name -> `Neurons` (pre- and post-activation variables), for every layer.
        binaries: (layer, index) -> the binary variable of each unstable ReLU (MILP, HiGHS).
        bounds: layer -> (lo, hi) float64 arrays: the sound pre-activation bounds used (the
            bound facts; empty when `bounds="none"`).
        exact: True when the constraints are the network's exact rational function (z3, PySMT
            with an exact ReLU encoding); False when the model is float64 (HiGHS, MILP data:
            values hold within the solver's tolerances) or a relaxation.
        notes: every way the embedding differs from the exact network (tolerances, relaxations,
            the input box it enforces).
        constraints: the z3 or PySMT constraints added (empty for MILP and HiGHS).
        model: the `MilpModel` (MILP data and HiGHS: the columns added, before renumbering).
        formula: PySMT: the conjunction of `constraints`.
    """

    target: str
    net: Network
    inputs: list
    outputs: list
    neurons: dict[str, Neurons]
    binaries: dict[tuple[str, int], Any] = field(default_factory=dict)
    bounds: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    exact: bool = False
    notes: list[str] = field(default_factory=list)
    constraints: list = field(default_factory=list)
    model: MilpModel | None = None
    formula: Any = None

    def neuron(self, layer: str, index: int) -> tuple[Any, Any]:
        """(pre, post) variables of neuron `index` of `layer`.

        Args:
            layer: a layer name of the network.
            index: the neuron's index in the layer.
        Returns:
            The pair of variables (the same variable twice for a linear neuron).
        Raises:
            KeyError: no such layer.
        """
        n = self.neurons[layer]
        return n.pre[index], n.post[index]

    def matrix(self) -> MilpMatrix:
        """MILP and HiGHS: the columns and rows nnir built, as a sparse matrix with bounds and
        names (for HiGHS, before the columns were renumbered into the user's model).

        Returns:
            The `MilpMatrix`.
        Raises:
            ValueError: an SMT embedding (no MILP).
        """
        if self.model is None:
            raise ValueError(f"a {self.target} embedding has no MILP matrix")
        return matrix_form(self.model)

    def replay(self, x) -> list[Fraction]:
        """The network's outputs at input `x`, in exact rational arithmetic (the referee of a
        solver's float answer).

        Args:
            x: the input values (floats are taken at their binary values).
        Returns:
            The exact output values.
        """
        return list(evaluate(self.net, list(x), exact=True)[self.net.output])


@dataclass(frozen=True)
class MilpMatrix:
    """The MILP of a `MilpModel` as arrays: `row_lo <= A x <= row_hi`, `col_lo <= x <= col_hi`,
    `integrality[j]` 1 for integer columns; `col_index` maps a column name to its index."""

    A: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    integrality: np.ndarray
    col_names: list[str]
    row_names: list[str]

    @property
    def col_index(self) -> dict[str, int]:
        return {n: j for j, n in enumerate(self.col_names)}


def matrix_form(model: MilpModel) -> MilpMatrix:
    """`model` as a sparse matrix with bounds and names.

    Args:
        model: a MILP model.
    Returns:
        The `MilpMatrix` (CSR, float64).
    """
    start, index, value, row_lo, row_hi, row_names = model.csr()
    col_lo, col_hi, integ, col_names = model.col_arrays()
    A = sp.csr_matrix((value, index, start), shape=(len(row_lo), len(col_lo)))
    return MilpMatrix(A, row_lo, row_hi, col_lo, col_hi, integ, col_names, row_names)


# ----------------------------------------------------------------------------- options, bounds
def check_choice(what: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; use one of {', '.join(map(str, allowed))}")


def with_box(net: Network, box) -> Network:
    """`net` with its input box replaced by `box` = (lo, hi) (scalars or vectors, exact)."""
    if box is None:
        return net
    lo, hi = (np.broadcast_to(np.asarray(v, dtype=object), (net.input.size,)) for v in box)
    inp = replace(net.input, lo=Const.exact_of(list(lo)), hi=Const.exact_of(list(hi)))
    out = replace(net, input=inp, facts=None)
    verify_network(out)
    return out


def bounded(net: Network, bounds: str, box=None) -> Network:
    """`net` (box cut by `box`) with the bound facts of `bounds`: "none" (no facts), "ibp",
    "symbolic" (IBP then symbolic back-substitution) or "lp" (then LP tightening)."""
    check_choice("bounds", bounds, BOUND_METHODS)
    if net.has_unknowns:
        raise UnsupportedQuery(f"network '{net.name}' has unknown weights; train it first",
                               net.span)
    net = with_box(net, box)
    if bounds == "none":
        return replace(net, facts=None)
    passes = {"ibp": [IntervalBounds()],
              "symbolic": [IntervalBounds(), SymbolicBounds()],
              "lp": [IntervalBounds(), SymbolicBounds(), LpBounds()]}[bounds]
    return PassManager(passes).run(replace(net, facts=None), PassContext())


def facts_bounds(net: Network) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    f = net.facts
    if f is None:
        return {}
    return {lay.name: (np.asarray(f.lo[lay.name]), np.asarray(f.hi[lay.name]))
            for lay in net.layers if lay.name in f.lo}


def box_note(net: Network) -> str:
    return (f"inputs restricted to the box of '{net.name}' (rounded outward to float64): the "
            "bound facts and every big-M constant hold only there")


# ----------------------------------------------------------------------------- exact affine form
# Per node kind, its definition in exact arithmetic over the source values `vals` (node -> list of
# solver terms): ("copy", terms) for a node made of its sources' entries, or ("affine", rows) with
# one (terms [(term, Fraction)], constant Fraction) per neuron for its pre-activation.
def _aff_dense(lay, vals):
    src = vals[lay.src]
    rows = []
    for w, b in zip(lay.weight.exact, lay.bias.exact):
        rows.append(([(s, c) for s, c in zip(src, w) if c != 0], b))
    return "affine", rows


def _aff_add(lay, vals):
    return "affine", [([(vals[s][j], Fraction(1)) for s in lay.srcs], Fraction(0))
                      for j in range(lay.size)]


def _aff_conv(lay, vals):
    src, w = vals[lay.src], lay.weight.exact.reshape(-1)
    bias = conv.bias_vector(lay, exact=True)
    rows = []
    for (cols, widx), b in zip(conv.rows(lay), bias):  # one term per tap
        rows.append(([(src[c], w[k]) for c, k in zip(cols.tolist(), widx.tolist())
                      if w[k] != 0], b))
    return "affine", rows


def _aff_slice(lay, vals):
    return "copy", vals[lay.src][lay.start:lay.start + lay.size]


def _aff_concat(lay, vals):
    return "copy", [v for s in lay.srcs for v in vals[s]]


def _aff_gather(lay, vals):
    src = vals[lay.src]
    return "copy", [src[i] for i in lay.index]


AFFINE_RULES = {"dense": _aff_dense, "add": _aff_add, "conv": _aff_conv, "slice": _aff_slice,
                "concat": _aff_concat, "gather": _aff_gather}


def affine_form(lay, vals):
    """A node's exact definition over its sources' terms (see `AFFINE_RULES`)."""
    return AFFINE_RULES[lay.kind](lay, vals)


# ----------------------------------------------------------------------------- MILP data
class EmbedLowering(Lowering):
    """The verify lowering with its pre-activation columns and ReLU binaries recorded, and an
    optional triangle (LP) relaxation of unstable ReLUs in place of big-M."""

    def __init__(self, net: Network, relu: str):
        super().__init__(VerifyProblem(net, (), BoolConst(True), "embed"), 0.0, "none")
        self.relu_mode = relu
        self.pre: dict[str, np.ndarray] = {}
        self.post: dict[str, list[int]] = {}  # as `vars`, with fixed-0 columns for inactive ReLUs
        self.binary_of: dict[int, int] = {}  # post column -> its binary

    def node(self, lay, facts) -> None:
        n0 = len(self.m.vars)
        super().node(lay, facts)
        if lay.kind not in AFFINE_KINDS:
            _, self.post[lay.name] = affine_form(lay, self.post)
            self.pre[lay.name] = self.post[lay.name]
            return
        pre = np.arange(n0, n0 + lay.size, dtype=np.int64)
        # The lowering makes a node's pre-activation columns first, in order; say so loudly if
        # that ever changes rather than hand back wrong columns.
        base = legal_name(f"{self.net.name}_{lay.name}")
        want = [f"{base}_pre_{j}" if lay.act == "relu" else f"{base}_{j}" for j in (0, lay.size
                                                                                     - 1)]
        got = [self.m.vars[int(pre[0])].name, self.m.vars[int(pre[-1])].name]
        if want != got:
            raise AssertionError(f"MILP lowering column layout changed: {got} != {want}")
        self.pre[lay.name] = pre.tolist()
        post = self.vars[lay.name].tolist()
        for j, v in enumerate(post):  # stably inactive: a column fixed at 0, read by no row
            if v < 0:
                post[j] = self.m.add_var(f"{base}_{j}", 0.0, 0.0)
        self.post[lay.name] = post

    def relu(self, name: str, z: int, l: float, u: float) -> int:  # noqa: E741 (paper's l, u)
        if self.relu_mode == "bigm":
            y = super().relu(name, z, l, u)
            self.binary_of[y] = y + 1  # `Lowering.relu` adds the binary right after y
            if self.m.vars[y + 1].name != "a_" + name:
                raise AssertionError("MILP lowering ReLU layout changed")
            return y
        # The triangle relaxation y >= 0, y >= z, y <= s (z - l), s = u / (u - l): an LP, not
        # the ReLU. The upper line is raised by the big-M padding so that float rounding of s
        # and s l can only loosen it (the relaxation stays a superset).
        m = self.m
        y = m.add_var(name, 0.0, u)
        s = u / (u - l)
        pad = M_REL_PAD * (abs(s * l) + u) + M_ABS_PAD
        m.add_row([y, z], [1.0, -1.0], 0.0, INF, f"relu_ge_{name}")
        m.add_row([y, z], [1.0, -s * (1.0 + M_REL_PAD)], -INF, -s * l + pad, f"relu_tri_{name}")
        return y


def lower_network(net: Network, relu: str = "bigm", prefix: str | None = None):
    """Lower a bounded network (facts attached) to MILP columns and rows.

    Args:
        net: the network, with finite bound facts on every layer (`bounded`).
        relu: "bigm" (exact up to tolerances: one binary per unstable ReLU) or "triangle" (its
            LP relaxation, a superset of the network's graph).
        prefix: the column names' prefix (default: the network's name).
    Returns:
        The `EmbedLowering` (its `m`, `vars`, `pre`, `binary_of`).
    Raises:
        UnsupportedQuery: no bound facts (`bounds="none"`), or infinite bounds or box.
    """
    check_choice("MILP relu encoding", relu, MILP_RELU)
    if net.facts is None:
        raise UnsupportedQuery("a MILP embedding needs bound facts for its big-M constants; "
                               "use bounds='ibp', 'symbolic' or 'lp'")
    named = replace(net, name=prefix) if prefix is not None else net
    low = EmbedLowering(named, relu)
    low.inputs()
    low.post[net.input.name] = list(low.m.input_vars)
    for lay in net.layers:
        low.node(lay, net.facts)
    return low


def embed_milp(net: Network, relu: str = "bigm", prefix: str | None = None) -> Embedding:
    """The plain MILP data of a bounded network (see `lower_network`), as an `Embedding` whose
    variables are column indices of `Embedding.model`."""
    low = lower_network(net, relu, prefix)
    neurons = {lay.name: Neurons(list(low.pre[lay.name]), list(low.post[lay.name]))
               for lay in net.layers}
    binaries = {(lay.name, j): low.binary_of[y] for lay in net.layers
                if lay.act == "relu" and lay.kind in AFFINE_KINDS
                for j, y in enumerate(low.post[lay.name]) if y in low.binary_of}
    notes = [box_note(net), "float64 rows: weights at their nearest float64 (exact for weights "
             "read as floats); a solver's values satisfy them within its feasibility tolerances",
             "big-M constants from sound bound facts, padded"]
    if not all(getattr(lay, "weight", None) is None or lay.weight.is_float_exact
               and lay.bias.is_float_exact for lay in net.layers):
        notes.append("some weights are not float64 numbers: the rows use their nearest floats")
    if relu == "triangle":
        notes.append("relu='triangle': unstable ReLUs are relaxed (an LP over a superset of the "
                     "network's graph), not exact")
    return Embedding("milp", net, list(low.m.input_vars), list(low.post[net.output]), neurons,
                     binaries, facts_bounds(net), False, notes, model=low.m)


def input_bounds(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """The box's float64 bounds rounded outward (what the input columns get)."""
    return input_box(net)
