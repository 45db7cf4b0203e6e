"""Fault 4: damaged entries.  The files of a format-2 entry -- the done file
``<enc>.h5``, the failed file ``<enc>@failed.h5``, the task file ``<enc>@task.h5``
of an in-flight call -- that are empty, truncated, random bytes, valid HDF5 with a
field missing, of the wrong kind, of another entry, or written by a future format
version; a garbage claim; a damaged listing summary (the user block).

Each damaged file is reported (``xcache ls --verify`` says ``corrupt``), nothing
crashes the CLI or the driver, and a new run recomputes what it cannot trust:

* damaged done file: warning, file moved to ``.corrupt/``, recomputed;
* damaged failed file: never read by the executor, a failure is retried anyway;
* damaged task file of a call whose owner died: the call is claimed afresh and
  run once from the submitted payload;
* the call's bytes inside a *valid* done file damaged (or missing): the result is
  served (it is what the key names; the call only describes it) and the entry stays
  listed as corrupt until removed;
* garbage claim: listed as corrupt, the claim is dead, the call is re-run once;
* garbage summary in the user block: it is only for listings, the HDF5 part of
  the file is the truth (listed ``done``, served).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from executorlib_cache import (
    SingleNodeExecutor,
    get_cache_data,
    get_future_from_cache,
    list_cache,
)
from executorlib_cache.errors import CorruptEntryError
from executorlib_cache.fileio import SUMMARY_MAGIC
from executorlib_cache.serialization import dumps
from executorlib_cache.store import FORMAT_VERSION, Store
from faults.faultlib import (
    H5_FILES,
    check_finished_clean,
    check_no_false_files,
    dead_owner,
    entry_files,
    executions,
    temp_files,
    work,
    work_raises,
    xcache,
    xcache_ls,
)

# a damage of one file: (path, its kind, a scratch store to make valid files in,
# the entry's key, its call (payload, meta))
Damage = tuple[Path, str, Store, str, tuple[bytes, dict]]


def zero(p: Path, *_: object) -> None:
    p.write_bytes(b"")


def truncated(p: Path, *_: object) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def random_bytes(p: Path, *_: object) -> None:
    p.write_bytes(os.urandom(max(600, p.stat().st_size)))


def no_payload(p: Path, kind: str, *_: object) -> None:  # result / error / task dataset
    with h5py.File(p, "r+", locking=False) as f:
        del f[H5_FILES[kind][-1]]


def no_meta(p: Path, *_: object) -> None:
    with h5py.File(p, "r+", locking=False) as f:
        del f.attrs["meta"]


def future_format(p: Path, *_: object) -> None:
    with h5py.File(p, "r+", locking=False) as f:
        meta = json.loads(bytes(f.attrs["meta"]))
        meta["format"] = FORMAT_VERSION + 1
        del f.attrs["meta"]
        f.attrs["meta"] = np.bytes_(json.dumps(meta).encode())
        f.attrs["format"] = np.int64(FORMAT_VERSION + 1)


def _made(scratch: Store, key: str, kind: str, task: tuple[bytes, dict]) -> Path:
    """A valid file of ``kind`` for ``key``, made in the scratch cache."""
    if kind == "task":
        scratch.write_task(key, *task)
    else:
        scratch.write_outcome(key, kind, dumps(KeyError("x") if kind == "failed" else 0),
                              {}, task=task)
    return Path(scratch.path_of(key, kind))


def wrong_kind(p: Path, kind: str, scratch: Store, key: str, task: tuple) -> None:
    """A valid file of this entry, of another kind, under this name."""
    shutil.copyfile(_made(scratch, key, "done" if kind == "task" else "task", task), p)


def other_entry(p: Path, kind: str, scratch: Store, key: str, task: tuple) -> None:
    """A valid file of the same kind, of another entry, under this name."""
    shutil.copyfile(_made(scratch, "someone-else_1", kind, task), p)


def a_directory(p: Path, *_: object) -> None:  # a directory under the file's name
    p.unlink()
    p.mkdir()


H5_DAMAGE = {f.__name__: f for f in (zero, truncated, random_bytes, no_payload, no_meta,
                                     future_format, wrong_kind, other_entry, a_directory)}


def task_bytes(p: Path, kind: str, scratch: Store, key: str, task: tuple) -> None:
    """One byte of the call inside a done file flipped (its digest no longer matches)."""
    data = p.read_bytes()
    at = data.index(task[0]) + len(task[0]) // 2
    p.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:])


def no_task(p: Path, *_: object) -> None:
    with h5py.File(p, "r+", locking=False) as f:
        del f["task"]


def bad_summary(p: Path, *_: object) -> None:
    """The listing summary in the user block turned to garbage (the HDF5 part intact)."""
    data = p.read_bytes()
    assert data.startswith(SUMMARY_MAGIC)
    line = data.index(b"\n") + 1
    n = int(data[len(SUMMARY_MAGIC):line - 1])
    p.write_bytes(data[:line] + b"{\x00" + os.urandom(n - 2) + data[line + n:])


def garbage(p: Path, *_: object) -> None:
    p.write_bytes(b"{\x00not json at all" + os.urandom(40))


OTHER_DAMAGE = {f.__name__: f for f in (task_bytes, no_task, bad_summary, garbage)}
#: damages to a done file after which its result is still served
SERVED = ("task_bytes", "no_task", "bad_summary")


@pytest.mark.timeout(120)
def test_damaged_entries_are_reported_and_recomputed(tmp_path, counts):
    cache, counter = tmp_path / "cache", str(tmp_path / "count")
    scratch = Store(tmp_path / "scratch")
    plan: dict[str, tuple[str, str]] = {}  # key -> (kind of file, damage)
    calls: dict[str, tuple] = {}
    i = 0

    def call(fn, *args):
        nonlocal i
        i += 1
        return fn, (counter, i, *args)

    # build: one entry per (file, damage), all finished
    specs = [("done", d, work) for d in H5_DAMAGE]
    specs += [("failed", d, work_raises) for d in H5_DAMAGE]
    specs += [("task", d, work) for d in H5_DAMAGE]  # of a call whose owner died
    specs += [("done", d, work) for d in SERVED]
    specs += [("claim", "garbage", work)]
    with SingleNodeExecutor(cache_directory=cache, max_workers=2) as exe:
        futs = []
        for file, damage, fn in specs:
            f, args = call(fn)
            fut = exe.submit(f, *args)
            futs.append(fut)
            plan[fut.key] = (file, damage)
            calls[fut.key] = (f, args)
        for fut in futs:
            fut.exception(timeout=60)
    store = Store(cache)
    for key, (file, damage) in plan.items():
        task = store.read_task(key)
        done = Path(store.path_of(key, "done"))
        if file in ("task", "claim"):  # in flight: its owner died before a result
            done.unlink()
            if file == "task":
                store.write_task(key, *task)
            store.write_claim(key, {"backend": "local", "job_id": None, "owner": dead_owner(),
                                    "submitted": 0, "function": "work"})
        path = Path(store.path_of(key, file))
        (H5_DAMAGE.get(damage) or OTHER_DAMAGE[damage])(path, file, scratch, key, task)

    # reported, by the CLI (a separate process) and the Python API, without crashing
    rows = xcache_ls(cache)
    plain = xcache(cache, "ls", "--json", "--no-scheduler")
    assert plain.returncode == 0 and "Traceback" not in plain.stderr, plain.stderr
    for key, (file, damage) in plan.items():
        want = "done" if damage == "bad_summary" else "corrupt"
        assert rows[key]["status"] == want, (file, damage, rows[key])
        if want == "corrupt":
            assert rows[key]["problem"], rows[key]
        if file == "claim":
            assert "claim" in rows[key]["problem"], rows[key]
    assert rows[next(k for k, v in plan.items() if v[1] == "bad_summary")]["function"] == "work"
    for key in list(plan)[::5]:
        show = xcache(cache, "show", key)
        assert show.returncode == 0 and "Traceback" not in show.stderr, show.stderr
    # the fast listing, and executorlib's (which unpickles calls and results too)
    listed = list_cache(cache, load=True, check_scheduler=False)
    assert {r["key"] for r in listed} == set(plan)
    data = {r["key"]: r for r in get_cache_data(cache, check_scheduler=False)}
    assert set(data) == set(plan)
    for key, (file, damage) in plan.items():  # the same verdict as the CLI's
        assert data[key]["status"] == rows[key]["status"], (file, damage, data[key])
    bad_results = [k for k, (f, d) in plan.items() if f == "done" and d not in SERVED]
    for key in bad_results:
        with pytest.raises(CorruptEntryError):
            get_future_from_cache(cache, key)

    # a new run: warns about each damaged result, recomputes what it cannot trust
    before = executions(counter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with SingleNodeExecutor(cache_directory=cache, max_workers=2) as exe:
            again = {key: exe.submit(f, *args) for key, (f, args) in calls.items()}
            for key, fut in again.items():
                f, args = calls[key]
                if f is work_raises:
                    with pytest.raises(KeyError, match="raised on purpose"):
                        fut.result(timeout=60)
                else:
                    assert fut.result(timeout=60) == args[1] ** 2
    unreadable = [str(w.message) for w in caught if "unreadable" in str(w.message)]
    assert len(unreadable) == len(bad_results), unreadable
    # moved aside too: a directory where a failed or task file should be (it cannot
    # be unlinked when the call is retried)
    dirs_aside = [k for k, (f, d) in plan.items() if d == "a_directory" and f == "failed"]
    assert len(list((cache / ".corrupt").iterdir())) == len(bad_results) + len(dirs_aside)

    rerun = executions(counter)[len(before):]
    served = {k for k, (_, d) in plan.items() if d in SERVED}
    recomputed = {calls[k][1][1] for k in plan if k not in served}
    assert sorted(rerun) == sorted(recomputed)  # each exactly once, nothing else
    counts.add("4. corrupt / damaged entry files", scenarios=len(plan), calls=len(plan),
               lost=len(recomputed - set(rerun)), duplicates=len(rerun) - len(set(rerun)))

    rows = xcache_ls(cache)
    for key, (file, damage) in plan.items():
        if key in served:  # nothing was written: still what the damage made it
            want = "done" if damage == "bad_summary" else "corrupt"
        else:
            want = "failed" if calls[key][0] is work_raises else "done"
        assert rows[key]["status"] == want, (file, damage, rows[key])
    for key in sorted(set(plan) - served, key=lambda k: plan[k][0] != "task"):
        # a fresh outcome: one file in its shard (no claim, no old task file)
        check_finished_clean(cache, key, "failed" if calls[key][0] is work_raises else "done")


@pytest.mark.timeout(30)
def test_foreign_files_in_the_cache_directory_are_ignored(tmp_path):
    """Stray files and odd directories next to entries and in the shards break neither
    listing nor runs; a file named like an entry that is not one is listed corrupt."""
    cache = tmp_path / "cache"
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        key = exe.submit(work, str(tmp_path / "c"), 1).key
        exe.submit(work, str(tmp_path / "c"), 1).result(timeout=30)
    store = Store(cache)
    shard = Path(store.shard_of(key))
    (cache / "README").write_text("not an entry")
    (cache / "empty-dir").mkdir()
    (cache / "junk-dir").mkdir()
    (cache / "junk-dir" / "notes.txt").write_text("x")
    (shard / "stray.bin").write_bytes(os.urandom(64))
    (shard / "subdir").mkdir()
    (shard / f"{key}@unknown").write_bytes(b"?")
    junk = Path(store.path_of("junk-only", "done"))  # named like a done file
    junk.write_bytes(os.urandom(600))
    rows = xcache_ls(cache)
    assert rows[key]["status"] == "done"
    assert set(rows) == {key, "junk-only"}, sorted(rows)
    assert rows["junk-only"]["status"] == "corrupt"
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        fut = exe.submit(work, str(tmp_path / "c"), 1)
        assert fut.done() and fut.result() == 1
    assert entry_files(cache, key).keys() == {"done"}


def test_entry_with_only_a_temp_file_is_not_listed(tmp_path):
    """A killed writer's temp file (here: of a claim) is no entry."""
    cache = tmp_path / "cache"
    store = Store(cache)
    claim = Path(store.path_of("half-written_1", "claim"))
    (claim.parent / f".{claim.name}.host-1-00000000aa.tmp").write_bytes(b'{"ba')
    assert temp_files(cache, "half-written_1")  # (the helper sees it)
    assert store.file_status("half-written_1") is None
    assert not store.exists("half-written_1")
    assert list_cache(cache, check_scheduler=False) == []
    assert get_cache_data(cache, check_scheduler=False) == []
    assert check_no_false_files(cache, "half-written_1") == temp_files(cache, "half-written_1")


ILL_TYPED_CLAIMS = [
    {"backend": "local", "owner": "x"},
    {"backend": "local", "owner": {"host": "vm", "pid": "abc"}},
    {"backend": "local", "owner": {"host": "vm", "pid": None}},
    {"backend": "local", "owner": {"host": 5, "pid": [1], "start": {"a": 1}}},
    {"backend": "local", "owner": [1, 2], "runner": "r"},
    {"backend": "slurm", "job_id": None, "owner": {"pid": True}},
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("record", ILL_TYPED_CLAIMS, ids=range(len(ILL_TYPED_CLAIMS)))
def test_a_claim_with_an_ill_typed_owner_counts_as_abandoned(tmp_path, record):
    """Regression: a hand-edited claim whose owner is not ``{"host": str, "pid": int}``
    crashed submit() and ``xcache ls``.  Its owner counts as gone: listed, taken over
    and run once."""
    cache, counter = tmp_path / "cache", str(tmp_path / "c")
    store = Store(cache)
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        first = exe.submit(work, counter, 7)
        key, value = first.key, first.result(timeout=30)
    Path(store.path_of(key, "done")).unlink()
    Path(store.path_of(key, "claim")).write_text(json.dumps(record))
    rows = xcache_ls(cache)
    assert rows[key]["status"] in ("lost", "queued"), rows[key]
    assert key in {e["key"] for e in list_cache(cache)}
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        assert exe.submit(work, counter, 7).result(timeout=30) == value
    assert executions(counter) == [7, 7]
    check_finished_clean(cache, key)
