"""The package's structure, as issue 11 asks for it: one home per protocol, no cycles,
nothing importing upward, a compute side that never loads driver code, small modules.

Imports are read with ``ast`` (module level and inside functions; ``TYPE_CHECKING``
blocks are ignored: they never run).  The layers below are the module map of
``docs/design.md``: a module may import its own layer or lower ones.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "executorlib_cache"
CLI = Path(__file__).resolve().parents[1] / "cli"
pytestmark = pytest.mark.timeout(60)

#: lowest first; a module may import modules of its own layer or of lower ones
LAYERS: list[set[str]] = [
    {"_version", "errors", "resources", "deps", "mpi", "options", "mounts"},
    {"serialization", "fingerprint", "hashing", "schedulers.base", "schedulers.slurm",
     "schedulers.flux", "schedulers", "schedulers.commands"},
    {"fileio", "spans", "locks", "naming", "entryfile"},
    {"store", "liveness", "legacy", "usage"},
    {"claims", "pool_queue"},
    {"compute", "compute.runner", "compute.worker", "compute.pool_worker"},
    {"future"},
    {"graph", "progress", "workflow"},
    {"catalog", "catalog.select", "catalog.scanner", "catalog.report", "catalog.maintain",
     "catalog.migrate", "catalog.importer"},
    {"backends", "backends.base", "backends.tracker", "backends.submission",
     "backends.local", "backends.cluster", "backends.workers", "backends.pool"},
    {"inbox"},
    {"poller", "watch"},
    {"executor", "cluster_executor", "job_executor"},
    {"", "__main__"},  # the package itself (lazy public names) and `python -m`
]
LAYER = {m: i for i, layer in enumerate(LAYERS) for m in layer}
#: what the compute side may import from the package (never backends/ or executors)
COMPUTE_MAY_IMPORT = {"_version", "errors", "resources", "deps", "mpi", "serialization",
                      "schedulers", "schedulers.base", "schedulers.slurm", "schedulers.flux",
                      "fileio", "spans", "mounts", "locks", "naming", "entryfile", "store",
                      "legacy", "usage", "liveness",
                      "claims",
                      "pool_queue", "compute", "compute.runner"}
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Package modules ``name`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if name else []
    if not is_pkg:
        base = base[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = base[: len(base) - (child.level - 1)] if child.level > 1 else base
                    mod = ".".join([*parts, *(child.module.split(".") if child.module else [])])
                elif child.module and child.module.startswith("executorlib_cache"):
                    mod = child.module[len("executorlib_cache"):].lstrip(".")
                else:
                    continue
                for alias in child.names:  # `from . import claims` imports a module
                    sub = f"{mod}.{alias.name}" if mod else alias.name
                    found.add(sub if sub in known else mod)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("executorlib_cache"):
                        found.add(alias.name[len("executorlib_cache"):].lstrip("."))
            visit(child)

    visit(tree)
    found.discard(name)
    return {m for m in found if m in known}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_has_a_layer() -> None:
    missing = sorted(set(_modules()) - set(LAYER))
    assert not missing, f"modules missing from LAYERS (and docs/design.md): {missing}"


def test_nothing_imports_upward() -> None:
    upward = [f"{m} -> {d}" for m, deps in _graph().items() for d in deps
              if LAYER[d] > LAYER[m]]
    assert not upward, upward


def test_the_import_graph_has_no_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(
                    stack[stack.index(d):] + [d]))
            if d not in state:
                dfs(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)


def test_the_compute_side_imports_no_driver_code() -> None:
    graph = _graph()
    bad = {m: sorted(deps - COMPUTE_MAY_IMPORT) for m, deps in graph.items()
           if m.startswith("compute") and deps - COMPUTE_MAY_IMPORT}
    assert not bad, bad


def test_a_pool_worker_loads_neither_zmq_nor_pysqa_nor_backends() -> None:
    """What a compute node pays: importing the pool worker and the runner."""
    code = ("import sys, executorlib_cache.compute.pool_worker, executorlib_cache.compute.runner\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('zmq', 'pysqa', 'pandas')\n"
            "       or m.startswith(('executorlib_cache.backends', 'executorlib_cache.executor',\n"
            "                        'executorlib_cache.poller', 'executorlib_cache.catalog'))]\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "[]", out


def test_no_module_is_too_long() -> None:
    long = {str(p.relative_to(PKG.parent)): n for p in [*PKG.rglob("*.py"), *CLI.glob("*.py")]
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def _documented_methods() -> dict[str, set[str]]:
    """class name -> its methods that have a docstring (for overrides)."""
    out: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                out.setdefault(node.name, set()).update(
                    i.name for i in node.body
                    if isinstance(i, ast.FunctionDef) and ast.get_docstring(i))
    return out


def test_every_public_definition_has_a_docstring() -> None:
    """Public modules, classes, functions and methods say what they do; a method that
    overrides a documented one of a base class of the package inherits its docs."""
    documented = _documented_methods()
    missing = []
    for path in [*PKG.rglob("*.py"), *CLI.glob("*.py")]:
        tree = ast.parse(path.read_text())
        where = path.relative_to(PKG.parent)
        if not ast.get_docstring(tree):
            missing.append(f"{where}: module")
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and \
                    not node.name.startswith("_") and not ast.get_docstring(node):
                missing.append(f"{where}:{node.lineno} {node.name}")
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            inherited = set().union(*(documented.get(b.id, set()) for b in node.bases
                                      if isinstance(b, ast.Name)))
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("_") \
                        and not ast.get_docstring(item) and item.name not in inherited:
                    missing.append(f"{where}:{item.lineno} {node.name}.{item.name}")
    assert not missing, f"{len(missing)} public definitions without a docstring:\n" + \
        "\n".join(missing)
