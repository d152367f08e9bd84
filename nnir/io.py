"""Files in and out: input read within `nnir.limits` (bounded, UTF-8 checked), output written
atomically (a temp file in the target folder, then a rename)."""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager

import numpy as np

from nnir import limits
from nnir.errors import InputFileError, Span


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


def read_bytes(path: str, what: str = "file", shown: str | None = None) -> bytes:
    """The bytes of `path`, at most `limits.MAX_FILE_BYTES` of them, or an `InputFileError`
    naming the file as `what 'shown'` (`shown` defaults to `path`).

    The read is bounded, so an endless file (/dev/zero, a pipe) stops at the limit.
    """
    name = f"{what} '{shown or path}'"
    if path == STDIN:
        return _stdin_bytes(name)
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size > limits.MAX_FILE_BYTES:
                raise InputFileError(_too_big(name))
            data = fh.read(limits.MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InputFileError(f"{name} not found") from None
    except IsADirectoryError:
        raise InputFileError(f"{name} is a folder, not a file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise InputFileError(f"cannot read {name}: {exc}") from None
    if len(data) > limits.MAX_FILE_BYTES:
        raise InputFileError(_too_big(name))
    return data


STDIN = "-"
"""The path that names standard input (`nnirc check -`)."""
STDIN_NAME = "<stdin>"
_stdin: dict = {}


def _stdin_bytes(name: str) -> bytes:
    """Standard input, read once (bounded) and kept: the program text is read again for error
    messages and by forked children, and a pipe can be read only once."""
    if "data" not in _stdin:
        try:
            data = sys.stdin.buffer.read(limits.MAX_FILE_BYTES + 1)
        except (OSError, ValueError, AttributeError) as exc:
            raise InputFileError(f"cannot read {name}: {exc}") from None
        if len(data) > limits.MAX_FILE_BYTES:
            raise InputFileError(_too_big(name))
        _stdin["data"] = data
    return _stdin["data"]


def _too_big(name: str) -> str:
    return f"{name} is larger than {limits.MAX_FILE_BYTES >> 20} MiB, the most nnir reads"


def read_text(path: str, what: str = "file", shown: str | None = None) -> str:
    """The UTF-8 text of `path` (a leading byte-order mark dropped), or an `InputFileError`.

    Bytes that are not UTF-8 and NUL bytes (a binary file) are reported at their line and
    column. `what` names the file in messages ("NNet file", ...), `shown` its path (default
    `path`).
    """
    return decode_text(read_bytes(path, what, shown), path, what)


def decode_text(data: bytes, path: str, what: str = "file") -> str:
    """`data` as UTF-8 text (see `read_text`), errors pointing at `path`'s line and column."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
        pos = exc.start
        shown = data.decode("utf-8-sig", errors="replace")
        line = data.count(b"\n", 0, pos) + 1
        start = data.rfind(b"\n", 0, pos) + 1
        col = len(data[max(start, bom):pos].decode("utf-8", errors="replace")) + 1
        raise InputFileError(f"{what} is not UTF-8 text: byte 0x{data[pos]:02x} cannot be "
                             "decoded", Span(path, line, col, line, col + 1),
                             "save it as UTF-8 (Latin-1 and other encodings are not read)",
                             shown) from None
    nul = text.find("\0")
    if nul >= 0:
        line, col = limits.position(text, nul)
        raise InputFileError(f"{what} holds a NUL byte (is it a binary file?)",
                             Span(path, line, col, line, col + 1), None, text)
    return text


def read_arrays(path: str, what: str = "file", shown: str | None = None):
    """The arrays of an `.npy` file (`{None: array}`) or `.npz` archive (`{name: array}`).

    The file is read within `limits.MAX_FILE_BYTES`, each array's header is checked against
    what the file holds before anything is allocated, and pickled objects are refused.

    Raises:
        InputFileError: missing, unreadable, not npy/npz, a header that does not fit.
    """
    import io
    import zipfile

    data = read_bytes(path, what, shown)
    name = f"{what} '{shown or path}'"
    try:
        if data.startswith(b"\x93NUMPY"):
            return {None: _npy(io.BytesIO(data), len(data))}
        if data.startswith(b"PK"):
            out = {}
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                total = 0
                for info in zf.infolist():
                    total += info.file_size
                    if total > limits.MAX_FILE_BYTES:  # a zip bomb
                        raise ValueError(f"its arrays unpack to more than "
                                         f"{limits.MAX_FILE_BYTES >> 20} MiB")
                for info in zf.infolist():
                    key = info.filename[:-4] if info.filename.endswith(".npy") else \
                        info.filename
                    with zf.open(info) as fh:
                        member = fh.read(limits.MAX_FILE_BYTES + 1)  # its size may lie
                    if len(member) > limits.MAX_FILE_BYTES:
                        raise ValueError(f"array '{key}' unpacks to more than "
                                         f"{limits.MAX_FILE_BYTES >> 20} MiB")
                    out[key] = _npy(io.BytesIO(member), len(member))
            return out
    except InputFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, RuntimeError,
            NotImplementedError) as exc:
        raise InputFileError(f"cannot read {name}: {exc}") from None
    raise InputFileError(f"{name} is not an .npy or .npz file (it does not start as one)")


def _npy(fh, size: int):
    """One `.npy` array from `fh` (`size` bytes), its header checked before reading."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"unknown .npy version {version}")
    if dtype.hasobject:
        raise ValueError("it holds Python objects (pickled data), which nnir does not read")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize > size - fh.tell():
        raise ValueError(f"its header promises shape {shape} of {dtype}, more than the file "
                         "holds")
    fh.seek(0)
    return np.load(fh, allow_pickle=False)
