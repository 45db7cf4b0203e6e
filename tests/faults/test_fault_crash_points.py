"""Fault 1: ``kill -9`` of the process writing an entry, at every named point of
every write (``XCACHE_CRASH_AT``, see fileio.py; the labels name the steps of
format 2: ``result.h5`` the done file, ``error.h5`` the failed file, ``task.h5``
the ``@task.h5`` file, ``job.json`` the claim, ``claim:held`` inside a claim lock).

Whatever the point: the future resolves (no hang), a file under a final name is
always a valid one (a result file is never half a result), the entry ends as
``done`` (the result was in place), ``failed`` with a message naming SIGKILL
(the driver saw its worker die) or ``lost`` (nobody left to see it), and running
the call again recomputes it exactly once, or not at all when it was done.  A
recomputed entry ends as one file in its shard: no claim, no task file, no temp
file of the killed writer.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from executorlib_cache import SingleNodeExecutor, list_cache
from executorlib_cache.errors import TaskDiedError
from executorlib_cache.serialization import dumps_call
from executorlib_cache.store import Store
from faults.faultlib import (
    PY,
    check_finished_clean,
    check_no_false_files,
    dead_owner,
    entry_files,
    env_with,
    executions,
    work,
    work_big,
    work_raises,
    xcache_ls,
)

FUNCS = {"ok": work, "raise": work_raises, "big": work_big, "mpi": work}
#: executions of one run of the call (an MPI call runs on every rank)
RANKS = {"mpi": 2}
#: the files a crash may leave next to a published outcome (the transient ones:
#: the killed writer published the outcome but did not get to remove them)
TRANSIENT = {"claim", "task"}


# (crash point in the worker, call kind, what the first run ends as); a local worker
# takes no claim lock (its claim is removed without one: Store.write_outcome(lock=False)),
# the runner's claim:held is below
WORKER_POINTS = [
    # cores > 1: the worker writes @task.h5 for the MPI ranks, then starts mpiexec
    ("task.h5:mid_write", "mpi", "died"),
    ("task.h5:before_replace", "mpi", "died"),
    ("task.h5:after_replace", "mpi", "died"),
    ("result.h5:mid_write", "ok", "died"),
    ("result.h5:before_replace", "ok", "died"),
    ("result.h5:after_replace", "ok", "done"),
    ("error.h5:mid_write", "raise", "died"),
    ("error.h5:before_replace", "raise", "died"),
    ("error.h5:after_replace", "raise", "raised"),
    ("result.h5:mid_write", "big", "died"),  # > 1 MB: HDF5 writes the temp file itself
    ("result.h5:before_replace", "big", "died"),
    ("result.h5:after_replace", "big", "done"),
]


def _value(kind: str, i: int):
    if kind == "mpi":
        return [i * i] * RANKS["mpi"]
    return bytes([i % 256]) * (1 << 20) + b"tail" if kind == "big" else i * i


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("point", "kind", "first"), WORKER_POINTS,
                         ids=[f"{p}-{k}" for p, k, _ in WORKER_POINTS])
def test_worker_killed_at_crash_point(point, kind, first, tmp_path, monkeypatch, capfd,
                                      counts):
    cache, counter = tmp_path / "cache", str(tmp_path / "count")
    fn = FUNCS[kind]
    res = {"cores": RANKS[kind]} if kind in RANKS else None
    workers, per_run = RANKS.get(kind, 1), RANKS.get(kind, 1)
    # read once at import: this process (the driver) is unaffected, its workers crash
    monkeypatch.setenv("XCACHE_CRASH_AT", point)
    t0 = time.monotonic()
    with SingleNodeExecutor(cache_directory=cache, max_workers=workers) as exe:
        fut = exe.submit(fn, counter, 3, resource_dict=res)
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
    # the worker really was killed there (its stderr is this process's)
    assert f"crash point {point} reached" in capfd.readouterr().err
    key = fut.key
    check_no_false_files(cache, key)
    files = set(entry_files(cache, key))
    want_kind = "done" if first == "done" else "failed"
    assert want_kind in files, files
    if first == "died":  # recorded by the driver, which removed the claim
        assert files == {"failed"}, files
    else:  # the worker published its outcome, then was killed
        assert files - {want_kind} <= TRANSIENT, files
    [row] = list_cache(cache, verify=True)
    want_status = {"done": "done", "raised": "failed", "died": "failed"}[first]
    assert row["status"] == want_status, row
    if first == "died":
        assert row["reason"] == "died" and "SIGKILL" in row["error_message"], row
    ran_before = len(executions(counter))

    with SingleNodeExecutor(cache_directory=cache, max_workers=workers) as exe:
        again = exe.submit(fn, counter, 3, resource_dict=res)
        if kind == "raise":
            with pytest.raises(KeyError, match="raised on purpose 3"):
                again.result(timeout=30)
        else:
            assert again.result(timeout=30) == _value(kind, 3)
    ran = (len(executions(counter)) - ran_before) // per_run
    recompute = first != "done"
    assert ran == (1 if recompute else 0), f"ran {ran} times on the re-run"
    if recompute:  # a fresh outcome: one file, and what the killed writer left is gone
        check_finished_clean(cache, key, "failed" if kind == "raise" else "done")
    else:  # a hit: nothing written, the debris stays (transient files only)
        assert not check_no_false_files(cache, key)
        assert set(entry_files(cache, key)) - {"done"} <= TRANSIENT
    counts.add("1. kill -9 of the runner at a crash point (local worker)", calls=1,
               duplicates=max(0, ran - (1 if recompute else 0)))


# the runner on its own (as in a SLURM job), its driver already gone: "lost", not "failed"
RUNNER_POINTS = [
    # claims.mark_started: the runner rewrites the claim with "started" and "runner"
    ("claim:held", "ok", "lost"),
    ("job.json:mid_write", "ok", "lost"),
    ("job.json:before_replace", "ok", "lost"),
    ("job.json:after_replace", "ok", "lost"),
    ("result.h5:mid_write", "ok", "lost"),
    ("result.h5:before_replace", "ok", "lost"),
    ("result.h5:after_replace", "ok", "done"),
    ("error.h5:mid_write", "raise", "lost"),
    ("error.h5:before_replace", "raise", "lost"),
    ("error.h5:after_replace", "raise", "failed"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("point", "kind", "first"), RUNNER_POINTS,
                         ids=[f"{p}-{k}" for p, k, _ in RUNNER_POINTS])
def test_standalone_runner_killed_at_crash_point(point, kind, first, tmp_path, counts):
    cache, counter = tmp_path / "cache", str(tmp_path / "count")
    key = "crashy-runner_1"
    fn = FUNCS[kind]
    store = Store(cache)
    # what a cluster driver leaves for its job: the call in @task.h5, the claim
    store.write_task(key, dumps_call(fn, (counter, 5), {}),
                     {"function": fn.__name__, "module": fn.__module__, "resource_dict": {}})
    store.write_claim(key, {"backend": "local", "job_id": None, "owner": dead_owner(),
                            "submitted": time.time(), "function": fn.__name__})
    proc = subprocess.run([PY, "-m", "executorlib_cache.compute.runner", str(cache), key],
                          env=env_with(XCACHE_CRASH_AT=point), capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == -9, proc.stderr
    assert f"crash point {point}" in proc.stderr
    check_no_false_files(cache, key)
    files = set(entry_files(cache, key))
    if first == "lost":  # the old state: the call and its claim, no outcome
        assert files == {"task", "claim"}, files
        claim = store.read_claim(key)
        # mark_started's rewrite: the old claim or the new one, never half
        before = point in ("claim:held", "job.json:mid_write", "job.json:before_replace")
        assert claim is not None and ("started" in claim) == (not before), claim
    else:  # the new state: the outcome (its transient files not yet removed)
        assert first in files and files - {first} <= TRANSIENT, files
    row = xcache_ls(cache)[key]
    assert row["status"] == first, row
    if first == "lost":
        assert "gone" in row["problem"], row
    ran_before = len(executions(counter))

    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        fut = exe.submit(fn, counter, 5, resource_dict={"cache_key": key})
        if kind == "raise":
            with pytest.raises(KeyError, match="raised on purpose 5"):
                fut.result(timeout=30)
        else:
            assert fut.result(timeout=30) == 25
    ran = len(executions(counter)) - ran_before
    recompute = first != "done"  # lost, or a failure (failures are retried)
    assert ran == (1 if recompute else 0)
    final = "failed" if kind == "raise" else "done"
    assert xcache_ls(cache)[key]["status"] == final
    if recompute:
        check_finished_clean(cache, key, final)
    counts.add("1. kill -9 of the runner at a crash point (standalone runner)", calls=1,
               duplicates=max(0, ran - (1 if recompute else 0)))
