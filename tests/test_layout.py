"""The package layout: every import points to the same or an earlier stage, and no cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import stabfrag

ROOT = Path(stabfrag.__file__).parent
# The stages, earliest first: a module may import its own stage or an earlier one only.
STAGES = (
    "stabfrag",  # the package itself: __version__
    "errors",
    "schema",
    "config",
    "atomic",
    "allocator",  # the process heap's thresholds
    "threads",  # the process's one pool of worker threads
    "logs",  # the log lines' one logger tree
    "synth",  # the synthetic market: an input source like a prices file
    "ingest",
    "features",
    "asof",  # the point-in-time join, the as-of calendar, state requests
    "scenarios",
    "model",
    "profiles",  # the profile branch's inputs and encoder
    "sinks",
    "engine",
    "index",  # the analog index over a built folder's states
    "analysis",
    "fitting",  # calibrate and every fit: above analysis, whose metrics it uses
    "api",  # the public functions (build, backfill, open): every stage below them
    "cli",
    "__main__",
)


# The package re-exports the public API (stabfrag.build, stabfrag.open, ...), imported on
# first use (test_importing_the_package_imports_no_stage), never when a module of an
# earlier stage imports the package for __version__: not an edge of the import graph.
REEXPORTS = {
    "stabfrag": {"stabfrag.api", "stabfrag.config", "stabfrag.engine.summary", "stabfrag.errors"}
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _stage(module: str) -> int:
    parts = module.split(".")
    return STAGES.index(parts[1] if len(parts) > 1 else parts[0])


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every stabfrag module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("stabfrag")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stabfrag"):
            assert node.module is not None
            for alias in node.names:  # `from stabfrag.x import y` may name a submodule y
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    return {m: _imports(p, set(paths)) - {m} - REEXPORTS.get(m, set()) for m, p in paths.items()}


def test_every_module_belongs_to_a_stage() -> None:
    for module in _graph():
        _stage(module)  # raises for a folder the stage list does not name


def test_no_import_runs_back_up_the_stages() -> None:
    backwards = [
        f"{m} -> {dep}" for m, deps in _graph().items() for dep in deps if _stage(dep) > _stage(m)
    ]
    assert backwards == []


def test_importing_the_package_imports_no_stage() -> None:
    code = "import sys, stabfrag; print(sorted(m for m in sys.modules if m.startswith('stabfrag')))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.strip() == "['stabfrag']", res.stderr


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for dep in sorted(graph.get(m, ())):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, m, dep]))
            if dep not in state:
                visit(dep, [*path, m])
        state[m] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_the_package_imports_in_a_fresh_interpreter() -> None:
    code = (
        "import importlib, pkgutil, stabfrag\n"
        "for m in pkgutil.walk_packages(stabfrag.__path__, 'stabfrag.'):\n"
        "    if m.name != 'stabfrag.__main__':\n"
        "        importlib.import_module(m.name)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_every_error_is_a_stabfrag_error() -> None:
    from stabfrag import errors

    for name in dir(errors):
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, errors.StabfragError), name
    # No module defines an exception class of its own outside errors.py.
    for path in ROOT.rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                assert not bases & {"Exception", "ValueError", "RuntimeError"}, (path, node.name)


# Folder names that pytest's default norecursedirs, the usual .gitignore templates and
# formatters treat as generated output: a package named so is one tools miss.
ARTEFACT_NAMES = {"build", "dist", "lib", "env"}
MAX_FUNCTION_LINES = 60


def test_no_folder_is_named_like_build_output() -> None:
    repo = ROOT.parent
    named = [
        str(p.relative_to(repo))
        for top in (ROOT, repo / "tests")
        for p in top.rglob("*")
        if p.is_dir() and p.name in ARTEFACT_NAMES
    ]
    assert named == []


def _long_functions(path: Path) -> list[str]:
    """Functions of `path` longer than MAX_FUNCTION_LINES; in cli/, a Typer command's
    option list (its signature) does not count, its body does."""
    command = path.relative_to(ROOT).parts[0] == "cli"
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        assert node.end_lineno is not None
        length = node.end_lineno - node.lineno + 1
        if command:
            first_body = node.body[0].lineno
            length -= first_body - node.lineno  # the signature
        if length > MAX_FUNCTION_LINES:
            out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return out


def test_no_function_is_over_sixty_lines() -> None:
    long = [f for p in sorted(ROOT.rglob("*.py")) for f in _long_functions(p)]
    assert long == []
