"""VNN-LIB 1 text -> one nnir formula over a network's input and output, exactly.

Parsed with our own small lark grammar (`grammar/vnnlib.lark`): the `vnnlib` package on PyPI
reads only VNN-LIB 2. `X_i` becomes the network's input `x[i]` and `Y_j` its output `y[j]`;
numbers are exact rationals (the decimal text as written); every mistake is an
`InputFileError` at file:line:col.
"""
from __future__ import annotations

import functools
import re
from fractions import Fraction

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from nnir import limits
from nnir.errors import InputFileError, Span, clip
from nnir.grammar import GRAMMAR_PATH
from nnir.ir.const import parse_decimal
from nnir.ir.formula import junction
from nnir.ir.nodes import And, Atom, BoolConst, Formula, Network, Not, Ref

_VAR = re.compile(r"^([XY])_(\d+)$")
_REL = {"<=": "<=", ">=": ">=", "<": "<", ">": ">", "=": "=="}


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR_PATH.with_name("vnnlib.lark").read_text(encoding="utf-8"),
                parser="lalr", propagate_positions=True, maybe_placeholders=False)


class _Reader:
    """Turns one parse tree into a formula, checking names, sizes and linearity."""

    def __init__(self, text: str, path: str, net: Network):
        self.text, self.path, self.net = text, path, net
        self.declared: dict[str, Token] = {}

    def error(self, msg: str, node, hint: str | None = None) -> InputFileError:
        if isinstance(node, Token):
            span = Span(self.path, node.line, node.column, node.end_line, node.end_column)
        elif node is not None and not getattr(node.meta, "empty", True):
            m = node.meta
            span = Span(self.path, m.line, m.column, m.end_line, m.end_column)
        else:
            span = Span(self.path, 1, 1)
        return InputFileError(msg, span, hint, self.text)

    def formula(self, tree: Tree) -> Formula:
        parts = []
        for cmd in tree.children:
            if cmd.data == "declare":
                self.declare(*cmd.children)
            else:
                parts.append(self.prop(cmd.children[0]))
        self.check_declarations(tree)
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def declare(self, name: Token, sort: Token) -> None:
        m = _VAR.match(str(name))
        if not m:
            raise self.error(f"unexpected variable '{name}'", name,
                             "VNN-LIB 1 names the inputs X_0, X_1, ... and the outputs Y_0, ...")
        if str(sort) != "Real":
            raise self.error(f"'{name}' is declared {sort}; VNN-LIB variables are Real", sort)
        if str(name) in self.declared:
            raise self.error(f"'{name}' is declared twice", name)
        self.ref(name)  # range check against the network
        self.declared[str(name)] = name

    def check_declarations(self, tree: Tree) -> None:
        for kind, size, what in (("X", self.net.input.size, "inputs"),
                                 ("Y", self.net.output_size, "outputs")):
            have = sum(1 for n in self.declared if n[0] == kind)
            if have != size:
                raise self.error(f"the property declares {have} {what} ({kind}_i), but network "
                                 f"'{self.net.name}' has {size}", tree,
                                 "is this the property for this network?")

    def ref(self, tok: Token) -> Ref:
        kind, idx = _VAR.match(str(tok)).groups()
        node, size = ((self.net.input.name, self.net.input.size) if kind == "X"
                      else (self.net.output, self.net.output_size))
        if int(idx) >= size:
            raise self.error(f"'{tok}' is out of range: network '{self.net.name}' has {size} "
                             f"{'inputs' if kind == 'X' else 'outputs'}", tok)
        return Ref(node, int(idx))

    def prop(self, t: Tree) -> Formula:
        kind = t.data
        if kind in ("and_", "or_"):
            return junction(kind == "and_", (self.prop(c) for c in t.children))
        if kind == "not_":
            return Not(self.prop(t.children[0]))
        if kind in ("true_", "false_"):
            return BoolConst(kind == "true_")
        rel, lhs, rhs = t.children
        (lt, lc), (rt, rc) = self.term(lhs), self.term(rhs)
        terms = dict(lt)
        for r, v in rt.items():
            terms[r] = terms.get(r, Fraction(0)) - v
        return Atom(tuple((r, v) for r, v in terms.items() if v != 0), _REL[str(rel)], rc - lc)

    def term(self, t) -> tuple[dict, Fraction]:
        """A linear term as (coefficients by reference, constant)."""
        kind = t.data
        if kind == "num":
            return {}, parse_decimal(str(t.children[0]))  # checked by check_text
        if kind == "var":
            tok = t.children[0]
            if str(tok) not in self.declared:
                raise self.error(f"'{tok}' is not declared", tok,
                                 f"add (declare-const {tok} Real) before the assertions")
            return {self.ref(tok): Fraction(1)}, Fraction(0)
        parts = [self.term(c) for c in t.children]
        if kind == "neg":
            return _scaled(parts[0], Fraction(-1))
        if kind in ("add", "sub"):
            out = parts[0]
            for p in parts[1:]:
                out = _sum(out, _scaled(p, Fraction(-1)) if kind == "sub" else p)
            return out
        if kind == "mul":
            out = parts[0]
            for p in parts[1:]:
                if out[0] and p[0]:
                    raise self.error("product of two variables: VNN-LIB 1 properties are "
                                     "linear", t)
                out = _scaled(p, out[1]) if not out[0] else _scaled(out, p[1])
            return out
        num, den = parts
        if den[0]:
            raise self.error("division by a variable: VNN-LIB 1 properties are linear", t)
        if den[1] == 0:
            raise self.error("division by zero", t)
        return _scaled(num, 1 / den[1])


def _scaled(p, k: Fraction):
    return {r: v * k for r, v in p[0].items()}, p[1] * k


def _sum(a, b):
    terms = dict(a[0])
    for r, v in b[0].items():
        terms[r] = terms.get(r, Fraction(0)) + v
    return terms, a[1] + b[1]


# A number (not the digits inside a name like X_10), or a comment to skip.
_NUMBER = re.compile(r";[^\n]*|(?<![A-Za-z0-9_.])[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)"
                     r"(?:[eE][+-]?[0-9]+)?")


def check_text(text: str, path: str) -> None:
    """Refuse VNN-LIB text beyond `nnir.limits` (nesting, `or` width, numbers) before parsing,
    at the line and column of the offending token (VNN-LIB 1 and 2 alike)."""
    found = limits.scan_nesting(text, vnnlib=True)
    if found:
        line, col = limits.position(text, found[1])
        raise InputFileError(found[0], Span(path, line, col, line, col + 1),
                             "nnir reads properties within the bounds of nnir/limits.py", text)
    for m in _NUMBER.finditer(text):
        if m.group()[0] == ";":
            continue
        try:
            parse_decimal(m.group())
        except ValueError as exc:
            line, col = limits.position(text, m.start())
            raise InputFileError(f"invalid number '{clip(m.group())}': {exc}",
                                 Span(path, line, col, line, col + len(m.group())), None,
                                 text) from None


def parse_vnnlib(text: str, path: str, net: Network) -> Formula:
    """The conjunction of the file's assertions, as a formula over `net`'s input and output."""
    check_text(text, path)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, path) from None
    return _Reader(text, path, net).formula(tree)


def _syntax_error(exc: UnexpectedInput, text: str, path: str) -> InputFileError:
    hint = "VNN-LIB 1: (declare-const X_0 Real), (assert (<= X_0 1.5)), and, or, +, -, *"
    tok = getattr(exc, "token", None)
    if isinstance(exc, UnexpectedEOF) or (tok is not None and tok.type == "$END"):
        lines = text.splitlines() or [""]
        return InputFileError("unexpected end of file (a ')' may be missing)",
                              Span(path, len(lines), len(lines[-1]) + 1), hint, text)
    line, col = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "?"
        return InputFileError(f"unexpected character {ch!r}", Span(path, line, col), hint, text)
    return InputFileError(f"unexpected '{clip(tok)}'",
                          Span(path, line, col, line, col + len(str(tok))),
                          hint, text)
