"""The `nnirc` subcommands, one function each (argument parsing lives in `nnir.cli`)."""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from nnir.backends import registry
from nnir.cli_common import (
    EXIT_OK,
    EXIT_QUERY,
    check_backend_name,
    document,
    load_all,
    options_of,
    print_json,
)
from nnir.cli_session import run_queries
from nnir.errors import UsageError
from nnir.formats.batch import cmd_batch
from nnir.formats.commands import cmd_check_network, cmd_verify_files, emit_file
from nnir.formats.vnncomp import NETWORK_SUFFIXES
from nnir.frontend import load
from nnir.io import atomic_path, write_text
from nnir.ir.printer import WeightStore, print_network, print_program
from nnir.passes.manager import PassContext, PassManager, registered_passes
from nnir.queries.route import check_run_options


def _parameters(net, lay) -> int:
    """Weights and biases of a layer (a conv's kernel, not its taps); index maps have none."""
    if lay.kind == "dense":
        return lay.size * (net.size_of(lay.src) + 1)
    if lay.kind == "conv":
        return int(np.prod(lay.weight.shape)) + lay.out_shape[0]
    return 0


def cmd_check(args) -> int:
    if args.file.endswith(NETWORK_SUFFIXES):  # a network file: its summary and import check
        return cmd_check_network(args)
    prog = load_all(args.file)
    summary = {
        "file": args.file,
        "networks": [{
            "name": n.name, "inputs": n.input.size,
            "layers": [f"{lay.act if lay.kind == 'dense' else lay.kind} {lay.name}[{lay.size}]"
                       + (" relu" if lay.kind != "dense" and lay.act == "relu" else "")
                       for lay in n.layers],
            "parameters": sum(_parameters(n, lay) for lay in n.layers),
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


def cmd_run(args, kinds=None) -> int:
    """Answer the selected queries in a killable child (`nnir.cli_session`); print each result
    as it comes, and rewrite `-o` atomically after each, so an interrupt loses nothing finished."""

    results = []

    def payload(interrupted: bool = False) -> dict:
        d = document(args.cmd, file=args.file, results=[r.to_dict() for r in results])
        if interrupted:
            d["interrupted"] = True
        return d

    def on_start(k, n, name, kind) -> None:
        if not (args.json or args.quiet):
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

    check_run_options(args.backend, options_of(args))
    ses = run_queries(args.file, args.query, kinds, args.backend, args.timeout, options_of(args),
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
    if args.prop or args.file.endswith(NETWORK_SUFFIXES):  # VNN-COMP: network + property

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
    if not many:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}_{res.query}{ext or '.nnir'}"


def _save_trained(res, path: str) -> None:
    """Write a trained network as .nnir (exact) and .npz (float64), both atomically."""
    if res.trained is None:
        return
    verb = "trained" if res.kind == "train" else "made"
    npz = os.path.splitext(path)[0] + ".npz"
    # large float weights (a conv network's kernels) are loaded from the .npz, so the text stays
    # readable; the dense layers' W1, b1, ... are there too for numpy users, as before
    store = WeightStore(os.path.basename(npz))
    text = print_network(res.trained, store=store)
    arrays = dict(store.arrays)
    for k, lay in enumerate(res.trained.dense_layers, 1):
        arrays[f"W{k}"], arrays[f"b{k}"] = lay.weight.f64, lay.bias.f64
    with atomic_path(npz, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    write_text(path, f"# {verb} by nnir ({res.backend}), query {res.query}; "
               f"{res.certified}\n" + text)
    res.notes.append(f"network written to {path} and {npz}")


def cmd_emit(args) -> int:
    return emit_file(args, load(args.file))  # every format: nnir/formats/commands.py


def cmd_dump_ir(args) -> int:
    prog = load(args.file)
    if not args.after:
        text = print_program(prog)
    else:

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

    return cmd_batch(args)


COMMANDS = {"check": cmd_check, "run": cmd_run, "verify": cmd_verify, "train": cmd_train,
            "compress": lambda args: cmd_train(args, kinds=("compress",)),
            "equiv": lambda args: cmd_run(args, kinds=("equiv",)),
            "bound": lambda args: cmd_run(args, kinds=("bound",)),
            "stable": lambda args: cmd_run(args, kinds=("stable",)),
            "emit": cmd_emit, "batch": _batch,
            "dump-ir": cmd_dump_ir, "backends": cmd_backends}

__all__ = ["COMMANDS"]
