"""Layering: the IR, front end, passes, queries and formats import without any solver library,
and no module of `nnir/` outside `backends/` imports a solver at module level (solver code lives
in `backends/`, behind helper modules such as `backends/milp/highs.py`)."""
import ast
import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOLVERS = ("highspy", "z3", "cvc5", "pysmt")
PACKAGES = ("nnir.ir", "nnir.passes", "nnir.queries", "nnir.frontend", "nnir.formats")


def _modules(package: str) -> list[str]:
    folder = ROOT.joinpath(*package.split("."))
    return [package] + sorted(f"{package}.{p.stem}" for p in folder.glob("*.py")
                              if p.stem != "__init__")


def test_core_packages_import_without_solvers():
    mods = [m for p in PACKAGES for m in _modules(p)]
    script = textwrap.dedent(f"""
        import importlib, sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {SOLVERS!r}:
                    raise ImportError(f"blocked solver module {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        for name in {mods!r}:
            importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {SOLVERS!r})
        assert not loaded, loaded
        print(len({mods!r}))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == str(len(mods))


def _module_level_imports(tree: ast.Module):
    """Import statements outside any function (module body, classes, if/try blocks)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                yield node.module
        else:
            stack.extend(ast.iter_child_nodes(node))


def test_no_solver_import_at_module_level_outside_backends():
    bad = []
    for path in sorted((ROOT / "nnir").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name in _module_level_imports(tree):
            if name.split(".")[0] in SOLVERS:
                bad.append(f"{path.relative_to(ROOT)}: import {name}")
    assert not bad, "solver imports belong in backends/:\n" + "\n".join(bad)
