"""Write a MILP model as free MPS or CPLEX LP text that HiGHS, CBC and GLPK all read alike.

The text is written here from the model's own arrays, not by a solver's writer, so what a reader
gets is under our control:

- every number is `repr` of the float64 in the model (the shortest text that reads back as the
  same float), so the sound bounds of the model stay exactly as computed: no reader sees a bound
  rounded to 15 digits and tighter than the proved one;
- integer columns sit between `MARKER INTORG/INTEND` lines in MPS and in a `Binaries` (or
  `Generals`) section in LP, with their bounds written explicitly as well;
- the objective row is never empty (`0 x` when the model has none; GLPK rejects an LP file
  without one), and MPS has no `OBJSENSE` section (GLPK rejects it): a maximised objective is
  written negated and minimised, and the header says so;
- a ranged row (both sides finite and different) becomes two one-sided rows, since MPS `RANGES`
  would make the reader add two floats (a rounding we cannot control);
- `*` (MPS) or `\\` (LP) comment lines at the top say what the file asks and how to read it.

`feasibility_form` turns the model `to_milp` builds into the file form `nnirc emit` writes:
feasible means sat, infeasible means unsat, strict inequalities tightened by `STRICT_MARGIN`.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from nnir.backends.milp.lower import SLACK_NAME, legal_name, to_milp
from nnir.backends.milp.model import MilpModel, Var
from nnir.errors import BackendError
from nnir.io import write_text
from nnir.ir.printer import print_formula
from nnir.queries.problem import VerifyProblem

FORMATS = ("mps", "lp")
# A strict atom `e > r` is written `e >= r + STRICT_MARGIN`. A solver accepts a binary within
# its integrality tolerance of 0 or 1 (GLPK: 1e-5; HiGHS, CBC: 1e-6), which lets a big-M row
# miss the exact ReLU by that tolerance times M; with GLPK's defaults `tiny.nnir`'s `cap` (max
# y is exactly 0.5, M = 1) read feasible at a margin of 1e-5. 1e-4 is ten times that.
STRICT_MARGIN = 1e-4
_TERMS_PER_LINE = 6  # LP rows are wrapped: some readers limit the line length
_PROPERTY_CHARS = 400  # the property is shown in the header up to this length
_INT_ON, _INT_OFF = " MARKER 'MARKER' 'INTORG'\n", " MARKER 'MARKER' 'INTEND'\n"


def num(x: float) -> str:
    """A float64 as the shortest text that reads back as the same float (`repr`)."""
    return repr(float(x))


def feasibility_form(model: MilpModel, margin: float = STRICT_MARGIN) -> MilpModel:
    """The model as a feasibility problem: feasible iff the property is sat (up to `margin`).

    The model of `to_milp(problem)` (slack "strict") maximises one slack t shared by the strict
    atoms (`e - t >= r` for `e > r`); here t is fixed at `margin`, so each strict atom reads
    `e >= r + margin`, and the objective is dropped (the writer writes a zero one).

    Args:
        model: a model from `to_milp` (not modified).
        margin: by how much a strict atom must hold (> 0).
    Returns:
        A copy with no objective and, when there is a slack, that slack fixed at `margin`.
    """
    if not margin > 0:
        raise ValueError(f"the strict margin must be positive, not {margin!r}")
    cols = list(model.vars)
    if model.slack_var is not None:
        t = cols[model.slack_var]
        cols[model.slack_var] = Var(t.name, margin, margin, t.integer)
    return replace(model, vars=cols, objective={}, sense="min", slack_var=None)


def model_text(model: MilpModel, format: str = "mps", comments: list[str] | tuple = ()) -> str:
    """The model as free MPS or CPLEX LP text, `comments` as header lines.

    Args:
        model: the model.
        format: "mps" or "lp".
        comments: header lines (without the comment character).
    Returns:
        The file's text.
    Raises:
        BackendError: an unknown format, or a column with an empty or NaN box.
    """
    if format not in FORMATS:
        raise BackendError(f"unknown MILP file format '{format}'", hint="use mps or lp")
    for v in model.vars:
        if not v.lo <= v.hi:  # also catches NaN
            raise BackendError(f"column '{v.name}' has the empty box [{v.lo}, {v.hi}]")
    cols = _unique([legal_name(v.name) for v in model.vars])
    rows = _rows(model)
    names = _unique([legal_name(r[3]) for r in rows], taken=set(cols) | {"obj"})
    rows = [(i, c, s, n, rhs) for (i, c, s, _, rhs), n in zip(rows, names)]
    cost = model.cost()
    notes = list(comments)
    if model.sense == "max" and np.any(cost) and format == "mps":
        cost = -cost
        notes.append("The model maximises its objective; MPS files here are minimised (no "
                     "OBJSENSE section), so the objective row 'obj' holds its negation.")
    writer = _mps if format == "mps" else _lp
    return writer(model, cols, rows, cost, notes)


def write_model(model: MilpModel, path: str, format: str = "mps",
                comments: list[str] | tuple = ()) -> None:
    """Write `model` to `path` as free MPS or CPLEX LP (atomically: a reader never sees a
    half-written file). See `model_text`.

    Args:
        model: the model (e.g. from `to_milp`).
        path: the destination file.
        format: "mps" or "lp".
        comments: header comment lines.
    Raises:
        BackendError: unknown format or a malformed model.
    """
    write_text(path, model_text(model, format, comments))


def emit_text(problem: VerifyProblem, format: str, margin: float = STRICT_MARGIN) -> str:
    """The file `nnirc emit --format mps|lp` writes for a verify problem: its feasibility form
    (`feasibility_form`) with a header saying what is asked and how to read the answer."""
    model = feasibility_form(to_milp(problem), margin)
    return model_text(model, format, emit_header(problem, model, margin))


def emit_header(problem: VerifyProblem, model: MilpModel, margin: float) -> list[str]:
    """The header lines of an emitted MILP file (see `emit_text`)."""
    net = problem.net
    prop = print_formula(problem.prop).replace("\n", " ")
    if len(prop) > _PROPERTY_CHARS:
        prop = prop[:_PROPERTY_CHARS] + " ..."
    inputs = [model.vars[j].name for j in model.input_vars]
    strict = model.strict
    lines = [
        f"nnir: verify query '{problem.name}' on network '{net.name}' as a MILP feasibility "
        "problem",
        "Question: is there an input in the network's box"
        + (" meeting the input constraints" if problem.input_constraints else "")
        + " whose values satisfy the property?",
        f"  property: {prop}",
        "How to read the answer:",
        "  feasible   = sat: such an input exists; the values of the input columns "
        f"({_span(inputs)}) are one",
        "               (for a property that states a violation, as VNN-LIB properties do: a "
        "counterexample);",
        "  infeasible = unsat: no input satisfies the property"
        + (f" with its strict inequalities exceeded by {num(margin)}" if strict else "") + ".",
        "  The objective is constant (0): any feasible point answers; there is nothing to "
        "optimise.",
        f"Strict inequalities: `e > r` is written `e >= r + {num(margin)}` (strict margin "
        f"{num(margin)}" + (f"; column {SLACK_NAME} is fixed at it)." if strict else
                            "; this query has none)."),
        "  Solvers accept points within their feasibility and integrality tolerances (HiGHS, "
        "CBC: 1e-6; GLPK: 1e-5",
        "  on integrality), and a big-M row then misses the exact ReLU by up to that tolerance "
        "times its constant:",
        "  both answers hold up to these tolerances. For an exact verdict use `nnirc verify`, "
        "which confirms exactly.",
        "Encoding: one column per neuron; ReLU y = max(z, 0) with pre-activation bounds "
        "l < 0 < u as big-M rows with a",
        "  binary (Tjeng, Xiao & Tedrake, ICLR 2019); stable ReLUs are plain rows; each "
        "disjunction of the property",
        "  gets one binary per disjunct. Bounds and coefficients are the float64 values of the "
        "model, written",
        "  with `repr` (they read back exactly), the input box rounded outward.",
        f"Size: {model.summary()}.",
    ]
    lines.extend(f"note: {n}" for n in model.notes if SLACK_NAME not in n)
    return lines


def _span(names: list[str]) -> str:
    if len(names) <= 3:
        return ", ".join(names)
    return f"{names[0]} .. {names[-1]}"


def _unique(names: list[str], taken: set[str] | None = None) -> list[str]:
    """`names` made distinct (and distinct from `taken`) by numbered suffixes."""
    seen = set(taken or ())
    out = []
    for n in names:
        m, k = n, 1
        while m in seen:
            m, k = f"{n}_{k}", k + 1
        seen.add(m)
        out.append(m)
    return out


def _rows(model: MilpModel):
    """One-sided rows (index, value, sense "E"/"G"/"L", name, rhs); a ranged row is split."""
    out = []
    for r in model.rows:
        lo, hi = r.lo, r.hi
        if math.isnan(lo) or math.isnan(hi) or lo > hi or lo == math.inf or hi == -math.inf:
            raise BackendError(f"row '{r.name}' has the empty range [{lo}, {hi}]")
        if lo == hi:
            out.append((r.index, r.value, "E", r.name, lo))
        else:
            if lo > -math.inf:
                out.append((r.index, r.value, "G", r.name if hi == math.inf else r.name + "_lo",
                            lo))
            if hi < math.inf:
                out.append((r.index, r.value, "L", r.name if lo == -math.inf else r.name + "_hi",
                            hi))
    return out


def _mps(model, cols, rows, cost, notes) -> str:
    out = [f"* {line}".rstrip() + "\n" for line in notes]
    out.append(f"NAME {legal_name(model.name)}\nROWS\n N obj\n")
    out.extend(f" {sense} {name}\n" for _, _, sense, name, _ in rows)
    # The matrix column by column (MPS lists it so): entries of each column, rows in order.
    entries: list[list[tuple[str, float]]] = [[] for _ in cols]
    for idx, val, _, name, _ in rows:
        for j, v in zip(idx.tolist(), val.tolist()):
            entries[j].append((name, v))
    out.append("COLUMNS\n")
    in_int, any_cost = False, bool(np.any(cost))
    for j, (name, var) in enumerate(zip(cols, model.vars)):
        if var.integer != in_int:
            out.append(_INT_ON if var.integer else _INT_OFF)
            in_int = var.integer
        # An objective entry where the cost is not 0, and a 0 one where the objective would
        # otherwise be empty (first column) or the column would have no entry at all (some
        # readers drop or reject a column that only appears under BOUNDS).
        if cost[j] or not entries[j] or (j == 0 and not any_cost):
            out.append(f" {name} obj {num(cost[j])}\n")
        out.extend(f" {name} {row} {num(v)}\n" for row, v in entries[j])
    if in_int:
        out.append(_INT_OFF)
    out.append("RHS\n")
    out.extend(f" RHS {name} {num(rhs)}\n" for _, _, _, name, rhs in rows if rhs != 0.0)
    out.append("BOUNDS\n")
    for name, var in zip(cols, model.vars):
        lo, hi = var.lo, var.hi
        if lo == hi:
            out.append(f" FX BND {name} {num(lo)}\n")
            continue
        if lo == -math.inf and hi == math.inf:
            out.append(f" FR BND {name}\n")
            continue
        # the lower bound first: some readers make a column free below when an UP bound < 0
        # comes while its lower bound is still the default 0
        out.append(f" MI BND {name}\n" if lo == -math.inf else f" LO BND {name} {num(lo)}\n")
        out.append(f" PL BND {name}\n" if hi == math.inf else f" UP BND {name} {num(hi)}\n")
    out.append("ENDATA\n")
    return "".join(out)


def _lp(model, cols, rows, cost, notes) -> str:
    out = [f"\\ {line}".rstrip() + "\n" for line in notes]
    out.append("Maximize\n" if model.sense == "max" and np.any(cost) else "Minimize\n")
    terms = [(cols[j], float(cost[j])) for j in np.flatnonzero(cost)] or \
        ([(cols[0], 0.0)] if cols else [])
    out.append(_lp_expr("obj", terms) + "\n")
    out.append("Subject To\n")
    for idx, val, sense, name, rhs in rows:
        terms = [(cols[j], v) for j, v in zip(idx.tolist(), val.tolist())]
        if not terms:  # a constant row (e.g. `0 >= 1`): LP needs a variable on the left
            terms = [(cols[0], 0.0)]
        op = {"E": "=", "G": ">=", "L": "<="}[sense]
        out.append(f"{_lp_expr(name, terms)} {op} {num(rhs)}\n")
    out.append("Bounds\n")
    for name, var in zip(cols, model.vars):
        lo, hi = var.lo, var.hi
        if lo == hi:
            out.append(f" {name} = {num(lo)}\n")
        elif lo == -math.inf and hi == math.inf:
            out.append(f" {name} free\n")
        elif hi == math.inf:
            out.append(f" {name} >= {num(lo)}\n")
        else:
            out.append(f" {'-inf' if lo == -math.inf else num(lo)} <= {name} <= {num(hi)}\n")
    binaries = [n for n, v in zip(cols, model.vars) if v.integer and v.lo >= 0 and v.hi <= 1]
    generals = [n for n, v in zip(cols, model.vars) if v.integer and n not in set(binaries)]
    for title, names in (("Binaries", binaries), ("Generals", generals)):
        if names:
            out.append(title + "\n")
            out.extend(" " + " ".join(names[k:k + 8]) + "\n" for k in range(0, len(names), 8))
    out.append("End\n")
    return "".join(out)


def _lp_expr(name: str, terms) -> str:
    """` name: c1 x1 + c2 x2 ...`, wrapped every few terms (a continuation starts with space)."""
    parts = []
    for k, (col, c) in enumerate(terms):
        sign = "-" if math.copysign(1.0, c) < 0 else "+"
        text = f"{num(abs(c))} {col}"
        parts.append(text if k == 0 and sign == "+" else f"{sign} {text}")
    lines = [" ".join(parts[k:k + _TERMS_PER_LINE])
             for k in range(0, len(parts), _TERMS_PER_LINE)]
    return f" {name}: " + "\n   ".join(lines)
