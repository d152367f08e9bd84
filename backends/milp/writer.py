"""Write a MILP model to an `.mps` or `.lp` file through HiGHS's own writers, atomically."""
from __future__ import annotations

import os
import tempfile

from nnir.backends.milp.highs import build_highs
from nnir.backends.milp.model import MilpModel
from nnir.errors import BackendError

FORMATS = ("mps", "lp")


def write_model(model: MilpModel, path: str, format: str = "mps") -> None:
    """Write `model` to `path` as free MPS or CPLEX LP.

    The model goes through the same `build_highs` as a solve, so the file is exactly what HiGHS
    would solve. HiGHS picks the format from the file extension, so we write to a temporary file
    with the right suffix in the target's folder, then `os.replace` it over `path`: a reader never
    sees a half-written file.

    Args:
        model: the model (e.g. from `to_milp`).
        path: the destination file.
        format: "mps" or "lp".
    Raises:
        BackendError: unknown format, or HiGHS failed to write.
    """
    if format not in FORMATS:
        raise BackendError(f"unknown MILP file format '{format}'", hint="use mps or lp")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix="." + format, prefix=".nnir-", dir=folder)
    os.close(fd)
    try:
        h = build_highs(model)
        status = h.writeModel(tmp)
        if str(status) == "HighsStatus.kError" or not os.path.getsize(tmp):
            raise BackendError(f"HiGHS could not write {path} ({status})")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
