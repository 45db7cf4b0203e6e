"""Who owns an in-flight entry, and is that process still alive?

A claim (``<enc>@claim``) names its owner as ``{"host", "pid", "start"}``.  On the
same host we ask ``/proc`` (pid reuse is caught by the start time); on another
host (a second login node sharing the file system) we trust a heartbeat file
that every live driver touches in ``<cache>/.drivers/``.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from pathlib import Path
from typing import Any

from .fileio import HOST

HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_STALE = 30.0


def _proc_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot, or None if gone/zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    except OSError:
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()


def identity(pid: int | None = None) -> dict[str, Any]:
    """``{"host", "pid", "start"}`` of ``pid`` (default: this process)."""
    if pid is None:
        return dict(_own_identity(os.getpid()))
    return {"host": HOST, "pid": pid, "start": _proc_start(pid)}


@functools.lru_cache(maxsize=1)
def _own_identity(pid: int) -> dict[str, Any]:
    """Cached: a claim per submit would otherwise read /proc each time."""
    return {"host": HOST, "pid": pid, "start": _proc_start(pid)}


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Is process ``pid`` alive (not a zombie) on this host, and the same process
    (``start`` from :func:`identity` guards against pid reuse)?
    """
    now = _proc_start(pid)
    if now is None:
        if not os.path.exists("/proc/self/stat"):  # no /proc: best effort
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        return False
    return start is None or now == start


def owner_pid(owner: Any) -> int | None:
    """The pid named by a claim's ``owner`` record, or None when the record is not a
    ``{"host": str, "pid": int, ...}`` object (a hand-edited or foreign claim: its
    owner counts as gone, so the entry is taken over, never a crash)."""
    if not isinstance(owner, dict):
        return None
    pid = owner.get("pid")
    if isinstance(pid, bool):
        return None
    if isinstance(pid, str) and pid.isdigit():
        pid = int(pid)
    return pid if isinstance(pid, int) and pid > 0 else None


def heartbeat_path(cache_root: Path, owner: dict[str, Any]) -> Path:
    """``<cache>/.drivers/<host>-<pid>``: the heartbeat file of a driver."""
    return cache_root / ".drivers" / f"{owner.get('host')}-{owner.get('pid')}"


def owner_alive(owner: dict[str, Any] | None, cache_root: Path) -> bool:
    """True while the process named by ``owner`` may still act on its claims."""
    pid = owner_pid(owner)
    if owner is None or pid is None or not isinstance(owner.get("host"), str):
        return False
    if owner.get("host") == HOST:
        start = owner.get("start")
        return pid_alive(pid, start if isinstance(start, str) else None)
    try:
        age = time.time() - heartbeat_path(cache_root, owner).stat().st_mtime
    except FileNotFoundError:
        return False
    return age < HEARTBEAT_STALE


class Heartbeat:
    """Touch ``.drivers/<host>-<pid>`` while a driver runs (for other hosts' eyes)."""

    def __init__(self, cache_root: Path, mode: int = 0o600) -> None:
        self.path = heartbeat_path(cache_root, identity())
        self.mode = mode
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Touch now, then every ``HEARTBEAT_INTERVAL`` (5 s) in a daemon thread
        (a second call does nothing)."""
        if self._thread is not None:
            return
        self._touch()
        self._thread = threading.Thread(target=self._run, name="xcache-heartbeat", daemon=True)
        self._thread.start()

    def _touch(self) -> None:
        try:
            self.path.touch(mode=self.mode)
            os.utime(self.path)
        except OSError:
            pass

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL):
            self._touch()

    def stop(self) -> None:
        """Stop touching and remove the file (best effort)."""
        self._stop.set()
        try:
            self.path.unlink()
        except OSError:
            pass


def local_runner(workers_dir: str | None, key: str) -> int | None:
    """The pid of the local worker on this host running ``key`` now: found in its
    ``<workers_dir>/<pid>.running`` file (``compute/worker.py``), or None."""
    if not workers_dir:
        return None
    try:
        names = os.listdir(workers_dir)
    except OSError:
        return None
    want = key.encode() + b"\n"
    for name in names:
        if not name.endswith(".running"):
            continue
        try:
            with open(f"{workers_dir}/{name}", "rb") as f:
                if f.read() == want:
                    pid = int(name.split(".")[0])
                    return pid if pid_alive(pid) else None
        except (OSError, ValueError):
            continue
    return None


def orphan_workers(owner: dict[str, Any] | None, cache_root: Path) -> list[int]:
    """Local worker processes of a dead driver that are still alive on this host.

    A driver killed right after handing a task to a worker leaves a ~1 ms window
    before the worker records ``started`` in the claim; such a worker finishes its task
    (and then exits), so while one lives its driver's claims are not abandoned.
    """
    pid = owner_pid(owner)
    if owner is None or pid is None or owner.get("host") != HOST:
        return []
    want = [b"executorlib_cache.compute.worker", str(cache_root).encode(), str(pid).encode()]
    found = []
    try:
        procs = os.listdir("/proc")
    except OSError:
        return []
    for name in procs:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().rstrip(b"\0").split(b"\0")
        except OSError:
            continue
        # worker argv: python -m executorlib_cache.compute.worker ADDR CACHE DIRMODE
        # FILEMODE DRIVER_PID
        if want[0] in argv and want[1] in argv and argv[-1] == want[2] and pid_alive(int(name)):
            found.append(int(name))
    return found
