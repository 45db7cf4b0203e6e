"""Security: who can make this cache run code as you.

* Permissions: the cache and its entries are private by default (0700/0600),
  configurable per executor or by env; a cache directory others can write to
  gets a warning.
* Signing: with a secret, an entry whose HMAC does not match is refused and
  never unpickled (proved with a pickle that would create a marker directory
  when loaded), listed as ``tampered``, moved aside and recomputed.  The call's
  bytes inside a done file are covered through ``task_sha256`` in its signed
  meta: replaced, they are refused (never unpickled) wherever they are read.
* Paths: nothing from user input (cache_key, function names, CLI arguments,
  symlinks in the cache: a shard, an entry's file) makes us write or delete
  outside the cache directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import shutil
import stat
import subprocess
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import entry_path

from executorlib_cache import (
    SingleNodeExecutor,
    get_cache_data,
    get_future_from_cache,
    list_cache,
)
from executorlib_cache.errors import CorruptEntryError, TamperedEntryError
from executorlib_cache.naming import split_name
from executorlib_cache.serialization import dumps
from executorlib_cache.store import Store
from faults.faultlib import (
    PY,
    Marker,
    entry_files,
    env_with,
    executions,
    wait_for,
    wait_for_file,
    work,
    xcache,
    xcache_ls,
)

SECRET = "correct horse battery staple"


def answer(tag: str) -> str:
    return f"the-answer-{tag}"


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# ------------------------------------------------------------------ permissions
@pytest.mark.timeout(60)
def test_everything_is_private_by_default(tmp_path, umask022, monkeypatch):
    monkeypatch.delenv("XCACHE_DIR_MODE", raising=False)
    monkeypatch.delenv("XCACHE_FILE_MODE", raising=False)
    cache, flag = tmp_path / "cache", tmp_path / "go"
    mpi = importlib.util.find_spec("mpi4py") is not None
    with SingleNodeExecutor(cache_directory=cache, max_workers=2) as exe:
        ok = exe.submit(answer, "x")
        bad = exe.submit(work, "/nonexistent/dir/counter", 1)  # fails: a failed file
        assert ok.result(timeout=30) == "the-answer-x"
        assert isinstance(bad.exception(timeout=30), OSError)
        # the transient files of a call in flight: its claim, and (an MPI call: the
        # ranks read the call from it) its task file
        held = exe.submit(wait_for_file, str(flag), "h",
                          resource_dict={"cores": 2} if mpi else None)
        transient = [entry_path(cache, held.key, "claim")]
        if mpi:
            transient.append(entry_path(cache, held.key, "task"))
        wait_for(lambda: all(p.exists() for p in transient), 30, "the call's claim and task file")
        in_flight = {p.name: mode(p) for p in transient}
        flag.touch()
        held.result(timeout=60)
        ipc_dir = Path(exe._backend._dir)  # the workers' zmq socket lives in here
        assert mode(ipc_dir) == 0o700
        heartbeat = next((cache / ".drivers").iterdir())
        assert mode(heartbeat) == 0o600
    assert set(in_flight.values()) == {0o600}, in_flight
    dirs = [cache, *[p for p in cache.rglob("*") if p.is_dir()]]
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert {mode(d) for d in dirs} == {0o700}, {str(d): oct(mode(d)) for d in dirs}
    assert {mode(f) for f in files} == {0o600}, {str(f): oct(mode(f)) for f in files}
    kinds = {k[1] for k in map(split_name, (f.name for f in files)) if k is not None}
    assert kinds >= {"done", "failed"}, kinds
    assert {f.name for f in files} >= {".format", ".lock"}


@pytest.mark.timeout(60)
def test_modes_from_option_and_env(tmp_path, umask022, monkeypatch):
    cache = tmp_path / "opt"
    with SingleNodeExecutor(cache_directory=cache, max_workers=2, dir_mode=0o750,
                            file_mode=0o640) as exe:
        exe.submit(answer, "o").result(timeout=30)  # written by a worker process
        if importlib.util.find_spec("mpi4py") is not None:  # written by mpiexec's rank 0
            assert exe.submit(answer, "m", resource_dict={"cores": 2}).result(
                timeout=60) == ["the-answer-m"] * 2
    assert {mode(d) for d in [cache, *cache.rglob("*")] if d.is_dir()} == {0o750}
    assert {mode(f) for f in cache.rglob("*") if f.is_file()} == {0o640}

    monkeypatch.setenv("XCACHE_DIR_MODE", "755")
    monkeypatch.setenv("XCACHE_FILE_MODE", "644")
    cache = tmp_path / "env"
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        exe.submit(answer, "e").result(timeout=30)
    assert {mode(d) for d in [cache, *cache.rglob("*")] if d.is_dir()} == {0o755}
    assert {mode(f) for f in cache.rglob("*") if f.is_file()} == {0o644}

    for bad in ({"dir_mode": 0o600}, {"file_mode": 0o1777}, {"file_mode": "0o600"},
                {"dir_mode": True}, {"file_mode": 0o400}):
        with pytest.raises(ValueError, match="_mode must be"):
            SingleNodeExecutor(cache_directory=tmp_path / "bad", **bad)


@pytest.mark.timeout(30)
def test_cache_writable_by_others_warns(tmp_path, monkeypatch):
    monkeypatch.delenv("XCACHE_DIR_MODE", raising=False)
    for perms, warns, kwargs in ((0o777, True, {}), (0o775, True, {}), (0o755, False, {}),
                                 (0o700, False, {}), (0o770, False, {"dir_mode": 0o770})):
        cache = tmp_path / f"c{perms:o}-{len(kwargs)}"
        cache.mkdir()
        cache.chmod(perms)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            SingleNodeExecutor(cache_directory=cache, **kwargs).shutdown()
        hits = [w for w in caught if "writable by group/others" in str(w.message)]
        assert bool(hits) == warns, (oct(perms), [str(w.message) for w in caught])


# ------------------------------------------------------------------ signing
def make_signed_entries(cache: Path, n: int) -> list:
    with SingleNodeExecutor(cache_directory=cache, max_workers=1, secret=SECRET) as exe:
        futs = [exe.submit(answer, f"{i:03d}") for i in range(n)]
        for f in futs:
            f.result(timeout=30)
    return futs


def flip(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) >= 1, (path, old)
    path.write_bytes(data.replace(old, new, 1))


def evil_result(store: Store, key: str, marker: Path) -> None:
    store.write_outcome(key, "done", pickle.dumps(Marker(str(marker))), {})


TAMPERING = ["payload-bytes", "meta-rewritten", "meta-bytes", "unsigned-evil",
             "other-secret-evil", "hmac-removed", "signed-for-another-key"]


@pytest.mark.timeout(90)
def test_tampered_entries_are_refused_never_loaded(tmp_path, monkeypatch, counts):
    cache, marker = tmp_path / "cache", tmp_path / "MARKER-pickle-was-loaded"
    # the proof works: without a secret, a planted pickle IS loaded
    plain = tmp_path / "plain"
    with SingleNodeExecutor(cache_directory=plain, max_workers=1) as exe:
        key = exe.submit(answer, "p").key
        exe.submit(answer, "p").result(timeout=30)
    evil_result(Store(plain), key, marker)
    with SingleNodeExecutor(cache_directory=plain, max_workers=1) as exe:
        exe.submit(answer, "p")
    assert marker.exists(), "control: an unsigned cache loads whatever is planted"
    marker.rmdir()

    futs = make_signed_entries(cache, len(TAMPERING))
    keys = {how: f.key for how, f in zip(TAMPERING, futs, strict=True)}
    no_secret, other = Store(cache, secret=None), Store(cache, secret="not the secret")
    monkeypatch.delenv("XCACHE_SECRET", raising=False)
    for how, key in keys.items():
        result = entry_path(cache, key)
        if how == "payload-bytes":
            tag = key_tag(futs, key)
            flip(result, f"the-answer-{tag}".encode(), b"the-answer-999")
        elif how == "meta-rewritten":  # as an attacker with h5py would
            with h5py.File(result, "r+", locking=False) as f:
                meta = bytes(f.attrs["meta"]).replace(b'"host": "', b'"host": "evil-')
                del f.attrs["meta"]
                f.attrs["meta"] = np.bytes_(meta)
        elif how == "meta-bytes":  # raw bytes: HDF5's header checksum catches it first
            data = result.read_bytes()  # one byte of the host name (same length: the
            at = data.index(b'"host": "') + len(b'"host": "')  # attribute is fixed-size)
            result.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:])
        elif how == "unsigned-evil":
            evil_result(no_secret, key, marker)
        elif how == "other-secret-evil":
            evil_result(other, key, marker)
        elif how == "hmac-removed":
            with h5py.File(result, "r+", locking=False) as f:
                del f.attrs["hmac"]
        elif how == "signed-for-another-key":  # a valid signature, for another entry
            donor = make_signed_entries(tmp_path / "donor", 1)[0]
            shutil.copyfile(entry_path(tmp_path / "donor", donor.key), result)

    env = env_with(XCACHE_SECRET=SECRET)
    monkeypatch.setenv("XCACHE_SECRET", SECRET)
    rows = xcache_ls(cache)  # the CLI, in its own process, with the secret
    for how, key in keys.items():
        want = ("corrupt", "tampered") if how == "meta-bytes" else ("tampered",)
        assert rows[key]["status"] in want, (how, rows[key])
        show = xcache(cache, "show", key, "--load", env=env)
        assert "Traceback" not in show.stderr, show.stderr
    listed = list_cache(cache, load=True, check_scheduler=False)
    assert all(r["result"] is None and r["load_error"] for r in listed)
    # executorlib's get_cache_data unpickles the call too: refused as well
    data = get_cache_data(cache, check_scheduler=False)
    assert all(r["output"] is None and r["function"] is None and r["load_error"]
               for r in data), data
    for how, key in keys.items():
        with pytest.raises(CorruptEntryError if how == "meta-bytes" else TamperedEntryError):
            get_future_from_cache(cache, key)
    assert not marker.exists()

    # a run with the secret: each tampered entry is moved aside and recomputed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with SingleNodeExecutor(cache_directory=cache, max_workers=1, secret=SECRET) as exe:
            again = [exe.submit(answer, f"{i:03d}") for i in range(len(TAMPERING))]
            assert [f.result(timeout=30) for f in again] == [
                f"the-answer-{i:03d}" for i in range(len(TAMPERING))]
    moved = [str(w.message) for w in caught if "moved to" in str(w.message)]
    assert len(moved) == len(TAMPERING), moved
    assert sum("signature does not match" in m for m in moved) == len(TAMPERING) - 2, moved
    assert sum("belongs to entry" in m for m in moved) == 1, moved
    assert len(list((cache / ".corrupt").iterdir())) == len(TAMPERING)
    assert not marker.exists()
    assert {r["status"] for r in xcache_ls(cache).values()} == {"done"}
    counts.add("security: tampered signed entries refused (never unpickled)",
               scenarios=len(TAMPERING), calls=len(TAMPERING))


def key_tag(futs, key: str) -> str:
    i = [f.key for f in futs].index(key)
    return f"{i:03d}"


@pytest.mark.timeout(60)
def test_tampered_task_and_error_files_are_never_loaded(tmp_path, monkeypatch, counts):
    cache, marker = tmp_path / "cache", tmp_path / "MARKER-pickle-was-loaded"
    counter = str(tmp_path / "count")
    monkeypatch.setenv("XCACHE_SECRET", SECRET)
    store, forger = Store(cache), Store(cache, secret="forged")
    # a pending entry (a task file, no claim) whose call is a planted pickle
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        key = exe.submit(work, counter, 4).key
        exe.submit(work, counter, 4).result(timeout=30)
    store.remove(key)
    forger.write_task(key, dumps(Marker(str(marker))), {"resource_dict": {}})
    assert xcache_ls(cache)[key]["status"] == "tampered"  # (--verify reads the task file)
    # the standalone runner (what a SLURM job runs) refuses it
    proc = subprocess.run([PY, "-m", "executorlib_cache.compute.runner", str(cache), key],
                          capture_output=True, text=True, timeout=60, env=env_with())
    assert proc.returncode == 1, proc.stderr  # recorded as a failure of this call:
    assert "signature does not match" in store.read_outcome(key).meta["error_message"]
    assert not marker.exists()
    # the failure (signed by us) replaced the planted task file, and says why
    assert set(entry_files(cache, key)) == {"failed"}
    row = xcache_ls(cache)[key]
    assert row["status"] == "failed" and "signature does not match" in row["error_message"]
    # the executor runs its own payload (a failure is retried)
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        assert exe.submit(work, counter, 4).result(timeout=30) == 16
    assert not marker.exists()
    store.read_task(key)  # signed again, by us
    assert xcache_ls(cache)[key]["status"] == "done"
    assert set(entry_files(cache, key)) == {"done"}

    # the call's bytes inside a signed done file replaced by a planted pickle (the
    # signature covers them through task_sha256): refused wherever they are read; the
    # signed result itself is intact and is what a hit reads
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        key6 = exe.submit(work, counter, 6).key
        exe.submit(work, counter, 6).result(timeout=30)
    with h5py.File(entry_path(cache, key6), "r+", locking=False) as f:
        del f["task"]
        f["task"] = np.frombuffer(dumps(Marker(str(marker))), dtype=np.uint8)
    with pytest.raises(TamperedEntryError, match="digest"):
        store.read_task(key6)
    assert xcache_ls(cache)[key6]["status"] == "tampered"
    show = xcache(cache, "show", key6, "--load", env=env_with(XCACHE_SECRET=SECRET))
    assert "Traceback" not in show.stderr, show.stderr
    row = {r["key"]: r for r in get_cache_data(cache, check_scheduler=False)}[key6]
    assert row["function"] is None and "call" in row["load_error"], row
    list_cache(cache, load=True, check_scheduler=False)
    ran = len(executions(counter))
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        assert exe.submit(work, counter, 6).result(timeout=30) == 36
    assert len(executions(counter)) == ran  # served: the signed result was intact
    assert not marker.exists()

    # a failed entry whose error.h5 is a planted pickle: a failure is retried, the
    # planted exception is never unpickled (not by the executor, not by the catalog)
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        bad = exe.submit(work, "/nonexistent/x", 5)
        assert isinstance(bad.exception(timeout=30), OSError)
    forger.write_outcome(bad.key, "failed", dumps(Marker(str(marker))),
                         {"error_type": "X", "error_message": "planted"})
    assert xcache_ls(cache)[bad.key]["status"] == "tampered"
    row = {r["key"]: r for r in get_cache_data(cache, check_scheduler=False)}[bad.key]
    assert row["error"] is None and row["load_error"], row
    list_cache(cache, load=True, check_scheduler=False)
    with pytest.raises(TamperedEntryError):
        get_future_from_cache(cache, bad.key)
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        assert isinstance(exe.submit(work, "/nonexistent/x", 5).exception(timeout=30), OSError)
    assert not marker.exists()
    counts.add("security: tampered signed entries refused (never unpickled)", scenarios=3,
               calls=3)


@pytest.mark.timeout(60)
def test_secret_sources_env_file_and_option_agree(tmp_path, monkeypatch):
    """Entries signed via secret= verify with XCACHE_SECRET and XCACHE_SECRET_FILE."""
    cache = tmp_path / "cache"
    monkeypatch.delenv("XCACHE_SECRET", raising=False)
    make_signed_entries(cache, 2)
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    monkeypatch.setenv("XCACHE_SECRET_FILE", str(secret_file))
    assert {r["status"] for r in xcache_ls(cache).values()} == {"done"}
    for key in Store(cache).keys():
        Store(cache).read_outcome(key)  # verifies with the file's secret
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        assert exe.submit(answer, "000").done()  # a verified hit, no recompute
    monkeypatch.setenv("XCACHE_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(OSError, match="missing"):
        SingleNodeExecutor(cache_directory=cache)


# ------------------------------------------------------------------ paths
def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(root.rglob("*"))}


@pytest.mark.timeout(60)
def test_no_user_input_writes_or_deletes_outside_the_cache(tmp_path, counts):
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("do not touch")
    (outside / "job.json").write_text('{"not": "yours"}')
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        exe.submit(answer, "seed").result(timeout=30)
    before = snapshot(outside)

    # cache keys that would escape: refused at submit, by get_future_from_cache, by the CLI
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        for bad in ("../outside", "../../x", "/abs/path", "a/../../outside", "..", ".",
                    "x\0y", "outside/../.."):
            with pytest.raises((ValueError, TypeError), match="cache_key|null"):
                exe.submit(answer, "k", resource_dict={"cache_key": bad})

        # function names that look like paths stay inside, as a plain entry name
        def make(name):
            def fn():
                return name
            fn.__name__ = fn.__qualname__ = name
            return fn

        for name in ("..", "../../outside", "/etc/passwd", "a/b", ".hidden", ""):
            fut = exe.submit(make(name))
            assert fut.result(timeout=30) == name
            assert "/" not in fut.key and not fut.key.startswith(".") and fut.key != ".."
            done = entry_path(cache, fut.key)
            assert done.is_file() and done.parent.parent == cache  # in one of its shards

        # a hierarchical cache_key is one file in a shard too ("/" encoded in its name)
        fut = exe.submit(answer, "h", resource_dict={"cache_key": "project/run1"})
        assert fut.result(timeout=30) == "the-answer-h"
        done = entry_path(cache, "project/run1")
        assert done.is_file() and done.parent.parent == cache
        assert not list(cache.rglob("project")) and not list(cache.rglob("run1*"))

        # an entry's files as symbolic links pointing outside: replaced or unlinked,
        # never written through, their targets untouched
        fut = exe.submit(work, "/nonexistent/y", 1)  # a failed entry: retried below
        fut.exception(timeout=30)
        for kind in ("failed", "claim"):
            entry_path(cache, fut.key, kind).unlink(missing_ok=True)
            os.symlink(outside / "job.json", entry_path(cache, fut.key, kind))
        assert isinstance(exe.submit(work, "/nonexistent/y", 1).exception(timeout=30),
                          OSError)
        assert set(entry_files(cache, fut.key)) == {"failed"}
        assert not entry_path(cache, fut.key, "failed").is_symlink()
        seed = exe.submit(answer, "s").key
        exe.submit(answer, "s").result(timeout=30)
        entry_path(cache, seed).unlink()
        os.symlink(outside / "precious.txt", entry_path(cache, seed))  # a "done" file
        with pytest.warns(UserWarning, match="unreadable"):  # moved aside, recomputed
            assert exe.submit(answer, "s").result(timeout=30) == "the-answer-s"
        assert not entry_path(cache, seed).is_symlink()

    for bad in ("../outside", "..", "../outside/precious.txt", str(outside), "linked_1/..",
                "*", "project/..", "project/../../outside", "project/run1/../.."):
        for cmd in (["rm", "--yes", "--force", bad], ["show", bad]):
            proc = xcache(cache, *cmd)
            assert "Traceback" not in proc.stderr, proc.stderr
    with pytest.raises(Exception, match="cache_key|escape|invalid|no entry"):
        get_future_from_cache(cache, "../outside")
    assert snapshot(outside) == before

    # a shard that is a symbolic link pointing outside: moved aside, never written
    # through (not by a run, not by ``xcache rm``)
    shard = Path(Store(cache).shard_of("linked_1"))
    assert not os.listdir(shard)
    shard.rmdir()
    os.symlink(outside, shard)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
            fut = exe.submit(answer, "l", resource_dict={"cache_key": "linked_1"})
            assert fut.result(timeout=30) == "the-answer-l"
    assert snapshot(outside) == before, "written through a symlinked shard"
    assert any("symbolic link" in str(w.message) for w in caught), \
        [str(w.message) for w in caught]
    assert shard.is_dir() and not shard.is_symlink()
    proc = xcache(cache, "rm", "--yes", "--force", "linked_1")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert snapshot(outside) == before, "deleted through a symlinked shard"
    assert (outside / "precious.txt").read_text() == "do not touch"
    counts.add("security: paths from user input stay inside the cache", scenarios=6)
