"""Parsing `.nnir` text with lark, and turning lark's exceptions into pointed diagnostics."""
from __future__ import annotations

import functools

from lark import Lark, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from nnir.errors import DslError, Span
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
    """Parse `text` into a lark tree, raising `DslError` with position on a syntax error."""
    try:
        return _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, filename) from None


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
    msg = f"unexpected {tok!s}" if tok.type != "NAME" else f"unexpected name '{tok!s}'"
    hint = f"expected {_describe(exc.expected)}"
    return DslError(msg, span, hint, text)
