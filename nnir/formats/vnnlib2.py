"""VNN-LIB 2 properties (`declare-network ...`), read through the optional `vnnlib` package.

The package parses and type-checks the file; we walk its syntax tree ourselves so that every
constant is the exact rational its text denotes (the package's own linear forms are floats).
Properties of one network with one input and one output tensor are read; tensor entries are
numbered in row-major order, as the network's flattened input and output.
"""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np

from nnir.errors import InputFileError, Span
from nnir.ir.formula import junction
from nnir.ir.nodes import And, Atom, Formula, Network, Or, Ref

_RELS = {"LessEqual": "<=", "LessThan": "<", "GreaterEqual": ">=", "GreaterThan": ">",
         "Equal": "=="}


def read_vnnlib2(text: str, path: str, net: Network) -> Formula:
    """The conjunction of a VNN-LIB 2 file's assertions over `net`'s input and output."""
    try:
        import vnnlib
    except ImportError:
        raise InputFileError(f"{path} is a VNN-LIB 2 file (declare-network), which needs the "
                             "optional `vnnlib` package", hint="pip install 'nnir[vnnlib]'; "
                             "VNN-LIB 1 files are read without it") from None
    try:
        query = vnnlib.parse_query_string(text)
    except Exception as exc:  # the package reports its errors as text, sometimes JSON
        raise _package_error(str(exc), path, text) from None
    return _Walk(path, text, net, query).formula()


def _package_error(msg: str, path: str, text: str) -> InputFileError:
    line = 1
    try:
        first = json.loads(msg)["errors"][0]
        line, msg = int(first.get("line", 1)), f"{first['message']}: {first.get('hint', '')}"
    except (ValueError, KeyError, IndexError, TypeError):
        pass
    return InputFileError(msg.strip().rstrip(":"), Span(path, line, 1), None, text)


class _Walk:
    def __init__(self, path: str, text: str, net: Network, query):
        self.path, self.text, self.net = path, text, net
        if len(query.networks) != 1:
            raise self.error(f"the property declares {len(query.networks)} networks; nnir "
                             "reads properties of one network")
        decl = query.networks[0]
        if len(decl.inputs) != 1 or len(decl.outputs) != 1 or list(decl.hidden):
            raise self.error("nnir reads VNN-LIB 2 networks with one input, one output and no "
                             "hidden-node declarations")
        self.shapes = {"Input": list(decl.inputs[0].shape), "Output": list(decl.outputs[0].shape)}
        for kind, size in (("Input", net.input.size), ("Output", net.output_size)):
            if int(np.prod(self.shapes[kind])) != size:
                raise self.error(f"the property's {kind.lower()} has shape {self.shapes[kind]}, "
                                 f"but network '{net.name}' has {size} {kind.lower()}s")
        self.query = query

    def error(self, msg: str, line: int = 1) -> InputFileError:
        return InputFileError(msg, Span(self.path, line, 1), None, self.text)

    def formula(self) -> Formula:
        parts = [self.prop(a.expr) for a in self.query.assertions]
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def prop(self, e) -> Formula:
        kind = type(e).__name__
        if kind in ("And", "Or"):
            return junction(kind == "And", (self.prop(c) for c in e.args))
        if kind == "NotEqual":
            return Or((self.atom(e, "<"), self.atom(e, ">")))
        if kind in _RELS:
            return self.atom(e, _RELS[kind])
        raise self.error(f"unsupported VNN-LIB 2 construct '{kind}'")

    def atom(self, e, rel: str) -> Atom:
        (lt, lc), (rt, rc) = self.term(e.lhs), self.term(e.rhs)
        terms = dict(lt)
        for r, v in rt.items():
            terms[r] = terms.get(r, Fraction(0)) - v
        return Atom(tuple((r, v) for r, v in terms.items() if v != 0), rel, rc - lc)

    def term(self, e) -> tuple[dict, Fraction]:
        kind = type(e).__name__
        if kind in ("Float", "Int"):
            return {}, Fraction(e.lexeme)
        if kind == "Var":
            return {self.ref(e): Fraction(1)}, Fraction(0)
        if kind == "Negate":
            t, c = self.term(e.expr)
            return {r: -v for r, v in t.items()}, -c
        if kind in ("Plus", "Minus"):
            parts = [self.term(a) for a in (e.args if kind == "Plus" else [e.head, *e.rest])]
            sign = [1] + [1 if kind == "Plus" else -1] * (len(parts) - 1)
            terms: dict = {}
            for s, (t, _) in zip(sign, parts):
                for r, v in t.items():
                    terms[r] = terms.get(r, Fraction(0)) + s * v
            return terms, sum((s * c for s, (_, c) in zip(sign, parts)), Fraction(0))
        if kind == "Multiply":
            parts = [self.term(a) for a in e.args]
            if sum(1 for t, _ in parts if t) > 1:
                raise self.error("product of two variables: properties must be linear")
            k, var = Fraction(1), ({}, Fraction(1))
            for t, c in parts:
                if t:
                    var = (t, c)
                else:
                    k *= c
            return {r: v * k for r, v in var[0].items()}, var[1] * k
        raise self.error(f"unsupported VNN-LIB 2 term '{kind}'")

    def ref(self, v) -> Ref:
        kind = v.kind.name
        if kind not in self.shapes:
            raise self.error(f"'{v.name}' is a {kind.lower()} variable; nnir reads properties "
                             "of inputs and outputs", getattr(v, "line", 1))
        idx = int(np.ravel_multi_index(tuple(v.indices), self.shapes[kind]))
        node = self.net.input.name if kind == "Input" else self.net.output
        return Ref(node, idx)
