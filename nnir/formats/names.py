"""Names for imported networks and layers: file names are kept when the language can print them."""
from __future__ import annotations

import functools
import os
import re

from nnir.grammar import GRAMMAR_PATH

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@functools.lru_cache(maxsize=1)
def keywords() -> frozenset[str]:
    """Every word the `.nnir` grammar reserves (read from the grammar, so it never drifts)."""
    return frozenset(re.findall(r'"([A-Za-z_]+)"', GRAMMAR_PATH.read_text(encoding="utf-8")))


def usable(name: str | None) -> bool:
    """True when `name` prints as a `.nnir` name and parses back as one (a name from a damaged
    file may be bytes, or anything else: not usable)."""
    return isinstance(name, str) and bool(_NAME.match(name)) and name not in keywords()


def pick(wanted: str | None, fallback: str, taken: set[str]) -> str:
    """`wanted` if usable and free, else `fallback`, `fallback_2`, ...; the result is taken."""
    name = wanted if usable(wanted) and wanted not in taken else None
    k = 1
    while name is None or name in taken:
        name = fallback if k == 1 else f"{fallback}_{k}"
        k += 1
    taken.add(name)
    return name


def from_path(path: str) -> str:
    """A network name made from a file name: `nets/ACAS-1_1.onnx` -> `ACAS_1_1`."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", os.path.splitext(os.path.basename(path))[0])
    if not stem or stem[0].isdigit():
        stem = "net_" + stem
    return stem if usable(stem) else stem + "_net"
