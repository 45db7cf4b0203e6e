"""The pool queue: how a driver hands ready entries to its worker jobs (``max_workers=K``).

Shared by the driver side (``backends/pool.py``) and the workers
(``compute/pool_worker.py``); nothing else knows these names.  Layout::

    <cache>/.queue/<pool>/
      0000000042.<token>.<key>       a ready entry nobody took yet (an empty file)
      .t.<worker>.<ticket>           taken: <worker> runs that entry right now
      .exit.<worker>                 <worker> ended cleanly (JSON: why, how many tasks)
      .stop                          the driver is done: workers exit
      pool.json                      owner, backend, worker job ids (terminate_tasks_in_cache)
      workers/<worker>/              job.out, job.err, run_queue.sh of each worker job

* A ticket's ``<seq>`` orders hand-out (submission order); its ``<token>`` is the
  :func:`~executorlib_cache.claims.claim_token` of the claim it was written for, so a
  worker can tell a stale ticket (the claim was withdrawn or taken over) from a
  valid one under the entry's claim lock.
* A worker takes a ticket with ``rename(2)`` to its ``.t.`` name: exactly one caller
  succeeds (POSIX; also over NFS, where a lost reply of a retried RENAME can make
  the winner see ENOENT -- it then only skips a ticket, which the driver queues
  again after its lost-ticket checks).  One metadata operation, where a lock per
  ticket costs an open, a flock and a close per *candidate*.
* ``.t.<worker>.<ticket>`` exists exactly while the worker runs it: one ``listdir``
  of this small directory tells the driver which entries started, and after a worker
  job died, exactly which entries it lost.
* Cancelling a queued ticket is an ``unlink``: unlink and a worker's rename cannot
  both succeed, so the entry is either withdrawn or it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from .fileio import atomic_write
from .liveness import owner_alive
from .naming import decode_key, encode_key

QUEUE_DIR = ".queue"
TAKEN = ".t."
EXIT = ".exit."
STOP = ".stop"
POOL_JSON = "pool.json"
WORKERS = "workers"
#: seconds a worker waits with an empty queue before it exits (XCACHE_POOL_IDLE)
IDLE_DEFAULT = 3.0


def queue_dir(cache: str | os.PathLike[str], pool: str) -> Path:
    """``<cache>/.queue/<pool>``."""
    return Path(cache) / QUEUE_DIR / pool


def worker_dir(qdir: Path, worker: str) -> Path:
    """Where a worker job's logs and batch script go."""
    return qdir / WORKERS / worker


def ticket_name(seq: int, token: str, key: str) -> str:
    """``<seq:010d>.<token>.<enc>``: sorted by ``seq``; ``token`` names the claim;
    ``<enc>`` is the key as the store writes it in file names (``/`` as ``%2F``)."""
    return f"{seq:010d}.{token}.{encode_key(key)}"


def ticket_key(ticket: str) -> str:
    """The entry key in a ticket name."""
    return decode_key(ticket.split(".", 2)[2])


def ticket_token(ticket: str) -> str:
    """The claim token in a ticket name."""
    return ticket.split(".", 2)[1]


def is_ticket(name: str) -> bool:
    """A queued ticket (its name starts with the sequence number)."""
    return name[:1].isdigit()


def taken_name(worker: str, ticket: str) -> str:
    """``.t.<worker>.<ticket>``: the name a worker renames a ticket to."""
    return f"{TAKEN}{worker}.{ticket}"


def parse_taken(name: str) -> tuple[str, str] | None:
    """``.t.<worker>.<ticket>`` -> (worker, ticket); None for another name."""
    if not name.startswith(TAKEN):
        return None
    worker, _, ticket = name[len(TAKEN):].partition(".")
    return (worker, ticket) if ticket else None


def unlink(path: Path | str) -> bool:
    """Remove a file; False if it was not there (a ticket already taken)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def listing(qdir: str | os.PathLike[str]) -> tuple[set[str], dict[str, str], set[str]]:
    """One ``listdir``: (queued tickets, {ticket: worker that took it}, workers that
    said goodbye).  A missing queue reads as empty."""
    queued: set[str] = set()
    taken: dict[str, str] = {}
    exited: set[str] = set()
    try:
        names = os.listdir(qdir)
    except FileNotFoundError:
        names = []
    for n in names:
        if is_ticket(n):
            queued.add(n)
        elif n.startswith(EXIT):
            exited.add(n[len(EXIT):])
        else:
            t = parse_taken(n)
            if t is not None:
                taken[t[1]] = t[0]
    return queued, taken, exited


def write_json(path: Path, info: dict[str, Any], mode: int = 0o600) -> None:
    """``pool.json`` / ``.exit.<worker>``, atomically."""
    atomic_write(path, json.dumps(info, default=str).encode(), mode)


def stop(qdir: Path, mode: int = 0o600) -> None:
    """Tell the workers of one queue to exit (``.stop``); best effort."""
    try:
        atomic_write(qdir / STOP, b"", mode)
    except OSError:
        pass


# ---------------------------------------------------------------- whole cache
def pools(cache_root: str | os.PathLike[str], backend: str | None = None
          ) -> list[tuple[Path, dict[str, Any]]]:
    """The pool queues of a cache with their ``pool.json`` (of one backend, or all)."""
    try:
        dirs = list((Path(cache_root) / QUEUE_DIR).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for pool in dirs:
        try:
            info = json.loads((pool / POOL_JSON).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and (backend is None or info.get("backend") == backend):
            out.append((pool, info))
    return out


def remove_dir(path: Path) -> None:
    """rmtree; once more if a worker wrote its goodbye in between (best effort)."""
    for _ in range(2):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.05)


def sweep_pools(cache_root: str | os.PathLike[str]) -> list[str]:
    """Remove the queues of drivers that are gone and left nothing to do: no ticket
    waiting (a detached driver's tickets are still work for its workers) and none
    taken (a worker still runs it).  Their workers, if any, see the queue gone and
    exit.  (A pool that lost a worker is kept by its driver for the logs, until
    the next driver on this cache sweeps it.)  Returns the pools removed."""
    base = Path(cache_root) / QUEUE_DIR
    try:
        dirs = list(base.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for pool in dirs:
        try:
            names = os.listdir(pool)
        except OSError:
            continue
        if any(is_ticket(n) or n.startswith(TAKEN) for n in names):
            continue
        try:
            info = json.loads((pool / POOL_JSON).read_text())
        except (OSError, ValueError):
            info = {}
        if isinstance(info, dict) and owner_alive(info.get("owner"), Path(cache_root)):
            continue
        if not info and time.time() - pool.stat().st_mtime < 60:
            continue  # a pool being created right now has no pool.json for a moment
        remove_dir(pool)
        removed.append(pool.name)
    return removed


def pool_worker_ids(cache_root: str | os.PathLike[str], backend: str | None = None
                    ) -> dict[str, list[str]]:
    """Worker job ids of every pool queue in a cache, by backend (``pool.json``)."""
    out: dict[str, list[str]] = {}
    for _pool, info in pools(cache_root, backend):
        ids = [str(j) for j in (info.get("workers") or {}).values() if j]
        if ids:
            out.setdefault(str(info.get("backend")), []).extend(ids)
    return out


def stop_pools(cache_root: str | os.PathLike[str], backend: str | None = None) -> None:
    """Tell the workers of every pool of the cache to exit (``.stop`` in each queue)."""
    for pool, _info in pools(cache_root, backend):
        stop(pool)


__all__ = [
    "EXIT", "IDLE_DEFAULT", "POOL_JSON", "QUEUE_DIR", "STOP", "TAKEN", "WORKERS",
    "is_ticket", "listing", "parse_taken", "pool_worker_ids", "pools", "queue_dir",
    "remove_dir", "stop", "stop_pools", "sweep_pools", "taken_name", "ticket_key",
    "ticket_name", "ticket_token", "unlink", "worker_dir", "write_json",
]
