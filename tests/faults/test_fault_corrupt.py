"""Fault 4: damaged entries.  task.h5 / result.h5 / error.h5 that are empty,
truncated, random bytes, valid HDF5 with a field missing, of the wrong kind,
or written by a future format version; garbage JSON sidecars.

Each damaged file is reported (``xcache ls --verify`` says ``corrupt``; a
damaged claim or run record makes the entry ``lost``), nothing crashes the
CLI or the driver, and a new run recomputes what it cannot trust:

* damaged result.h5: warning, entry moved to ``.corrupt/``, recomputed;
* damaged error.h5: never read by the executor, a failure is retried anyway;
* damaged task.h5 / task.json next to a *valid* result: the result is served
  (it is what the key names; the task file only describes the call) and the
  entry stays listed as corrupt until removed; next to a failure, the retry
  writes a fresh task.h5;
* garbage job.json / started.json: the claim is dead, the call is re-run once;
* garbage outcome.json: it is only a summary, the result file is the truth.
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

from executorlib_cache import SingleNodeExecutor, get_cache_data, get_future_from_cache
from executorlib_cache.errors import CorruptEntryError
from executorlib_cache.store import FORMAT_VERSION, Store
from faults.faultlib import check_no_false_files, executions, work, work_raises, xcache, xcache_ls


def zero(p: Path) -> None:
    p.write_bytes(b"")


def truncated(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def random_bytes(p: Path) -> None:
    p.write_bytes(os.urandom(max(600, p.stat().st_size)))


def no_payload(p: Path) -> None:
    with h5py.File(p, "r+", locking=False) as f:
        del f["payload"]


def no_meta(p: Path) -> None:
    with h5py.File(p, "r+", locking=False) as f:
        del f.attrs["meta"]


def future_format(p: Path) -> None:
    with h5py.File(p, "r+", locking=False) as f:
        meta = json.loads(bytes(f.attrs["meta"]))
        meta["format"] = FORMAT_VERSION + 1
        del f.attrs["meta"]
        f.attrs["meta"] = np.bytes_(json.dumps(meta).encode())
        f.attrs["format"] = np.int64(FORMAT_VERSION + 1)


def wrong_kind(p: Path) -> None:  # another file of the entry under this name
    other = "task.h5" if p.name != "task.h5" else ("result.h5" if (p.parent / "result.h5")
                                                   .exists() else "error.h5")
    shutil.copyfile(p.parent / other, p)


def other_entry(p: Path) -> None:  # the same file of another entry (a valid file)
    for sibling in sorted(p.parent.parent.iterdir()):
        if sibling != p.parent and not sibling.name.startswith(".") and (sibling / p.name
                                                                          ).exists():
            shutil.copyfile(sibling / p.name, p)
            return
    raise AssertionError(f"no other entry has a {p.name}")


H5_DAMAGE = {f.__name__: f for f in (zero, truncated, random_bytes, no_payload, no_meta,
                                     future_format, wrong_kind, other_entry)}


def garbage(p: Path) -> None:
    p.write_bytes(b"{\x00not json at all" + os.urandom(40))


@pytest.mark.timeout(120)
def test_damaged_entries_are_reported_and_recomputed(tmp_path, counts):
    cache, counter = tmp_path / "cache", str(tmp_path / "count")
    plan: dict[str, tuple[str, str]] = {}  # key -> (file, damage)
    calls: dict[str, tuple] = {}
    i = 0

    def call(fn, *args):
        nonlocal i
        i += 1
        return fn, (counter, i, *args)

    # build: one entry per (file, damage) + sidecar cases, all finished
    specs = [("result.h5", d, work) for d in H5_DAMAGE]
    specs += [("error.h5", d, work_raises) for d in H5_DAMAGE]
    specs += [("task.h5", d, work) for d in H5_DAMAGE]  # next to a valid result
    specs += [("task.h5", d, work_raises) for d in ("zero", "random_bytes")]  # next to a failure
    specs += [(name, "garbage", work) for name in
              ("task.json", "job.json", "started.json", "outcome.json")]
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
    # copies of another entry's (still intact) file first, then the other damage
    for key, (file, damage) in sorted(plan.items(), key=lambda kv: kv[1][1] != "other_entry"):
        entry = cache / key
        if file in ("job.json", "started.json"):  # an in-flight entry whose owner is gone
            for name in ("result.h5", "outcome.json"):
                (entry / name).unlink()
            store.write_json(key, "job.json", {"backend": "local", "job_id": None,
                                               "owner": {"host": "gone", "pid": 1, "start": "0"},
                                               "submitted": 0})
        (H5_DAMAGE.get(damage) or garbage)(entry / file)

    # reported, by the CLI (a separate process) and the Python API, without crashing
    rows = xcache_ls(cache)
    plain = xcache(cache, "ls", "--json", "--no-scheduler")
    assert plain.returncode == 0 and "Traceback" not in plain.stderr, plain.stderr
    for key, (file, damage) in plan.items():
        want = {"job.json": "lost", "started.json": "lost", "outcome.json": "done"}.get(
            file, "corrupt")
        assert rows[key]["status"] == want, (file, damage, rows[key])
        if want == "corrupt":
            assert rows[key]["problem"], rows[key]
    for key in list(plan)[::5]:
        show = xcache(cache, "show", key)
        assert show.returncode == 0 and "Traceback" not in show.stderr, show.stderr
    data = get_cache_data(cache, load=True, check_scheduler=False)
    assert {r["key"] for r in data} == set(plan)
    bad_results = [k for k, (f, _) in plan.items() if f == "result.h5"]
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
    assert len(list((cache / ".corrupt").iterdir())) == len(bad_results)

    rerun = executions(counter)[len(before):]
    recomputed = {calls[k][1][1] for k, (f, _) in plan.items()
                  if f in ("result.h5", "error.h5", "job.json", "started.json")
                  or calls[k][0] is work_raises}
    assert sorted(rerun) == sorted(recomputed)  # each exactly once, nothing else
    counts.add("4. corrupt / damaged entry files", scenarios=len(plan), calls=len(plan),
               lost=len(recomputed - set(rerun)), duplicates=len(rerun) - len(set(rerun)))

    rows = xcache_ls(cache)
    for key, (file, damage) in plan.items():
        served = file in ("task.h5", "task.json", "outcome.json") and calls[key][0] is work
        want = ("done" if file == "outcome.json" else "corrupt") if served else (
            "failed" if calls[key][0] is work_raises else "done")
        assert rows[key]["status"] == want, (file, damage, rows[key])
        if not served:
            check_no_false_files(cache / key)


@pytest.mark.timeout(30)
def test_foreign_files_in_the_cache_directory_are_ignored(tmp_path):
    """Stray files and odd directories next to entries break neither listing nor runs."""
    cache = tmp_path / "cache"
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        key = exe.submit(work, str(tmp_path / "c"), 1).key
        exe.submit(work, str(tmp_path / "c"), 1).result(timeout=30)
    (cache / "README").write_text("not an entry")
    (cache / "empty-dir").mkdir()
    (cache / "junk-only").mkdir()
    (cache / "junk-only" / "notes.txt").write_text("x")
    (cache / key / "stray.bin").write_bytes(os.urandom(64))
    rows = xcache_ls(cache)
    assert rows[key]["status"] == "done"
    assert "README" not in rows and "empty-dir" not in rows
    assert rows["junk-only"]["status"] == "corrupt"
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        fut = exe.submit(work, str(tmp_path / "c"), 1)
        assert fut.done() and fut.result() == 1


def test_entry_with_only_a_temp_file_is_not_listed(tmp_path):
    cache = tmp_path / "cache"
    Store(cache).make_entry_dir("half-written_1")
    (cache / "half-written_1" / ".job.json.host-1-00000000aa.tmp").write_bytes(b'{"ba')
    assert Store(cache).file_status("half-written_1") is None
    rows = get_cache_data(cache, check_scheduler=False)
    assert rows == []
