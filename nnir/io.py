"""Writing output files atomically: a temp file in the target folder, then a rename."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager


@contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yield a temporary path next to `path`; on success it replaces `path`, else it is removed.

    A crash or error while writing never leaves a truncated `path` behind.
    """
    folder = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(prefix=".nnir-", suffix=suffix or os.path.splitext(path)[1],
                               dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)


def read_text(path: str, what: str = "file") -> str:
    """The UTF-8 text of `path`, or an `InputFileError` naming it (`what`: "NNet file", ...)."""
    from nnir.errors import InputFileError

    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputFileError(f"{what} '{path}' not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read '{path}': {exc}") from None
