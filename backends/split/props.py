"""A verify formula compiled for the split engine: rows to bound, and its truth on boxes and points.

The formula is `And(input constraints, where, prop)` in negation normal form. Each atom
`g = lhs - rhs REL 0` becomes one or two rows `s * g` (s = +-1) whose upper bound over a box
decides whether the atom is *certainly false* there:

    g <= 0 / g < 0 : false iff max(-g) < 0 / <= 0      (row -g)
    g >= 0 / g > 0 : false iff max(g) < 0 / <= 0       (row g)
    g == 0         : false iff max(-g) < 0 or max(g) < 0

A box is closed when the whole formula is certainly false (And: some argument, Or: every one).
At concrete points the formula's float *objective* (`objective`: >= 0 where it holds) guides
the search for witnesses; it is never trusted, every candidate is replayed exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnir.backends.split.backsub import Rows
from nnir.backends.split.forward import RULES
from nnir.ir.kinds import supports
from nnir.ir.nodes import And, Atom, BoolConst, Formula, Network, Or
from nnir.queries.problem import VerifyProblem

_SIGNS = {"<=": (-1,), "<": (-1,), ">=": (1,), ">": (1,), "==": (-1, 1)}


@dataclass
class Compiled:
    """The compiled formula: `tree` of ("and"|"or", [..]) / ("atom", k) / ("const", bool)."""

    tree: tuple
    atoms: list[Atom]
    rows: Rows  # bound rows, in atom order
    row_atom: np.ndarray  # (R,) atom of each row
    row_sign: np.ndarray  # (R,) +-1
    G: dict  # node -> (n_atoms, size) float coefficients of g
    rhs: np.ndarray  # (n_atoms,)


def compile_problem(problem: VerifyProblem) -> Compiled:
    """Compile `And(input constraints, where, prop)` of `problem` (already in NNF)."""
    parts = list(problem.input_constraints) + [problem.prop]
    atoms: list[Atom] = []
    tree = _tree(And(tuple(parts)), atoms)
    net = problem.net
    G = {}
    for k, atom in enumerate(atoms):
        for ref, c in atom.terms:
            if ref.node not in G:
                G[ref.node] = np.zeros((len(atoms), net.size_of(ref.node)))
            G[ref.node][k, ref.index] += float(c)
    rhs = np.array([float(a.rhs) for a in atoms])
    row_atom = np.array([k for k, a in enumerate(atoms) for _ in _SIGNS[a.rel]], dtype=np.int64)
    row_sign = np.array([s for a in atoms for s in _SIGNS[a.rel]], dtype=np.float64)
    coef = {node: g[row_atom] * row_sign[:, None] for node, g in G.items()}
    rows = Rows(coef, -row_sign * rhs[row_atom])
    return Compiled(tree, atoms, rows, row_atom, row_sign, G, rhs)


def _tree(f: Formula, atoms: list) -> tuple:
    if isinstance(f, BoolConst):
        return ("const", f.value)
    if isinstance(f, (And, Or)):
        return ("and" if isinstance(f, And) else "or", [_tree(a, atoms) for a in f.args])
    if isinstance(f, Atom):
        atoms.append(f)
        return ("atom", len(atoms) - 1)
    raise TypeError(f"formula node {type(f).__name__} is not in negation normal form")


def closed_and_critical(comp: Compiled, U: np.ndarray):
    """Which boxes are certainly false, and for each box the row worth tightening.

    Args:
        U: (B, R) sound upper bounds of the rows.
    Returns:
        (closed (B,) bool, row (B,) int: the row of the atom that decides the formula's score,
        -1 where no atom does; score: And takes its most nearly closed argument, Or its least).
    """
    strict = np.array([comp.atoms[k].rel in ("<", ">") for k in comp.row_atom], dtype=bool)
    false_row = np.where(strict, U <= 0, U < 0)
    return _walk(comp, comp.tree, U, false_row)


def _walk(comp: Compiled, node: tuple, U, false_row):
    B = U.shape[0]
    kind = node[0]
    if kind == "const":
        return (np.full(B, not node[1]), np.full(B, -np.inf if not node[1] else np.inf),
                np.full(B, -1))
    if kind == "atom":
        rs = np.nonzero(comp.row_atom == node[1])[0]
        sub = U[:, rs]
        j = np.argmin(sub, axis=1)
        return false_row[:, rs].any(axis=1), sub[np.arange(B), j], rs[j]
    parts = [_walk(comp, a, U, false_row) for a in node[1]]
    closed = np.stack([p[0] for p in parts])
    score = np.stack([p[1] for p in parts])
    row = np.stack([p[2] for p in parts])
    # And closes when one argument does (work on the nearest); Or needs all (the farthest).
    j = np.argmin(score, axis=0) if kind == "and" else np.argmax(score, axis=0)
    ar = np.arange(B)
    c = closed.any(axis=0) if kind == "and" else closed.all(axis=0)
    return c, score[j, ar], row[j, ar]


def atom_values(comp: Compiled, vals: dict) -> np.ndarray:
    """(B, n_atoms) float values of g = lhs - rhs at a batch of points."""
    B = next(iter(vals.values())).shape[0]
    g = np.zeros((B, len(comp.atoms)))
    for node, Gn in comp.G.items():
        g += vals[node] @ Gn.T
    return g - comp.rhs


def objective(comp: Compiled, g: np.ndarray):
    """A float objective at each point that is >= 0 where the formula holds (in floats), and the
    weights (B, n_atoms) of d objective / d g, for gradient search.

    Atoms give -g, g or -|g|; Or takes its best argument; And takes the sum of its arguments'
    negative parts when some argument is negative (so one step works on all violated atoms at
    once), else its least argument.
    """
    B, n = g.shape
    rel = [a.rel for a in comp.atoms]
    sign = np.array([{"<=": -1.0, "<": -1.0, ">=": 1.0, ">": 1.0, "==": 0.0}[r] for r in rel])
    t = np.where(sign == 0, -np.abs(g), sign * g)
    dsign = np.where(sign == 0, -np.sign(g), sign)
    return _owalk(comp.tree, t, dsign)


def _owalk(node: tuple, t: np.ndarray, dsign: np.ndarray):
    B, n = t.shape
    if node[0] == "const":
        return np.full(B, np.inf if node[1] else -np.inf), np.zeros((B, n))
    if node[0] == "atom":
        w = np.zeros((B, n))
        w[:, node[1]] = dsign[:, node[1]]
        return t[:, node[1]], w
    parts = [_owalk(a, t, dsign) for a in node[1]]
    v = np.stack([p[0] for p in parts])  # (C, B)
    w = np.stack([p[1] for p in parts])  # (C, B, n)
    ar = np.arange(B)
    if node[0] == "or":
        j = np.argmax(v, axis=0)
        return v[j, ar], w[j, ar]
    j = np.argmin(v, axis=0)
    neg = v < 0
    anyneg = neg.any(axis=0)
    with np.errstate(invalid="ignore"):
        val = np.where(anyneg, np.where(neg, v, 0.0).sum(0), v[j, ar])
        wneg = (w * neg[:, :, None]).sum(0)
    return val, np.where(anyneg[:, None], wneg, w[j, ar])


def supported(net: Network) -> str | None:
    """Why the split engine cannot take `net`, or None."""
    for lay in net.layers:
        takes = ("the engine takes dense, conv, gather, slice, add and concat nodes with relu "
                 "or linear activations")
        if not supports(RULES, lay.kind):
            return f"node '{lay.name}' is a {lay.kind} node; {takes}"
        if lay.act not in ("relu", "linear"):
            return f"node '{lay.name}' has activation {lay.act}; {takes}"
    if net.has_unknowns:
        return "the network has unknown weights"
    return None
