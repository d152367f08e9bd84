"""Replaying a witness in onnxruntime on the original ONNX file: a check independent of nnir.

The exact replay decides whether a witness stands; this one says whether a float runtime sees
the same counterexample (a witness on the boundary of the property may hold exactly and fail by
a rounding error in float32, which the note then says).
"""
from __future__ import annotations

import numpy as np

from nnir.ir.evaluate import atom_slack, holds
from nnir.queries.problem import VerifyProblem


def run_onnx(path: str, x) -> tuple[np.ndarray, str]:
    """The model's output (flattened, float64) at one input vector, and the float type used."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    dtype = np.float64 if inp.type == "tensor(double)" else np.float32
    feed = np.asarray(x, dtype=dtype).reshape(shape)
    out = sess.run(None, {inp.name: feed})[0]
    return np.asarray(out, dtype=np.float64).reshape(-1), np.dtype(dtype).name


def replay_in_onnxruntime(path: str, problem: VerifyProblem, witness: dict) -> str:
    """A note saying whether the witness is a counterexample in onnxruntime too."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime not installed: no replay on the original file"
    net = problem.net
    x = np.asarray(witness["inputs_float"], dtype=np.float64)
    try:
        y, dtype = run_onnx(path, x)
    except Exception as exc:  # the runtime refusing the file is worth a note, not a failure
        return f"onnxruntime could not run {path}: {type(exc).__name__}: {exc}"
    diff = float(np.max(np.abs(y - np.asarray(witness["outputs"])))) if len(y) else 0.0
    x_in = np.asarray(x, dtype=dtype).astype(np.float64)
    vals = {net.input.name: x_in, net.output: y}
    outside = int(np.sum((x_in < net.input.lo.f64) | (x_in > net.input.hi.f64)))
    head = f"onnxruntime ({dtype}) on {path}: "
    tail = f"max |output difference| {diff:.2g}"
    box = (f"; rounding the witness to {dtype} moves {outside} input(s) just outside the box"
           if outside else "")
    if holds(problem.prop, vals):
        return head + f"the property holds at the witness ({tail}{box})"
    return head + (f"the property fails by {atom_slack(problem.prop, vals):.2g} at the witness "
                   f"(a boundary case: it holds in exact arithmetic; {tail}{box})")
