"""Progress of long work on a terminal: one status line on stderr, rewritten in place.

Off unless `enable()`d or `configure()`d: `nnirc` turns it on when its stderr is a terminal
(`-q` keeps it off, `-v` turns it on as plain lines when stderr is a file or pipe), so
scripts, pipes, CI logs and the Python API see nothing unless asked. Engines call `show` as
often as they like (it draws at most every `INTERVAL` seconds); `clear` erases the line
before a result is printed. Forked children inherit the setting, and write to the same
terminal through the stderr they keep (`nnir.proc`).
"""
from __future__ import annotations

import shutil
import sys
import time

INTERVAL = 0.5  # seconds between redraws
LOG_INTERVAL = 5.0  # seconds between lines when stderr is not a terminal (`-v`)
_state = {"on": False, "last": 0.0, "lines": False}


def enable(on: bool = True) -> None:
    _state["on"] = bool(on)
    _state["lines"] = False


def configure(verbosity: int, tty: bool) -> None:
    """`nnirc`'s levels: -1 (`-q`) never; 0 (default) a status line rewritten in place when
    stderr is a terminal; 1 or more (`-v`) also when it is not, as whole lines every
    `LOG_INTERVAL` seconds (a log file or CI output gets no carriage returns)."""
    _state["on"] = verbosity > 0 or (verbosity == 0 and tty)
    _state["lines"] = _state["on"] and not tty


def enabled() -> bool:
    return _state["on"]


def show(text: str, force: bool = False) -> None:
    """Draw `text` as the status line (cut to the terminal's width), at most every INTERVAL s."""
    if not _state["on"]:
        return
    now = time.monotonic()
    if not force and now - _state["last"] < (LOG_INTERVAL if _state["lines"] else INTERVAL):
        return
    _state["last"] = now
    width = shutil.get_terminal_size((100, 20)).columns - 1
    try:
        if _state["lines"]:
            sys.stderr.write(text + "\n")
        else:
            sys.stderr.write("\r\033[K" + text[:width])
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed terminal must not stop the work
        _state["on"] = False


def clear() -> None:
    """Erase the status line (before printing a result)."""
    if _state["on"] and not _state["lines"]:
        try:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
        except (OSError, ValueError):
            _state["on"] = False
