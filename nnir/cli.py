"""`nnirc`: the command line compiler.

Exit status: 0 when every query was answered (whatever the verdict), 1 for bad input (the
message points at the file, line and column), 2 for a bad command line, 3 when a query could
not be answered (unsupported query kind, missing or failing solver).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from nnir import __version__, proc, progress
from nnir.backends.smtlib.lower import DEFAULT_RELU, RELU_ENCODINGS
from nnir.cli_commands import COMMANDS
from nnir.cli_common import ChildError, document
from nnir.errors import DslError, InputFileError, IrError, NnirError

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_QUERY = 0, 1, 2, 3

EPILOG = """examples:
  nnirc check examples/tiny.nnir
  nnirc run examples/tiny.nnir --backend z3 --json
  nnirc emit examples/tiny.nnir --format smtlib --query reach -o reach.smt2
  nnirc dump-ir examples/tiny.nnir --after ibp
  nnirc bound examples/queries.nnir --method symbolic
  nnirc train examples/sphere.nnir --save trained.nnir -o results.json
  nnirc verify net.onnx prop.vnnlib --timeout 60 -o results.txt
  nnirc batch instances.csv --jobs 2 -o results.csv
  nnirc backends
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout: one "
                   "JSON document (schema nnir/1, see README 'JSON output')")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    p.add_argument("-q", "--quiet", action="store_true", help="nothing on stderr but errors "
                   "(no progress line, no per-query start lines)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="progress also when "
                   "stderr is not a terminal (a line every 5 s)")


# The backends each subcommand can use (static text: importing the registry's backend classes
# costs a third of a second, too much for `--help`); `nnirc backends` has the live table.
BACKENDS = {
    "run": "any backend (each query uses the ones of its kind)",
    "verify": "z3, cvc5, pysmt, external, highs, split, bab, portfolio",
    "bound": "z3, cvc5, highs, bab (method exact)",
    "stable": "highs, or an exact one: z3, cvc5",
    "compress": "highs, or an exact one: z3, cvc5",
    "equiv": "z3, cvc5, highs",
    "train": "z3, cvc5, highs, sgd, admm",
}


def _solving(p: argparse.ArgumentParser, cmd: str) -> None:
    """The flags every query-answering subcommand has: backend, time limit, selection, -o."""
    p.add_argument("--backend", default="auto",
                   help=f"{BACKENDS[cmd]}, or auto (default: auto)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds per query; past it the answer is 'timeout'")
    p.add_argument("--query", action="append", metavar="NAME",
                   help="answer only this query (repeatable)")
    out = "also write the results as JSON here (rewritten after every query)"
    if cmd == "verify":
        out += "; with NET PROP: the VNN-COMP results file instead"
    if cmd in ("train", "compress"):
        out += "; a name ending in .nnir is the deprecated form of --save"
    p.add_argument("-o", "--output", metavar="FILE", help=out)


def _smt_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--solver-cmd", metavar="CMD",
                   help="command of the SMT-LIB solver for --backend external (e.g. 'z3 -in')")
    p.add_argument("--pysmt-solver", metavar="NAME", help="pysmt solver for --backend pysmt")


def _encoding(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoding", choices=("auto", "signed", "naive", "layerwise"),
                   help="the exact training encoding (signed: sign-normalised one hidden layer; "
                   "naive: every weight a real unknown, QF_NRA; layerwise: deeper networks)")


def _stable_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lp", action="store_true", help="also run the LP bound-tightening pass")
    p.add_argument("--isa-joint", type=float, metavar="S",
                   help="seconds for the joint ISA MILP before the states it leaves are proved "
                   "one at a time (default 10)")


# --method, per subcommand: (choices, help)
METHODS = {
    "bound": (("ibp", "symbolic", "lp", "exact"),
              "how to bound (overrides the query's method; default: the query's, else exact)"),
    "stable": (("isa", "per-neuron"), "how to prove stable ReLUs (default isa)"),
    "compress": (("isa", "per-neuron"), "how to prove the stable ReLUs removed (default isa)"),
    "equiv": (("auto", "relations", "solver", "search"),
              "relation inference, a solver, input splitting (search; at most 8 inputs), or "
              "auto: relations, sampling, search, then a solver (default)"),
}

# name -> (help, extra flag groups)
QUERY_COMMANDS = {
    "run": ("answer every query in order", (_smt_flags, _encoding, _stable_flags)),
    "verify": ("answer the verify queries (or: verify NET.onnx PROP.vnnlib)", (_smt_flags,)),
    "bound": ("answer the bound queries", ()),
    "stable": ("answer the stable queries", (_stable_flags,)),
    "equiv": ("answer the equiv queries (relations, sampling, input splitting, a solver)", ()),
    "train": ("answer the train queries and write the trained network", (_encoding,)),
    "compress": ("answer the compress queries and write the compressed network",
                 (_stable_flags,)),
}


def _query_command(sub, name: str) -> None:
    text, groups = QUERY_COMMANDS[name]
    p = sub.add_parser(name, help=text, description=text)
    p.add_argument("file")
    if name == "verify":  # the VNN-COMP form: nnirc verify NET.onnx PROP.vnnlib
        p.add_argument("prop", nargs="?", metavar="PROP.vnnlib", help="with FILE an .onnx "
                       "or .nnet network: the VNN-LIB property; -o then writes the VNN-COMP "
                       "results file")
    _solving(p, name)
    if name in METHODS:
        choices, what = METHODS[name]
        p.add_argument("--method", choices=choices, help=what)
    for group in groups:
        group(p)
    if name in ("train", "compress"):
        what = "trained" if name == "train" else "compressed"
        p.add_argument("--save", metavar="NET.nnir", help=f"write the {what} network here as "
                       ".nnir (exact weights) and beside it as .npz (float64); with several "
                       "queries, one NET_QUERY.nnir each")
    _common(p)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="nnirc", description="Compile and solve questions about ReLU networks written in "
        "the .nnir language.", epilog=EPILOG, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--version", action="version", version=f"nnirc {__version__}")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("check", help="parse and validate a file, print a summary")
    p.add_argument("file", help="a .nnir file (or - for standard input), or a network file "
                   "(.onnx, .onnx.gz, .nnet): then compared with onnxruntime")
    p.add_argument("--box", nargs=2, type=float, default=(0.0, 1.0), metavar=("LO", "HI"),
                   help="network files: the input box of the random comparison inputs "
                   "(default 0 1)")
    p.add_argument("--samples", type=int, default=100, metavar="N",
                   help="network files: random inputs compared with onnxruntime (default 100)")
    _common(p)
    for name in QUERY_COMMANDS:
        _query_command(sub, name)
    p = sub.add_parser("emit", help="write a verify query as SMT-LIB, MPS or LP")
    p.add_argument("file")
    p.add_argument("--format", choices=("smtlib", "mps", "lp", "onnx", "vnnlib"),
                   default="smtlib", help="onnx: the query's network; vnnlib: the query")
    p.add_argument("--query", metavar="NAME", help="which verify query (needed if several)")
    p.add_argument("--relu", choices=RELU_ENCODINGS, default=DEFAULT_RELU,
                   help="SMT-LIB ReLU encoding: ite (if-then-else), or (two-case disjunction), "
                   f"hull (triangle relaxation plus the disjunction); default {DEFAULT_RELU}")
    p.add_argument("--model", action="store_true",
                   help="SMT-LIB: end with (get-value ...) of the inputs (a witness after sat; "
                   "after unsat the solver reports an error for get-value, z3 exits 1)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="output file (default: stdout for smtlib and vnnlib; required for "
                   "mps, lp and onnx)")
    _common(p)
    p = sub.add_parser("dump-ir", help="print the canonical IR, optionally after a pass")
    p.add_argument("file")
    p.add_argument("--after", metavar="PASS", help="print networks after this pass, with the "
                   "bounds it proved as comments (passes, in order: ibp, symbolic, lp)")
    _common(p)
    p = sub.add_parser("batch", help="run a VNN-COMP instance list (onnx,vnnlib,timeout rows)")
    p.add_argument("file", metavar="INSTANCES.csv")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="instances run at once")
    p.add_argument("--timeout-scale", type=float, default=1.0, metavar="F",
                   help="multiply every row's timeout by F")
    p.add_argument("--backend", default="auto", help=f"{BACKENDS['verify']}, or auto "
                   "(default: auto)")
    p.add_argument("-o", "--output", metavar="FILE.csv", default="results.csv",
                   help="the results as CSV: instance, verdict (the status), seconds, backend, "
                   "onnx, vnnlib, timeout (default results.csv)")
    _common(p)
    p = sub.add_parser("backends", help="list the backends and what they can do")
    p.add_argument("--markdown", action="store_true", help="the table as in the README")
    _common(p)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    proc.install_handlers()
    # -q / default / -v: the progress line's level (`nnir.progress`); children inherit it
    progress.configure(-1 if args.quiet else args.verbose, sys.stderr.isatty())
    try:
        return COMMANDS[args.cmd](args)
    except ChildError as exc:  # reported by the child that read the file or ran the queries
        if args.debug and exc.trace:
            print(exc.trace, file=sys.stderr, end="")
        _emit_error(args, exc.text)
        return exc.exit_code
    except NnirError as exc:
        if args.debug:
            traceback.print_exc()
        _emit_error(args, exc.render())
        return getattr(exc, "exit_code", None) or (
            EXIT_INPUT if isinstance(exc, (DslError, IrError, InputFileError)) else EXIT_QUERY)
    except BrokenPipeError:  # e.g. `nnirc run ... | head`: the reader left; not an error of ours
        sys.stdout = open(os.devnull, "w")
        return EXIT_OK
    except KeyboardInterrupt:
        print("nnirc: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in nnir: say so plainly, traceback only with --debug
        if args.debug:
            raise
        _emit_error(args, f"internal error: {type(exc).__name__}: {exc}\n"
                    "hint: rerun with --debug for a traceback, and please report it")
        return 70


def _emit_error(args, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(document(args.cmd, status="error", message=text)))
    else:
        print(text, file=sys.stderr)

