"""`nnirc verify NET PROP` and `nnirc emit` (argument parsing: `nnir.cli`)."""
from __future__ import annotations

import os
import sys
import time

from nnir import proc
from nnir.backends.milp.writer import emit_text
from nnir.backends.smtlib.lower import to_smtlib
from nnir.cli_common import (
    ChildError,
    check_backend_name,
    document,
    emitted,
    kill_grace,
    options_of,
    print_json,
)
from nnir.errors import UnsupportedQuery, UsageError
from nnir.formats.onnx_io import write_onnx
from nnir.formats.ort_replay import compare_with_onnxruntime
from nnir.formats.vnncomp import read_network, results_text, verify_files
from nnir.formats.vnnlib import vnnlib_text
from nnir.io import write_text
from nnir.ir.formula import nnf
from nnir.ir.nodes import NODE_KINDS, Program, Verify
from nnir.queries.problem import VerifyProblem
from nnir.queries.result import Result
from nnir.queries.run import box_from_where, prepare

EXIT_OK, EXIT_USAGE, EXIT_QUERY = 0, 2, 3


def cmd_check_network(args) -> int:
    """`nnirc check NET.onnx|NET.nnet`: read the network, summarise its nodes, and (ONNX, with
    onnxruntime installed) compare nnir's float evaluation with onnxruntime on random inputs of
    `--box` (default [0, 1]), the import check every network nnir reads can get."""
    net = read_network(args.file)
    lo, hi = args.box
    counts = {k: sum(lay.kind == k for lay in net.layers) for k in NODE_KINDS}
    doc = {"file": args.file, "network": net.name, "inputs": net.input.size,
           "outputs": net.output_size, "nodes": {k: c for k, c in counts.items() if c},
           "relus": sum(lay.size for lay in net.layers if lay.act == "relu")}
    if args.file.endswith((".onnx", ".onnx.gz")) and args.samples > 0:
        try:
            worst_abs, worst_rel = compare_with_onnxruntime(args.file, net, args.samples,
                                                            lo=lo, hi=hi)
            doc["onnxruntime"] = {"samples": args.samples, "box": [lo, hi],
                                  "max_abs_difference": worst_abs,
                                  "max_rel_difference": worst_rel}
        except ImportError:
            doc["onnxruntime"] = None  # optional: pip install nnir[onnx-runtime]
    if args.json:
        print_json(document("check", **doc))
        return EXIT_OK
    kinds = ", ".join(f"{c} {k}" for k, c in doc["nodes"].items())
    print(f"{args.file}: ok\n  net {net.name}: {net.input.size} inputs -> {net.output_size} "
          f"outputs; {kinds} nodes, {doc['relus']} ReLUs")
    ort = doc.get("onnxruntime")
    if ort:
        print(f"  onnxruntime: max |difference| {ort['max_abs_difference']:.3g} (relative to "
              f"the output's scale {ort['max_rel_difference']:.3g}) on {args.samples} random "
              f"inputs in [{lo:g}, {hi:g}]")
    elif "onnxruntime" in doc:
        print("  onnxruntime: not installed, no comparison (pip install onnxruntime)")
    return EXIT_OK


def cmd_verify_files(args) -> int:
    """Answer a VNN-LIB property on an ONNX/NNet network; `-o` writes the VNN-COMP results."""
    if args.file.endswith(".nnir") or not args.prop:
        why = ("a .nnir file holds its own queries: write `verify NET from vnnlib \"PROP\"` in "
               "it" if args.file.endswith(".nnir") else "give the property file too")
        print(f"nnirc verify: {why}\nusage: nnirc verify NET.onnx PROP.vnnlib [--timeout S]",
              file=sys.stderr)
        return EXIT_USAGE

    check_backend_name(args.backend)
    if args.output:  # a run killed or interrupted before the end leaves `unknown`, never stale
        write_text(args.output, "unknown\n")
    if not args.json:
        print(f"verify {args.file} {args.prop} ...", file=sys.stderr, flush=True)
    res = _verify_files_guarded(args)
    text = results_text(res)
    if args.json:
        print_json(document("verify", file=args.file, network=args.file, property=args.prop,
                            vnncomp=text, results=[res.to_dict()]))
    else:
        print(res.render(), flush=True)
    if args.output:
        write_text(args.output, text)
    return EXIT_QUERY if res.status == "error" else EXIT_OK


def _verify_files_guarded(args):
    """`verify_files` in a killable child: reading, solving and replay all count against
    `--timeout`; past it plus `kill_grace` the child and its solvers are killed (`timeout`)."""
    call = (args.file, args.prop, args.backend, args.timeout)
    if not proc.available():
        return verify_files(*call, **options_of(args))
    start = time.monotonic()
    limit = None if args.timeout is None else args.timeout + kill_grace(args.timeout)
    reply = proc.call(verify_files, *call, timeout=limit, **options_of(args))
    name = f"{os.path.basename(args.file)} {os.path.basename(args.prop)}"
    if reply is proc.TIMEOUT:
        return Result(name, "verify", "timeout", None, time.monotonic() - start,
                      message=f"no answer within the time limit ({args.timeout:g} s); the "
                      "process and its solvers were stopped")
    if isinstance(reply, proc.Gone):
        return Result(name, "verify", "error", None, time.monotonic() - start,
                      message=f"the process answering it ended unexpectedly (exit status "
                      f"{reply.code}; out of memory?)")
    if isinstance(reply, proc.Failure):
        raise ChildError(reply.message if reply.kind == "nnir" else
                         f"internal error: {reply.message}", reply.exit_code, reply.trace)
    return reply


def _pick_query(prog: Program, name: str | None) -> Verify:
    verifies = [q for q in prog.queries if q.kind == "verify"]
    if name:
        q = next((q for q in prog.queries if q.name == name), None)
        if q is None:
            raise UsageError(f"no query named '{name}'",
                            hint="queries: " + ", ".join(x.name for x in prog.queries))
        return q
    if len(verifies) != 1:
        raise UsageError(f"{prog.path} has {len(verifies)} verify queries; pick one with --query",
                        hint="verify queries: " + (", ".join(v.name for v in verifies) or "none"))
    return verifies[0]


def emit_file(args, prog: Program) -> int:
    """`nnirc emit`: a verify query as SMT-LIB, MPS, LP or VNN-LIB; `onnx` writes a network
    (the query's, or the only one)."""
    if args.format == "onnx":
        if len(prog.networks) == 1 and not args.query:
            net = prog.networks[0]
        else:
            net = prog.network(_pick_query(prog, args.query).net)
        if not args.output:
            raise UsageError("--format onnx needs an output file (-o FILE.onnx)")
        rep = write_onnx(net, args.output)
        if args.json:
            print_json(document("emit", file=args.file, format=args.format, network=net.name,
                                output=args.output, text=None, notes=list(rep.notes)))
        else:
            print(f"wrote {args.output} (network '{net.name}', {rep.dtype}"
                  f"{', exact' if rep.exact else ''})", file=sys.stderr)
            for note in rep.notes:
                print(f"note: {note}", file=sys.stderr)
        return EXIT_OK

    q = _pick_query(prog, args.query)
    if q.kind != "verify":
        what = "VNN-LIB states" if args.format == "vnnlib" else "emit handles"
        raise UnsupportedQuery(f"{what} verify queries; '{q.name}' is a {q.kind} query", q.span)
    if args.format == "vnnlib":
        return emitted(args, vnnlib_of(prog, q), query=q.name)
    if args.format in ("mps", "lp") and not args.output:
        raise UsageError(f"--format {args.format} needs an output file (-o FILE)")
    problem = prepare(prog, q)
    if args.format == "smtlib":
        text = to_smtlib(problem, relu=args.relu, get_values=args.model).text
    else:
        text = emit_text(problem, args.format)
    return emitted(args, text, query=q.name)


def vnnlib_of(prog: Program, q: Verify) -> str:
    """The VNN-LIB text of a verify query: its one-variable bounds become the box."""
    net = box_from_where(prog.network(q.net), q.where)
    rest = tuple(a for a in q.where if not _implied(a, net))
    return vnnlib_text(VerifyProblem(net, rest, nnf(q.prop), q.name))


def _implied(a, net) -> bool:
    """True when the one-variable bound `a` holds on all of `net`'s box (so the box says it)."""
    if len(a.terms) != 1 or a.rel in ("<", ">"):
        return False
    (ref, c), = a.terms
    lo, hi = net.input.lo.exact[ref.index] * c, net.input.hi.exact[ref.index] * c
    lo, hi = min(lo, hi), max(lo, hi)  # the range of c * x over the box
    return {"<=": hi <= a.rhs, ">=": lo >= a.rhs, "==": lo == hi == a.rhs}[a.rel]
