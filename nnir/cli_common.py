"""What the `nnirc` commands share: the JSON document, option flags, loading a file with its
datasets, selecting queries, the backstop's grace, errors reported by a child.

It sits below `nnir.cli_commands`, `nnir.cli_session` and the command modules in
`nnir.formats` (`commands`, `batch`), so each of them imports it at module level and none
imports another's helpers: the CLI modules form no import cycle (`tests/test_imports.py`).
"""
from __future__ import annotations

import json
import sys

import numpy as np

from nnir.backends import registry
from nnir.data import load_dataset
from nnir.errors import DslError, UsageError
from nnir.frontend import load
from nnir.io import read_text, write_text
from nnir.ir.nodes import Program

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_QUERY = 0, 1, 2, 3

# Every `--json` document (and every `-o` results file) names its schema: `nnir/schema/
# nnir-output-1.json` describes it; a change that breaks a reader gets a new number.
SCHEMA = "nnir/1"


def document(command: str, **fields) -> dict:
    """The top of every JSON document `nnirc` prints: the schema, the command, then `fields`."""
    return {"schema": SCHEMA, "command": command, **fields}


def print_json(doc: dict) -> None:
    print(json.dumps(doc, indent=2))


def check_backend_name(name: str) -> None:
    """An unknown `--backend` is a command-line error, found before anything is read."""
    if name != "auto" and name not in registry.names():
        raise UsageError(f"unknown backend '{name}'",
                         hint="known backends: " + ", ".join(["auto", *registry.names()]))


def load_all(path: str) -> Program:
    """Parse and verify, then materialise every dataset so file problems surface now."""
    prog = load(path)
    source = read_text(path)  # bounded, BOM dropped: the text the parser saw
    loaded = {ds.name: load_dataset(ds, prog.base_dir, source) for ds in prog.datasets}
    for q in prog.queries:
        for data in (getattr(q, "data", None), getattr(q, "test", None)):
            if data not in loaded:
                continue
            net = prog.network(q.net)
            if loaded[data].dim != net.input.size:
                raise DslError(f"dataset '{data}' has points of dimension {loaded[data].dim}, "
                                f"but network '{net.name}' takes {net.input.size} inputs",
                                q.span, source=source)
            if q.kind in ("stable", "compress"):  # these use only the points in the domain
                _warn_outside(q, net, data, loaded[data])
    return prog


def _warn_outside(q, net, name: str, data) -> None:
    """A warning on stderr when no point of `data` lies in `net`'s input box: `stable` and
    `compress` use only points in the domain, so such a dataset silently adds nothing (raw
    0..255 pixels for a network on [0, 1])."""
    lo, hi = net.input.lo.f64, net.input.hi.f64
    X = data.X
    if np.any(np.all((X >= lo) & (X <= hi), axis=1)):
        return
    print(f"nnirc: warning: no point of dataset '{name}' lies in the input box of network "
          f"'{net.name}' (the points span [{X.min():.6g}, {X.max():.6g}], the box "
          f"[{lo.min():.6g}, {hi.max():.6g}]), so {q.kind} '{q.name}' gets nothing from it; "
          f"rescale the file with an option such as `scale 1/255`", file=sys.stderr)


def options_of(args) -> dict:
    opts = {}
    if getattr(args, "solver_cmd", None):
        opts["cmd"] = args.solver_cmd
    if getattr(args, "pysmt_solver", None):
        opts["solver"] = args.pysmt_solver
    if getattr(args, "encoding", None):
        opts["encoding"] = args.encoding
    if getattr(args, "method", None):
        opts["method"] = args.method
    if getattr(args, "lp", False):
        opts["lp"] = True
    if getattr(args, "isa_joint", None) is not None:
        opts["joint_s"] = args.isa_joint
    return opts


def selected(prog: Program, names, kinds=None) -> list:
    if names:
        known = {q.name for q in prog.queries}
        missing = [n for n in names if n not in known]
        if missing:
            raise UsageError(f"no query named '{missing[0]}' in {prog.path}",
                            hint="queries: " + ", ".join(sorted(known)))
        return [q for q in prog.queries if q.name in names]
    return [q for q in prog.queries if kinds is None or q.kind in kinds]


def kill_grace(timeout: float) -> float:
    """Seconds past the limit before the backstop kill: within the promised max(2 s, 5% of T)
    with room to print."""
    return max(1.5, 0.04 * timeout)


class ChildError(Exception):
    """An error the child reported: already rendered, with the exit status it means."""

    def __init__(self, text: str, exit_code: int, trace: str = ""):
        super().__init__(text)
        self.text, self.exit_code, self.trace = text, exit_code, trace


def emitted(args, text: str | None, **fields) -> int:
    """Finish `emit`: `text` (None: already written to `-o`) to `-o` or stdout; with `--json`,
    a JSON document saying what was written (holding `text` when there is no `-o`)."""
    if text is not None and args.output:
        write_text(args.output, text)
    if args.json:
        print_json(document("emit", file=args.file, format=args.format, **fields,
                            output=args.output or None,
                            text=None if args.output else text))
    elif args.output:
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


