"""The claim protocol: who owns an in-flight entry, is it alive, taking over a lost one.

A *claim* is the entry's ``<enc>@claim`` file (JSON), written under the lock of
the key's stripe (``store.claim(key)``: a byte-range lock in ``<cache>/.lock``, a
holder that dies releases it).  It names the backend, the owning driver
(``{"host", "pid", "start"}``), once there is one the scheduler job, and once a
batch runner starts, ``started`` and ``runner``.  It is removed when the outcome
is written (under the lock, so a late update never brings it back).  This module
is the one copy of the protocol: the executor's ``submit()``, the poller (taking
over), the backends (recording job ids, adopting), the pool workers (confirming a
ticket) and the catalog (``lost``) all call it.  The life of an entry, as
:meth:`Store.file_status` reads it::

                 claim()                 runner starts           runner writes
    (absent) ──────────────▶ queued ─────────────────▶ running ─────────────────▶ done
    pending    @claim          │    claim["started"]       │    <enc>.h5 | @failed.h5   failed
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
* a ``local`` entry also while a worker of the dead driver lives (it finishes the
  calls it holds, then exits);
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
from .store import DONE, FAILED, TASK, Store

#: claim fields that belong to one scheduler submission (dropped when resubmitting)
SUBMISSION_FIELDS = ("queued", "job_id_f58", "adopted", "adopted_from")


class Claimant(Protocol):
    """What the claim protocol needs from a backend (``backends.base.Backend``)."""

    name: str
    #: the worker is handed the call (local); else the driver writes ``@task.h5`` at
    #: claim time, for a runner in a batch job
    worker_writes_task: bool

    def adopt(self, key: str, job: dict[str, Any] | None) -> bool:
        """Take over a dead owner's claim whose job may still run (under the lock)."""
        ...


# ---------------------------------------------------------------- the record
def claim_record(backend: str, meta: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The claim record of a new claim by this process, before any job exists.

    ``meta`` is the task's metadata: its function name and upstream keys are kept
    here too (a local call has no task file, and ``xcache ls``/``graph`` need them
    while it is in flight).  ``fields`` add backend details (pool, ticket,
    attempt...).
    """
    return {
        "backend": backend, "job_id": None, "owner": identity(), "submitted": time.time(),
        "function": meta.get("function"), "upstream_keys": list(meta.get("dependencies", [])),
        **fields,
    }


def read_claim(store: Store, key: str) -> dict[str, Any] | None:
    """The entry's claim, or None (none, or unreadable: treated as none)."""
    return store.read_claim(key)


def write_claim(store: Store, key: str, record: dict[str, Any]) -> dict[str, Any]:
    """Replace the entry's claim atomically, under its claim lock (re-entrant: free
    inside ``claim()``); returns ``record``."""
    with store.claim(key):
        store.write_claim(key, record)
    return record


#: claim fields a batch runner adds (kept when the driver updates its record)
RUNNER_FIELDS = ("started", "runner")


def update_claim(store: Store, key: str, record: dict[str, Any], **fields: Any
                 ) -> dict[str, Any]:
    """Write ``record`` with ``fields`` set (e.g. ``job_id`` after sbatch), under the
    claim lock, keeping what the runner added (``started``); returns the new
    record.  Nothing is written once the entry finished or its claim was removed
    (a fast job may finish before its driver records the job id)."""
    new = {**record, **fields}
    with store.claim(key):
        on_disk = store.read_claim(key)
        if on_disk is None or store.finished(key):
            return new
        for f in RUNNER_FIELDS:
            if f in on_disk and f not in fields:
                new[f] = on_disk[f]
        store.write_claim(key, new)
    return new


def mark_started(store: Store, key: str, runner: dict[str, Any], started: float
                 ) -> dict[str, Any] | None:
    """A batch runner records that the call started (``started``, ``runner``: host,
    pid, job id) in the claim, under the lock; the entry then reads ``running``.
    Returns the claim record (the runner keeps it in the outcome's ``claim``), or
    None when there is no claim (run by hand) or the entry already finished."""
    with store.claim(key):
        job = store.read_claim(key)
        if job is None or store.finished(key):
            return None
        job = {**job, "started": started, "runner": runner}
        store.write_claim(key, job)
    return job


def release(store: Store, key: str) -> None:
    """Give a claim back (a call cancelled before it ran): the entry reads
    ``pending`` (cluster: its task file stays) or absent again, and a later run
    claims it afresh."""
    store.release_claim(key)


def record_failure(store: Store, key: str, payload: bytes, meta: dict[str, Any],
                   task: tuple[bytes, dict[str, Any]]) -> None:
    """Record a failure the function did not raise (a death, a failed upstream) as
    the entry's ``@failed.h5``, with the claim in its metadata (which job it was);
    the task file and a killed writer's temp files go too.  Nothing is written when
    the claim is gone (the entry was removed meanwhile).  When even that cannot be
    written (disk full), the claim is removed instead (an unlink needs no space):
    the failure then lives only in the future, and a later run retries the call."""
    try:
        claim = read_claim(store, key)
        if claim is not None:
            store.write_outcome(key, "failed", payload, {**meta, "claim": claim},
                                task=task, task_file=True)
            store.sweep_temps(key)
    except OSError:
        try:
            release(store, key)
            store.sweep_temps(key)
        except OSError:
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
    the claim file still holds that claim (``pool_queue.py``)."""
    o = job.get("owner")
    if not isinstance(o, dict):
        o = {}
    raw = f"{o.get('host')}|{o.get('pid')}|{o.get('start')}|{job.get('submitted')!r}"
    return hashlib.blake2s(raw.encode(), digest_size=4).hexdigest()


# ---------------------------------------------------------------- claiming
def claim(store: Store, key: str, backend: Claimant, payload: bytes,
          meta: dict[str, Any], recompute: bool = False) -> str:
    """Check-write-record under the entry's claim lock, for ``submit()``.

    Returns ``"hit"`` (a result appeared: use it), ``"attached"`` (another live
    process owns it: watch its files), ``"adopted"`` (its owner died, its scheduler
    job may still run: the backend tracks it) or ``"owned"`` (this process claimed
    it; ``@task.h5`` is written unless the backend's worker is handed the call).
    A failed or lost attempt is replaced: failures are not cache hits.  With
    ``recompute`` a done entry is taken out (its file renamed away: a reader sees
    the old result or none, never half) and claimed afresh.  Lookups
    under the lock for a new key: 3 (done, failed, claim).
    Raises :class:`~executorlib_cache.errors.ClaimTimeoutError` when another live
    process holds the lock too long.
    """
    with store.claim(key):
        finished = store.finished(key)
        if finished == DONE and recompute:
            store.discard(key, DONE)
            finished = None
        if finished == DONE:
            return "hit"
        recovering = finished == FAILED
        if finished is None:
            job = read_claim(store, key)
            if job is not None:
                if is_live(store, key, job):
                    return "attached"
                if backend.adopt(key, job):
                    return "adopted"  # its owner died; its scheduler job may still run
                recovering = True  # its owner died without a result: replaced below
        if recovering:  # what a killed writer left: temp files, an old task file
            store.sweep_temps(key)
            if backend.worker_writes_task:
                store.discard(key, TASK)
        if not backend.worker_writes_task:  # also over a damaged/tampered one
            store.write_task(key, payload, meta)
        write_claim(store, key, claim_record(backend.name, meta,
                                             **getattr(backend, "claim_fields", {})))
        if finished == FAILED:  # a failure is recorded, not a cache hit; removed
            store.reset_for_retry(key, keep_claim=True)  # last: a crash leaves it failed
    return "owned"


def take_over(store: Store, key: str, backend: Claimant, payload: bytes,
              meta: dict[str, Any]) -> str:
    """For a watcher whose entry's owner died: claim it under the lock.

    Returns ``"finished"`` (an outcome is there after all), ``"live"`` (someone
    still works on it), ``"adopted"`` (track its queued job) or ``"owned"`` (claimed
    afresh: dispatch it).
    """
    with store.claim(key):
        if store.finished(key):
            return "finished"
        job = read_claim(store, key)
        if is_live(store, key, job):
            return "live"
        if backend.adopt(key, job):
            return "adopted"
        store.sweep_temps(key)
        if backend.worker_writes_task:
            store.discard(key, TASK)
        if not backend.worker_writes_task and not store.has(key, TASK):
            store.write_task(key, payload, meta)
        write_claim(store, key, claim_record(backend.name, meta,
                                             **getattr(backend, "claim_fields", {})))
    return "owned"


def confirm_claim(store: Store, key: str, token: str, timeout: float,
                  **fields: Any) -> dict[str, Any] | None:
    """Under the claim lock: does the claim file still hold the claim named by
    ``token`` (:func:`claim_token`), with no outcome yet?  If so, record ``fields``
    (a pool worker's job id, its log paths; ``attempt`` is set to 1 unless the
    claim already counts a retry) and return the new record; None when the claim
    was withdrawn or taken over, or the entry finished.  Raises
    :class:`~executorlib_cache.errors.ClaimTimeoutError` after ``timeout`` seconds."""
    with store.claim(key, timeout=timeout):
        job = read_claim(store, key)
        if not job or claim_token(job) != token or store.finished(key):
            return None
        return write_claim(store, key, {**job, "attempt": int(job.get("attempt") or 1),
                                        "started": time.time(), **fields})


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
    # a worker of the dead driver finishes the calls it holds (started or not)
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
        """From the entry's claim file (``runner``: what a batch runner recorded)."""
        job = read_claim(store, key) or {}
        run: dict[str, Any] = job.get("runner") or {}
        if not isinstance(run, dict):
            run = {}
        pid = run.get("pid")
        owner = job.get("owner")
        return cls(key, job.get("backend"), job.get("job_id"),
                   owner if isinstance(owner, dict) else None,
                   run.get("host"), pid if isinstance(pid, int) else None)

    @property
    def scheduled(self) -> bool:
        """It has a batch-scheduler job to ask about."""
        return self.backend in ("slurm", "flux") and bool(self.job_id)

    def runner_alive(self) -> bool:
        """The runner recorded in the claim is alive on this host."""
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
    queued: list[ClaimView] = []  # a dead driver's calls that may wait in a pool queue
    lost: dict[str, str] = {}
    for v in views:
        if v.scheduled:
            by_backend.setdefault(str(v.backend), []).append(v)
            continue
        o = v.owner or {}
        ident = (repr(o.get("host")), repr(o.get("pid")), repr(o.get("start")))
        if ident not in owners:  # a dead driver's workers finish the calls they hold
            owners[ident] = owner_alive(v.owner, store.root) or (
                v.backend in (None, "local") and bool(orphan_workers(v.owner, store.root)))
        if owners[ident] or v.runner_alive():
            continue
        who = f"{o.get('host')}:{o.get('pid')}" if v.owner else "unknown"
        runner = f"; runner {v.runner_host}:{v.runner_pid} is gone" if v.runner_pid else ""
        lost[v.key] = f"owner process {who} is gone{runner}"
        if v.backend in ("slurm", "flux"):  # perhaps a ticket in a pool queue
            queued.append(v)
    if not check_scheduler:
        return lost
    _pools_still_serving(store, queued, lost)
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


def _pools_still_serving(store: Store, queued: list[ClaimView], lost: dict[str, str]
                         ) -> None:
    """A dead driver's queued tickets are not lost while a worker job of their pool
    still runs (it drains the queue).  The pool of a ticket is found by listing the
    cache's pool queues (a first attempt's claim is the one ``submit()`` wrote, with
    no pool in it); one status call per backend for the worker jobs named in each
    ``pool.json``."""
    from .pool_queue import is_ticket, pools, ticket_key
    from .schedulers import commands

    for backend in sorted({str(v.backend) for v in queued}):
        wanted_keys = {v.key for v in queued if v.backend == backend}
        ids: dict[str, list[str]] = {}  # pool -> its worker job ids
        waiting: dict[str, str] = {}  # key -> pool whose queue holds its ticket
        for p, info in pools(store.root, backend):
            ids[p.name] = [str(j) for j in (info.get("workers") or {}).values() if j]
            try:
                names = os.listdir(p)
            except OSError:
                continue
            for n in names:
                if is_ticket(n) and (k := ticket_key(n)) in wanted_keys:
                    waiting[k] = p.name
        wanted = sorted({j for pool in set(waiting.values()) for j in ids.get(pool, [])})
        if not wanted:
            continue
        try:
            states = commands.job_states(backend, wanted)
        except Exception:  # noqa: BLE001 -- cannot ask: keep the owner-gone verdict
            continue
        serving = {pool for pool, jobs in ids.items()
                   if any((st := states.get(j)) is not None and st.active for j in jobs)}
        for key, pool in waiting.items():
            if pool in serving:
                lost.pop(key, None)


__all__ = [
    "ClaimView", "Claimant", "adopt_record", "claim", "claim_record", "claim_token",
    "confirm_claim", "is_live", "lost_reasons", "mark_started", "read_claim",
    "record_failure", "release",
    "release_if_mine",
    "take_over",
    "update_claim", "write_claim",
]
