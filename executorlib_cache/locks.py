"""Claim locks: a fixed set of stripes in one file, whatever the number of entries.

An entry's check-write-record step (``claims.claim``) holds the lock of its
*stripe* (one of 4096, chosen by the key's hash) in ``<cache>/.lock``: a POSIX
byte-range lock (``fcntl``) on byte ``stripe`` of that one file.  Why this shape:

* **no inode per entry**, and no lock file to clean up (format 1 left one
  ``.locks/<key>.lock`` per entry forever);
* **no lookup per claim**: each process opens ``.lock`` once and keeps the
  descriptor (a POSIX lock is released when *any* descriptor of the file is
  closed by its process, so exactly one is kept, per file identity);
* **released by the kernel** when the holder dies, as ``flock`` was; NFS (NLM /
  NFSv4) and Lustre (mounted with ``-o flock``) carry byte-range locks to the server;
* POSIX locks belong to a *process*, so threads of one process are kept apart by
  a ``threading.RLock`` per stripe; the byte lock is taken by the outermost holder
  and dropped when it leaves (re-entrant: ``claims.update_claim`` may run inside a
  claim).  Two keys sharing a stripe only wait for each other's few milliseconds.

Waiting polls the non-blocking lock (1 ms doubling to 50 ms) until ``timeout``,
then :class:`~.errors.ClaimTimeoutError`; the ``claim:held`` crash point fires
inside (``XCACHE_CRASH_AT``, tests/faults).
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from typing import Any

from . import fileio
from .errors import ClaimTimeoutError

#: number of stripes (bytes of ``.lock`` that can be locked)
STRIPES = 4096


class _LockFile:
    """One open descriptor of a ``.lock`` file and the per-stripe thread locks."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.guard = threading.Lock()
        self.stripes: dict[int, _Stripe] = {}

    def stripe(self, n: int) -> _Stripe:
        with self.guard:
            s = self.stripes.get(n)
            if s is None:
                s = self.stripes[n] = _Stripe()
            return s


class _Stripe:
    __slots__ = ("depth", "rlock")

    def __init__(self) -> None:
        self.rlock = threading.RLock()
        self.depth = 0  # nesting of the owning thread (only it reads or writes this)


_files: dict[tuple[int, int], _LockFile] = {}
_by_path: dict[str, _LockFile] = {}
_registry = threading.Lock()


def _reset_after_fork() -> None:
    # thread locks may have been held by threads that do not exist in the child;
    # POSIX locks are not inherited by a child, descriptors are (and stay usable)
    global _registry
    _registry = threading.Lock()
    for lf in _files.values():
        lf.guard = threading.Lock()
        lf.stripes = {}


os.register_at_fork(after_in_child=_reset_after_fork)


def lock_file(path: str, mode: int = 0o600, revalidate: bool = False) -> _LockFile:
    """The process's one descriptor of the lock file ``path`` (opened, and created
    if missing, on first use).  ``revalidate`` stats ``path`` first: a cache removed
    and made again under the same name gets its new file's descriptor.  A
    descriptor is never closed (closing any descriptor of a file drops the
    process's POSIX locks on it)."""
    lf = _by_path.get(path)
    if lf is not None and not revalidate:
        return lf
    with _registry:
        lf = _by_path.get(path)
        if lf is not None and revalidate:
            try:
                st = os.stat(path)
                if _files.get((st.st_dev, st.st_ino)) is not lf:
                    lf = None
            except FileNotFoundError:
                lf = None
        if lf is not None:
            return lf
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
        st = os.fstat(fd)
        ident = (st.st_dev, st.st_ino)
        existing = _files.get(ident)
        if existing is not None:  # the same file under another path: share the first
            _spare_fds.append(fd)  # descriptor; never close this one (see above)
            lf = existing
        else:
            lf = _files[ident] = _LockFile(fd)
        _by_path[path] = lf
        return lf


_spare_fds: list[int] = []


class StripeLock:
    """Context manager holding one stripe of a ``.lock`` file (see the module doc)."""

    __slots__ = ("lf", "n", "path", "stripe", "timeout")

    def __init__(self, lf: _LockFile, n: int, timeout: float, path: str) -> None:
        self.lf, self.n, self.timeout, self.path = lf, n, timeout, path
        self.stripe = lf.stripe(n)

    def __enter__(self) -> StripeLock:
        deadline = time.monotonic() + self.timeout
        s = self.stripe
        if not s.rlock.acquire(timeout=max(self.timeout, 0.0)):
            raise self._timeout()
        if s.depth == 0:
            try:
                self._lock_byte(deadline)
            except BaseException:
                s.rlock.release()
                raise
        s.depth += 1
        if fileio._CRASH_AT is not None and s.depth == 1:  # the outermost holder only
            fileio._crash_point("claim", "held")
        return self

    def _lock_byte(self, deadline: float) -> None:
        delay = 0.001
        while True:
            try:
                fcntl.lockf(self.lf.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self.n)
                return
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            now = time.monotonic()
            if now >= deadline:
                raise self._timeout()
            time.sleep(min(delay, deadline - now))
            delay = min(delay * 2, 0.05)

    def _timeout(self) -> ClaimTimeoutError:
        return ClaimTimeoutError(
            f"stripe {self.n} of {self.path} has been held by another process for more "
            f"than {self.timeout:.0f} s: a live driver is stuck inside its claim of an "
            "entry (a dead one would have released it)")

    def __exit__(self, *exc: Any) -> None:
        s = self.stripe
        s.depth -= 1
        try:
            if s.depth == 0:
                fcntl.lockf(self.lf.fd, fcntl.LOCK_UN, 1, self.n)
        finally:
            s.rlock.release()


def stripe_lock(lf: _LockFile, n: int, timeout: float, path: str) -> StripeLock:
    """The lock of stripe ``n`` (0 <= n < :data:`STRIPES`) of the lock file ``lf``
    (from :func:`lock_file`; ``path`` names it in messages)."""
    return StripeLock(lf, n, timeout, path)
