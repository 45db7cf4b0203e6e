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


def work_big(counter: str, i: int) -> bytes:
    """A result above the store's in-memory image limit (written by HDF5 itself)."""
    work(counter, i)
    return bytes([i % 256]) * (1 << 20) + b"tail"


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
H5_FILES = ("task.h5", "result.h5", "error.h5")
JSON_FILES = ("task.json", "job.json", "started.json", "outcome.json")


def check_no_false_files(entry: Path) -> list[str]:
    """Every file under a final name reads as what its name says: a valid HDF5 entry
    file (format, meta, payload) or a JSON object.  Returns the hidden temp files."""
    names = set(os.listdir(entry))
    for name in H5_FILES:
        if name in names:
            with h5py.File(entry / name, "r", locking=False) as f:
                meta = json.loads(bytes(f.attrs["meta"]))
                assert meta["kind"] in ("task", "done", "failed"), (entry, name, meta)
                assert f["payload"].shape[0] >= 0
    for name in JSON_FILES:
        if name in names:
            assert isinstance(json.loads((entry / name).read_bytes()), dict), (entry, name)
    return sorted(n for n in names if n.startswith("."))


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
