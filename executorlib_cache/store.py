"""The cache directory *is* the database: a few files per entry, in 256 shards.

Layout (format version 2, specified in ``docs/format.md``)::

    <cache>/
      .format                 {"format": 2, "v1_entries": bool}
      .lock                   claim locks: one byte-range lock per stripe (4096)
      <hh>/                   shard: first byte of blake2s(key), 256 directories
        <enc>.h5              done: the call and its result (task + result datasets)
        <enc>@failed.h5       failed: the call and its exception (task + error)
        <enc>@claim           in flight: who runs it (JSON; gone once it finishes)
        <enc>@task.h5         the call, for a runner in a batch job (gone once it finishes)
      .jobs/<enc>/            a batch job's script and stdout/stderr
      .drivers/ .used/        driver heartbeats; batched "last used" logs (LRU)
      .trash/ .corrupt/       files being removed / moved aside

``<enc>`` is the key with ``%``, ``/``, ``@`` and a leading ``.`` percent-encoded.
A finished entry is one file; the listing fields sit in its HDF5 user block (one
small read, no HDF5, no unpickling).  Cost of a trivial local call on the cache
file system (``bench/bench_metadata.py``): 5 namespace changes (claim: temp +
rename; result: temp + rename; claim unlinked) and 4 lookups; a hit is one open.

Rules kept here: every file is written to a temp name in its shard and
``os.replace``d (a reader sees the old state or the new, never half); HDF5 files
are written once; the check-write-record step of a claim holds the key's stripe
lock (:class:`~.locks.StripeLock`); with a secret every file is signed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import stat
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import entryfile, fileio, legacy, mounts, usage
from .errors import CorruptEntryError, TamperedEntryError
from .fileio import _unlink, atomic_write, read_json_file, secret_from_env
from .locks import STRIPES, StripeLock, lock_file, stripe_lock
from .naming import (
    CLAIM,
    CRASH_LABEL,
    DONE,
    FAILED,
    SHARDS,
    STATUSES,
    SUFFIX,
    TASK,
    Outcome,
    decode_key,
    digest,
    encode_key,
    shard_of,
    split_name,
    status_of,
    summary_of,
)

FORMAT_VERSION = entryfile.FORMAT_VERSION
#: seconds to wait for another process's claim of the same entry
CLAIM_TIMEOUT = float(os.environ.get("XCACHE_CLAIM_TIMEOUT", "60"))
#: re-exported: the names of a cache live in ``naming.py``
__all__ = ["CLAIM", "DONE", "FAILED", "FORMAT_VERSION", "STATUSES", "TASK", "Outcome",
           "Store", "decode_key", "encode_key", "split_name", "status_of", "summary_of"]


class Store:
    """Read and write entries of one cache directory.

    ``mode``/``file_mode`` default to 0700/0600 (env ``XCACHE_DIR_MODE`` /
    ``XCACHE_FILE_MODE`` as octal strings override); ``secret`` (or env
    ``XCACHE_SECRET``/``XCACHE_SECRET_FILE``) signs every file with an HMAC.
    ``create=True`` makes the directory (:meth:`prepare`), ``False`` requires it
    (``FileNotFoundError``), ``None`` leaves it to the caller.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        create: bool | None = True,
        secret: bytes | str | None = None,
        dir_mode: int | None = None,
        file_mode: int | None = None,
    ) -> None:
        self.root = Path(directory).expanduser().absolute()
        self._root = str(self.root)
        self.dir_mode = dir_mode if dir_mode is not None else int(
            os.environ.get("XCACHE_DIR_MODE", "700"), 8
        )
        self.file_mode = file_mode if file_mode is not None else int(
            os.environ.get("XCACHE_FILE_MODE", "600"), 8
        )
        if secret is not None and not isinstance(secret, (str, bytes)):
            raise TypeError(f"secret must be a str or bytes (or None: $XCACHE_SECRET), got "
                            f"{type(secret).__name__}")
        if secret is not None and not secret:
            raise ValueError("secret must not be empty (an empty HMAC key signs nothing)")
        if isinstance(secret, str):
            secret = secret.encode()
        self.secret: bytes | None = secret if secret is not None else secret_from_env()
        self._v1: bool | None = None  # format-1 entries to read? (from .format, lazily)
        self._lockfile: Any = None
        if os.path.exists(self._root) and not os.path.isdir(self._root):
            raise NotADirectoryError(f"cache directory {self.root} exists and is not a directory")
        if create:
            self.prepare()
        elif create is not None and not os.path.isdir(self._root):
            raise FileNotFoundError(f"cache directory {self.root} does not exist")
        elif create is not None:
            self.check_shards()  # never read or write through a symlinked shard

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        """Create the cache directory, its shards and ``.format`` (``create=True`` does
        this at construction; ``create=None`` leaves it to the caller, so that a refused
        configuration leaves nothing behind).  A cache of format-1 entries is
        recorded as such (they are read as hits until ``xcache migrate``).  Raises
        ``PermissionError`` when the directory cannot be created or written."""
        try:
            self.root.mkdir(mode=self.dir_mode, parents=True, exist_ok=True)
            info = self.format_info()
            if info is None:
                info = {"format": FORMAT_VERSION,
                        "v1_entries": bool(legacy.v1_entry_names(self._root))}
                xl = legacy.executorlib_names(self._root)
                if xl:  # never silently: say what happens to them
                    warnings.warn(
                        f"{self.root} holds an executorlib cache ({len(xl)} *_o.h5/*_i.h5 "
                        "files): executorlib_cache does not read those files; import the "
                        f"finished ones with `xcache --cache-dir {self.root} import "
                        f"{self.root}` (the same calls then are cache hits)", stacklevel=3)
                legacy.move_shard_named(self._root)  # a format-1 entry in a shard's place
                # .format first: from then on two-hex-digit directories are shards
                atomic_write(f"{self._root}/.format", json.dumps(info).encode() + b"\n",
                             self.file_mode)
                self._create_dirs()
            elif not os.path.isdir(f"{self._root}/ff"):
                self._create_dirs()
            self.check_shards()
            self._v1 = bool(info.get("v1_entries"))
        except OSError as e:
            raise PermissionError(
                f"cache directory {self.root} cannot be created: "
                f"{mounts.cannot_create_reason(self.root, e)}"
            ) from e
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise PermissionError(f"cache directory {self.root} is not writable: "
                                  f"{mounts.obstacle(self._root) or 'no write permission'}")
        st = self.root.stat()
        # write access for group/others beyond what dir_mode (option or env) asked for
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) & ~self.dir_mode:
            warnings.warn(
                f"cache directory {self.root} is writable by group/others: anyone who can "
                "write there can plant pickles this cache will load (chmod 700, or set "
                "XCACHE_SECRET to sign entries)",
                stacklevel=3,
            )
        if self._v1:
            legacy.warn_once(self._root)

    def _create_dirs(self) -> None:
        for sub in (*SHARDS, ".jobs", ".drivers", ".used", ".trash", ".corrupt"):
            try:
                os.mkdir(f"{self._root}/{sub}", self.dir_mode)
            except FileExistsError:
                pass
        # through the lock registry: opening and closing it here would drop this
        # process's locks on it
        self._lockfile = lock_file(f"{self._root}/.lock", self.file_mode, revalidate=True)

    def format_info(self) -> dict[str, Any] | None:
        """``.format`` of this cache, or None (:func:`legacy.read_format`)."""
        return legacy.read_format(self._root, FORMAT_VERSION)

    @property
    def has_v1_entries(self) -> bool:
        """The cache may hold format-1 entry directories (read as hits; ``xcache
        migrate`` converts them)."""
        if self._v1 is None:
            info = self.format_info()
            self._v1 = bool(info.get("v1_entries")) if info is not None \
                else bool(legacy.v1_entry_names(self._root))
        return self._v1

    def set_v1_entries(self, value: bool) -> None:
        """Record in ``.format`` whether format-1 entries are left (``xcache migrate``)."""
        atomic_write(f"{self._root}/.format", json.dumps(
            {"format": FORMAT_VERSION, "v1_entries": value}).encode() + b"\n", self.file_mode)
        self._v1 = value

    # ------------------------------------------------------------------ paths
    def shard_of(self, key: str) -> str:
        """``<cache>/<hh>``: the shard directory of a key."""
        return f"{self._root}/{shard_of(key)}"

    def path_of(self, key: str, kind: str) -> str:
        """``<cache>/<hh>/<enc><suffix>``: the file of one ``kind`` (``done``,
        ``failed``, ``claim``, ``task``) of an entry."""
        return f"{self._root}/{shard_of(key)}/{encode_key(key)}{SUFFIX[kind]}"

    def job_dir(self, key: str) -> str:
        """``<cache>/.jobs/<enc>``: a batch job's script and stdout/stderr."""
        return f"{self._root}/.jobs/{encode_key(key)}"

    def claim(self, key: str, timeout: float | None = None) -> StripeLock:
        """The lock around an entry's check-write-record step (:mod:`.locks`): one of
        4096 byte-range locks in ``<cache>/.lock`` (released by the kernel when the
        holder dies; re-entrant within a thread).  Waiting is bounded by ``timeout``
        (default ``XCACHE_CLAIM_TIMEOUT`` or 60 s), then
        :class:`~.errors.ClaimTimeoutError`."""
        d = digest(key)
        path = f"{self._root}/.lock"
        if self._lockfile is None:  # once per Store: is it still the same file?
            self._lockfile = lock_file(path, self.file_mode, revalidate=True)
        return stripe_lock(self._lockfile, int.from_bytes(d[1:3], "big") % STRIPES,
                           CLAIM_TIMEOUT if timeout is None else timeout, path)

    # ------------------------------------------------------------------ claims
    def read_claim(self, key: str) -> dict[str, Any] | None:
        """The entry's claim record, or None (none, or unreadable: treated as none)."""
        return read_json_file(self.path_of(key, CLAIM))

    def write_claim(self, key: str, record: dict[str, Any]) -> None:
        """Replace the claim record atomically (temp + rename in the shard); the
        caller holds the key's claim lock (``claims.write_claim`` takes it), so the
        temp name is fixed: a killed writer's temp file is reused, not left."""
        self._write(self.path_of(key, CLAIM), CLAIM,
                    json.dumps(record, default=str).encode())

    def release_claim(self, key: str) -> None:
        """Remove the claim (a call cancelled before it ran, or finished)."""
        _unlink(self.path_of(key, CLAIM))

    # ------------------------------------------------------------------ writing
    def _write(self, path: str, kind: str, data: bytes) -> None:
        try:
            atomic_write(path, data, self.file_mode, label=CRASH_LABEL[kind], stable=True)
        except FileNotFoundError:  # the shard is gone (removed by hand): make it again
            os.makedirs(os.path.dirname(path), self.dir_mode, exist_ok=True)
            atomic_write(path, data, self.file_mode, label=CRASH_LABEL[kind], stable=True)

    def _write_entry(self, key: str, kind: str, datasets: list[tuple[bytes, bytes]],
                     meta: dict[str, Any]) -> None:
        meta_json = json.dumps(meta, default=str)
        sig = entryfile.sign(self.secret, kind, meta_json, datasets) \
            if self.secret is not None else None
        summary = summary_of(key, meta["status"], meta)
        path = self.path_of(key, kind)
        stable = kind == TASK  # written under the claim lock (or by its owner alone)
        try:
            fileio.write_entry(path, datasets, meta_json, sig, self.file_mode,
                               FORMAT_VERSION, summary, label=CRASH_LABEL[kind],
                               stable=stable)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), self.dir_mode, exist_ok=True)
            fileio.write_entry(path, datasets, meta_json, sig, self.file_mode,
                               FORMAT_VERSION, summary, label=CRASH_LABEL[kind],
                               stable=stable)

    def write_task(self, key: str, payload: bytes, meta: dict[str, Any]) -> None:
        """``<enc>@task.h5``: the call, for a runner that is not handed it (a batch job,
        a pool worker, an MPI run).  Removed when the outcome is written."""
        meta = {**meta, "kind": TASK, "status": "pending", "format": FORMAT_VERSION,
                "key": key, "task_sha256": hashlib.sha256(payload).hexdigest()}
        self._write_entry(key, TASK, [(b"task", payload)], meta)

    def write_outcome(self, key: str, status: str, payload: bytes, meta: dict[str, Any],
                      task: tuple[bytes, dict[str, Any]] | None = None,
                      task_file: bool = False, lock: bool = True) -> None:
        """Record a finished call in one file, ``<enc>.h5`` (done) or
        ``<enc>@failed.h5``, holding the call too: ``task`` as ``(payload, meta)``, or
        else it is read from ``<enc>@task.h5``.  Then the transient files go (the
        claim, under the lock unless ``lock=False``; the task file when it was read
        here or ``task_file`` says the runner read it).  ``lock=False`` is for a
        local worker's call, whose claim nobody updates after ``submit()`` (it
        saves two lock operations per call).  Raises ``ValueError``
        for another status, and what reading the task file raises."""
        if status not in (DONE, FAILED):
            raise ValueError(f"status must be 'done' or 'failed', not {status!r}")
        had_task_file = task is None or task_file
        if task is None:
            try:
                task = self.read_task(key)
            except (OSError, CorruptEntryError, TamperedEntryError) as e:
                # the failure being recorded may be exactly this: keep it, say so
                task = (b"", {"task_unreadable": f"{type(e).__name__}: {e}"})
        task_payload, task_meta = task
        task_meta = {k: v for k, v in task_meta.items()
                     if k not in ("kind", "status", "format", "task_sha256")}
        meta = {**meta, "kind": status, "status": status, "key": key,
                "format": FORMAT_VERSION, "size": len(payload), "task": task_meta,
                "task_sha256": hashlib.sha256(task_payload).hexdigest()}
        name = b"result" if status == DONE else b"error"
        self._write_entry(key, status, [(b"task", task_payload), (name, payload)], meta)
        if lock:
            with self.claim(key):  # a driver's late claim update (job id) waits, then
                self.release_claim(key)  # sees it finished and writes nothing
        else:
            self.release_claim(key)
        if had_task_file:
            _unlink(self.path_of(key, TASK))
        # an older failure was removed when this attempt was claimed (done wins over a
        # failure a crash left behind, and ``remove`` takes both)

    def reset_for_retry(self, key: str, keep_claim: bool = False) -> None:
        """Forget a failed or lost attempt (under the claim lock): the claim (unless
        ``keep_claim``: the new one is already written) and then the failure, so a
        crash in between still reads ``failed``."""
        if not keep_claim:
            self.release_claim(key)
        _unlink(self.path_of(key, FAILED))
        if self.has_v1_entries:  # a format-1 failure: its directory goes (else it
            old = legacy.entry_dir(self._root, key)  # would still read "failed")
            if old is not None:
                self._trash(old)

    # ------------------------------------------------------------------ reading
    def _read(self, key: str, kind: str, names: tuple[bytes, ...]
              ) -> tuple[dict[bytes, bytes], dict[str, Any]]:
        path = self.path_of(key, kind)
        # one open for files up to 4 MiB; FileNotFoundError passes through
        return entryfile.check(path, fileio.read_entry_file(
            path, names, self.secret is not None), kind, key, self.secret)

    def read_outcome(self, key: str) -> Outcome | None:
        """The finished state of an entry, or None if it has not finished.  One open
        for a hit (the file is read whole and parsed in memory).  Raises
        :class:`CorruptEntryError` / :class:`TamperedEntryError` for a damaged file."""
        try:
            datasets, meta = self._read(key, DONE, (b"result",))
            return Outcome(DONE, self._dataset(key, DONE, datasets, b"result"), meta)
        except FileNotFoundError:
            pass
        try:
            datasets, meta = self._read(key, FAILED, (b"error",))
            return Outcome(FAILED, self._dataset(key, FAILED, datasets, b"error"), meta)
        except FileNotFoundError:
            pass
        if self.has_v1_entries:
            old = legacy.read_outcome(self._root, self.secret, key)
            return Outcome(*old) if old is not None else None
        return None

    def read_hit(self, key: str) -> Outcome | None:
        """The result of a done entry, or None (one ``open``; a failure is not a hit)."""
        try:
            datasets, meta = self._read(key, DONE, (b"result",))
        except FileNotFoundError:
            if self.has_v1_entries:
                old = legacy.read_outcome(self._root, self.secret, key)
                return Outcome(*old) if old is not None and old[0] == DONE else None
            return None
        return Outcome(DONE, self._dataset(key, DONE, datasets, b"result"), meta)

    def _dataset(self, key: str, kind: str, datasets: dict[bytes, bytes], name: bytes
                 ) -> bytes:
        if name not in datasets:
            raise CorruptEntryError(f"{self.path_of(key, kind)}: has no {name.decode()} "
                                    "dataset")
        return datasets[name]

    def read_task(self, key: str) -> tuple[bytes, dict[str, Any]]:
        """``(payload, meta)`` of the call: from ``<enc>@task.h5``, else from the
        finished file.  Raises ``FileNotFoundError``, :class:`CorruptEntryError` or
        :class:`TamperedEntryError` (also when the payload's digest is wrong)."""
        names = {TASK: (b"task",), DONE: (b"task", b"result"), FAILED: (b"task", b"error")}
        for kind in (TASK, DONE, FAILED):
            try:
                datasets, meta = self._read(key, kind, names[kind])
            except FileNotFoundError:
                continue
            payload = datasets.get(b"task")
            path = self.path_of(key, kind)
            if payload is None:
                raise CorruptEntryError(f"{path}: has no task dataset")
            if hashlib.sha256(payload).hexdigest() != meta.get("task_sha256"):
                cls = TamperedEntryError if self.secret is not None else CorruptEntryError
                raise cls(f"{path}: the call's bytes do not match their digest")
            task_meta = meta.get("task") if kind != TASK else meta
            return payload, dict(task_meta) if isinstance(task_meta, dict) else {}
        if self.has_v1_entries:
            return legacy.read_task(self._root, self.secret, key)
        raise FileNotFoundError(f"{self.path_of(key, TASK)}: entry {key} has no task")

    def summary(self, key: str, kind: str) -> dict[str, Any] | None:
        """The listing fields of a finished or task file (its user block; one open,
        one read, no HDF5), or None."""
        return fileio.read_summary(self.path_of(key, kind))

    def kinds(self, key: str) -> set[str]:
        """Which files of the entry exist (one ``stat`` each; no listing)."""
        out = set()
        for kind in (DONE, FAILED, CLAIM, TASK):
            if os.path.exists(self.path_of(key, kind)):
                out.add(kind)
        if not out and self.has_v1_entries:
            return legacy.kinds(self._root, key)
        return out

    def file_status(self, key: str, kinds: set[str] | None = None) -> str | None:
        """Status from which files exist (no scheduler, no unpickling): done >
        failed > running (claim with a start) / queued (claim) > pending (task file
        only) > None (absent).  Stops at the first file found."""
        if kinds is None:
            if os.path.exists(self.path_of(key, DONE)):
                return DONE
            if os.path.exists(self.path_of(key, FAILED)):
                return FAILED
            claim = self.read_claim(key)
            if claim is not None:
                return "running" if claim.get("started") else "queued"
            if os.path.exists(self.path_of(key, CLAIM)):
                return "queued"  # being replaced right now, or unreadable
            if os.path.exists(self.path_of(key, TASK)):
                return "pending"
            if self.has_v1_entries:
                return legacy.file_status(self._root, key)
            return None
        return status_of(kinds, None)

    def revalidate(self, key: str) -> None:
        """Stat the key's shard: on NFS this refreshes a cached "no such file" for a
        file another node just wrote (used while waiting for an upstream's result)."""
        try:
            os.stat(self.shard_of(key))
        except OSError:
            pass

    def sweep_temps(self, key: str) -> int:
        """Remove the temp files a killed writer left for this key in its shard (one
        listing of the shard; called on the recovery paths -- a failure recorded or
        retried, a dead claim replaced -- under the key's claim lock, when nobody
        else can be writing them).  Returns how many were removed."""
        enc = encode_key(key)
        prefixes = tuple(f".{enc}{suffix}." for suffix in SUFFIX.values())
        n = 0
        try:
            with os.scandir(self.shard_of(key)) as it:
                stale = [d.path for d in it if d.name.startswith(prefixes)
                         and d.name.endswith((".tmp", ".diverted"))]
        except OSError:
            return 0
        for path in stale:
            _unlink(path)
            n += 1
        return n

    def check_shards(self) -> None:
        """A shard must be a real directory: a symbolic link (or a file) in its place
        is moved to ``.corrupt/`` with a warning and a directory made, so nothing is
        written or removed through it (one listing of the cache directory)."""
        try:
            with os.scandir(self._root) as it:
                bad = [d.name for d in it if len(d.name) == 2 and d.name in SHARDS
                       and not d.is_dir(follow_symlinks=False)]
        except OSError:
            return
        for name in bad:
            dst = f"{self._root}/.corrupt/{name}.{int(time.time())}-" \
                  f"{random.getrandbits(24):06x}"
            try:
                os.rename(f"{self._root}/{name}", dst)
                os.mkdir(f"{self._root}/{name}", self.dir_mode)
            except OSError:
                continue
            warnings.warn(f"shard {name} of {self.root} was not a directory (a symbolic "
                          f"link?): moved to {dst}, not followed", stacklevel=3)

    def has(self, key: str, kind: str) -> bool:
        """The entry's file of ``kind`` exists (one ``stat``)."""
        return os.path.exists(self.path_of(key, kind))

    def exists(self, key: str) -> bool:
        """Some file of the entry exists."""
        return bool(self.kinds(key))

    def finished(self, key: str) -> str | None:
        """``"done"``, ``"failed"`` or None, from two ``stat`` calls at most."""
        if os.path.exists(self.path_of(key, DONE)):
            return DONE
        if os.path.exists(self.path_of(key, FAILED)):
            return FAILED
        if self.has_v1_entries:
            st = legacy.file_status(self._root, key)
            return st if st in (DONE, FAILED) else None
        return None

    def scan(self) -> Iterator[tuple[str, dict[str, os.DirEntry[str]]]]:
        """Every entry as ``(key, {kind: DirEntry})``: one listing per shard (256),
        grouped by key; temp files and strangers are skipped.  Format-1 entry
        directories come last, as ``(key, {})``."""
        shards = SHARDS if os.path.exists(f"{self._root}/.format") else ()
        v1 = self.has_v1_entries
        seen: set[str] = set()
        for shard in shards:
            try:
                it = os.scandir(f"{self._root}/{shard}")
            except (FileNotFoundError, NotADirectoryError):
                continue
            found: dict[str, dict[str, os.DirEntry[str]]] = {}
            with it:
                for d in it:
                    parsed = split_name(d.name)  # (a file in a shard not its own: a stranger)
                    if parsed is not None and shard_of(parsed[0]) == shard:
                        found.setdefault(parsed[0], {})[parsed[1]] = d
            if v1:
                seen.update(found)
            yield from found.items()
        if v1:  # (one migrated, its old directory not yet gone: listed once)
            for name in legacy.v1_entry_names(self._root):
                if name not in seen:
                    yield name, {}

    def keys(self) -> Iterator[str]:
        """Every key of the cache (:meth:`scan` order)."""
        for key, _ in self.scan():
            yield key

    # ------------------------------------------------------------------ removing
    def remove(self, key: str) -> bool:
        """Take an entry out of the cache: each of its files is renamed into
        ``.trash`` and deleted (finished file last, so a crash leaves it finished),
        and its job directory goes too.  True if anything was there."""
        found = False
        for kind in (CLAIM, TASK, FAILED, DONE):
            found = self._trash(self.path_of(key, kind)) or found
        jobs = self.job_dir(key)
        if os.path.isdir(jobs):
            self._trash(jobs)
        if self.has_v1_entries and legacy.entry_dir(self._root, key) is not None:
            found = self._trash(f"{self._root}/{key}") or found
        return found

    def discard(self, key: str, kind: str) -> bool:
        """Take one file of an entry out (renamed into ``.trash``, then deleted); a
        format-1 result of the key goes with ``kind="done"``."""
        found = self._trash(self.path_of(key, kind))
        if kind == DONE and self.has_v1_entries:
            old = legacy.entry_dir(self._root, key)
            found = (old is not None and self._trash(old)) or found
        return found

    def _trash(self, path: str) -> bool:
        dst = f"{self._root}/.trash/{os.path.basename(path)}." \
              f"{os.getpid()}-{random.getrandbits(40):010x}"
        try:
            os.rename(path, dst)
        except FileNotFoundError:
            return False
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst, ignore_errors=True)
        else:
            _unlink(dst)
        return True

    def quarantine(self, key: str, reason: str, kind: str | None = None) -> str | None:
        """Move a damaged file (``kind``, default: the finished one) aside into
        ``.corrupt/`` (kept for inspection) so the entry reads as a miss; warns."""
        kinds = (kind,) if kind else (DONE, FAILED)
        for k in kinds:
            src = self.path_of(key, k)
            dst = f"{self._root}/.corrupt/{os.path.basename(src)}." \
                  f"{int(time.time())}-{random.getrandbits(24):06x}"
            try:
                os.rename(src, dst)
            except FileNotFoundError:
                continue
            warnings.warn(f"cache entry {key} is unreadable ({reason}); moved to {dst} "
                          "and it will be recomputed", stacklevel=3)
            return dst
        if self.has_v1_entries:
            return legacy.quarantine(self._root, key, reason)
        return None

    # ------------------------------------------------------------------ last use
    def record_use(self, keys: list[str]) -> None:
        """Log cache hits for LRU pruning (:func:`.usage.record_use`)."""
        usage.record_use(self._root, keys, self.file_mode)

    def last_used(self) -> dict[str, float]:
        """{key: last hit time} from the usage logs (:func:`.usage.last_used`)."""
        return usage.last_used(self._root)

    def compact_usage(self) -> None:
        """Merge the usage logs into one, dropping entries that are gone."""
        usage.compact(self._root, self.exists, self.file_mode)
