"""The exception hierarchy of nnir: one root class, every error able to point at source text."""
from __future__ import annotations

from dataclasses import dataclass

from nnir import limits


@dataclass(frozen=True)
class Span:
    """A region of a source file (1-based lines and columns, end column exclusive)."""

    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class NnirError(Exception):
    """Root of every error nnir raises on purpose (never a bug in nnir itself)."""

    kind = "error"

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None,
                 source: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.source = source  # full text of span.file, when known, for the excerpt

    def render(self) -> str:
        """Format as `file:line:col: error: msg`, the source line, a caret and a hint."""
        lines = []
        where = f"{self.span}: " if self.span else ""
        lines.append(f"{where}error: {self.message}")
        excerpt = _excerpt(self.span, self.source)
        if excerpt:
            lines.append(excerpt)
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


class DslError(NnirError):
    """A mistake in `.nnir` source text: syntax, unknown names, shapes, domains."""


class IrError(NnirError):
    """An IR that breaks an invariant (raised by the verifier)."""


class InputFileError(NnirError):
    """A data, weight or model file that is missing or malformed."""


class UnsupportedQuery(NnirError):
    """A query kind or feature the chosen backend does not handle (yet)."""


class BackendError(NnirError):
    """A solver that is missing, crashed or answered something we cannot read."""


class UsageError(NnirError):
    """A bad command line: an unknown backend or query name, a missing option (exit status 2)."""

    exit_code = 2


def clip(text: str, width: int = 40) -> str:
    """`text` cut to about `width` characters (a 5000-digit number shows its ends only)."""
    text = str(text)
    if len(text) <= width:
        return text
    keep = (width - 3) // 2
    return f"{text[:keep]}...{text[-keep:]}"


_WINDOW = 100  # characters of a long source line shown around the caret


def _excerpt(span: Span | None, source: str | None) -> str:
    if span is None:
        return ""
    if source is None:
        # read here, not through nnir.io (which sits above errors and raises them): the same
        # bound on the read; a file that cannot be read or decoded just has no excerpt
        try:
            with open(span.file, "rb") as fh:
                data = fh.read(limits.MAX_FILE_BYTES + 1)
            if len(data) > limits.MAX_FILE_BYTES:
                return ""
            source = data.decode("utf-8-sig")
        except (OSError, ValueError):  # ValueError: undecodable bytes, a NUL in the path
            return ""
    text_lines = source.splitlines()
    if not 1 <= span.line <= len(text_lines):
        return ""
    text = text_lines[span.line - 1].expandtabs(1)
    # control characters (NUL, escapes) would garble the terminal: one '?' each keeps the caret
    text = "".join(c if c.isprintable() else "?" for c in text)
    col = max(1, span.col)
    width = 1
    if span.end_line == span.line and span.end_col and span.end_col > col:
        width = span.end_col - col
    if len(text) > 2 * _WINDOW:  # a long line (a 5000-digit number): a window around the caret
        start = max(0, col - 1 - _WINDOW // 2)
        head = "..." if start else ""
        tail = "..." if start + _WINDOW < len(text) else ""
        text = head + text[start:start + _WINDOW] + tail
        col = col - start + len(head)
        width = max(1, min(width, _WINDOW - (col - 1 - len(head))))
    gutter = f"{span.line:5d} | "
    caret = " " * (len(gutter) - 2) + "| " + " " * (col - 1) + "^" + "~" * (width - 1)
    return f"{gutter}{text}\n{caret}"
