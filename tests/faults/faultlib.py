"""Helpers shared by the fault tests (importable by worker processes too: the
functions below are pickled by reference, so a runner started on its own can
load them when ``tests/faults`` is on its PYTHONPATH)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py

from executorlib_cache.fileio import read_summary
from executorlib_cache.naming import encode_key
from executorlib_cache.store import FORMAT_VERSION, Store

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PY = sys.executable


# ----------------------------------------------------------------- task functions
def work(counter: str, i: int, delay: float = 0.0) -> int:
    """One line in ``counter`` per real execution (O_APPEND: atomic across processes).

    With ``FAULTS_KILL_PARENT_AT=<i>`` in its environment, the call ``i`` SIGKILLs its
    parent process as it starts: a local worker kills its driver at an exact moment
    (the variable is not part of the call, so the cache key does not change).
    """
    if os.environ.get("FAULTS_KILL_PARENT_AT") == str(i):
        os.kill(os.getppid(), signal.SIGKILL)
    fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{i}\n".encode())
    finally:
        os.close(fd)
    if delay:
        time.sleep(delay)
    return i * i


def work_raises(counter: str, i: int) -> None:
    work(counter, i)
    raise KeyError(f"raised on purpose {i}")


def work_dies(counter: str, i: int) -> None:
    """Its worker is killed (SIGKILL) as it runs: the driver records the death."""
    work(counter, i)
    os.kill(os.getpid(), signal.SIGKILL)


def work_big(counter: str, i: int) -> bytes:
    """A result above the store's in-memory image limit (written by HDF5 itself)."""
    work(counter, i)
    return bytes([i % 256]) * (1 << 20) + b"tail"


def wait_for_file(flag: str, value: Any) -> Any:
    """Return ``value`` once ``flag`` exists (a call held in flight by the test)."""
    while not os.path.exists(flag):
        time.sleep(0.01)
    return value


def executions(counter: Path | str) -> list[int]:
    p = Path(counter)
    return [int(x) for x in p.read_text().split()] if p.exists() else []


def duplicates(counter: Path | str) -> list[int]:
    ran = executions(counter)
    return sorted({i for i in ran if ran.count(i) > 1})


class Marker:
    """Unpickling this creates ``path``: proof that a pickle was (not) loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


# ----------------------------------------------------------------- waiting
def wait_for(cond: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


# ----------------------------------------------------------------- subprocesses
def env_with(**extra: str | None) -> dict[str, str]:
    """os.environ plus the repo and ``tests/`` on PYTHONPATH (None removes a var), so a
    separate process can import ``faults.faultlib``."""
    env = dict(os.environ)
    old = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = [str(REPO), str(HERE.parent), *old]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def xcache(cache: Path | str, *args: str, timeout: float = 60,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The ``xcache`` command line, as ``python -m executorlib_cache``."""
    return subprocess.run([PY, "-m", "executorlib_cache", "--cache-dir", str(cache), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=env or env_with(), stdin=subprocess.DEVNULL)


def xcache_ls(cache: Path | str, *extra: str) -> dict[str, dict[str, Any]]:
    """``xcache ls --json --verify`` by key; fails the test if the CLI fails."""
    proc = xcache(cache, "ls", "--json", "--verify", "--no-scheduler", *extra)
    assert proc.returncode == 0, f"xcache ls failed ({proc.returncode}):\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return {row["key"]: row for row in json.loads(proc.stdout)}


# ----------------------------------------------------------------- entry checks
#: format 2: the files of an entry, by kind (``Store.path_of``): HDF5 files with the
#: datasets each must hold, and the JSON claim
H5_FILES = {"task": ("task",), "done": ("task", "result"), "failed": ("task", "error")}
JSON_FILES = ("claim",)
KINDS = (*H5_FILES, *JSON_FILES)


def entry_files(cache: Path | str, key: str) -> dict[str, Path]:
    """{kind: path} of the entry's files under their final names (one stat each)."""
    store = Store(cache, create=None)
    found = {k: Path(store.path_of(key, k)) for k in KINDS}
    return {k: p for k, p in found.items() if os.path.lexists(p)}


def temp_files(cache: Path | str, key: str) -> list[str]:
    """Names in the key's shard that are a writer's temp (or diverted) file of this
    entry: ``.<enc><suffix>.<host>-<pid>-<rand>.tmp``, ``.<enc><suffix>.diverted``."""
    store = Store(cache, create=None)
    shard, enc = Path(store.shard_of(key)), encode_key(key)
    try:
        names = os.listdir(shard)
    except FileNotFoundError:
        return []
    prefix = "." + enc[:150]  # a long key's temp name is cut (NAME_MAX)
    return sorted(n for n in names if n.startswith(prefix)
                  and (len(enc) > 150 or n[len(prefix):len(prefix) + 1] in (".", "@")))


def check_no_false_files(cache: Path | str, key: str) -> list[str]:
    """Every file of the entry under a final name reads as what its name says: an
    HDF5 entry file of format 2 (its kind and key in ``meta``, its datasets, a
    readable listing summary in the user block) or a JSON object.  Returns the
    entry's temp files (a killed writer's, in its shard)."""
    for kind, path in entry_files(cache, key).items():
        if kind in H5_FILES:
            with h5py.File(path, "r", locking=False) as f:
                meta = json.loads(bytes(f.attrs["meta"]))
                assert int(f.attrs["format"]) == FORMAT_VERSION, (path, dict(f.attrs))
                assert meta["kind"] == kind and meta["key"] == key, (path, meta)
                for name in H5_FILES[kind]:
                    assert f[name].shape[0] >= 0, (path, name)
            summary = read_summary(str(path))
            assert summary is not None and summary["key"] == key, (path, summary)
        else:
            assert isinstance(json.loads(path.read_bytes()), dict), path
    return temp_files(cache, key)


def check_finished_clean(cache: Path | str, key: str, kind: str = "done") -> None:
    """A finished entry is exactly one file in its shard (``kind``: done or failed):
    no claim, no task file, no temp file of a writer left behind."""
    files = entry_files(cache, key)
    assert set(files) == {kind}, f"{key}: files {sorted(files)}, want only {kind}"
    temps = check_no_false_files(cache, key)
    assert temps == [], f"{key}: temp files left in its shard: {temps}"


def dead_owner() -> dict[str, Any]:
    """The identity of a process of this host that has exited (a dead claim owner)."""
    from executorlib_cache.liveness import identity

    proc = subprocess.Popen([PY, "-c", "pass"])
    owner = identity(proc.pid)
    proc.wait()
    owner["start"] = owner["start"] or "0"
    return owner


def work_plus(counter: str, i: int, upstream: int) -> int:
    """A dependent call: one execution line, the upstream's value plus one."""
    work(counter, i)
    return upstream + 1


# a user script: N independent calls and every 6th one's dependent; prints the results
DRIVER = """
import json, sys
from executorlib_cache import SingleNodeExecutor
from faults.faultlib import work, work_plus

cache, counter, n, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
workers = int(sys.argv[5]) if len(sys.argv) > 5 else 2
with SingleNodeExecutor(cache_directory=cache, max_workers=workers) as exe:
    futs = [exe.submit(work, counter, i, delay) for i in range(n)]
    deps = [exe.submit(work_plus, counter, 1000 + i, futs[i]) for i in range(0, n, 6)]
    print("SUBMITTED", flush=True)
    print("RESULTS", json.dumps([[f.result() for f in futs], [f.result() for f in deps]]),
          flush=True)
"""


def driver_expected(n: int) -> tuple[list[list[int]], list[int]]:
    """(printed RESULTS, sorted execution ids) of one complete DRIVER run."""
    return ([[i * i for i in range(n)], [i * i + 1 for i in range(0, n, 6)]],
            sorted([*range(n), *(1000 + i for i in range(0, n, 6))]))


def parse_results(out: str) -> Any:
    line = next(x for x in out.splitlines() if x.startswith("RESULTS "))
    return json.loads(line.split(" ", 1)[1])
