"""Lower a `VerifyProblem` to a solver-neutral MILP: one variable per neuron, big-M ReLUs.

Encoding, in order:
- inputs: one continuous variable each, boxed by the exact box rounded outward to float64;
- each layer: one pre-activation variable z_j per neuron, boxed by the bound facts, defined by the
  equality row `W_j x - z_j = -b_j` (float64 weights);
- each ReLU y = max(z, 0) with sound bounds l <= z <= u: stably active (l >= 0) reuses z, stably
  inactive (u <= 0) is the constant 0 (no variable, no binary), otherwise the big-M formulation of
  Tjeng, Xiao & Tedrake, "Evaluating Robustness of Neural Networks with Mixed Integer
  Programming", ICLR 2019, eq. (5): with a binary a,
      y >= 0,  y >= z,  y <= z - l (1 - a),  y <= u a;
- the input constraints (a conjunction) and the property (NNF): a conjunction adds its rows; a
  disjunction gets one binary d_i per disjunct with `sum d_i >= guard` (1 at top level) and each
  row of disjunct i is switched off by big-M when d_i = 0: `e >= r` becomes `e >= r - M (1 - d_i)`
  with M >= r - min(e) taken from interval bounds of e over the variables' boxes, padded.

Strict inequalities (`<`, `>`) have no MILP form, and a witness on a row's boundary may fail
exact replay. Both are met with one shared continuous slack t in [-margin, 1] that the objective
maximises: an atom `e >= r` (or `e > r`) becomes `e - t >= r`, `e <= r` becomes `e + t <= r`.
Which atoms get t is the `slack` argument:
- "strict" (default): only strict atoms; the problem is satisfiable iff t* > 0, so the backend
  decides on t* (up to its tolerances);
- "all": every inequality atom of the property and input constraints, so the solver looks for
  the witness farthest inside the property (it may stop once t is comfortably positive);
- "none": no t; strict atoms become non-strict rows, a relaxation (an infeasible model is still
  a sound unsat, and a witness must be replayed exactly).
Equality atoms never get t. Each deviation from the exact problem is recorded in `model.notes`.

`margin` > 0 loosens every property and input-constraint row by that absolute amount (through
t's lower bound -margin, or the row's side when it has no t), so an "infeasible" verdict survives
the solver's rounding (see `highs.milp_tolerances`).
"""
from __future__ import annotations

import re

import numpy as np

from nnir.backends.milp.model import INF, MilpModel, Row
from nnir.errors import UnsupportedQuery
from nnir.ir import conv
from nnir.ir.nodes import And, Atom, BoolConst, Formula, Or
from nnir.passes.interval import IntervalBounds, input_box
from nnir.queries.problem import VerifyProblem

# Padding of every big-M constant: relative to the bound's size plus an absolute term, far above
# the float rounding of the interval sums (~1e-16 relative) and the solver's feasibility tolerance.
M_REL_PAD = 1e-6
M_ABS_PAD = 1e-6
SLACK_NAME = "prop_slack"
SLACK_MODES = ("strict", "all", "none")


def legal_name(text: str) -> str:
    """A name legal in LP and MPS files: letters, digits and `_`, starting with a letter."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", text)
    # LP readers take a leading digit/period as a number and a leading e/E as an exponent.
    return s if s[:1].isalpha() and s[:1] not in "eE" else "n_" + s


class Lowering:
    """State of one lowering: the model, each node's variables and their bounds."""

    def __init__(self, problem: VerifyProblem, margin: float, slack: str):
        if slack not in SLACK_MODES:
            raise ValueError(f"slack must be one of {SLACK_MODES}, not {slack!r}")
        self.p, self.margin, self.slack = problem, float(margin), slack
        self.net = problem.net
        self.m = MilpModel(name=legal_name(self.net.name))
        self.vars: dict[str, np.ndarray] = {}  # node -> var index per entry (-1: constant 0)
        self.bounds: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # node -> value bounds
        self.t = None  # the shared slack variable, made on first use
        self.n_or = 0

    # ------------------------------------------------------------------ network
    def inputs(self) -> None:
        inp = self.net.input
        lo, hi = input_box(self.net)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise UnsupportedQuery(f"input box of '{self.net.name}' is not finite; MILP needs "
                                   "bounded inputs", inp.span)
        base = legal_name(f"{self.net.name}_{inp.name}")
        names = [f"{base}_{i}" for i in range(inp.size)]
        self.vars[inp.name] = self.m.add_vars(names, lo, hi)
        self.bounds[inp.name] = (lo, hi)
        self.m.input_vars = self.vars[inp.name].tolist()

    def node(self, lay, facts) -> None:
        """Lower one node of `self.net` with its bound facts (slices and concatenations reuse
        their sources' columns: they add nothing to the model)."""
        RULES[lay.kind](self, lay, facts)

    def copy(self, lay, parts) -> None:
        """A node made of its sources' entries, `parts` = (source, start, stop): their columns."""
        self.vars[lay.name] = np.concatenate([self.vars[s][a:b] for s, a, b in parts])
        self.bounds[lay.name] = tuple(np.concatenate([self.bounds[s][k][a:b]
                                                      for s, a, b in parts])
                                      for k in (0, 1))

    def layer(self, lay, facts, define) -> None:
        """A node with a pre-activation: its columns z, `define(self, lay, z, names)` adding the
        rows that define them, then its ReLU (if any)."""
        lo, hi, stable = facts.lo[lay.name], facts.hi[lay.name], facts.stable[lay.name]
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise UnsupportedQuery(f"layer '{lay.name}' has infinite bounds; big-M needs finite "
                                   "ones", lay.span)
        relu = lay.act == "relu"
        base = legal_name(f"{self.net.name}_{lay.name}")
        pre_names = [f"{base}_pre_{j}" if relu else f"{base}_{j}" for j in range(lay.size)]
        z = self.m.add_vars(pre_names, lo, hi)
        define(self, lay, z, pre_names)
        if not relu:
            self.vars[lay.name], self.bounds[lay.name] = z, (lo, hi)
            return
        active = (stable == 1) | (lo >= 0)
        inactive = ~active & ((stable == -1) | (hi <= 0))
        y = np.where(active, z, -1)
        for j in np.flatnonzero(~active & ~inactive):
            y[j] = self.relu(f"{base}_{j}", z[j], float(lo[j]), float(hi[j]))
        self.vars[lay.name] = y
        self.bounds[lay.name] = (np.maximum(lo, 0.0), np.maximum(hi, 0.0))

    def relu(self, name: str, z: int, l: float, u: float) -> int:  # noqa: E741 (paper's l, u)
        """y = max(z, 0) for l < 0 < u: Tjeng, Xiao & Tedrake (ICLR 2019), eq. (5)."""
        m = self.m
        y = m.add_var(name, 0.0, u)  # y >= 0 is the variable's lower bound
        a = m.add_var("a_" + name, 0.0, 1.0, integer=True)
        m.rows.append(_row([y, z], [1.0, -1.0], 0.0, INF, f"relu_ge_{name}"))  # y >= z
        # y <= z - l (1 - a)
        m.rows.append(_row([y, z, a], [1.0, -1.0, -l], -INF, -l, f"relu_lo_{name}"))
        m.rows.append(_row([y, a], [1.0, -u], -INF, 0.0, f"relu_up_{name}"))  # y <= u a
        return y

    # ------------------------------------------------------------------ formulas
    def formula(self, f: Formula, guard: int | None, tag: str) -> None:
        """Add rows that force `f` when `guard` is None or its binary is 1."""
        if isinstance(f, BoolConst):
            if not f.value:
                self.false(guard, tag)
        elif isinstance(f, Atom):
            self.atom(f, guard, tag)
        elif isinstance(f, And):
            for k, g in enumerate(f.args):
                self.formula(g, guard, f"{tag}_{k}")
        elif isinstance(f, Or):
            args = [g for g in f.args if not (isinstance(g, BoolConst) and not g.value)]
            if any(isinstance(g, BoolConst) for g in args):
                return  # a true disjunct: nothing to force
            if len(args) <= 1:
                return self.formula(args[0], guard, tag) if args else self.false(guard, tag)
            k = self.n_or
            self.n_or += 1
            d = [self.m.add_var(f"d_{k}_{i}", 0.0, 1.0, integer=True) for i in range(len(args))]
            if guard is None:  # sum d_i >= 1
                self.m.rows.append(_row(d, [1.0] * len(d), 1.0, INF, f"or_{k}"))
            else:  # sum d_i >= guard: a disjunct must hold only when the guard is on
                self.m.rows.append(_row(d + [guard], [1.0] * len(d) + [-1.0], 0.0, INF,
                                        f"or_{k}"))
            for i, (g, di) in enumerate(zip(args, d)):
                self.formula(g, di, f"{tag}_or{k}_{i}")
        else:
            raise UnsupportedQuery(f"MILP lowering needs NNF formulas, got {type(f).__name__}",
                                   getattr(f, "span", None))

    def false(self, guard: int | None, tag: str) -> None:
        if guard is None:  # 0 >= 1: an infeasible empty row
            self.m.rows.append(_row([], [], 1.0, INF, f"{tag}_false"))
        else:
            self.m.rows.append(_row([guard], [1.0], -INF, 0.0, f"{tag}_false"))

    def atom(self, atom: Atom, guard: int | None, tag: str) -> None:
        idx, coef, elo, ehi = [], [], 0.0, 0.0
        for ref, c in atom.terms:
            if ref.node not in self.vars:
                raise UnsupportedQuery(f"'{ref}' names no input or layer of '{self.net.name}'",
                                       atom.span)
            v = int(self.vars[ref.node][ref.index])
            lo, hi = (float(b[ref.index]) for b in self.bounds[ref.node])
            c = float(c)
            elo += min(c * lo, c * hi)
            ehi += max(c * lo, c * hi)
            if v >= 0:
                idx.append(v)
                coef.append(c)
        r = float(atom.rhs)
        strict = atom.rel in ("<", ">")
        if strict:
            self.m.strict = True
            if self.slack == "none":
                self.m.notes.append(f"{tag}: strict '{atom.rel}' relaxed to non-strict")
        if atom.rel != "==" and (self.slack == "all" or (strict and self.slack == "strict")):
            # e - t >= r (or -e - t >= -r): the margin is t's lower bound, -t adds at most 1
            t = self.slack_var()
            sides = [(idx + [t], coef + [-1.0], r, elo - 1.0)] if atom.rel[0] == ">" else \
                [(idx + [t], [-c for c in coef] + [-1.0], -r, -ehi - 1.0)]
        else:
            sides = []
            if atom.rel in (">=", ">", "=="):
                sides.append((idx, coef, r - self.margin, elo))
            if atom.rel in ("<=", "<", "=="):
                sides.append((idx, [-c for c in coef], -(r + self.margin), -ehi))
        for s, (i, c, rhs, lmin) in enumerate(sides):
            self.ge(i, c, rhs, lmin, guard, tag if len(sides) == 1 else f"{tag}_{'gl'[s]}e")

    def ge(self, idx, coef, rhs: float, lmin: float, guard: int | None, name: str) -> None:
        """`sum coef * x >= rhs`, switched off by big-M when the guard binary is 0."""
        need = rhs - lmin  # how far below rhs the left side can go
        if need <= 0.0:
            return  # implied by the variables' bounds
        if guard is None:
            self.m.add_row(idx, coef, rhs, INF, name)
            return
        M = need * (1.0 + M_REL_PAD) + M_ABS_PAD * (1.0 + abs(rhs) + abs(lmin))
        # sum coef x >= rhs - M (1 - d)  <=>  sum coef x - M d >= rhs - M
        self.m.add_row(list(idx) + [guard], list(coef) + [-M], rhs - M, INF, name)

    def slack_var(self) -> int:
        if self.t is None:
            self.t = self.m.add_var(SLACK_NAME, -self.margin, 1.0)
            self.m.objective, self.m.sense, self.m.slack_var = {self.t: 1.0}, "max", self.t
            self.m.notes.append(f"{self.slack} inequality atoms share the slack {SLACK_NAME}, "
                                "maximised")
        return self.t


def _row(index, value, lo, hi, name) -> Row:
    """A row whose indices are known distinct (no merging needed)."""
    return Row(np.asarray(index, dtype=np.int64), np.asarray(value, dtype=np.float64),
               float(lo), float(hi), name)


# Per node kind, its lowering: rule(lowering, node, facts). Dense and add nodes get pre-activation
# columns defined by rows; slices and concatenations reuse their sources' columns.
def _dense_rows(low: Lowering, lay, z, names) -> None:
    src = low.vars[lay.src]
    live = src >= 0  # sources fixed at 0 (inactive ReLUs) drop out of the rows
    W, b = lay.weight.f64[:, live], lay.bias.f64
    cols = src[live]
    for j in range(lay.size):  # W_j x - z_j = -b_j
        nz = W[j] != 0.0  # add_row merges a column read twice (a gather or concat repeat)
        low.m.add_row(np.append(cols[nz], z[j]), np.append(W[j][nz], -1.0), -b[j], -b[j],
                      f"def_{names[j]}")


def _add_rows(low: Lowering, lay, z, names) -> None:
    for j in range(lay.size):  # sum_k src_k[j] - z_j = 0; +-1 coefficients are exact
        cols = [int(low.vars[s][j]) for s in lay.srcs if low.vars[s][j] >= 0]
        low.m.add_row(cols + [int(z[j])], [1.0] * len(cols) + [-1.0], 0.0, 0.0,
                      f"def_{names[j]}")


def _lower_dense(low: Lowering, lay, facts) -> None:
    low.layer(lay, facts, _dense_rows)


def _lower_add(low: Lowering, lay, facts) -> None:
    low.layer(lay, facts, _add_rows)


def _lower_slice(low: Lowering, lay, facts) -> None:
    low.copy(lay, [(lay.src, lay.start, lay.start + lay.size)])


def _lower_concat(low: Lowering, lay, facts) -> None:
    low.copy(lay, [(s, 0, None) for s in lay.srcs])


def _conv_rows(low: Lowering, lay, z, names) -> None:
    src, wf = low.vars[lay.src], lay.weight.f64.reshape(-1)
    b = conv.bias_vector(lay)
    for j, (c, widx) in enumerate(conv.rows(lay)):  # taps only: W_j x - z_j = -b_j
        w, v = wf[widx], src[c]
        keep = (w != 0.0) & (v >= 0)
        low.m.add_row(np.append(v[keep], z[j]), np.append(w[keep], -1.0), -b[j], -b[j],
                      f"def_{names[j]}")


def _lower_conv(low: Lowering, lay, facts) -> None:
    low.layer(lay, facts, _conv_rows)


def _lower_gather(low: Lowering, lay, facts) -> None:
    idx = np.asarray(lay.index, dtype=np.int64)
    low.vars[lay.name] = low.vars[lay.src][idx]
    low.bounds[lay.name] = tuple(b[idx] for b in low.bounds[lay.src])


RULES = {"dense": _lower_dense, "slice": _lower_slice, "concat": _lower_concat,
         "add": _lower_add, "conv": _lower_conv, "gather": _lower_gather}


def to_milp(problem: VerifyProblem, margin: float = 0.0, slack: str = "strict") -> MilpModel:
    """Lower a verification problem to a MILP model (see the module docstring for the encoding).

    Args:
        problem: the problem; `problem.net.facts` supplies the big-M bounds (IBP is run when
            they are missing).
        margin: absolute amount by which every property and input-constraint row is loosened.
        slack: which atoms share the maximised slack t: "strict", "all" or "none".
    Returns:
        The model; `model.input_vars` are the input columns, `model.notes` its deviations.
    Raises:
        UnsupportedQuery: unknown weights, an unbounded input box, or a non-NNF formula.
    """
    net = problem.net
    if net.has_unknowns:
        raise UnsupportedQuery(f"network '{net.name}' has unknown weights; train it first",
                               net.span)
    if net.facts is None or any(lay.name not in net.facts.lo for lay in net.layers):
        net = IntervalBounds().run(net, None)
    low = Lowering(problem, margin, slack)
    low.inputs()
    for lay in net.layers:
        low.node(lay, net.facts)
    for k, atom in enumerate(problem.input_constraints):
        low.formula(atom, None, f"where_{k}")
    low.formula(problem.prop, None, "prop")
    if margin > 0:
        low.m.notes.append(f"property and input-constraint rows loosened by {margin:g}")
    return low.m

