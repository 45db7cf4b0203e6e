"""The cache directory *is* the database: one directory per entry.

Layout (format version 1, see ``docs/format.md``)::

    <cache>/
      <key>/                 one entry; the directory name is the key (empty = absent)
        task.h5              payload: cloudpickle((fn, args, kwargs)); attrs meta/format/kind/hmac
        task.json            the same human metadata, plain JSON (fast listing)
        job.json             claim: which backend/driver runs it, scheduler job id
        started.json         written by the runner when the function starts
        result.h5            success: pickled return value   } exactly one of these
        error.h5             failure: pickled exception       } means "finished"
        outcome.json         summary of result/error (status, times, host, job id)
      .locks/<key>.lock      claim locks (filelock; released by the kernel on death)
      .drivers/<host>-<pid>  driver heartbeats (liveness across login nodes)
      .trash/ .corrupt/      entries being removed / moved aside

Rules kept here: every file is written to a temp name in the same directory
and ``os.replace``d, so a reader sees the old state or the new, never half;
HDF5 files are written once, opened with ``locking=False``; nothing is
unpickled to list or describe an entry.
"""

from __future__ import annotations

import hashlib
import hmac as hmac_mod
import json
import os
import random
import shutil
import stat
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from . import fileio
from .errors import ClaimTimeoutError, CorruptEntryError, TamperedEntryError
from .fileio import (
    _unlink,
    atomic_write,
    read_h5,
    write_h5,
)

FORMAT_VERSION = 1
#: seconds to wait for another process's claim of the same entry
CLAIM_TIMEOUT = float(os.environ.get("XCACHE_CLAIM_TIMEOUT", "60"))

TASK, RESULT, ERROR = "task.h5", "result.h5", "error.h5"
TASK_JSON, JOB_JSON, STARTED_JSON, OUTCOME_JSON = (
    "task.json",
    "job.json",
    "started.json",
    "outcome.json",
)
#: every status an entry can have, as shown by ``xcache ls``
STATUSES = ("pending", "queued", "running", "done", "failed", "lost", "corrupt", "tampered")


def _secret_from_env() -> bytes | None:
    if os.supports_bytes_environ:  # any bytes (a worker gets a binary secret= this way)
        b = os.environb.get(b"XCACHE_SECRET")
    else:
        b = os.environ.get("XCACHE_SECRET", "").encode()
    if b:
        return b
    f = os.environ.get("XCACHE_SECRET_FILE")
    if f:
        return Path(f).read_bytes().strip()
    return None


class ClaimLock:
    """The per-entry claim lock: a FileLock whose timeout is a clear error.

    Also the ``claim:held`` crash point (only with ``XCACHE_CRASH_AT``).
    """

    def __init__(self, lock: FileLock) -> None:
        self.lock = lock

    def __enter__(self) -> ClaimLock:
        try:
            self.lock.acquire()
        except Timeout as e:
            raise ClaimTimeoutError(
                f"{self.lock.lock_file} has been held by another process for more than "
                f"{self.lock.timeout:.0f} s: a live driver is stuck inside its claim of "
                "this entry (a dead one would have released it)"
            ) from e
        if fileio._CRASH_AT is not None:
            fileio._crash_point("claim", "held")
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


@dataclass
class Outcome:
    """A finished entry: ``status`` is ``"done"`` or ``"failed"``."""

    status: str
    payload: bytes
    meta: dict[str, Any]


class Store:
    """Read and write entries of one cache directory.

    ``mode``/``file_mode`` default to 0700/0600 (env ``XCACHE_DIR_MODE`` /
    ``XCACHE_FILE_MODE`` as octal strings override); ``secret`` (or env
    ``XCACHE_SECRET``/``XCACHE_SECRET_FILE``) signs every file with an HMAC.
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
        if isinstance(secret, str):
            secret = secret.encode()
        self.secret: bytes | None = secret if secret is not None else _secret_from_env()
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"cache directory {self.root} exists and is not a directory")
        if create:
            self.prepare()
        elif create is not None and not self.root.is_dir():
            raise FileNotFoundError(f"cache directory {self.root} does not exist")

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        """Create the cache directory and its subdirectories (``create=True`` does this
        at construction; ``create=None`` leaves it to the caller, so that a refused
        configuration leaves nothing behind).  Raises ``PermissionError`` when the
        directory cannot be created or written."""
        try:
            self.root.mkdir(mode=self.dir_mode, parents=True, exist_ok=True)
            for sub in (".locks", ".drivers", ".trash", ".corrupt", ".tmp"):
                (self.root / sub).mkdir(mode=self.dir_mode, exist_ok=True)
        except OSError as e:
            raise PermissionError(
                f"cache directory {self.root} cannot be created: {e.strerror}"
            ) from e
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise PermissionError(f"cache directory {self.root} is not writable")
        st = self.root.stat()
        # write access for group/others beyond what dir_mode (option or env) asked for
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) & ~self.dir_mode:
            warnings.warn(
                f"cache directory {self.root} is writable by group/others: anyone who can "
                "write there can plant pickles this cache will load (chmod 700, or set "
                "XCACHE_SECRET to sign entries)",
                stacklevel=3,
            )

    # ------------------------------------------------------------------ paths
    def entry_dir(self, key: str) -> Path:
        """``<cache>/<key>``: the directory of an entry."""
        return self.root / key

    def path(self, key: str, name: str) -> Path:
        """``<cache>/<key>/<name>``: one file of an entry."""
        return self.root / key / name

    def claim(self, key: str, timeout: float | None = None) -> ClaimLock:
        """The per-entry lock around check-write-submit-record.

        flock-based: a holder that dies releases it (no stale locks); waiting is
        bounded by ``timeout`` (default ``XCACHE_CLAIM_TIMEOUT`` or 60 s), then a
        ``TimeoutError`` says so.
        """
        lock = FileLock(f"{self._root}/.locks/{key}.lock",
                        timeout=CLAIM_TIMEOUT if timeout is None else timeout,
                        mode=self.file_mode)
        return ClaimLock(lock)

    # ------------------------------------------------------------------ writing
    def _write_bytes(self, path: Path | str, data: bytes) -> None:
        atomic_write(path, data, self.file_mode)

    def write_json(self, key: str, name: str, obj: dict[str, Any]) -> None:
        """Write a small JSON file of an entry atomically, with the store's file mode."""
        self._write_bytes(self.path(key, name), json.dumps(obj, default=str).encode())

    def _sign(self, kind: str, meta_json: str, payload: bytes) -> str:
        assert self.secret is not None
        h = hmac_mod.new(self.secret, digestmod=hashlib.sha256)
        for part in (kind.encode(), b"\0", meta_json.encode(), b"\0", payload):
            h.update(part)
        return h.hexdigest()

    def _write_h5(self, path: Path, kind: str, payload: bytes, meta: dict[str, Any]) -> None:
        meta_json = json.dumps({**meta, "kind": kind}, default=str)
        sig = self._sign(kind, meta_json, payload) if self.secret is not None else None
        write_h5(path, meta_json, payload, sig, self.file_mode, FORMAT_VERSION)

    def guard_entry_dir(self, key: str) -> None:
        """An entry must be a real directory inside the cache.  A symlink (or a file) in
        its place is moved aside with a warning, so nothing is written or deleted
        through it, wherever it points."""
        try:
            st = os.lstat(f"{self._root}/{key}")
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory"
            self.quarantine(key, f"the entry is {what}; it is not followed")

    def make_entry_dir(self, key: str) -> None:
        """The directory of an entry; on its own (no files) it reads as absent."""
        try:
            os.mkdir(self.entry_dir(key), self.dir_mode)
        except FileExistsError:
            pass

    def write_task(self, key: str, payload: bytes, meta: dict[str, Any]) -> None:
        """task.h5 (the truth) then task.json (its readable summary)."""
        meta = {**meta, "format": FORMAT_VERSION, "key": key}
        self._write_h5(self.path(key, TASK), "task", payload, meta)
        self._write_bytes(self.path(key, TASK_JSON), json.dumps(meta, default=str).encode())

    def create_entry(self, key: str, payload: bytes, meta: dict[str, Any]) -> None:
        """The entry directory and its task (``task.h5`` + ``task.json``)."""
        self.make_entry_dir(key)
        self.write_task(key, payload, meta)

    def write_outcome(
        self, key: str, status: str, payload: bytes, meta: dict[str, Any]
    ) -> None:
        """Record a finished call; the .h5 is the truth, outcome.json its summary."""
        if status not in ("done", "failed"):
            raise ValueError(f"status must be 'done' or 'failed', not {status!r}")
        meta = {**meta, "status": status, "key": key, "format": FORMAT_VERSION,
                "size": len(payload)}
        self._write_h5(self.path(key, RESULT if status == "done" else ERROR), status,
                       payload, meta)
        try:
            self.write_json(key, OUTCOME_JSON, meta)
        except OSError:
            pass  # the summary is a convenience; the .h5 above is what counts

    def reset_for_retry(self, key: str) -> None:
        """Forget a failed/lost attempt; error.h5 goes last so a crash leaves 'failed'.

        Temp files a killed writer left behind (``.<name>.<host>-<pid>-<rand>.tmp``)
        go too: nobody holds this claim any more, so nobody is writing them.
        """
        try:
            with os.scandir(self.entry_dir(key)) as it:
                stale = [e.path for e in it if e.name[0] == "." and e.name.endswith(".tmp")]
        except OSError:
            stale = []
        for path in stale:
            _unlink(path)
        for name in (STARTED_JSON, JOB_JSON, OUTCOME_JSON, ERROR):
            _unlink(self.path(key, name))

    # ------------------------------------------------------------------ reading
    def read_json(self, key: str, name: str) -> dict[str, Any] | None:
        """A JSON file of an entry as a dict; None when missing, unreadable or not an object."""
        try:
            with open(self.path(key, name), "rb") as f:
                data = json.loads(f.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _read_h5(self, path: Path | str, kind: str | tuple[str, ...], key: str | None = None
                 ) -> tuple[bytes, dict[str, Any]]:
        meta_json, payload, sig = read_h5(path, with_signature=self.secret is not None)
        try:
            meta = json.loads(meta_json)
            if not isinstance(meta, dict):
                raise ValueError("meta is not a JSON object")
        except ValueError as e:
            raise CorruptEntryError(f"{path}: incomplete entry file ({e})") from e
        kinds = (kind,) if isinstance(kind, str) else kind
        fmt = meta.get("format")
        if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
            raise CorruptEntryError(
                f"{path}: written by format version {fmt!r}; this version reads "
                f"<= {FORMAT_VERSION}"
            )
        file_kind = meta.get("kind")
        if file_kind not in kinds:
            raise CorruptEntryError(f"{path}: kind {file_kind!r}, expected {kinds}")
        if self.secret is not None and (
            sig is None
            or not hmac_mod.compare_digest(sig, self._sign(file_kind, meta_json, payload))
        ):
            raise TamperedEntryError(
                f"{path}: signature does not match XCACHE_SECRET; refusing to load it"
            )
        if key is not None and meta.get("key", key) != key:
            # a valid file of another entry copied here: with a secret that is a replay
            # (the signature covers the key), without one a mix-up; never a result of this key
            cls = TamperedEntryError if self.secret is not None else CorruptEntryError
            raise cls(f"{path}: belongs to entry {meta.get('key')!r}, not {key!r}")
        return payload, meta

    def read_task(self, key: str) -> tuple[bytes, dict[str, Any]]:
        """``(payload, meta)`` of ``task.h5``; raises ``FileNotFoundError``,
        :class:`CorruptEntryError` or :class:`TamperedEntryError`.
        """
        return self._read_h5(self.path(key, TASK), "task", key)

    def has_result(self, key: str) -> bool:
        """``result.h5`` exists (one ``stat``; the cheapest cache-hit test)."""
        return os.path.exists(f"{self._root}/{key}/{RESULT}")

    def touch_result(self, key: str) -> None:
        """Mark a result as used (mtime), so LRU pruning keeps what re-runs still read;
        atime is unreliable on HPC file systems (noatime, relatime)."""
        try:
            os.utime(f"{self._root}/{key}/{RESULT}")
        except OSError:
            pass  # a read-only shared cache is fine to read from

    def read_outcome(self, key: str) -> Outcome | None:
        """The finished state of an entry, or None if it has not finished."""
        for name, status in ((RESULT, "done"), (ERROR, "failed")):
            try:
                # str paths: pathlib costs ~10 us a join, noticeable at 10,000 hits
                payload, meta = self._read_h5(f"{self._root}/{key}/{name}", status, key)
            except FileNotFoundError:
                continue
            return Outcome(status, payload, meta)
        return None

    def names(self, key: str) -> set[str] | None:
        """The files of an entry (None if there is no such entry)."""
        try:
            return set(os.listdir(f"{self._root}/{key}"))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def file_status(self, key: str, names: set[str] | None = None) -> str | None:
        """Status from which files exist (no scheduler, no unpickling)."""
        if names is None:
            names = self.names(key)
        if names is None:
            return None
        if RESULT in names:
            return "done"
        if ERROR in names:
            return "failed"
        if STARTED_JSON in names:
            return "running"
        if JOB_JSON in names:
            return "queued"  # claimed; a local worker writes task.h5 when it starts
        if TASK in names:
            return "pending"
        return None  # an empty directory: creation was interrupted, nothing to see

    def keys(self) -> Iterator[str]:
        """Every entry name of the cache (directories not starting with ``.``)."""
        try:
            it = os.scandir(self.root)
        except FileNotFoundError:
            return
        with it:
            for e in it:
                if not e.name.startswith(".") and e.is_dir(follow_symlinks=False):
                    yield e.name

    # ------------------------------------------------------------------ removing
    def remove(self, key: str) -> bool:
        """Atomically take an entry out of the cache (rename, then delete)."""
        src = self.entry_dir(key)
        dst = self.root / ".trash" / f"{key}.{os.getpid()}-{random.getrandbits(40):010x}"
        try:
            os.rename(src, dst)
        except FileNotFoundError:
            return False
        shutil.rmtree(dst, ignore_errors=True)
        return True

    def quarantine(self, key: str, reason: str) -> Path | None:
        """Move a corrupt entry aside (kept for inspection) so it reads as a miss."""
        dst = self.root / ".corrupt" / f"{key}.{int(time.time())}-{random.getrandbits(24):06x}"
        try:
            os.rename(self.entry_dir(key), dst)
        except FileNotFoundError:
            return None
        warnings.warn(f"cache entry {key} is unreadable ({reason}); moved to {dst} and "
                      "it will be recomputed", stacklevel=3)
        return dst

    def entry_size(self, key: str) -> int:
        """Bytes of the entry's files (apparent size, not blocks)."""
        total = 0
        try:
            with os.scandir(self.entry_dir(key)) as it:
                for e in it:
                    try:
                        total += e.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        pass
        except FileNotFoundError:
            return 0
        return total


