"""Parsing `.nnir` text with lark, and turning lark's exceptions into pointed diagnostics."""
from __future__ import annotations

import functools

from lark import Lark, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from nnir import limits
from nnir.errors import DslError, Span, clip
from nnir.grammar import GRAMMAR_PATH

# Friendly names for the terminals lark reports as expected.
_TOKEN_NAMES = {
    "NAME": "a name", "INT": "an integer", "NUMBER": "a number", "STRING": "a quoted string",
    "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('",
    "RPAR": "')'", "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "REL": "a comparison",
    "ADDOP": "'+' or '-'", "NEG": "'-'", "PLUS": "'+'", "STAR": "'*'", "DOT": "'.'",
    "__ANON_0": "'->'", "$END": "end of file",
}


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR_PATH.read_text(encoding="utf-8"), parser="lalr",
                propagate_positions=True, maybe_placeholders=False)


def parse_tree(text: str, filename: str) -> Tree:
    """Parse `text` into a lark tree, raising `DslError` with position on a syntax error.

    Text nesting deeper than `limits.MAX_NESTING` (brackets, `not`) or with an `or` wider than
    `limits.MAX_OR_WIDTH` is refused first, at the offending token, so that no tree walker
    recurses without bound.
    """
    found = limits.scan_nesting(text)
    if found:
        raise _limit_error(found[0], found[1], text, filename)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, filename) from None
    _check_depth(tree, text, filename)
    return tree


def _limit_error(msg: str, pos: int, text: str, filename: str) -> DslError:
    line, col = limits.position(text, pos)
    return DslError(msg, Span(filename, line, col, line, col + 1),
                    "nnir reads text within the bounds of nnir/limits.py; split the formula "
                    "or data", text)


# Nodes that nest: a chain of `not`s recurses as deeply as brackets do.
_NESTING = {"not_", "paren", "list_lit"}


def _check_depth(tree: Tree, text: str, filename: str) -> None:
    """Refuse a tree nesting `not`, parentheses and lists deeper than `limits.MAX_NESTING`."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if node.data in _NESTING:
            depth += 1
            if depth > limits.MAX_NESTING:
                m = node.meta
                line, col = (m.line, m.column) if not getattr(m, "empty", True) else (1, 1)
                raise DslError(f"formula or list nested more than {limits.MAX_NESTING} deep",
                               Span(filename, line, col, line, col + 1),
                               "nnir reads text within the bounds of nnir/limits.py", text)
        stack.extend((c, depth) for c in node.children if isinstance(c, Tree))


def _describe(expected) -> str:
    names = []
    for tok in sorted(expected):
        name = _TOKEN_NAMES.get(tok)
        if name is None:
            name = f"'{tok.lower()}'" if tok.isalpha() else tok
        if name not in names:
            names.append(name)
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


def _syntax_error(exc: UnexpectedInput, text: str, filename: str) -> DslError:
    line, col = getattr(exc, "line", 1), getattr(exc, "column", 1)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken)
                                          and exc.token.type == "$END"):
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        msg = "unexpected end of file"
        expected = getattr(exc, "expected", None)
        hint = f"expected {_describe(expected)}" if expected else "a '}' or ']' may be missing"
        return DslError(msg, Span(filename, line, col), hint, text)
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "?"
        return DslError(f"unexpected character {ch!r}", Span(filename, line, col, line, col + 1),
                        None, text)
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    width = max(1, len(str(tok)))
    span = Span(filename, line, col, line, col + width)
    msg = f"unexpected {clip(tok)}" if tok.type != "NAME" else f"unexpected name '{clip(tok)}'"
    hint = f"expected {_describe(exc.expected)}"
    return DslError(msg, span, hint, text)
