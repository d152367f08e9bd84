"""The VNN-COMP calling convention: a network file and a property file in, one verdict out.

A property may split into several input regions (`read_vnnlib`); each is answered by the usual
query machinery (bound passes, backend, exact replay of every witness), sharing one time limit.
The property is `sat` as soon as one region is (its witness is the counterexample), `unsat` when
every region is, else `timeout`/`unknown`. `results_text` gives the VNN-COMP results file.
"""
from __future__ import annotations

import os
import tempfile
import time

from nnir.errors import InputFileError
from nnir.formats.nnet import read_nnet
from nnir.formats.onnx_io import model_bytes, read_onnx
from nnir.formats.ort_replay import replay_in_onnxruntime
from nnir.formats.vnnlib import read_vnnlib
from nnir.ir.nodes import Network, Program, Verify
from nnir.queries.problem import VerifyProblem
from nnir.queries.result import Result
from nnir.queries.run import run_query

NETWORK_SUFFIXES = (".onnx", ".onnx.gz", ".nnet")


def read_network(path: str) -> Network:
    """An `.onnx` (or gzip-compressed `.onnx.gz`) or `.nnet` network in the units VNN-LIB
    properties use.

    A `.nnet` file is read without folding its normalisation in (`normalize=False`), so it takes
    the same normalised inputs as the ONNX version of the network.
    """
    if path.endswith((".onnx", ".onnx.gz")):
        return read_onnx(path)
    if path.endswith(".nnet"):
        return read_nnet(path, normalize=False)
    raise InputFileError(f"'{path}': unknown network format",
                         hint="nnirc verify reads .onnx, .onnx.gz or .nnet networks (or a "
                         ".nnir file)")


def query_of(problem: VerifyProblem) -> tuple[Program, Verify]:
    """A one-network program holding the problem as a verify query."""
    net = problem.net
    q = Verify(problem.name, net.name, tuple(problem.where), problem.prop)
    return Program((net,), (), (q,), path=problem.name), q


def solve_problems(problems: list[VerifyProblem], name: str, backend: str = "auto",
                   timeout: float | None = None, **options) -> Result:
    """Answer a property given as regions; see the module doc for how verdicts combine.

    Args:
        problems: the property's regions, e.g. from `read_vnnlib` (it holds iff every region
            is unsat).
        name: the property's name in the result.
        backend: "auto" or a backend name, for every region.
        timeout: seconds for all regions together (None: no limit).
        **options: backend and query options, as for `nnir.solve`.
    Returns:
        One combined `Result`: the first sat region's (with its replayed witness) or error
        region's result as soon as there is one, unsat when every region is, else timeout
        or unknown.
    """
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    results: list[Result] = []
    for p in problems:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        prog, q = query_of(p)
        res = run_query(prog, q, backend, left, **options)
        results.append(res)
        if res.status in ("sat", "error"):
            break
    return combine(results, len(problems), name, time.monotonic() - start)


def combine(results: list[Result], total: int, name: str, seconds: float) -> Result:
    """One result for the whole property from the results of its regions."""
    backends = sorted({r.backend for r in results if r.backend})
    statuses = [r.status for r in results]
    many = total > 1
    for status in ("sat", "error"):
        if status in statuses:
            k = statuses.index(status)
            res = results[k]
            res.query, res.seconds = name, seconds
            if many:
                res.add_notes(f"input region {k + 1} of {total}", first=True)
            res.info["input_region"] = k + 1
            return res
    if len(results) == total and all(s == "unsat" for s in statuses):
        status = "unsat"
    else:
        status = "timeout" if "timeout" in statuses or len(results) < total else "unknown"
    res = Result(name, "verify", status, "+".join(backends) or None, seconds,
                 message="\n".join(r.message for r in results if r.message))
    if status == "unsat":
        inexact = [r for r in results if not r.exact]
        res.certified = inexact[0].certified if inexact else (
            results[0].certified if results else "every input region is empty")
        res.exact = not inexact
    if many:
        res.notes.append(f"{total} input regions: " + ", ".join(
            statuses + ["not run"] * (total - len(results))))
    for r in results:
        res.add_notes(*[n for n in r.notes if n not in res.notes])
    return res


def _value(v: float) -> str:
    return repr(float(v))


def results_text(res: Result) -> str:
    """The VNN-COMP results file: the verdict, and for `sat` the witness ((X_0 v) ... (Y_0 v))."""
    status = res.status if res.status in ("sat", "unsat", "timeout") else "unknown"
    if status != "sat" or not res.witness:
        return status + "\n"
    w = res.witness
    pairs = [f"(X_{i} {_value(v)})" for i, v in enumerate(w["inputs_float"])]
    pairs += [f"(Y_{j} {_value(v)})" for j, v in enumerate(w["outputs"])]
    return "sat\n(" + "\n ".join(pairs) + ")\n"


def verify_files(net_path: str, prop_path: str, backend: str = "auto",
                 timeout: float | None = None, **options) -> Result:
    """`nnirc verify NET PROP`: read both files, answer, replay a witness in onnxruntime too."""
    start = time.monotonic()
    net = read_network(net_path)
    problems = read_vnnlib(prop_path, net)
    name = f"{os.path.basename(net_path)} {os.path.basename(prop_path)}"
    left = None if timeout is None else max(0.01, timeout - (time.monotonic() - start))
    res = solve_problems(problems, name, backend, left, **options)
    res.seconds = time.monotonic() - start
    if res.status == "sat" and res.witness and net_path.endswith((".onnx", ".onnx.gz")):
        region = problems[res.info.get("input_region", 1) - 1]
        res.add_notes(_replay(net_path, region, res.witness))
    return res


def _replay(net_path: str, region: VerifyProblem, witness: dict) -> str:
    """`replay_in_onnxruntime` on the network file, a `.gz` one unpacked to a temporary file
    first (onnxruntime reads plain files only)."""
    if not net_path.endswith(".gz"):
        return replay_in_onnxruntime(net_path, region, witness)
    try:
        data = model_bytes(net_path)
    except InputFileError as exc:  # read once already, so hardly possible; a note, not a failure
        return f"onnxruntime replay skipped: {exc.message}"
    with tempfile.TemporaryDirectory(prefix="nnir-ort-") as tmp:
        plain = os.path.join(tmp, os.path.basename(net_path)[:-3])
        with open(plain, "wb") as fh:
            fh.write(data)
        return replay_in_onnxruntime(plain, region, witness).replace(plain, net_path)


__all__ = ["NETWORK_SUFFIXES", "combine", "query_of", "read_network", "results_text",
           "solve_problems", "verify_files"]
