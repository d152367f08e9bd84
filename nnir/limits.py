"""The limits nnir puts on its input, so that hostile or broken files fail fast and clearly.

Every file nnir reads (`.nnir`, VNN-LIB, NNet, CSV, `.npy`/`.npz`) and every number, size and
nesting in them is held to these bounds. Going past one is an ordinary input error at the
file, line and column of the offending text (exit status 1), never a crash, a hang or a run
out of memory. The bounds sit far above any real network or property (ACAS Xu, VNN-COMP) and
below what Python's recursion, integer and memory limits allow.

`scan_nesting` is the cheap check run on source text before it is parsed: lark's tree builder
and nnir's tree walkers recurse, so bracket depth and the width of `or` are bounded first.
"""
from __future__ import annotations

import re

MAX_FILE_BYTES = 256 * 2**20
"""Largest input file read (any format); longer files, and endless ones like /dev/zero, stop."""

MAX_NESTING = 100
"""Deepest nesting of brackets `(`/`[` and of `not`, in `.nnir` and VNN-LIB text."""

MAX_OR_WIDTH = 4096
"""Most alternatives of one `or` (as many as VNN-LIB input regions, `vnnlib.MAX_REGIONS`)."""

MAX_LITERAL_DIGITS = 4000
"""Most digits in one number literal (each of numerator and denominator of `n/d`, leading
zeros included): below Python's own 4300-digit limit on converting text to integers, which
nnir also meets re-reading the exact numbers it printed."""

MAX_DECIMAL_EXPONENT = 400
"""Largest |e| in a decimal literal `1.5e-3` (the value must still be below MAX_MAGNITUDE)."""

MAX_BINARY_EXPONENT = 1100
"""Largest |p| in a hex float `0x1.8p-1` (float64 subnormals reach p = -1074)."""

MAX_MAGNITUDE = 2**1024 - 2**971
"""No number read may be larger than this in absolute value: the largest float64 (about
1.798e308), as the float64 copies that numeric passes and solvers work with must be finite."""

MAX_VECTOR = 10**6
"""Most coordinates of a network input, neurons of one layer or node, or dataset dimension."""

MAX_WEIGHTS = 10**8
"""Most weights (dense entries and biases, known or unknown) of one network."""

MAX_SUM_TERMS = 10**6
"""Most terms all `sum(v)` of one file expand to (one per coordinate of v, per use)."""

MAX_DATASET_VALUES = 10**7
"""Most numbers (points x dimension) of one dataset read from `.npy`/`.npz` or generated."""

MAX_CSV_VALUES = 10**6
"""Most numbers of one CSV file: each is parsed to an exact rational, at a few microseconds
apiece."""

MAX_DECIMALS = 17
"""Largest `decimals=` of a generator (float64 carries 17 significant digits)."""


def position(text: str, pos: int) -> tuple[int, int]:
    """1-based (line, column) of character offset `pos` in `text`."""
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


# Tokens that matter for nesting; everything else (numbers, operators, space) is skipped.
_NNIR_TOKENS = re.compile(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"|[][()]|[A-Za-z_][A-Za-z0-9_]*')
_VNNLIB_TOKENS = re.compile(r';[^\n]*|\|[^|]*\||"(?:[^"]|"")*"|[()]|[A-Za-z_][A-Za-z0-9_.]*')
_CLOSE = {")": "(", "]": "["}


def scan_nesting(text: str, vnnlib: bool = False) -> tuple[str, int] | None:
    """The first place where `text` nests deeper than MAX_NESTING or an `or` is wider than
    MAX_OR_WIDTH, as (message, character offset); None when it is within both.

    Comments and strings are skipped. In `.nnir` text the alternatives of a top-level `or` are
    counted per `verify` query; in VNN-LIB the arguments of each `(or ...)`.
    """
    tokens = _VNNLIB_TOKENS if vnnlib else _NNIR_TOKENS
    stack: list[list] = [[0, False]]  # per open group: [or count or args, is a VNN-LIB `or`]
    after_open = False
    for m in tokens.finditer(text):
        tok = m.group()
        c = tok[0]
        if c in "([":
            if len(stack) > MAX_NESTING:
                return (f"brackets nested more than {MAX_NESTING} deep", m.start())
            top = stack[-1]
            if top[1]:
                top[0] += 1
                if top[0] > MAX_OR_WIDTH:
                    return (f"an 'or' of more than {MAX_OR_WIDTH} alternatives", m.start())
            stack.append([0, False])
            after_open = True
            continue
        if c in ")]":
            if len(stack) > 1:
                stack.pop()
            after_open = False
            continue
        if c in "#;|\"":
            continue
        if vnnlib:
            if after_open and tok == "or":
                stack[-1][1] = True
            elif stack[-1][1]:  # a bare argument (true, false, a symbol) of an `or`
                stack[-1][0] += 1
                if stack[-1][0] > MAX_OR_WIDTH:
                    return (f"an 'or' of more than {MAX_OR_WIDTH} alternatives", m.start())
        elif tok == "or":
            stack[-1][0] += 1
            if stack[-1][0] >= MAX_OR_WIDTH:
                return (f"an 'or' of more than {MAX_OR_WIDTH} alternatives", m.start())
        elif tok == "verify" and len(stack) == 1:
            stack[0][0] = 0
        after_open = False
    return None
