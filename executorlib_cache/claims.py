"""The claim protocol: who owns an in-flight entry, is it alive, taking over a lost one.

A *claim* is the entry's ``job.json``, written under the entry's claim lock
(``<cache>/.locks/<key>.lock``, flock: a holder that dies releases it).  It names
the backend, the owning driver (``{"host", "pid", "start"}``) and, once there is
one, the scheduler job.  This module is the one copy of the protocol: the
executor's ``submit()``, the poller (taking over), the backends (recording job ids,
adopting), the pool workers (confirming a ticket) and the catalog (``lost``) all
call it.  The life of an entry, as :meth:`Store.file_status` reads it::

                 claim()                 runner starts           runner writes
    (absent) ──────────────▶ queued ─────────────────▶ running ─────────────────▶ done
    pending    job.json        │        started.json       │     result.h5 | error.h5  failed
       ▲                       │                           │                        │
       │ release()             └──── owner dead, nobody ───┘                        │
       │ (cancelled before          can finish it: "lost"                            │
       │  dispatch)                       │                                          │
       │                       take_over() under the lock:                           │
       │                        * adopt: its scheduler job may still run: track it   │
       │                        * else reset_for_retry, claim afresh ──▶ queued       │
       └───────────────────────── claim() of a failed entry: reset ──▶ queued ◀──────┘
                                  (a failure is recorded, never a cache hit)

Who counts as alive (:func:`is_live`, no scheduler call):

* the owner: ``/proc`` on the same host (pid reuse caught by the start time), a
  heartbeat in ``<cache>/.drivers/`` from other hosts (``liveness.py``);
* a ``local`` entry also while the runner that started it (``started.json``) is alive
  on this host, or a worker of the dead driver lives (it may hold the call unstarted);
* a ``slurm``/``flux`` entry only through its owner: the next driver *adopts* a dead
  owner's job instead of asking the scheduler once per entry.

Why an entry is *lost* (:func:`lost_reasons`, for ``xcache ls`` and watchers): it
is not live and, if it has a scheduler job, the scheduler (asked once per backend
for all such entries) reports the job ended or no longer knows it.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .fileio import HOST
from .liveness import identity, orphan_workers, owner_alive, pid_alive
from .store import ERROR, JOB_JSON, RESULT, STARTED_JSON, TASK, Store

#: claim fields that belong to one scheduler submission (dropped when resubmitting)
SUBMISSION_FIELDS = ("queued", "job_id_f58", "adopted", "adopted_from")


class Claimant(Protocol):
    """What the claim protocol needs from a backend (``backends.base.Backend``)."""

    name: str
    #: the worker writes task.h5 itself (local); else the driver writes it at claim time
    worker_writes_task: bool

    def adopt(self, key: str, job: dict[str, Any] | None) -> bool:
        """Take over a dead owner's claim whose job may still run (under the lock)."""
        ...


# ---------------------------------------------------------------- the record
def claim_record(backend: str, meta: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The ``job.json`` of a new claim by this process, before any job exists.

    ``meta`` is the task's metadata: its function name and upstream keys are kept
    here too (a local worker writes ``task.json`` only when it starts the call, and
    ``xcache graph`` needs them before).  ``fields`` add backend details (pool,
    ticket, attempt...).
    """
    return {
        "backend": backend, "job_id": None, "owner": identity(), "submitted": time.time(),
        "function": meta.get("function"), "upstream_keys": list(meta.get("dependencies", [])),
        **fields,
    }


def read_claim(store: Store, key: str) -> dict[str, Any] | None:
    """The entry's claim, or None (none, or unreadable: treated as none)."""
    return store.read_json(key, JOB_JSON)


def write_claim(store: Store, key: str, record: dict[str, Any]) -> dict[str, Any]:
    """Replace the entry's claim atomically; returns ``record``."""
    store.write_json(key, JOB_JSON, record)
    return record


def update_claim(store: Store, key: str, record: dict[str, Any], **fields: Any
                 ) -> dict[str, Any]:
    """Write ``record`` with ``fields`` set (e.g. ``job_id`` after sbatch); the new record."""
    return write_claim(store, key, {**record, **fields})


def release(store: Store, key: str) -> None:
    """Give a claim back (a call cancelled before it ran): the entry reads
    ``pending`` again, and a later run claims it afresh."""
    try:
        os.unlink(store.path(key, JOB_JSON))
    except FileNotFoundError:
        pass


def release_if_mine(store: Store, key: str) -> None:
    """Give the claim back if this process holds it (a submit() interrupted between
    claiming and handing the task to the poller).  Under the claim lock."""
    with store.claim(key):
        job = read_claim(store, key)
        if job and job.get("owner") == identity() and not job.get("job_id"):
            release(store, key)


def adopt_record(store: Store, key: str, job: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a dead owner's claim with this process as owner (under the lock);
    ``adopted_from`` keeps who had it."""
    return update_claim(store, key, job, owner=identity(), adopted_from=job.get("owner"),
                        adopted=time.time())


def claim_token(job: dict[str, Any]) -> str:
    """8 hex digits naming one claim (its owner and when it was made).  A pool
    ticket carries the token of the claim it was written for; it is valid while
    ``job.json`` still holds that claim (``pool_queue.py``)."""
    o = job.get("owner") or {}
    raw = f"{o.get('host')}|{o.get('pid')}|{o.get('start')}|{job.get('submitted')!r}"
    return hashlib.blake2s(raw.encode(), digest_size=4).hexdigest()


# ---------------------------------------------------------------- claiming
def _finished(names: set[str] | None) -> bool:
    return names is not None and (RESULT in names or ERROR in names)


def claim(store: Store, key: str, backend: Claimant, payload: bytes,
          meta: dict[str, Any]) -> str:
    """Check-write-record under the entry's claim lock, for ``submit()``.

    Returns ``"hit"`` (a result appeared: use it), ``"attached"`` (another live
    process owns it: watch its files), ``"adopted"`` (its owner died, its scheduler
    job may still run: the backend tracks it) or ``"owned"`` (this process claimed
    it; ``task.h5`` is written unless the backend's worker writes it).  A failed or
    lost attempt is reset first: failures are not cache hits.
    Raises :class:`~executorlib_cache.errors.ClaimTimeoutError` when another live
    process holds the lock too long.
    """
    with store.claim(key):
        store.guard_entry_dir(key)  # never write or delete through a symlink
        status = store.file_status(key)
        if status == "done":
            return "hit"
        if status in ("queued", "running"):
            job = read_claim(store, key)
            if is_live(store, key, job):
                return "attached"
            if backend.adopt(key, job):
                return "adopted"  # its owner died; its scheduler job may still run
            store.reset_for_retry(key)  # its owner died without a result
        elif status == "failed":
            store.reset_for_retry(key)  # a failure is recorded, not a cache hit
        store.make_entry_dir(key)
        if not backend.worker_writes_task:  # also over a damaged/tampered one
            store.write_task(key, payload, meta)
        write_claim(store, key, claim_record(backend.name, meta))
    return "owned"


def take_over(store: Store, key: str, backend: Claimant, payload: bytes,
              meta: dict[str, Any]) -> str:
    """For a watcher whose entry's owner died: claim it under the lock.

    Returns ``"finished"`` (an outcome is there after all), ``"live"`` (someone
    still works on it), ``"adopted"`` (track its queued job) or ``"owned"`` (claimed
    afresh: dispatch it).
    """
    with store.claim(key):
        names = store.names(key) or set()
        if _finished(names):
            return "finished"
        job = read_claim(store, key)
        if is_live(store, key, job):
            return "live"
        if backend.adopt(key, job):
            return "adopted"
        store.reset_for_retry(key)
        if TASK not in names and not backend.worker_writes_task:
            store.write_task(key, payload, meta)
        write_claim(store, key, claim_record(backend.name, meta))
    return "owned"


def confirm_claim(store: Store, key: str, token: str, timeout: float,
                  **fields: Any) -> bool:
    """Under the claim lock: does ``job.json`` still hold the claim named by
    ``token`` (:func:`claim_token`), with no outcome yet?  If so, record ``fields``
    (a pool worker's job id, its log paths; ``attempt`` is set to 1 unless the
    claim already counts a retry) and return True; False when the claim was
    withdrawn or taken over, or the entry finished.  Raises
    :class:`~executorlib_cache.errors.ClaimTimeoutError` after ``timeout`` seconds."""
    with store.claim(key, timeout=timeout):
        job = read_claim(store, key)
        if not job or claim_token(job) != token or _finished(store.names(key)):
            return False
        update_claim(store, key, job, attempt=int(job.get("attempt") or 1), **fields)
    return True


# ---------------------------------------------------------------- liveness
def is_live(store: Store, key: str, job: dict[str, Any] | None) -> bool:
    """Is somebody still going to finish this claimed entry?  (No scheduler call.)

    See the module docstring for the rule per backend.
    """
    if job is None:
        return False
    if owner_alive(job.get("owner"), store.root):
        return True
    if job.get("backend", "local") != "local":
        return False  # a dead owner's scheduler job is adopted, not "live"
    started = store.read_json(key, STARTED_JSON)
    if started and started.get("host") == HOST and "pid" in started:
        return pid_alive(int(started["pid"]))
    # a worker of the dead driver may hold the call without having started it yet
    return bool(orphan_workers(job.get("owner"), store.root))


@dataclass
class ClaimView:
    """What :func:`lost_reasons` needs to know of one in-flight entry."""

    key: str
    backend: str | None
    job_id: str | None
    owner: dict[str, Any] | None
    runner_host: str | None = None
    runner_pid: int | None = None

    @classmethod
    def read(cls, store: Store, key: str) -> ClaimView:
        """From the entry's ``job.json`` and ``started.json``."""
        job = read_claim(store, key) or {}
        run = store.read_json(key, STARTED_JSON) or {}
        pid = run.get("pid")
        return cls(key, job.get("backend"), job.get("job_id"), job.get("owner"),
                   run.get("host"), pid if isinstance(pid, int) else None)

    @property
    def scheduled(self) -> bool:
        """It has a batch-scheduler job to ask about."""
        return self.backend in ("slurm", "flux") and bool(self.job_id)

    def runner_alive(self) -> bool:
        """The runner that wrote ``started.json`` is alive on this host."""
        return (self.runner_pid is not None and self.runner_host == HOST
                and pid_alive(self.runner_pid))


def lost_reasons(store: Store, views: Iterable[ClaimView], check_scheduler: bool = True
                 ) -> dict[str, str]:
    """{key: why} for the in-flight entries nobody can finish any more.

    Local entries (and cluster claims without a job id): owner and runner gone.
    Entries with a scheduler job: one status call per backend for all of them; a
    job that ended or is unknown to the scheduler (purged) without a result is
    lost.  When the scheduler cannot be asked, those entries are not called lost
    (a warning says why).  The caller should look at the files once more: a
    result may have been written while we asked.
    """
    from .schedulers import commands

    owners: dict[tuple[Any, ...], bool] = {}
    by_backend: dict[str, list[ClaimView]] = {}
    lost: dict[str, str] = {}
    for v in views:
        if v.scheduled:
            by_backend.setdefault(str(v.backend), []).append(v)
            continue
        o = v.owner or {}
        ident = (o.get("host"), o.get("pid"), o.get("start"))
        if ident not in owners:
            owners[ident] = owner_alive(v.owner, store.root)
        if owners[ident] or v.runner_alive():
            continue
        who = f"{o.get('host')}:{o.get('pid')}" if v.owner else "unknown"
        runner = f"; runner {v.runner_host}:{v.runner_pid} is gone" if v.runner_pid else ""
        lost[v.key] = f"owner process {who} is gone{runner}"
    if not check_scheduler:
        return lost
    for backend, group in by_backend.items():
        try:
            states = commands.job_states(backend, sorted({str(v.job_id) for v in group}))
        except Exception as err:  # scheduler down, command missing ...
            warnings.warn(f"could not ask {backend} for job states: {err}", stacklevel=3)
            continue
        for v in group:
            st = states.get(str(v.job_id))
            if st is None:
                lost[v.key] = f"{backend} job {v.job_id} is unknown to the scheduler"
            elif not st.active:
                lost[v.key] = f"{backend} job {v.job_id} ended ({st.state}) without a result"
    return lost


__all__ = [
    "ClaimView", "Claimant", "adopt_record", "claim", "claim_record", "claim_token",
    "confirm_claim", "is_live", "lost_reasons", "read_claim", "release", "release_if_mine",
    "take_over",
    "update_claim", "write_claim",
]
