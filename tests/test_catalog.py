"""The Python side of ``xcache``: executorlib_cache.catalog.

Entries are built with the Store API exactly as the executor and the runners write
them (format 2: the task file, the claim -- with ``started``/``runner`` once a batch
runner began -- and the one finished file).  The helpers here are also used by
test_cli.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from conftest import require

from executorlib_cache import catalog, liveness
from executorlib_cache.catalog import scanner
from executorlib_cache.errors import CatalogError
from executorlib_cache.schedulers import JobStatus, commands, dialect
from executorlib_cache.store import CLAIM, DONE, TASK, Store

NOW = time.time()


def new_key(function: str = "add") -> str:
    return f"{function}-v1-{uuid.uuid4().hex}"


def make_entry(
    store: Store,
    status: str = "done",
    *,
    key: str | None = None,
    function: str = "add",
    submitted: float | None = None,
    runtime: float = 1.5,
    finished: float | None = None,
    result: Any = 3,
    error: BaseException | None = None,
    backend: str = "local",
    job_id: str | None = None,
    owner: dict[str, Any] | None = None,
    runner_pid: int | None = None,
    dependencies: list[str] | None = None,
    job_extra: dict[str, Any] | None = None,
) -> str:
    """One entry in ``status`` (pending/queued/running/done/failed); returns its key."""
    key = key or new_key(function)
    submitted = NOW - 3600 if submitted is None else submitted
    payload = cloudpickle.dumps((len, ((1, 2),), {}))
    store.write_task(key, payload, {
        "function": function, "module": "mymod", "qualname": function,
        "submitted": submitted, "host": "login1", "user": "me", "pid": 1,
        "python": "3.11", "version": "0.1.0", "cloudpickle": cloudpickle.__version__,
        "resource_dict": {"cores": 1}, "dependencies": dependencies or [],
        "args": "(1, 2)", "payload_size": len(payload),
    })
    if status == "pending":
        return key
    claim = {
        "backend": backend, "job_id": job_id,
        "owner": owner if owner is not None else liveness.identity(),
        "submitted": submitted, "job_name": key, **(job_extra or {}),
    }
    store.write_claim(key, claim)
    if status == "queued":
        return key
    started = submitted + 1
    store.write_claim(key, {**claim, "started": started, "runner": {
        "host": liveness.HOST, "pid": runner_pid or os.getpid(), "job_id": job_id}})
    if status == "running":
        return key
    finished = started + runtime if finished is None else finished
    meta = {"started": finished - runtime, "finished": finished, "runtime": runtime,
            "host": "node7", "pid": 99, "job_id": job_id, "backend": backend,
            **{k: v for k, v in (job_extra or {}).items()
               if k in ("stdout", "stderr", "working_directory")}}
    if status == "done":
        store.write_outcome(key, "done", cloudpickle.dumps(result), meta)
    else:
        error = error or ValueError("bad input")
        meta.update(error_type=type(error).__name__, error_module="builtins",
                    error_message=str(error), reason="raised",
                    traceback="Traceback (most recent call last):\n  File \"job.py\", line 1\n"
                              f"{type(error).__name__}: {error}\n")
        store.write_outcome(key, "failed", cloudpickle.dumps(error), meta)
    return key


def dead_identity() -> dict[str, Any]:
    """The identity of a process that has exited (same host)."""
    proc = subprocess.Popen(["sleep", "30"])
    ident = liveness.identity(proc.pid)
    proc.kill()
    proc.wait(timeout=10)
    return ident


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache")


def by_key(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in rows}


# ---------------------------------------------------------------- parsing
@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("2h", 7200), ("7d", 604800), ("1w", 604800), ("90m", 5400),
    ("1h30m", 5400), ("45", 45), ("1.5h", 5400), (" 2 d ", 172800), (12, 12.0),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert catalog.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5s", "5s3", "h", "1d-2h", -3])
def test_parse_duration_rejects(text: Any) -> None:
    with pytest.raises(CatalogError, match="invalid duration"):
        catalog.parse_duration(text)


@pytest.mark.parametrize("text, size", [
    ("500", 500), ("10k", 10240), ("1.5M", 1572864), ("10G", 10 * 1024**3),
    ("10GB", 10 * 1024**3), ("2TiB", 2 * 1024**4), ("0", 0), (42, 42),
])
def test_parse_size(text: Any, size: int) -> None:
    assert catalog.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "ten", "10X", "-1G", "1.2.3M"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(CatalogError, match="invalid size"):
        catalog.parse_size(text)


def test_parse_statuses() -> None:
    assert catalog.parse_statuses(["done,failed", "lost"]) == {"done", "failed", "lost"}
    assert catalog.parse_statuses(None) is None
    with pytest.raises(CatalogError, match="unknown status fnished"):
        catalog.parse_statuses(["fnished"])


# ---------------------------------------------------------------- listing
def test_get_cache_data_fields_and_values(store: Store) -> None:
    done = make_entry(store, "done", runtime=2.0)
    failed = make_entry(store, "failed", function="div", error=ZeroDivisionError("div by 0"))
    pending = make_entry(store, "pending")
    queued = make_entry(store, "queued")
    running = make_entry(store, "running")
    rows = by_key(catalog.list_cache(store.root))
    assert set(rows) == {done, failed, pending, queued, running}
    for r in rows.values():
        assert tuple(r) == catalog.FIELDS
    assert rows[done]["status"] == "done"
    assert rows[done]["runtime"] == 2.0
    assert rows[done]["function"] == "add" and rows[done]["module"] == "mymod"
    assert rows[done]["host"] == "node7" and rows[done]["backend"] == "local"
    assert rows[done]["size"] > 0 and rows[done]["finished"] > rows[done]["submitted"]
    assert rows[failed]["status"] == "failed"
    assert rows[failed]["error_type"] == "ZeroDivisionError"
    assert rows[failed]["error_message"] == "div by 0"
    assert rows[failed]["reason"] == "raised"
    assert rows[pending]["status"] == "pending"
    assert rows[queued]["status"] == "queued"  # owned by this live process
    assert rows[running]["status"] == "running"
    assert rows[running]["started"] is not None and rows[running]["finished"] is None
    assert "result" not in rows[done]


def test_get_cache_data_is_a_dataframe(store: Store) -> None:
    pd = require("pandas")
    make_entry(store, "done")
    make_entry(store, "failed")
    make_entry(store, "pending")
    df = pd.DataFrame(catalog.list_cache(store.root))
    assert len(df) == 3
    assert list(df.columns) == list(catalog.FIELDS)
    assert sorted(df.status) == ["done", "failed", "pending"]


def test_list_cache_load(store: Store) -> None:
    done = make_entry(store, "done", result={"energy": -1.5})
    failed = make_entry(store, "failed", error=KeyError("x"))
    pending = make_entry(store, "pending")
    rows = by_key(catalog.list_cache(store.root, load=True))
    assert rows[done]["result"] == {"energy": -1.5} and rows[done]["load_error"] is None
    assert isinstance(rows[failed]["error"], KeyError)
    assert rows[pending]["result"] is None and rows[pending]["error"] is None


def test_get_cache_data_has_executorlibs_fields(store: Store) -> None:
    """executorlib's get_cache_data: the call's inputs, resources, output or error,
    runtime, queue id and file, unpickled; plus this package's metadata."""
    done = make_entry(store, "done", result={"energy": -1.5}, runtime=2.5,
                      backend="slurm", job_id="4711")
    failed = make_entry(store, "failed", error=KeyError("x"))
    pending = make_entry(store, "pending")
    rows = by_key(catalog.get_cache_data(store.root))
    d = rows[done]
    assert d["function"] is len and d["function_name"] == "add"
    assert d["input_args"] == [(1, 2)] and d["input_kwargs"] == {}
    assert d["output"] == {"energy": -1.5} and d["error"] is None
    assert d["runtime"] == 2.5 and d["queue_id"] == 4711
    assert d["resource_dict"] == {"cores": 1} and d["error_log_file"] is None
    assert d["filename"] == store.path_of(done, "done") and os.path.isfile(d["filename"])
    assert d["status"] == "done" and d["load_error"] is None
    assert isinstance(rows[failed]["error"], KeyError) and rows[failed]["output"] is None
    assert rows[pending]["input_args"] == [(1, 2)] and rows[pending]["output"] is None
    assert catalog.get_cache_data(store.root, load=False) == catalog.list_cache(store.root)


def test_get_cache_data_load_unpicklable_result_is_marked(store: Store) -> None:
    key = make_entry(store, "done")
    # a pickle of a class from a module that does not exist here
    payload = b"cno_such_mod\nX\n."  # protocol 0: GLOBAL no_such_mod.X, STOP
    store.write_outcome(key, "done", payload, {"finished": NOW, "runtime": 1.0})
    (row,) = catalog.get_cache_data(store.root, load=True)
    assert row["status"] == "done"
    assert row["output"] is None
    assert "no_such_mod" in row["load_error"]


def test_listing_never_unpickles(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    make_entry(store, "done")
    make_entry(store, "failed")

    def boom(*a: Any, **k: Any) -> None:
        raise AssertionError("unpickled while listing")

    monkeypatch.setattr(cloudpickle, "loads", boom)
    monkeypatch.setattr("pickle.loads", boom)
    assert len(catalog.list_cache(store.root)) == 2
    assert catalog.cache_stats(store.root)["entries"] == 2


def test_missing_cache_directory(tmp_path: Path) -> None:
    """``get_cache_data`` of a directory that does not exist (yet) is ``[]``, as in
    executorlib (a notebook may read a cache before its first run); the catalog's
    other functions say it does not exist.  Nothing is created either way."""
    assert catalog.list_cache(tmp_path / "nope") == []
    with pytest.raises(CatalogError, match="does not exist"):
        catalog.scan(tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


def test_strangers_and_temp_files_read_as_absent(store: Store) -> None:
    """A killed writer's temp file, a stray file or directory: no entry."""
    key = new_key()
    shard = Path(store.shard_of(key))
    (shard / f".{key}.h5.host-1-00aa.tmp").write_bytes(b"half")
    (shard / "notes.txt").write_text("hello")
    (store.root / new_key()).mkdir()
    assert catalog.list_cache(store.root) == []


def test_queued_local_entry_has_only_its_claim(store: Store) -> None:
    """A local call has no task file: the claim is all there is while it runs."""
    key = new_key("relax")
    store.write_claim(key, {"backend": "local", "job_id": None,
                            "owner": liveness.identity(), "submitted": NOW})
    (row,) = catalog.list_cache(store.root)
    assert row["status"] == "queued"
    assert row["function"] == "relax"  # from the key
    assert row["submitted"] == NOW
    # the executor also puts the function name and upstream keys into the claim
    store.write_claim(key, {"backend": "local", "job_id": None, "submitted": NOW,
                            "owner": liveness.identity(), "function": "relax_cell",
                            "upstream_keys": ["prep-v1-00aa"]})
    (row,) = catalog.list_cache(store.root)
    assert row["status"] == "queued" and row["function"] == "relax_cell"
    assert row["dependencies"] == ["prep-v1-00aa"]


def test_listing_reads_only_the_user_block(store: Store, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """``xcache ls`` reads the summary at the head of each finished file: no HDF5."""
    key = make_entry(store, "done", runtime=4.0)
    failed = make_entry(store, "failed")

    def no_hdf5(*a: Any, **k: Any) -> None:
        raise AssertionError("HDF5 opened while listing")

    from executorlib_cache import fileio
    monkeypatch.setattr(fileio, "read_entry_file", no_hdf5)
    rows = by_key(catalog.list_cache(store.root))
    assert rows[key]["status"] == "done" and rows[key]["runtime"] == 4.0
    assert rows[key]["function"] == "add" and rows[key]["module"] == "mymod"
    assert rows[failed]["error_type"] == "ValueError"
    assert rows[failed]["error_message"] == "bad input"


def test_corrupt_entries(store: Store) -> None:
    zero = make_entry(store, "done")
    open(store.path_of(zero, DONE), "wb").close()
    garbage = make_entry(store, "done")
    Path(store.path_of(garbage, DONE)).write_bytes(os.urandom(300))
    bad_claim = make_entry(store, "queued")
    Path(store.path_of(bad_claim, CLAIM)).write_bytes(b"{not json")
    bad_task = make_entry(store, "pending")
    Path(store.path_of(bad_task, TASK)).write_bytes(os.urandom(600))
    ok = make_entry(store, "done")

    quick = by_key(catalog.list_cache(store.root))
    for key in (zero, garbage, bad_claim):  # no summary: the file itself was asked
        assert quick[key]["status"] == "corrupt" and quick[key]["problem"], quick[key]
    assert quick[bad_task]["status"] == "pending"  # a listing reads no task file
    assert quick[ok]["status"] == "done"

    deep = by_key(catalog.list_cache(store.root, verify=True))
    for key in (zero, garbage, bad_claim, bad_task):
        assert deep[key]["status"] == "corrupt", (key, deep[key])
        assert deep[key]["problem"]
    assert deep[ok]["status"] == "done" and deep[ok]["problem"] is None

    stats = catalog.cache_stats(store.root)  # stats look at sizes: finds the empty file
    assert stats["by_status"]["corrupt"] == 3

    # selecting corrupt entries reads every .h5: the garbage task file goes too
    removed = catalog.remove_entries(store.root, status="corrupt")
    assert set(removed) == {zero, garbage, bad_claim, bad_task}
    assert [r["key"] for r in catalog.list_cache(store.root)] == [ok]


def test_tampered_entries(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    signed = Store(store.root, secret="right")
    key = make_entry(signed, "done")
    unsigned = make_entry(store, "done")
    monkeypatch.setenv("XCACHE_SECRET", "right")
    assert {r["status"] for r in catalog.list_cache(store.root, verify=True)} == \
        {"done", "tampered"}
    rows = by_key(catalog.list_cache(store.root, verify=True))
    assert rows[key]["status"] == "done"
    assert rows[unsigned]["status"] == "tampered"
    monkeypatch.setenv("XCACHE_SECRET", "wrong")
    rows = by_key(catalog.get_cache_data(store.root, load=True))
    assert rows[key]["status"] == "tampered" and rows[key]["output"] is None
    assert "signature" in rows[key]["load_error"]
    assert catalog.describe(store.root, key)["status"] == "tampered"


def test_lost_local_entries(store: Store) -> None:
    dead = dead_identity()
    queued = make_entry(store, "queued", owner=dead)
    running = make_entry(store, "running", owner=dead, runner_pid=dead["pid"])
    alive_runner = subprocess.Popen(["sleep", "30"])
    try:
        still = make_entry(store, "running", owner=dead, runner_pid=alive_runner.pid)
        mine = make_entry(store, "queued")  # owned by this (live) process
        rows = by_key(catalog.list_cache(store.root))
    finally:
        alive_runner.kill()
        alive_runner.wait()
    assert rows[queued]["status"] == "lost"
    assert "gone" in rows[queued]["problem"]
    assert rows[running]["status"] == "lost"
    assert rows[still]["status"] == "running"  # the runner is still at it
    assert rows[mine]["status"] == "queued"


def test_lost_cluster_entries_ask_the_scheduler_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, list[str]]] = []

    def query(backend: str, ids: list[str]) -> dict[str, JobStatus]:
        calls.append((backend, list(ids)))
        states = {"101": "RUNNING", "102": "PENDING", "104": "COMPLETED"}
        return {k: dialect(backend).status(v) for k, v in states.items()}

    monkeypatch.setattr(commands, "job_states", query)
    dead = dead_identity()  # the driver is gone; the cluster job may live on
    k1 = make_entry(store, "running", backend="slurm", job_id="101", owner=dead)
    k2 = make_entry(store, "queued", backend="slurm", job_id="102", owner=dead)
    k3 = make_entry(store, "queued", backend="slurm", job_id="103", owner=dead)
    k4 = make_entry(store, "running", backend="slurm", job_id="104", owner=dead)
    k5 = make_entry(store, "done", backend="slurm", job_id="105", owner=dead)
    k6 = make_entry(store, "queued", backend="slurm", job_id=None, owner=dead)  # no sbatch yet
    k7 = make_entry(store, "queued", backend="slurm", job_id=None)  # ... by a live driver
    rows = by_key(catalog.list_cache(store.root))
    assert calls == [("slurm", ["101", "102", "103", "104"])]
    assert rows[k1]["status"] == "running" and rows[k2]["status"] == "queued"
    assert rows[k3]["status"] == "lost" and "unknown" in rows[k3]["problem"]
    assert rows[k4]["status"] == "lost" and "COMPLETED" in rows[k4]["problem"]
    assert rows[k5]["status"] == "done"
    assert rows[k6]["status"] == "lost" and rows[k7]["status"] == "queued"
    calls.clear()
    catalog.list_cache(store.root, check_scheduler=False)
    assert calls == []


def test_scheduler_failure_is_a_warning_not_a_crash(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def query(backend: str, ids: list[str]) -> dict[str, JobStatus]:
        raise RuntimeError("squeue: command not found")

    monkeypatch.setattr(commands, "job_states", query)
    key = make_entry(store, "queued", backend="flux", job_id="f1", owner=dead_identity())
    with pytest.warns(UserWarning, match="squeue"):
        (row,) = catalog.list_cache(store.root)
    assert row["key"] == key and row["status"] == "queued"


def test_parallel_scan_matches_serial(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(30):
        make_entry(store, ("done", "failed", "pending", "queued", "running")[i % 5],
                   function=f"f{i % 3}")
    serial = sorted(catalog.list_cache(store.root), key=lambda r: r["key"])
    monkeypatch.setattr(scanner, "PARALLEL_THRESHOLD", 2)
    parallel = sorted(catalog.list_cache(store.root), key=lambda r: r["key"])
    assert parallel == serial


def test_resolve_key(store: Store) -> None:
    a = make_entry(store, key="fit-v1-aaaa1111")
    b = make_entry(store, key="fit-v1-aaaa2222")
    assert catalog.resolve_key(store, "fit-v1-aaaa1") == a
    assert catalog.resolve_key(store, b) == b
    with pytest.raises(CatalogError, match="ambiguous"):
        catalog.resolve_key(store, "fit-v1-aaaa")
    with pytest.raises(CatalogError, match="no entry"):
        catalog.resolve_key(store, "zzz")
    for bad in ("../cache", "..", ".", ".trash", "a/b", ""):
        with pytest.raises(CatalogError):
            catalog.resolve_key(store, bad)


def test_filter_and_sort(store: Store) -> None:
    old = make_entry(store, "done", function="relax", submitted=NOW - 10 * 86400, runtime=9)
    mid = make_entry(store, "failed", function="relax_more", submitted=NOW - 2 * 3600)
    new = make_entry(store, "done", function="plot", submitted=NOW - 60, runtime=1)
    entries = catalog.scan(store)
    keys = lambda es: [e.key for e in es]  # noqa: E731
    assert keys(catalog.filter_entries(entries, function="relax*")) in ([old, mid], [mid, old])
    assert keys(catalog.filter_entries(entries, function="mymod.plot")) == [new]
    assert keys(catalog.filter_entries(entries, status="failed")) == [mid]
    assert set(keys(catalog.filter_entries(entries, since="3h"))) == {mid, new}
    assert keys(catalog.filter_entries(entries, older_than="1w")) == [old]
    assert keys(catalog.sort_entries(entries, "submitted")) == [old, mid, new]
    assert keys(catalog.sort_entries(entries, "runtime", reverse=True)) == [old, mid, new]
    assert keys(catalog.sort_entries(entries, "function")) == [new, old, mid]


# ---------------------------------------------------------------- removing
def test_remove_entries(store: Store) -> None:
    done = make_entry(store, "done", submitted=NOW - 30 * 86400)
    failed = make_entry(store, "failed")
    running = make_entry(store, "running")
    with pytest.raises(CatalogError, match="nothing selected"):
        catalog.remove_entries(store.root)
    assert catalog.remove_entries(store.root, older_than="7d", dry_run=True) == [done]
    assert store.exists(done)
    assert catalog.remove_entries(store.root, [failed[:12]]) == [failed]
    with pytest.warns(UserWarning, match="running: not removed"):
        assert catalog.remove_entries(store.root, all_entries=True) == [done]
    assert [r["key"] for r in catalog.list_cache(store.root)] == [running]
    assert not any((store.root / ".trash").iterdir())


def test_remove_entries_force_cancels_cluster_jobs(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    cancelled: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(commands, "job_states",
                        lambda b, ids: {i: dialect(b).status("RUNNING") for i in ids})
    monkeypatch.setattr(commands, "cancel_jobs",
                        lambda b, ids: cancelled.append((b, list(ids))))
    a = make_entry(store, "running", backend="slurm", job_id="7")
    b = make_entry(store, "queued", backend="slurm", job_id="8")
    assert sorted(catalog.remove_entries(store.root, [a, b], force=True)) == sorted([a, b])
    assert cancelled == [("slurm", ["7", "8"])]


def test_remove_entries_force_stops_a_local_runner(store: Store) -> None:
    runner = subprocess.Popen(["sleep", "60"])
    try:
        key = make_entry(store, "running", runner_pid=runner.pid)
        assert catalog.remove_entries(store.root, [key], force=True) == [key]
        assert runner.wait(timeout=10) == -signal.SIGTERM
    finally:
        runner.kill()
        runner.wait()
    assert not store.exists(key)


def test_remove_cannot_escape_the_cache(store: Store, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "task.h5").write_text("precious")
    make_entry(store, "done")
    for bad in ("../victim", "..", str(victim), "./../victim", ".trash"):
        with pytest.raises(CatalogError):
            catalog.remove_entries(store.root, [bad])
    assert (victim / "task.h5").read_text() == "precious"
    assert store.root.is_dir()


# ---------------------------------------------------------------- stats and prune
def test_cache_stats(store: Store) -> None:
    make_entry(store, "done", function="a", submitted=NOW - 100)
    make_entry(store, "done", function="a", submitted=NOW - 50)
    newest = make_entry(store, "failed", function="b", submitted=NOW - 10)
    oldest = make_entry(store, "pending", function="c", submitted=NOW - 1000)
    s = catalog.cache_stats(store.root)
    assert s["entries"] == 4
    assert s["by_status"] == {"pending": 1, "done": 2, "failed": 1}
    assert s["by_function"]["a"]["entries"] == 2
    assert s["size"] >= sum(f["size"] for f in s["by_function"].values()) > 0
    assert s["oldest_key"] == oldest and s["newest_key"] == newest
    assert s["oldest"] == pytest.approx(NOW - 1000)


def _age(store: Store, key: str, days: float) -> None:
    """Make an entry last used ``days`` ago (a line of an executor's usage log)."""
    with open(store.root / ".used" / "test.log", "a") as f:
        f.write(f"{NOW - days * 86400:.0f} {key}\n")


def test_prune_by_age_and_size(store: Store) -> None:
    old = make_entry(store, "done", finished=NOW - 40 * 86400)
    mid = make_entry(store, "failed", finished=NOW - 20 * 86400)
    new = make_entry(store, "done", finished=NOW - 86400)
    hit = make_entry(store, "done", finished=NOW - 50 * 86400)
    pending = make_entry(store, "pending", submitted=NOW - 90 * 86400)
    running = make_entry(store, "running", submitted=NOW - 90 * 86400)
    _age(store, old, 40)
    _age(store, mid, 20)
    _age(store, new, 1)
    _age(store, hit, 0)  # a cache hit, logged by the executor at shutdown
    assert catalog.prune(store.root, max_age="30d", dry_run=True) == [old]
    assert store.exists(old)
    total = catalog.cache_stats(store.root)["size"]
    # size: least recently used first, until at most half of it stays
    plan = catalog.prune(store.root, max_size=total // 2, dry_run=True)
    assert plan[:2] == [old, mid]
    assert pending not in plan and running not in plan
    assert catalog.prune(store.root, max_age="30d") == [old]
    removed = catalog.prune(store.root, max_size=0)
    assert removed == [mid, new, hit]
    assert {r["key"] for r in catalog.list_cache(store.root)} == {pending, running}
    with pytest.raises(CatalogError):
        catalog.prune(store.root)
    with pytest.raises(CatalogError, match="invalid size"):
        catalog.prune(store.root, max_size="lots")


def test_describe(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "job.out"
    log.write_text("".join(f"line {i}\n" for i in range(50)))
    dep = make_entry(store, "done")
    key = make_entry(store, "failed", dependencies=[dep],
                     job_extra={"stdout": str(log), "stderr": "missing.err",
                                "working_directory": str(tmp_path)})
    info = catalog.describe(store.root, key[:14])
    assert info["key"] == key and info["status"] == "failed"
    assert info["dependencies"] == [dep]
    assert "ValueError: bad input" in info["traceback"]
    assert info["logs"]["stdout"]["tail"] == [f"line {i}" for i in range(30, 50)]
    assert info["logs"]["stderr"] == {"path": str(tmp_path / "missing.err"), "tail": None}
    assert info["resource_dict"] == {"cores": 1}
    assert "error" not in info
    loaded = catalog.describe(store.root, key, load=True)
    assert isinstance(loaded["error"], ValueError)
    assert "ValueError: bad input" in str(loaded["error"].__cause__)  # remote traceback


def test_interrupted_removal_is_invisible_and_cleaned_up(store: Store) -> None:
    """Store.remove renames into .trash first: a removal killed before deleting the
    files leaves nothing that lists as an entry; a later rm/prune finishes it."""
    key = make_entry(store, "done")
    other = make_entry(store, "done")
    half = store.root / ".trash" / f"{key}.h5.1234-abc"
    os.rename(store.path_of(key, DONE), half)  # what a killed `xcache rm` leaves behind
    assert [r["key"] for r in catalog.list_cache(store.root)] == [other]
    old = time.time() - 2 * 3600
    os.utime(half, (old, old))
    catalog.remove_entries(store.root, [other])
    assert not half.exists()


def test_a_removal_sweeps_what_dead_drivers_left(store: Store) -> None:
    """After ``xcache rm``/``prune``: heartbeat files of drivers that are gone and pool
    queues of dead drivers with nothing left to do are removed; a live driver's
    heartbeat and a queue with a waiting ticket stay."""
    from executorlib_cache.fileio import HOST
    from executorlib_cache.pool_queue import queue_dir, ticket_name

    dead = subprocess.Popen(["true"])
    dead.wait()
    drivers = store.root / ".drivers"
    (drivers / f"{HOST}-{dead.pid}").touch()  # this host, pid gone
    (drivers / f"{HOST}-{os.getpid()}").touch()  # this host, alive
    far = drivers / "other-host-1234"
    far.touch()
    os.utime(far, (NOW - 2 * 86400, NOW - 2 * 86400))  # another host, silent for days
    dead_owner = {"host": HOST, "pid": dead.pid, "start": "x"}
    finished, busy = queue_dir(store.root, "p-done"), queue_dir(store.root, "p-busy")
    for q in (finished, busy):
        q.mkdir(parents=True)
        (q / "pool.json").write_text(json.dumps({"owner": dead_owner, "backend": "slurm"}))
    (busy / ticket_name(0, "00000000", "k")).touch()
    key = make_entry(store, "done")
    assert catalog.remove_entries(store.root, [key]) == [key]
    assert sorted(p.name for p in drivers.iterdir()) == [f"{HOST}-{os.getpid()}"]
    assert not finished.exists() and busy.exists()
