"""The front end: `.nnir` text -> verified IR `Program`."""
from __future__ import annotations

import os

from nnir.errors import NnirError
from nnir.frontend.build import Builder
from nnir.frontend.parser import parse_tree
from nnir.frontend.resolve import check_sizes, resolve
from nnir.io import STDIN, STDIN_NAME, read_text
from nnir.ir.nodes import Program
from nnir.ir.verifier import verify_program


def parse(text: str, filename: str = "<string>", base_dir: str | None = None) -> Program:
    """Parse and verify `.nnir` source text.

    Args:
        text: the source.
        filename: the name used in error messages.
        base_dir: folder that relative file paths are read from (default: the file's folder, or
            the current folder for `<string>`).
    Returns:
        The resolved, verified program.
    Raises:
        DslError, IrError, InputFileError: with the position of the mistake.
    """
    if base_dir is None:
        base_dir = os.path.dirname(os.path.abspath(filename)) if filename != "<string>" else "."
    tree = parse_tree(text, filename)
    prog = resolve(Builder(text, filename, base_dir).program(tree))
    try:
        check_sizes(prog)
        verify_program(prog, text)
    except NnirError as exc:
        exc.source = exc.source or text
        raise
    return prog


def load(path: str) -> Program:
    """Read, parse and verify a `.nnir` file.

    Args:
        path: the file; relative paths inside it are read from its folder. `-` reads the
            program from standard input (relative paths from the current folder).
    Returns:
        The resolved, verified program.
    Raises:
        DslError, IrError: a mistake in the text, with its file, line and column.
        InputFileError: the file (or one it loads) is missing, too large or not UTF-8.
    """
    text = read_text(path, "file")
    if path == STDIN:  # `-`: the program on standard input, relative paths from here
        return parse(text, STDIN_NAME, ".")
    return parse(text, path)
