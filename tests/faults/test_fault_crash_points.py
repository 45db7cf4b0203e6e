"""Fault 1: ``kill -9`` of the process writing an entry, at every named point of
every write (``XCACHE_CRASH_AT``, see store.py).

Whatever the point: the future resolves (no hang), a file under a final name is
always a valid one (a result file is never half a result), the entry ends as
``done`` (the result was in place), ``failed`` with a message naming SIGKILL
(the driver saw its worker die) or ``lost`` (nobody left to see it), and running
the call again recomputes it exactly once, or not at all when it was done.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from executorlib_cache import SingleNodeExecutor, get_cache_data
from executorlib_cache.errors import TaskDiedError
from executorlib_cache.liveness import identity
from executorlib_cache.serialization import dumps_call
from executorlib_cache.store import Store
from faults.faultlib import (
    PY,
    check_no_false_files,
    env_with,
    executions,
    work,
    work_big,
    work_raises,
    xcache_ls,
)

FUNCS = {"ok": work, "raise": work_raises, "big": work_big}


# (crash point in the worker, call kind, what the first run ends as)
WORKER_POINTS = [
    ("started.json:after_replace", "ok", "died"),
    ("task.h5:mid_write", "ok", "died"),
    ("task.h5:before_replace", "ok", "died"),
    ("task.h5:after_replace", "ok", "died"),
    ("task.json:before_replace", "ok", "died"),
    ("result.h5:mid_write", "ok", "died"),
    ("result.h5:before_replace", "ok", "died"),
    ("result.h5:after_replace", "ok", "done"),
    ("outcome.json:mid_write", "ok", "done"),
    ("outcome.json:before_replace", "ok", "done"),
    ("outcome.json:after_replace", "ok", "done"),
    ("error.h5:mid_write", "raise", "died"),
    ("error.h5:before_replace", "raise", "died"),
    ("error.h5:after_replace", "raise", "raised"),
    ("result.h5:mid_write", "big", "died"),  # > 1 MB: HDF5 writes the temp file itself
    ("result.h5:before_replace", "big", "died"),
    ("result.h5:after_replace", "big", "done"),
]


def _value(kind: str, i: int):
    return bytes([i % 256]) * (1 << 20) + b"tail" if kind == "big" else i * i


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("point", "kind", "first"), WORKER_POINTS,
                         ids=[f"{p}-{k}" for p, k, _ in WORKER_POINTS])
def test_worker_killed_at_crash_point(point, kind, first, tmp_path, monkeypatch, counts):
    cache, counter = tmp_path / "cache", str(tmp_path / "count")
    fn = FUNCS[kind]
    # read once at import: this process (the driver) is unaffected, its workers crash
    monkeypatch.setenv("XCACHE_CRASH_AT", point)
    t0 = time.monotonic()
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        fut = exe.submit(fn, counter, 3)
        if first == "done":
            assert fut.result(timeout=30) == _value(kind, 3)
        elif first == "raised":
            with pytest.raises(KeyError, match="raised on purpose 3"):
                fut.result(timeout=30)
        else:
            with pytest.raises(TaskDiedError, match="SIGKILL") as info:
                fut.result(timeout=30)
            assert fut.key in str(info.value)
    assert time.monotonic() - t0 < 30
    monkeypatch.delenv("XCACHE_CRASH_AT")
    entry = cache / fut.key
    check_no_false_files(entry)
    names = set(os.listdir(entry))
    if first == "died":
        assert "result.h5" not in names
    [row] = get_cache_data(cache, verify=True)
    want_status = {"done": "done", "raised": "failed", "died": "failed"}[first]
    assert row["status"] == want_status, row
    if first == "died":
        assert row["reason"] == "died" and "SIGKILL" in row["error_message"], row
    ran_before = len(executions(counter))

    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        again = exe.submit(fn, counter, 3)
        if kind == "raise":
            with pytest.raises(KeyError, match="raised on purpose 3"):
                again.result(timeout=30)
        else:
            assert again.result(timeout=30) == _value(kind, 3)
    ran = len(executions(counter)) - ran_before
    recompute = first != "done"
    assert ran == (1 if recompute else 0), f"ran {ran} times on the re-run"
    hidden = check_no_false_files(entry)
    if recompute:  # the retry swept what the killed writer left behind
        assert not [n for n in hidden if n.endswith(".tmp")], hidden
    counts.add("1. kill -9 of the runner at a crash point (local worker)", calls=1,
               duplicates=max(0, ran - (1 if recompute else 0)))


# the runner on its own (as in a SLURM job), its driver already gone: "lost", not "failed"
RUNNER_POINTS = [
    ("started.json:after_replace", "lost"),
    ("result.h5:mid_write", "lost"),
    ("result.h5:before_replace", "lost"),
    ("result.h5:after_replace", "done"),
    ("outcome.json:before_replace", "done"),
]


def _dead_owner() -> dict:
    proc = subprocess.Popen([PY, "-c", "pass"])
    owner = identity(proc.pid)
    proc.wait()
    owner["start"] = owner["start"] or "0"
    return owner


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("point", "first"), RUNNER_POINTS, ids=[p for p, _ in RUNNER_POINTS])
def test_standalone_runner_killed_at_crash_point(point, first, tmp_path, counts):
    cache, counter = tmp_path / "cache", str(tmp_path / "count")
    key = "crashy-runner_1"
    store = Store(cache)
    store.create_entry(key, dumps_call(work, (counter, 5), {}),
                       {"function": "work", "module": work.__module__, "resource_dict": {}})
    store.write_json(key, "job.json", {"backend": "local", "job_id": None,
                                       "owner": _dead_owner(), "submitted": time.time()})
    proc = subprocess.run([PY, "-m", "executorlib_cache.compute.runner", str(cache), key],
                          env=env_with(XCACHE_CRASH_AT=point), capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == -9, proc.stderr
    assert f"crash point {point}" in proc.stderr
    check_no_false_files(cache / key)
    row = xcache_ls(cache)[key]
    assert row["status"] == first, row
    if first == "lost":
        assert "gone" in row["problem"], row
    ran_before = len(executions(counter))

    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        fut = exe.submit(work, counter, 5, resource_dict={"cache_key": key})
        assert fut.result(timeout=30) == 25
    ran = len(executions(counter)) - ran_before
    assert ran == (1 if first == "lost" else 0)
    assert xcache_ls(cache)[key]["status"] == "done"
    counts.add("1. kill -9 of the runner at a crash point (standalone runner)", calls=1,
               duplicates=max(0, ran - (1 if first == "lost" else 0)))
