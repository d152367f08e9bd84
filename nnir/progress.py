"""Progress of long work on a terminal: one status line on stderr, rewritten in place.

Off unless `enable()`d: `nnirc` turns it on when its stderr is a terminal (option `--quiet`
keeps it off), so scripts, pipes, CI logs and the Python API see nothing. Engines call `show`
as often as they like (it draws at most every `INTERVAL` seconds); `clear` erases the line
before a result is printed. Forked children inherit the setting, and write to the same
terminal through the stderr they keep (`nnir.proc`).
"""
from __future__ import annotations

import shutil
import sys
import time

INTERVAL = 0.5  # seconds between redraws
_state = {"on": False, "last": 0.0}


def enable(on: bool = True) -> None:
    _state["on"] = bool(on)


def enabled() -> bool:
    return _state["on"]


def show(text: str, force: bool = False) -> None:
    """Draw `text` as the status line (cut to the terminal's width), at most every INTERVAL s."""
    if not _state["on"]:
        return
    now = time.monotonic()
    if not force and now - _state["last"] < INTERVAL:
        return
    _state["last"] = now
    width = shutil.get_terminal_size((100, 20)).columns - 1
    try:
        sys.stderr.write("\r\033[K" + text[:width])
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed terminal must not stop the work
        _state["on"] = False


def clear() -> None:
    """Erase the status line (before printing a result)."""
    if _state["on"]:
        try:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
        except (OSError, ValueError):
            _state["on"] = False
