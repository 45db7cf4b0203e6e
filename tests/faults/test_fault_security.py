"""Security: who can make this cache run code as you.

* Permissions: the cache and its entries are private by default (0700/0600),
  configurable per executor or by env; a cache directory others can write to
  gets a warning.
* Signing: with a secret, an entry whose HMAC does not match is refused and
  never unpickled (proved with a pickle that would create a marker directory
  when loaded), listed as ``tampered``, moved aside and recomputed.
* Paths: nothing from user input (cache_key, function names, CLI arguments,
  symlinks in the cache) makes us write or delete outside the cache directory.
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

from executorlib_cache import SingleNodeExecutor, get_cache_data, get_future_from_cache
from executorlib_cache.errors import CorruptEntryError, TamperedEntryError
from executorlib_cache.serialization import dumps
from executorlib_cache.store import Store
from faults.faultlib import PY, Marker, env_with, work, xcache, xcache_ls

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
    cache = tmp_path / "cache"
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        ok = exe.submit(answer, "x")
        bad = exe.submit(work, "/nonexistent/dir/counter", 1)  # fails: error.h5
        assert ok.result(timeout=30) == "the-answer-x"
        assert isinstance(bad.exception(timeout=30), OSError)
        ipc_dir = Path(exe._backend._dir)  # the workers' zmq socket lives in here
        assert mode(ipc_dir) == 0o700
        heartbeat = next((cache / ".drivers").iterdir())
        assert mode(heartbeat) == 0o600
    dirs = [cache, *[p for p in cache.rglob("*") if p.is_dir()]]
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert {mode(d) for d in dirs} == {0o700}, {str(d): oct(mode(d)) for d in dirs}
    assert {mode(f) for f in files} == {0o600}, {str(f): oct(mode(f)) for f in files}
    assert {f.name for f in files} >= {"error.h5", "result.h5", "task.h5", "job.json"}


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
        result = cache / key / "result.h5"
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
            shutil.copyfile(tmp_path / "donor" / donor.key / "result.h5", result)

    env = env_with(XCACHE_SECRET=SECRET)
    monkeypatch.setenv("XCACHE_SECRET", SECRET)
    rows = xcache_ls(cache)  # the CLI, in its own process, with the secret
    for how, key in keys.items():
        want = ("corrupt", "tampered") if how == "meta-bytes" else ("tampered",)
        assert rows[key]["status"] in want, (how, rows[key])
        show = xcache(cache, "show", key, "--load", env=env)
        assert "Traceback" not in show.stderr, show.stderr
    data = get_cache_data(cache, load=True, check_scheduler=False)
    assert all(r["result"] is None and r["load_error"] for r in data)
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
    # a pending entry (task.h5 but no claim) whose task is a planted pickle
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        key = exe.submit(work, counter, 4).key
        exe.submit(work, counter, 4).result(timeout=30)
    store.remove(key)
    forger.create_entry(key, dumps(Marker(str(marker))), {"resource_dict": {}})
    # the standalone runner (what a SLURM job runs) refuses it
    proc = subprocess.run([PY, "-m", "executorlib_cache.compute.runner", str(cache), key],
                          capture_output=True, text=True, timeout=60, env=env_with())
    assert proc.returncode == 1, proc.stderr  # recorded as a failure of this call:
    assert "signature does not match" in store.read_outcome(key).meta["error_message"]
    assert not marker.exists()
    assert xcache_ls(cache)[key]["status"] == "tampered"  # (--verify reads task.h5)
    # the executor runs its own payload and replaces the planted task file
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        assert exe.submit(work, counter, 4).result(timeout=30) == 16
    assert not marker.exists()
    store.read_task(key)  # signed again, by us
    assert xcache_ls(cache)[key]["status"] == "done"

    # a failed entry whose error.h5 is a planted pickle: a failure is retried, the
    # planted exception is never unpickled (not by the executor, not by the catalog)
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        bad = exe.submit(work, "/nonexistent/x", 5)
        assert isinstance(bad.exception(timeout=30), OSError)
    forger.write_outcome(bad.key, "failed", dumps(Marker(str(marker))),
                         {"error_type": "X", "error_message": "planted"})
    assert xcache_ls(cache)[bad.key]["status"] == "tampered"
    get_cache_data(cache, load=True, check_scheduler=False)
    with pytest.raises(TamperedEntryError):
        get_future_from_cache(cache, bad.key)
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        assert isinstance(exe.submit(work, "/nonexistent/x", 5).exception(timeout=30), OSError)
    assert not marker.exists()
    counts.add("security: tampered signed entries refused (never unpickled)", scenarios=2,
               calls=2)


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
            assert (cache / fut.key).is_dir()

        # a symlinked entry directory pointing outside: moved aside, never written through
        os.symlink(outside, cache / "linked_1")
        with pytest.warns(UserWarning, match="symbolic link"):
            fut = exe.submit(answer, "l", resource_dict={"cache_key": "linked_1"})
        assert fut.result(timeout=30) == "the-answer-l"
        assert (cache / "linked_1").is_dir() and not (cache / "linked_1").is_symlink()

        # a symlinked file inside an entry: replaced or unlinked, its target untouched
        fut = exe.submit(work, "/nonexistent/y", 1)  # a failed entry: retried below
        fut.exception(timeout=30)
        for name in ("job.json", "started.json", "outcome.json"):
            (cache / fut.key / name).unlink(missing_ok=True)
            os.symlink(outside / "job.json", cache / fut.key / name)
        assert isinstance(exe.submit(work, "/nonexistent/y", 1).exception(timeout=30),
                          OSError)

    for bad in ("../outside", "..", "../outside/precious.txt", str(outside), "linked_1/..",
                "*"):
        for cmd in (["rm", "--yes", "--force", bad], ["show", bad]):
            proc = xcache(cache, *cmd)
            assert "Traceback" not in proc.stderr, proc.stderr
    with pytest.raises(Exception, match="cache_key|escape|invalid|no entry"):
        get_future_from_cache(cache, "../outside")
    assert snapshot(outside) == before
    assert (outside / "precious.txt").read_text() == "do not touch"
    counts.add("security: paths from user input stay inside the cache", scenarios=5)
