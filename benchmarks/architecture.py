"""Architecture metrics of the nnir source tree (issue 12's before/after numbers).

Counts, over `nnir/` and `backends/` (tests and benchmarks excluded):

* isinstance dispatch on IR node kinds: `isinstance(x, K)` where K is a node class of
  `nnir.ir.nodes` (Dense, Add, Slice, Concat, Input, ... and the formula/query classes);
* function-level imports (`import` inside a def), and those of nnir's own modules;
* private cross-module imports: `from nnir.X import _name`;
* import cycles among nnir's modules, counting every import (module or function level): the
  strongly connected components of the import graph with more than one module;
* solver imports outside `backends/` (highspy, z3, cvc5, pysmt).

Usage: python benchmarks/architecture.py [--root DIR] [--json]
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys

# isinstance dispatch, by what is dispatched on: network node kinds (which grow: a table per
# analysis), query kinds (a table per query kind), formula kinds (a closed algebra, walked).
NODE_KINDS = {"Dense", "Add", "Slice", "Concat", "Conv", "Pool", "Reshape"}
QUERY_KINDS = {"Verify", "Train", "Bound", "Stable", "Compress", "Equiv"}
FORMULA_KINDS = {"Atom", "And", "Or", "Not", "BoolConst"}
NODE_CLASSES = NODE_KINDS | QUERY_KINDS | FORMULA_KINDS
SOLVERS = {"highspy", "z3", "cvc5", "pysmt"}


def module_name(root: str, path: str) -> str:
    rel = os.path.relpath(path, root)
    parts = rel[:-3].split(os.sep)
    if parts[0] == "backends":
        parts = ["nnir", "backends", *parts[1:]]
    elif parts[0] == "grammar":
        parts = ["nnir", "grammar", *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def files(root: str):
    for top in ("nnir", "backends", "grammar"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for n in sorted(names):
                if n.endswith(".py"):
                    yield os.path.join(dirpath, n)


def resolve(mod: str, node: ast.ImportFrom, is_pkg: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def analyse(root: str) -> dict:
    isinst, isinst_files = 0, set()
    by_what = {"node": 0, "query": 0, "formula": 0}
    fn_imports, fn_imports_own, fn_files = 0, 0, set()
    private, solver_outside = [], []
    graph: dict[str, set[str]] = {}
    mods = {}
    for path in files(root):
        mods[module_name(root, path)] = path
    for mod, path in mods.items():
        tree = ast.parse(open(path, encoding="utf-8").read())
        is_pkg = path.endswith("__init__.py")
        graph.setdefault(mod, set())
        in_backends = mod.startswith("nnir.backends")
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(fn):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        fn_imports += 1
                        fn_files.add(mod)
                        names = [a.name for a in sub.names] if isinstance(sub, ast.Import) \
                            else [resolve(mod, sub, is_pkg)]
                        if any(n.startswith("nnir") for n in names):
                            fn_imports_own += 1
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" \
                    and len(node.args) == 2:
                kinds = node.args[1]
                elts = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
                names = {getattr(e, "id", getattr(e, "attr", None)) for e in elts}
                if names & NODE_CLASSES:
                    isinst += 1
                    isinst_files.add(mod)
                    for what, group in (("node", NODE_KINDS), ("query", QUERY_KINDS),
                                        ("formula", FORMULA_KINDS)):
                        by_what[what] += bool(names & group)
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                target = resolve(mod, node, is_pkg)
                targets = [target]
                if target.startswith("nnir"):
                    subs = []
                    for a in node.names:
                        if a.name.startswith("_") and not a.name.startswith("__"):
                            private.append(f"{mod} <- {target}.{a.name}")
                        sub = f"{target}.{a.name}"
                        if sub in mods:
                            subs.append(sub)
                    # `from pkg import module`: an edge to the module, not to the package's
                    # __init__ (which Python runs first anyway, as for any submodule)
                    if subs and len(subs) == len(node.names):
                        targets = subs
                    else:
                        targets += subs
            for t in targets:
                if t.split(".")[0] in SOLVERS and not in_backends:
                    solver_outside.append(f"{mod}: {t}")
                if t.startswith("nnir"):
                    # the module itself, or the nearest enclosing module we know
                    while t and t not in mods:
                        t = t.rpartition(".")[0]
                    if t and t != mod:
                        graph[mod].add(t)
    cycles = [c for c in _sccs(graph) if len(c) > 1]
    return {
        "modules": len(mods),
        "isinstance_dispatch": isinst,
        "isinstance_dispatch_files": len(isinst_files),
        "isinstance_on_node_kinds": by_what["node"],
        "isinstance_on_query_kinds": by_what["query"],
        "isinstance_on_formula_kinds": by_what["formula"],
        "function_level_imports": fn_imports,
        "function_level_imports_of_nnir": fn_imports_own,
        "function_level_import_files": len(fn_files),
        "private_cross_module_imports": len(private),
        "import_cycles": len(cycles),
        "modules_in_cycles": sum(len(c) for c in cycles),
        "solver_imports_outside_backends": len(solver_outside),
        "cycle_detail": [sorted(c) for c in cycles],
        "private_detail": private,
        "solver_detail": solver_outside,
    }


def _sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--detail", action="store_true", help="list cycles and private imports")
    args = ap.parse_args(argv)
    m = analyse(os.path.abspath(args.root))
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    for k, v in m.items():
        if not k.endswith("_detail"):
            print(f"{k:36s} {v}")
    if args.detail:
        for k in ("cycle_detail", "private_detail", "solver_detail"):
            print(f"\n{k}:")
            for row in m[k]:
                print(f"  {row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
