"""VNN-LIB properties in and out: a property file becomes verify problems, and back.

A VNN-LIB property states the *unsafe* region: an input box and a condition on the outputs; it
is `sat` when some input in the box reaches the condition. `read_vnnlib` splits the property
into input regions (a disjunction over input boxes, as in ACAS Xu property 6, gives several),
each a `VerifyProblem` whose network carries the region's box. The property holds (is `unsat`)
iff every problem is `unsat`. VNN-LIB 2 files (`declare-network`) need the optional `vnnlib`
package; version 1 is read by our own grammar (`vnnlib_parse`).
"""
from __future__ import annotations

import os
from fractions import Fraction

from nnir import limits
from nnir.errors import InputFileError, NnirError
from nnir.formats.onnx_io import gunzip, unzipped_name, with_box
from nnir.formats.vnnlib2 import read_vnnlib2
from nnir.formats.vnnlib_parse import check_text, parse_vnnlib
from nnir.io import decode_text, read_bytes, write_text
from nnir.ir.formula import nnf
from nnir.ir.nodes import And, Atom, BoolConst, Formula, Network, Or
from nnir.queries.problem import VerifyProblem

MAX_REGIONS = 4096  # input regions a property may expand to (a cross product of disjunctions)


def read_vnnlib(path: str, net: Network, name: str | None = None) -> list[VerifyProblem]:
    """Read a VNN-LIB property for `net` as one verify problem per input region.

    Args:
        path: the `.vnnlib` file, or `.vnnlib.gz` (gzip-compressed, as VNN-COMP ships them).
        net: the network it speaks of; `X_i` is its input i and `Y_j` its output j. Its input
            box is replaced by each region's box (every X_i must be bounded on both sides).
        name: the problems' name (default: the file's stem; `_1`, `_2`, ... for several).
    Returns:
        the problems; an empty list when every region's box is empty (the property holds).
    Raises:
        InputFileError: syntax errors and bad names with file:line:col, missing bounds.
    """
    data = gunzip(read_bytes(path, "VNN-LIB file"), path, "VNN-LIB file", limits.MAX_FILE_BYTES)
    text = decode_text(data, path, "VNN-LIB file")
    if "(declare-network" in text:
        check_text(text, path)  # nesting, `or` width and numbers within nnir.limits

        formula = read_vnnlib2(text, path, net)
    else:
        formula = parse_vnnlib(text, path, net)
    stem = name or os.path.splitext(os.path.basename(unzipped_name(path)))[0]
    regions = split_regions(nnf(formula), net.input.name, path)
    problems = []
    for k, (atoms, outs) in enumerate(regions, 1):
        box = _box(atoms, net.input.size, path, k if len(regions) > 1 else None)
        if box is None:
            continue  # an empty box: nothing to find there
        lo, hi, where = box
        prop = outs[0] if len(outs) == 1 else And(outs) if outs else BoolConst(True)
        label = stem if len(regions) == 1 else f"{stem}_{k}"
        problems.append(VerifyProblem(with_box(net, lo, hi), where, nnf(prop), label))
    return problems


def split_regions(f: Formula, input_name: str, path: str) -> list[tuple[tuple, tuple]]:
    """Disjunctive form over the input side: [(input atoms, output formulas), ...].

    Atoms that read only the input describe regions; disjunctions containing such atoms are
    split, every other part of the formula is kept whole as a condition on the outputs.
    """
    def input_only(a: Atom) -> bool:
        return bool(a.terms) and all(r.node == input_name for r, _ in a.terms)

    def mentions_input(g) -> bool:
        if isinstance(g, Atom):
            return input_only(g)
        return isinstance(g, (And, Or)) and any(mentions_input(a) for a in g.args)

    def walk(g) -> list[tuple[tuple, tuple]]:
        if isinstance(g, Atom):
            return [((g,), ())] if input_only(g) else [((), (g,))]
        if isinstance(g, BoolConst):
            return [((), ())] if g.value else []
        if isinstance(g, (And, Or)) and not mentions_input(g):
            return [((), (g,))]  # a condition on the outputs, kept as written
        if isinstance(g, Or):
            return [r for a in g.args for r in walk(a)]
        out = [((), ())]
        for a in g.args:
            out = [(i1 + i2, o1 + o2) for i1, o1 in out for i2, o2 in walk(a)]
            if len(out) > MAX_REGIONS:
                raise InputFileError(f"{path}: the property splits into more than "
                                     f"{MAX_REGIONS} input regions")
        return out

    return walk(f)


def _box(atoms, n: int, path: str, region: int | None):
    """(lo, hi, other input constraints) from a region's input atoms; None if it is empty."""
    lo: list = [None] * n
    hi: list = [None] * n
    where = []
    for a in atoms:
        if len(a.terms) != 1:
            where.append(a)
            continue
        (ref, c), = a.terms
        bound = a.rhs / c
        rel = a.rel if c > 0 else {"<=": ">=", "<": ">", ">=": "<=", ">": "<"}.get(a.rel, a.rel)
        if rel in ("<=", "<", "=="):
            hi[ref.index] = bound if hi[ref.index] is None else min(hi[ref.index], bound)
        if rel in (">=", ">", "=="):
            lo[ref.index] = bound if lo[ref.index] is None else max(lo[ref.index], bound)
        if rel in ("<", ">"):
            where.append(a)  # the box is closed: the strict bound stays a constraint
    for i in range(n):
        for side, vals in (("lower", lo), ("upper", hi)):
            if vals[i] is None:
                where_txt = f" in input region {region}" if region else ""
                raise InputFileError(f"{path}: X_{i} has no {side} bound{where_txt}",
                                     hint="nnir needs a finite input box: bound every X_i "
                                     "with (assert (<= X_i ...)) and (assert (>= X_i ...))")
    if any(a > b for a, b in zip(lo, hi)):
        return None
    return lo, hi, tuple(where)


# ----------------------------------------------------------------------------- writing
def _number(q: Fraction) -> str:
    """An exact VNN-LIB constant: a plain decimal when one exists, else (/ n d)."""
    q = Fraction(q)
    d = q.denominator
    twos, fives, rest = 0, 0, d
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    if rest != 1:
        text = f"(/ {abs(q.numerator)} {d})"
        return f"(- {text})" if q < 0 else text
    digits = max(twos, fives)
    scaled = str(abs(q.numerator) * 10 ** digits // d).rjust(digits + 1, "0")
    body = scaled if digits == 0 else scaled[:-digits] + "." + scaled[-digits:]
    return ("-" if q < 0 else "") + (body if "." in body else body + ".0")


def _var(ref, net: Network) -> str:
    if ref.node == net.input.name:
        return f"X_{ref.index}"
    if ref.node == net.output:
        return f"Y_{ref.index}"
    raise NnirError(f"VNN-LIB speaks of inputs and outputs only; the property reads layer "
                    f"'{ref.node}'", hint=f"state it over '{net.input.name}' and '{net.output}'")


def _atom(a: Atom, net: Network) -> str:
    terms = [_var(r, net) if c == 1 else f"(* {_number(c)} {_var(r, net)})" for r, c in a.terms]
    lhs = terms[0] if len(terms) == 1 else f"(+ {' '.join(terms)})" if terms else "0.0"
    rel = "=" if a.rel == "==" else a.rel
    return f"({rel} {lhs} {_number(a.rhs)})"


def _formula(f: Formula, net: Network) -> str:
    if isinstance(f, Atom):
        return _atom(f, net)
    if isinstance(f, BoolConst):
        return "true" if f.value else "false"
    word = "and" if isinstance(f, And) else "or"
    return f"({word} " + " ".join(_formula(a, net) for a in f.args) + ")"


def vnnlib_text(problem: VerifyProblem) -> str:
    """The VNN-LIB 1 text of a verify problem: box, input constraints, property."""
    net = problem.net
    lines = [f"; written by nnir: query '{problem.name}' on network '{net.name}'", ""]
    lines += [f"(declare-const X_{i} Real)" for i in range(net.input.size)] + [""]
    lines += [f"(declare-const Y_{j} Real)" for j in range(net.output_size)] + [""]
    for i, (a, b) in enumerate(zip(net.input.lo.exact, net.input.hi.exact)):
        lines += [f"(assert (>= X_{i} {_number(a)}))", f"(assert (<= X_{i} {_number(b)}))"]
    lines += [f"(assert {_atom(a, net)})" for a in problem.input_constraints]
    prop = nnf(problem.prop)
    parts = prop.args if isinstance(prop, And) else (prop,)
    lines += [f"(assert {_formula(p, net)})" for p in parts]
    return "\n".join(lines) + "\n"


def write_vnnlib(problem: VerifyProblem, path: str) -> None:
    """Write a verify problem as a VNN-LIB 1 file (atomically); `read_vnnlib` reads it back.

    Args:
        problem: the problem (its network's input and output are the declared variables).
        path: the destination file.
    Raises:
        OSError: the file cannot be written.
    """
    write_text(path, vnnlib_text(problem))


__all__ = ["read_vnnlib", "split_regions", "vnnlib_text", "write_vnnlib"]
