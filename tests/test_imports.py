"""Imports: no cycles among nnir's modules, imports at module level (lazy only for solver
libraries and optional extras, or a listed exception with its reason), and every module imports
on its own in a fresh interpreter."""
import ast
import os
import pathlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

ROOT = pathlib.Path(__file__).resolve().parent.parent
# installed under the nnir namespace (pyproject's package-dir)
TOPS = {"nnir": "nnir", "backends": "nnir.backends", "grammar": "nnir.grammar"}

SOLVERS = {"highspy", "z3", "cvc5", "pysmt"}  # heavy: imported on use, in backends/ only
OPTIONAL = {"onnxruntime", "vnnlib", "matplotlib", "ray"}  # extras nnir runs without
# Required libraries still imported on use, with the reason.
LAZY_LIBS = {
    "onnx": "about 0.3 s to import; only ONNX reading and writing need it (nnirc check stays fast)",
    "threadpoolctl": "only the split backend's worker threads cap BLAS threads with it",
}
# Modules above the `nnir/__init__` facade, which may take names from it.
ABOVE_FACADE = {"nnir.cli", "nnir.__main__"}
# Function-level imports of nnir's own modules still allowed, by (importing module, imported
# module), each with its reason.
ALLOWED_OWN = {
    # passes sit below backends: the LP pass takes its LP solver as an argument and only the
    # default reaches up to the HiGHS helper
    ("nnir.passes.lp", "nnir.backends.milp.highs"),
}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for top, name in TOPS.items():
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT / top).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([name, *parts])] = path
    return out


MODULES = _modules()


def _resolve(mod: str, node: ast.ImportFrom, is_pkg: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str) -> str:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(mod: str):
    """(target module, names imported from it or None, at function level?) per import."""
    path = MODULES[mod]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_fn = {id(s) for fn in ast.walk(tree)
             if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
             for s in ast.walk(fn)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None, id(node) in in_fn
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(mod, node, path.name == "__init__.py")
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            if target.startswith("nnir") and subs and len(subs) == len(node.names):
                for s in subs:  # `from pkg import module`: the module
                    yield s, None, id(node) in in_fn
            else:
                yield target, [a.name for a in node.names], id(node) in in_fn


def _graph() -> dict[str, set[str]]:
    """Module-level imports among nnir's modules, plus `pkg.mod -> pkg` (Python runs a
    package's __init__ before any of its modules) for every package but the root facade."""
    graph = {m: set() for m in MODULES}
    for mod in MODULES:
        for target, _, lazy in _imports(mod):
            t = _known(target) if target.startswith("nnir") else ""
            if t and t != mod and not lazy:
                graph[mod].add(t)
        parent = mod.rpartition(".")[0]
        if parent and parent != "nnir":
            graph[mod].add(parent)
    return graph


def _sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively."""
    index, low, on, stack, out, n = {}, {}, set(), [], [], 0
    for start in sorted(graph):
        if start in index:
            continue
        index[start] = low[start] = n
        n += 1
        stack.append(start)
        on.add(start)
        work = [(start, iter(sorted(graph[start])))]
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = n
                    n += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
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
                out.append(sorted(comp))
    return out


def _own_package(comp: list[str]) -> bool:
    """A package and some of its own modules (its __init__ importing them) is no cycle."""
    return any(all(m == p or m.startswith(p + ".") for m in comp) for p in comp)


def test_no_import_cycles():
    cycles = [c for c in _sccs(_graph()) if len(c) > 1 and not _own_package(c)]
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_nothing_imported_by_name_from_the_root_facade():
    """`nnir/__init__` imports nearly everything; a module taking a name (not a module) from
    it would depend on the order in which the facade imports things."""
    bad = [f"{mod}: from nnir import {', '.join(names)}" for mod in MODULES
           if mod != "nnir" and mod not in ABOVE_FACADE
           for target, names, _ in _imports(mod)
           if target == "nnir" and names and any(f"nnir.{n}" not in MODULES for n in names)]
    assert not bad, "\n".join(bad)


def test_function_level_imports_are_allowed():
    bad = []
    for mod in MODULES:
        for target, _, lazy in _imports(mod):
            top = target.split(".")[0]
            if not lazy or top in sys.stdlib_module_names or top in OPTIONAL \
                    or top in LAZY_LIBS:
                continue
            if top in SOLVERS and mod.startswith("nnir.backends."):
                continue
            if top == "nnir" and (mod, _known(target)) in ALLOWED_OWN:
                continue
            bad.append(f"{mod}: {target}")
    assert not bad, "function-level imports to move to module level:\n" + "\n".join(bad)


def test_every_module_imports_on_its_own():
    """Each module first in a fresh interpreter (a hidden cycle fails only in some orders);
    several interpreters in parallel keep this to a few seconds."""
    mods = [m for m in MODULES if m != "nnir.__main__"]

    def one(m):
        out = subprocess.run([sys.executable, "-c", f"import {m}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        last = out.stderr.strip().splitlines()[-1:] or [str(out.returncode)]
        return f"{m}: {last[0]}" if out.returncode else None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        bad = [r for r in pool.map(one, mods) if r]
    assert not bad, "\n".join(bad)
