"""Replaying a witness in onnxruntime on the original ONNX file: a check independent of nnir.

The exact replay decides whether a witness stands; this one says whether a float runtime sees
the same counterexample (a witness on the boundary of the property may hold exactly and fail by
a rounding error in float32, which the note then says).
"""
from __future__ import annotations

import numpy as np

from nnir.formats.onnx_io import model_bytes
from nnir.ir.evaluate import atom_slack, evaluate_batch, holds
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


def ort_session(path: str):
    """An onnxruntime CPU session of an `.onnx` or `.onnx.gz` file (a gzip file is unpacked in
    memory: onnxruntime takes the model's bytes)."""
    import onnxruntime as ort


    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes(path), opts, providers=["CPUExecutionProvider"])


def compare_with_onnxruntime(path: str, net, n: int = 100, seed: int = 0, lo=None, hi=None,
                             batch: int = 50) -> tuple[float, float]:
    """How far nnir's float evaluation of `net` is from onnxruntime's run of the file `path`.

    Runs both on `n` random inputs drawn uniformly from the box [lo, hi] (default: the
    network's input box), one sample at a time through onnxruntime (many exported models fix
    the batch at 1) and in batches through `evaluate_batch`.

    Returns:
        (max absolute difference, max relative difference): the relative one divides each
        sample's largest difference by its largest |output| in onnxruntime (the scale of the
        output: a float32 runtime's rounding is relative to it, not to an output near 0).
        Both are 0.0 for n = 0.
    """

    sess = ort_session(path)
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    dtype = np.float64 if inp.type == "tensor(double)" else np.float32
    lo = net.input.lo.f64 if lo is None else np.broadcast_to(np.asarray(lo, float),
                                                            (net.input.size,))
    hi = net.input.hi.f64 if hi is None else np.broadcast_to(np.asarray(hi, float),
                                                            (net.input.size,))
    rng = np.random.default_rng(seed)
    X = (lo + rng.random((n, net.input.size)) * (hi - lo)).astype(dtype)
    worst_abs = worst_rel = 0.0
    for i in range(0, n, batch):
        part = X[i:i + batch]
        ours = evaluate_batch(net, part.astype(np.float64))[net.output]
        theirs = np.stack([np.asarray(sess.run(None, {inp.name: x.reshape(shape)})[0],
                                      dtype=np.float64).reshape(-1) for x in part])
        diff = np.abs(ours - theirs)
        worst_abs = max(worst_abs, float(diff.max(initial=0.0)))
        scale = np.maximum(np.abs(theirs).max(axis=1, initial=0.0), np.finfo(float).tiny)
        worst_rel = max(worst_rel, float((diff.max(axis=1, initial=0.0) / scale).max()))
    return worst_abs, worst_rel
