"""The `nnirc` subcommands, one function each (argument parsing lives in `nnir.cli`)."""
from __future__ import annotations

import json
import sys

from nnir.errors import DslError, UnsupportedQuery, UsageError
from nnir.frontend import load
from nnir.io import read_text, write_text
from nnir.ir.nodes import Program, Verify
from nnir.ir.printer import print_network, print_program

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
    from nnir.backends import registry

    if name != "auto" and name not in registry.names():
        raise UsageError(f"unknown backend '{name}'",
                         hint="known backends: " + ", ".join(["auto", *registry.names()]))


def _load_all(path: str) -> Program:
    """Parse and verify, then materialise every dataset so file problems surface now."""
    from nnir.data import load_dataset

    prog = load(path)
    source = read_text(path)  # bounded, BOM dropped: the text the parser saw
    dims = {}
    for ds in prog.datasets:
        dims[ds.name] = load_dataset(ds, prog.base_dir, source).dim
    for q in prog.queries:
        for data in (getattr(q, "data", None), getattr(q, "test", None)):
            if data not in dims:
                continue
            net = prog.network(q.net)
            if dims[data] != net.input.size:
                raise DslError(f"dataset '{data}' has points of dimension {dims[data]}, but "
                                f"network '{net.name}' takes {net.input.size} inputs",
                                q.span, source=source)
    return prog


def cmd_check(args) -> int:
    prog = _load_all(args.file)
    summary = {
        "file": args.file,
        "networks": [{
            "name": n.name, "inputs": n.input.size,
            "layers": [f"{lay.act if lay.kind == 'dense' else lay.kind} {lay.name}[{lay.size}]"
                       + (" relu" if lay.kind == "add" and lay.act == "relu" else "")
                       for lay in n.layers],
            "parameters": sum(lay.size * (n.size_of(lay.src) + 1) for lay in n.dense_layers),
            "unknown_weights": n.has_unknowns} for n in prog.networks],
        "datasets": [d.name for d in prog.datasets],
        "queries": [{"name": q.name, "kind": q.kind, "location": str(q.span)}
                    for q in prog.queries],
    }
    if args.json:
        print_json(document("check", **summary))
        return EXIT_OK
    print(f"{args.file}: ok")
    for n in summary["networks"]:
        unk = ", unknown weights" if n["unknown_weights"] else ""
        print(f"  net {n['name']}: {n['inputs']} inputs -> " + " -> ".join(n["layers"])
              + f" ({n['parameters']} parameters{unk})")
    for d in prog.datasets:
        print(f"  data {d.name}")
    for q in summary["queries"]:
        print(f"  {q['kind']} {q['name']} (line {q['location'].split(':')[-2]})")
    return EXIT_OK


def _options(args) -> dict:
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


def _selected(prog: Program, names, kinds=None) -> list:
    if names:
        known = {q.name for q in prog.queries}
        missing = [n for n in names if n not in known]
        if missing:
            raise UsageError(f"no query named '{missing[0]}' in {prog.path}",
                            hint="queries: " + ", ".join(sorted(known)))
        return [q for q in prog.queries if q.name in names]
    return [q for q in prog.queries if kinds is None or q.kind in kinds]


def cmd_run(args, kinds=None) -> int:
    """Answer the selected queries in a killable child (`nnir.cli_session`); print each result
    as it comes, and rewrite `-o` atomically after each, so an interrupt loses nothing finished."""
    from nnir.cli_session import run_queries

    results = []

    def payload(interrupted: bool = False) -> dict:
        d = document(args.cmd, file=args.file, results=[r.to_dict() for r in results])
        if interrupted:
            d["interrupted"] = True
        return d

    def on_start(k, n, name, kind) -> None:
        if not args.json:
            print(f"[{k}/{n}] {kind} {name} ...", file=sys.stderr, flush=True)

    def on_result(res, n) -> None:
        if getattr(args, "results_hook", None):
            args.results_hook(res, n > 1)
        results.append(res)
        if not args.json:
            print(res.render(), flush=True)
        if args.output:
            write_text(args.output, json.dumps(payload(), indent=2) + "\n")

    check_backend_name(args.backend)
    from nnir.queries.route import check_run_options

    check_run_options(args.backend, _options(args))
    ses = run_queries(args.file, args.query, kinds, args.backend, args.timeout, _options(args),
                      on_start, on_result)
    if ses.interrupted:
        if args.output:
            write_text(args.output, json.dumps(payload(True), indent=2) + "\n")
        if args.json:
            print(json.dumps(payload(True), indent=2))
        raise KeyboardInterrupt
    if args.json:
        print(json.dumps(payload(), indent=2))
    return EXIT_QUERY if any(r.status == "error" for r in results) else EXIT_OK


def cmd_verify(args) -> int:
    if args.prop or args.file.endswith((".onnx", ".nnet")):  # VNN-COMP: network + property
        from nnir.formats.commands import cmd_verify_files

        return cmd_verify_files(args)
    return cmd_run(args, kinds=("verify",))


def cmd_train(args, kinds=("train",)) -> int:
    save = args.save
    if args.output and args.output.endswith(".nnir"):  # the old `-o NET.nnir`
        if save is not None:
            raise UsageError(f"-o {args.output} and --save {save} both name the network",
                             hint="-o writes the results as JSON; --save writes the network")
        print(f"nnirc {args.cmd}: warning: -o {args.output} is deprecated for the network; "
              f"use --save {args.output} (-o FILE writes the results as JSON)", file=sys.stderr)
        save, args.output = args.output, None
    args.results_hook = (lambda res, many: _save_trained(res, _per_query(save, res, many))) \
        if save else None
    return cmd_run(args, kinds=kinds)


def _per_query(path: str, res, many: bool) -> str:
    """With several train queries, each network goes to its own file: NAME_QUERY.nnir."""
    import os

    if not many:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}_{res.query}{ext or '.nnir'}"


def _save_trained(res, path: str) -> None:
    """Write a trained network as .nnir (exact) and .npz (float64), both atomically."""
    import os

    import numpy as np

    from nnir.io import atomic_path

    if res.trained is None:
        return
    verb = "trained" if res.kind == "train" else "made"
    write_text(path, f"# {verb} by nnir ({res.backend}), query {res.query}; "
               f"{res.certified}\n" + print_network(res.trained))
    arrays = {}
    for k, lay in enumerate(res.trained.layers, 1):
        arrays[f"W{k}"], arrays[f"b{k}"] = lay.weight.f64, lay.bias.f64
    npz = os.path.splitext(path)[0] + ".npz"
    with atomic_path(npz, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    res.notes.append(f"network written to {path} and {npz}")


def cmd_emit(args) -> int:
    from nnir.queries.run import prepare

    prog = load(args.file)
    if args.format in ("onnx", "vnnlib"):  # a network or a query as another tool's file
        from nnir.formats.commands import emit_file

        return emit_file(args, prog)
    verifies = [q for q in prog.queries if isinstance(q, Verify)]
    if args.query:
        q = next((q for q in prog.queries if q.name == args.query), None)
        if q is None:
            raise UsageError(f"no query named '{args.query}'",
                            hint="queries: " + ", ".join(x.name for x in prog.queries))
        if not isinstance(q, Verify):
            raise UnsupportedQuery(f"emit handles verify queries; '{q.name}' is a {q.kind} "
                                   "query", q.span)
    elif len(verifies) == 1:
        q = verifies[0]
    else:
        raise UsageError(f"{args.file} has {len(verifies)} verify queries; pick one with --query",
                        hint="verify queries: " + (", ".join(v.name for v in verifies) or
                                                   "none"))
    problem = prepare(prog, q)
    if args.format == "smtlib":
        from nnir.backends.smtlib.lower import to_smtlib

        return emitted(args, to_smtlib(problem, relu=args.relu).text, query=q.name)
    if not args.output:
        raise UsageError(f"--format {args.format} needs an output file (-o FILE)")
    from nnir.backends.milp.lower import to_milp
    from nnir.backends.milp.writer import write_model

    write_model(to_milp(problem), args.output, args.format)
    return emitted(args, None, query=q.name)


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


def cmd_dump_ir(args) -> int:
    prog = load(args.file)
    if not args.after:
        text = print_program(prog)
    else:
        from nnir.passes.manager import PassContext, PassManager, registered_passes

        passes = registered_passes()
        if args.after not in passes:
            raise UsageError(f"unknown pass '{args.after}'",
                             hint="passes: " + ", ".join(passes))
        names = list(passes)
        upto = PassManager([passes[n] for n in names[:names.index(args.after) + 1]])
        parts = []
        for net in prog.networks:
            ctx = PassContext(check=True, dump_after=args.after)
            upto.run(net, ctx)
            parts.append(print_network(ctx.dumped or net, facts=True) + "\n")
        text = "".join(parts)
    if args.json:
        print_json(document("dump-ir", file=args.file, after=args.after, text=text))
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_backends(args) -> int:
    from nnir.backends import registry

    if args.json:
        rows = []
        for n in registry.names():
            c = registry.backend_class(n)
            rows.append({"name": n, "description": c.description, "kinds": sorted(c.kinds),
                         "logics": sorted(c.logics), "optimizes": c.optimizes,
                         "exact": c.exact, "modules": list(c.modules),
                         "available": c.available()})
        print_json(document("backends", backends=rows))
    else:
        print(registry.capability_table(installed=not args.markdown))
    return EXIT_OK


def _batch(args) -> int:
    from nnir.formats.batch import cmd_batch

    return cmd_batch(args)


COMMANDS = {"check": cmd_check, "run": cmd_run, "verify": cmd_verify, "train": cmd_train,
            "compress": lambda args: cmd_train(args, kinds=("compress",)),
            "equiv": lambda args: cmd_run(args, kinds=("equiv",)),
            "bound": lambda args: cmd_run(args, kinds=("bound",)),
            "stable": lambda args: cmd_run(args, kinds=("stable",)),
            "emit": cmd_emit, "batch": _batch,
            "dump-ir": cmd_dump_ir, "backends": cmd_backends}

__all__ = ["COMMANDS", "SCHEMA", "document", "print_json"]
