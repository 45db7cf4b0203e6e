"""The documentation is tested like code.

* Every ```python block of ``docs/*.md`` and ``README.md`` is **executed** on the
  local backend: written to a file and run in a fresh interpreter, in its own
  temporary directory, with ``XCACHE_DIR`` pointing into it and a timeout.
  A ``print(...)  # -> text`` line is an expected output: ``text`` must appear as a
  line of stdout, in order (``...`` matches anything).
* Blocks that need a cluster are marked, and are only **compiled** (``compile()``)
  plus checked that every name they import from ``executorlib_cache`` exists:
  a ```python cluster fence, or an HTML comment right before the block,
  ``<!-- skip: needs SLURM -->`` (any reason after ``skip:``).
* ``<!-- requires: mpi4py -->`` / ``<!-- requires: graphviz -->`` before a block: run
  it when that is installed, else compile it and skip (a failure under ``CI=true``).
* ```json blocks must parse.  Shell blocks (bash, console, text) are not executed.
* ``examples/*.py`` run the same way (a ``# needs: slurm`` or ``# needs: flux``
  line makes one compile-only); ``examples/*.sh`` pass ``bash -n``.
* ``mkdocs build --strict`` passes (warnings are errors: broken links, pages
  missing from the nav), every page is in the nav, README's relative links exist.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import executorlib_cache

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: the directory that holds the executorlib_cache being tested (source tree or site-packages)
IMPORT_ROOT = str(Path(executorlib_cache.__file__).resolve().parents[1])
from conftest import SLURM_WANTED, skip_unless_ci  # noqa: E402

BLOCK_TIMEOUT = 120

pytestmark = pytest.mark.timeout(BLOCK_TIMEOUT + 60)


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    flags: tuple[str, ...]  # words after the language: ("cluster",)
    code: str
    skip: str | None  # reason from <!-- skip: ... -->
    requires: str | None  # from <!-- requires: ... -->

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def compile_only(self) -> bool:
        return "cluster" in self.flags or self.skip is not None


_FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<ticks>`{3,})(?P<info>[^`]*)$")
_MARK = re.compile(r"<!--\s*(skip|requires):\s*(.*?)\s*-->")


def extract_blocks(path: Path) -> list[Block]:
    """Fenced blocks of a Markdown file, with the marker comment before each."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, info = len(m["indent"]), m["ticks"], m["info"].strip().split()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != ticks:
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        prev = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marks = dict(_MARK.findall(prev))
        blocks.append(Block(path, start + 1, info[0].lower() if info else "",
                            tuple(w.lower() for w in info[1:]), "\n".join(body) + "\n",
                            marks.get("skip"), marks.get("requires")))
    return blocks


def doc_files() -> list[Path]:
    files = sorted(DOCS.glob("*.md"))
    if (ROOT / "README.md").exists():
        files.append(ROOT / "README.md")
    return files


PY_BLOCKS = [b for f in doc_files() for b in extract_blocks(f) if b.lang in ("python", "py")]
JSON_BLOCKS = [b for f in doc_files() for b in extract_blocks(f) if b.lang == "json"]
RUN_BLOCKS = [b for b in PY_BLOCKS if not b.compile_only]
COMPILE_ONLY = [b for b in PY_BLOCKS if b.compile_only]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def _requirement_missing(req: str | None) -> str | None:
    if req is None:
        return None
    missing = []
    for name in (r.strip() for r in req.split(",")):
        if name == "graphviz":
            if importlib.util.find_spec("graphviz") is None or shutil.which("dot") is None:
                missing.append("graphviz (python package + dot)")
        elif name == "mpi4py":
            from executorlib_cache.mpi import mpiexec_path

            if importlib.util.find_spec("mpi4py") is None or mpiexec_path() is None:
                missing.append("mpi4py + mpiexec")
        elif importlib.util.find_spec(name) is None:
            missing.append(name)
    return ", ".join(missing) or None


def _expected_outputs(code: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^\s*print\(.*#\s*->\s*(.+)$", code, re.M)]


def _matches(expected: str, line: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, line.strip()) is not None


def run_python(code: str, where: Path, name: str, label: str) -> subprocess.CompletedProcess:
    """Run ``code`` as a script in ``where``, like a user would, and check its output."""
    where.mkdir(parents=True, exist_ok=True)
    script = where / name
    script.write_text(code)
    env = {**os.environ, "XCACHE_DIR": str(where / ".xcache"), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [IMPORT_ROOT,
                                                       os.environ.get("PYTHONPATH")]))}
    env.pop("XCACHE_SECRET", None)
    proc = subprocess.run([sys.executable, str(script)], cwd=where, env=env,
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    assert proc.returncode == 0, (f"{label} exited {proc.returncode}\n--- stdout\n"
                                  f"{proc.stdout}\n--- stderr\n{proc.stderr}")
    out = proc.stdout.splitlines()
    pos = 0
    for expected in _expected_outputs(code):
        while pos < len(out) and not _matches(expected, out[pos]):
            pos += 1
        assert pos < len(out), f"{label}: expected an output line {expected!r}; got:\n" + \
            proc.stdout
        pos += 1
    return proc


def check_imports(code: str, label: str) -> None:
    """Names imported from executorlib_cache must exist (catches renamed APIs)."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "executorlib_cache"):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(
                    f"{node.module}.{alias.name}") is not None, \
                    f"{label}: 'from {node.module} import {alias.name}' fails"


# ---------------------------------------------------------------- code blocks
def test_blocks_were_found():
    assert len(RUN_BLOCKS) >= 10 and COMPILE_ONLY, (len(RUN_BLOCKS), len(COMPILE_ONLY))


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=lambda b: b.id)
def test_python_block_runs(block: Block, tmp_path: Path):
    compile(block.code, block.id, "exec")
    missing = _requirement_missing(block.requires)
    if missing:
        skip_unless_ci(f"not installed: {missing}")
    run_python(block.code, tmp_path, "block.py", block.id)


@pytest.mark.parametrize("block", COMPILE_ONLY, ids=lambda b: b.id)
def test_cluster_block_compiles(block: Block):
    """Needs SLURM/flux: compiled and import-checked only, never executed here."""
    compile(block.code, block.id, "exec")
    check_imports(block.code, block.id)


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=lambda b: b.id)
def test_json_block_parses(block: Block):
    json.loads(block.code)


def test_expected_output_matching():
    assert _expected_outputs('print(1)  # -> 1\nx = 2  # -> no\n  print(x)  # -> [..., 2]\n') \
        == ["1", "[..., 2]"]
    assert _matches("[..., 2]", "[1, 2]") and not _matches("[..., 2]", "[1, 3]")
    assert _matches("a (b)", "a (b)") and not _matches("a", "ab")


# ---------------------------------------------------------------- examples
def _compile_only_example(path: Path) -> bool:
    return re.search(r"^# needs: (slurm|flux)\b", path.read_text(), re.M) is not None


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path: Path, tmp_path: Path):
    code = path.read_text()
    compile(code, str(path), "exec")
    check_imports(code, path.name)
    if _compile_only_example(path):
        # run for real where the test command brought up SLURM (always in CI)
        if "needs: slurm" not in code or not SLURM_WANTED:
            pytest.skip("needs a cluster: compiled and import-checked only")
    missing = _requirement_missing("mpi4py") if "mpi4py" in code else None
    if missing:
        skip_unless_ci(f"not installed: {missing}")
    run_python(code, tmp_path, path.name, path.name)


def test_quickstart_example_second_run_is_all_cache_hits(tmp_path: Path):
    code = (ROOT / "examples" / "quickstart.py").read_text()
    first = run_python(code, tmp_path, "quickstart.py", "first run")
    assert "0 of 4 calls came from the cache" in first.stdout
    second = run_python(code, tmp_path, "quickstart.py", "second run")
    assert "4 of 4 calls came from the cache" in second.stdout


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.sh")), ids=lambda p: p.name)
def test_example_shell_scripts_parse(path: Path):
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- the site
def _nav_pages() -> list[str]:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages: list[str] = []

    def walk(item: object) -> None:
        if isinstance(item, str):
            pages.append(item)
        elif isinstance(item, dict):
            for v in item.values():
                walk(v)
        elif isinstance(item, list):
            for v in item:
                walk(v)

    walk(config["nav"])
    return pages


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    pages = _nav_pages()
    on_disk = sorted(p.name for p in DOCS.glob("*.md"))
    assert sorted(pages) == on_disk, "docs/*.md and the nav in mkdocs.yml differ"


def test_mkdocs_build_strict(tmp_path: Path):
    if importlib.util.find_spec("mkdocs") is None:
        skip_unless_ci("not installed: mkdocs")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "guide" / "index.html").exists()


def test_readme_relative_links_exist():
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("no README.md")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (ROOT / target).exists(), f"README.md links to missing {target}"


# ---------------------------------------------------------------- format.md vs real entries
def documented_fields(section: str) -> dict[str, str]:
    """{field: when} from the table under ``## `<section>` `` in docs/format.md."""
    text = (DOCS / "format.md").read_text()
    m = re.search(rf"^## `{re.escape(section)}`\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"format.md has no section for {section}"
    fields: dict[str, str] = {}
    for row in re.findall(r"^\|(.+)\|\s*$", m.group(1), re.M):
        cells = [c.strip() for c in row.split("|")]
        if len(cells) < 3 or cells[0] in ("field",) or set(cells[0]) <= set("- "):
            continue
        for name in re.findall(r"`([^`]+)`", cells[0]):
            fields[name] = cells[2]
    assert fields, f"no field table under {section}"
    return fields


FORMAT_SCRIPT = """
import json, os, sys, time
from executorlib_cache import SingleNodeExecutor
from executorlib_cache.store import Store

def ok(x):
    return x

def bad(x):
    raise ValueError(x)

def crash():
    os._exit(3)

def slow(x):
    time.sleep(1.5)
    return x

def ranks():
    from mpi4py import MPI
    return MPI.COMM_WORLD.Get_rank()

with SingleNodeExecutor(max_workers=2) as exe:
    running = exe.submit(slow, 1)
    while not running.running():
        time.sleep(0.01)
    store = Store(exe.cache_directory, create=False)  # the claims while in flight
    claims = [store.read_claim(k) for k, files in store.scan() if "claim" in files]
    json.dump(claims, open("claims.json", "w"))
    futs = [exe.submit(ok, 1), exe.submit(bad, 2), exe.submit(crash)]
    futs.append(exe.submit(ok, futs[1]))  # upstream failure: never reaches a worker
    if sys.argv[1:] == ["mpi"]:
        futs.append(exe.submit(ranks, resource_dict={"cores": 2}))
    for f in futs + [running]:
        f.exception()
"""


def _check_documented(section: str, instances: list[dict]) -> None:
    documented = documented_fields(section)
    always = {k for k, when in documented.items() if when == "always"}
    assert instances, f"no {section} to check"
    for obj in instances:
        assert set(obj) <= set(documented), \
            f"{section}: undocumented field(s) {sorted(set(obj) - set(documented))}"
        assert always <= set(obj), \
            f"{section}: documented as always present, missing {sorted(always - set(obj))}"


def test_format_md_lists_exactly_the_fields_of_real_entries(tmp_path: Path):
    from executorlib_cache.fileio import read_summary
    from executorlib_cache.store import Store

    mpi = _requirement_missing("mpi4py") is None
    code = FORMAT_SCRIPT.replace("sys.argv[1:] == [\"mpi\"]", str(mpi))
    run_python(code, tmp_path, "entries.py", "format entries")
    store = Store(tmp_path / ".xcache", create=False)
    outcomes, tasks, summaries = [], [], []
    for key, files in store.scan():
        assert set(files) <= {"done", "failed"}, (key, set(files))  # nothing left in flight
        for d in files.values():
            summaries.append(read_summary(d.path))
        outcome = store.read_outcome(key)
        assert outcome is not None
        meta = dict(outcome.meta)
        tasks.append(meta.pop("task"))
        outcomes.append(meta)
    assert len(outcomes) == (6 if mpi else 5)
    claims = json.loads((tmp_path / "claims.json").read_text())
    _check_documented("summary", summaries)
    _check_documented("task", tasks)
    _check_documented("outcome", outcomes)
    _check_documented("claim", claims)
    reasons = {o.get("reason") for o in outcomes}
    assert {"raised", "died", "upstream"} <= reasons
