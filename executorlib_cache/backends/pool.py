"""Many small calls in a few scheduler jobs: ``SlurmClusterExecutor(max_workers=K)``.

Thousands of short calls as thousands of jobs swamp the scheduler, hit per-user
job limits and spend more time queued than running.  With ``max_workers=K`` the
cluster executors start at most K *worker jobs* (each sized by the executor's
``resource_dict``, submitted through the same pysqa path as one-job-per-call:
templates, sbatch's error text, the token bucket) and hand ready entries to them
through a queue directory (``pool_worker.py`` has the layout and why a rename
is the exactly-once hand-out)::

    driver (this module)                         K worker jobs (pool_worker.py)
    ready entry -> job.json {pool, ticket}  ──▶  rename ticket -> .t.<worker>.<ticket>
                -> empty ticket file             claim lock: ticket still ours? job id
    stat result files of taken tickets      ◀──  run_entry(): started.json, result.h5
    ONE status call for the worker jobs          unlink .t.<worker>.<ticket>

* **Only ready entries get a ticket** (``dispatch_after = "done"``): a worker
  never meets an entry whose upstreams are unfinished.
* **Which entry runs where** is in the queue directory's names: ``.t.<w>.<t>``
  exists exactly while worker ``w`` runs ticket ``t``.  One ``listdir`` of that
  small directory per tick gives "started" for every entry, and after a worker
  job died it names exactly the entries the worker lost.
* **A worker that dies** (time limit, scancel, node failure, a task that killed
  its process) loses only the entries it was running: each is queued again once
  (a new ticket), and fails with ``TaskDiedError`` ("slurm worker job 123 ended
  TIMEOUT while running this task") if its second worker dies too.  The driver
  keeps up to K workers alive while tickets wait, so the rest is taken by the
  other workers or a new worker job.
* **Entries that do not fit a worker** (more ``cores`` than the worker's, another
  partition, other gpus, memory, time limit ...) go as their own job: the
  per-entry :class:`ClusterBackend` path, unchanged.
* **Cancel** of an entry whose ticket is still queued unlinks the ticket: unlink
  and a worker's rename cannot both succeed, so either it is withdrawn or it runs.
* **Driver death**: workers finish the tickets they see and exit when the queue
  stays empty.  A later driver that finds such a claim (owner dead) unlinks the
  old ticket if it is still there and queues the entry in its own pool; if a
  worker already took it, the later driver tracks that worker job.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import secrets
import shutil
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SubmissionError
from ..liveness import identity
from ..store import ERROR, JOB_JSON, RESULT, Store
from . import flux, slurm
from .base import Died, Event, Finished, Started, SubmitFailed, Task
from .cluster import (
    GRACE_KILLED,
    MAX_STATUS_FAILURES,
    STAT_MAX,
    STAT_MIN,
    STATUS_MAX,
    STATUS_MIN,
    SUBMIT_RETRY_DELAYS,
    YOUNG,
    ClusterBackend,
    SchedulerError,
    job_name,
    job_script,
    query_states,
    result_grace,
    run_command,
    tail,
)

# ---------------------------------------------------------------------- queue layout
QUEUE_DIR = ".queue"
TAKEN = ".t."
EXIT = ".exit."
STOP = ".stop"
POOL_JSON = "pool.json"
WORKERS = "workers"
#: seconds a worker waits with an empty queue before it exits (XCACHE_POOL_IDLE)
IDLE_DEFAULT = 3.0


def queue_dir(cache: str | os.PathLike[str], pool: str) -> Path:
    return Path(cache) / QUEUE_DIR / pool


def ticket_name(seq: int, token: str, key: str) -> str:
    """Sorted by ``seq`` (submission order); ``token`` is new for every attempt."""
    return f"{seq:010d}.{token}.{key}"


def ticket_key(ticket: str) -> str:
    return ticket.split(".", 2)[2]


def ticket_token(ticket: str) -> str:
    return ticket.split(".", 2)[1]


def claim_token(job: dict[str, Any]) -> str:
    """Names one claim of an entry (its owner and when it was made): a ticket is valid
    while job.json holds the claim it was written for."""
    o = job.get("owner") or {}
    raw = f"{o.get('host')}|{o.get('pid')}|{o.get('start')}|{job.get('submitted')!r}"
    return hashlib.blake2s(raw.encode(), digest_size=4).hexdigest()


def is_ticket(name: str) -> bool:
    return name[:1].isdigit()


def taken_name(worker: str, ticket: str) -> str:
    return f"{TAKEN}{worker}.{ticket}"


def parse_taken(name: str) -> tuple[str, str] | None:
    """``.t.<worker>.<ticket>`` -> (worker, ticket)."""
    if not name.startswith(TAKEN):
        return None
    worker, _, ticket = name[len(TAKEN):].partition(".")
    return (worker, ticket) if ticket else None


def worker_dir(qdir: Path, worker: str) -> Path:
    return qdir / WORKERS / worker


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Temp file in the same directory, then ``os.replace``: never seen half-written."""
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}-"
                         f"{random.getrandbits(40):010x}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _unlink(path: Path | str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------- the backend
#: resource keys that do not change where a call can run (per call, not per job)
PER_CALL_KEYS = frozenset({"cwd", "cache_key"})
#: attempts per entry when its worker job dies (the first run and one retry)
MAX_ATTEMPTS = 2
#: worker jobs in a row that ended without taking a ticket: the workers cannot start
MAX_START_FAILURES = 3
#: after a permanent submission error while other workers live: try again after this
SUBMIT_BACKOFF = 30.0


def idle_grace() -> float:
    try:
        return float(os.environ.get("XCACHE_POOL_IDLE", IDLE_DEFAULT))
    except ValueError:
        return IDLE_DEFAULT


@dataclass
class _Worker:
    """One worker job: ours (``token`` names its files) or one adopted from a dead driver."""

    token: str | None
    name: str
    job_id: str | None = None
    stderr: str | None = None
    submitted: float = field(default_factory=time.monotonic)
    state: str | None = None
    reason: str = ""
    seen_alive: bool = False
    took: bool = False  # ever took a ticket (or said goodbye): it could start
    ended: bool = False  # gone: no more tickets will be taken by it
    clean: bool = False  # said goodbye (.exit.<token>)
    ended_at: float = 0.0
    grace: float = 0.0
    handled: bool = False  # its lost entries were dealt with

    def describe(self, backend: str) -> str:
        return f"{backend} worker job {self.job_id or '?'} ({self.name})"


class PoolBackend(ClusterBackend):
    """Ready entries go to up to ``max_workers`` worker jobs; see the module docstring."""

    dispatch_after = "done"  # a ticket only for an entry whose upstreams finished
    detach_on_shutdown = True

    def __init__(self, store: Store, max_workers: int | None = None,
                 pysqa_config_directory: str | os.PathLike[str] | None = None,
                 resources: dict[str, Any] | None = None) -> None:
        if max_workers is None or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        super().__init__(store, None, pysqa_config_directory)
        self.max_workers = self.k = max_workers
        self.worker_resources = {k: v for k, v in (resources or {}).items()
                                 if k not in PER_CALL_KEYS and v is not None}
        self.pool_id = secrets.token_hex(4)
        self.qdir = store.root / QUEUE_DIR / self.pool_id
        self._qdir = str(self.qdir)
        self.idle = idle_grace()
        self._owner = identity()
        self._seq = itertools.count()
        self._workers: dict[str, _Worker] = {}  # by token, or "job:<id>" for adopted ones
        self._pool_adopted: dict[str, dict[str, Any]] = {}  # key -> job.json taken over
        self._created = False
        self._next_pstat = self._next_pstatus = 0.0
        self._pstat_interval, self._pstatus_interval = STAT_MIN, STATUS_MIN
        self._pstatus_failures = 0
        self._submit_blocked_until = 0.0
        self._submit_failures = 0  # transient failures in a row
        self._start_failures = 0
        self._lost_since: dict[str, float] = {}  # ticket -> first seen neither queued nor taken
        self._keep_logs = False
        #: pooled entries in flight (queued, taken, or watched on an adopted worker)
        self._pool_tasks: dict[str, Task] = {}
        self._last_name: str | None = None  # the last worker submission (lost answers)
        self._last_worker: _Worker | None = None
        self._deferred: list[Event] = []
        self.calls["workers"] = 0  # worker jobs submitted (also counted in "submit")

    # ------------------------------------------------------------- routing
    def fits(self, resources: dict[str, Any]) -> bool:
        """Can a worker run this call?  The same job-level resources (partition,
        gpus, memory, time limit, ...) and no more cores than a worker has."""
        w = self.worker_resources
        for k in (set(resources) | set(w)) - PER_CALL_KEYS:
            if k == "cores":
                if int(resources.get("cores", 1)) > int(w.get("cores", 1)):
                    return False
            elif resources.get(k) != w.get(k):
                return False
        return True

    @staticmethod
    def _pooled(task: Task) -> bool:
        return task.info.get("mode") == "pool"

    def can_dispatch(self, task: Task) -> bool:
        if task.key in self._pool_adopted or (task.key not in self._adopted
                                              and self.fits(task.resources)):
            return True  # a ticket costs no scheduler call: only worker jobs are throttled
        return super().can_dispatch(task)

    def dispatch(self, task: Task, upstream_job_ids: list[str]) -> None:
        job = self._pool_adopted.pop(task.key, None)
        if job is not None:  # a dead driver's worker runs it: watch that worker job
            self._watch_foreign(task, job)
            return
        if task.key in self._adopted or not self.fits(task.resources):
            task.info["mode"] = "job"
            super().dispatch(task, upstream_job_ids)
            return
        self._make_queue()
        self._enqueue(task, attempt=1)
        for ev in self._ensure_workers(just_queued=True):
            if ev.key == task.key and isinstance(ev, SubmitFailed):
                raise SubmissionError(ev.message)  # the poller fails this one
            self._deferred.append(ev)  # reported by the next check()

    def _outstanding(self) -> int:
        return sum(1 for t in self._pool_tasks.values()
                   if t.info.get("state") in ("queued", "taken"))

    # ------------------------------------------------------------- tickets
    def _make_queue(self) -> None:
        if self._created:
            return
        mode = self.store.dir_mode
        os.makedirs(self.qdir.parent, mode=mode, exist_ok=True)
        sweep_pools(self.store.root)
        os.makedirs(self.qdir, mode=mode, exist_ok=True)
        os.makedirs(self.qdir / WORKERS, mode=mode, exist_ok=True)
        self._created = True
        self._write_pool_json()

    def _write_pool_json(self) -> None:
        info = {"backend": self.name, "pool": self.pool_id, "owner": self._owner,
                "created": time.time(), "max_workers": self.max_workers,
                "resources": self.worker_resources,
                "workers": {w.token: w.job_id for w in self._workers.values()
                            if w.token and w.job_id}}
        atomic_write(self.qdir / POOL_JSON, json.dumps(info, default=str).encode(),
                     self.store.file_mode)

    def _enqueue(self, task: Task, attempt: int) -> None:
        """A ticket for the claim in job.json (its token names that claim).

        The first attempt reuses the claim ``submit()`` wrote: one file created per
        entry here, the ticket.  A retry writes a new claim (job.json with pool,
        ticket and attempt) first, so a late worker of the old ticket drops it."""
        key = task.key
        claim = self.store.read_json(key, JOB_JSON) if attempt == 1 else None
        if claim is None or "owner" not in claim or "submitted" not in claim:
            claim = {"function": task.meta.get("function"), "upstream_keys": list(task.deps),
                     "backend": self.name, "job_id": None, "owner": self._owner,
                     "submitted": time.time(), "pool": self.pool_id, "attempt": attempt,
                     "queue_directory": self._qdir}
            claim["ticket"] = ticket_name(next(self._seq), claim_token(claim), key)
            self.store.write_json(key, JOB_JSON, claim)
            ticket = claim["ticket"]
        else:
            ticket = ticket_name(next(self._seq), claim_token(claim), key)
        fd = os.open(f"{self._qdir}/{ticket}", os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     self.store.file_mode)
        os.close(fd)
        task.job_id = None
        task.info.update(mode="pool", ticket=ticket, attempt=attempt, state="queued",
                         worker=None, started=False, foreign=False)
        self._pool_tasks[key] = task
        self._pstat_interval = STAT_MIN
        self._next_pstat = min(self._next_pstat, time.monotonic() + STAT_MIN)

    def _withdraw(self, task: Task) -> bool:
        """Unlink a queued ticket: True if no worker can take it any more."""
        ticket = task.info.get("ticket")
        if not ticket or task.info.get("foreign"):
            return False
        try:
            os.unlink(f"{self._qdir}/{ticket}")
        except FileNotFoundError:
            return False  # taken: it runs
        return True

    def cancel(self, task: Task) -> None:
        if not self._pooled(task):
            super().cancel(task)
            return
        if self._withdraw(task):  # give the claim back: the entry reads "pending" again
            try:
                self.store.path(task.key, JOB_JSON).unlink()
            except FileNotFoundError:
                pass
        task.info["state"] = "cancelled"
        self._pool_tasks.pop(task.key, None)

    # ------------------------------------------------------------- adoption
    def adopt(self, key: str, job: dict[str, Any] | None) -> bool:
        """A dead driver's claim: withdraw its ticket (then queue it here afresh), or
        watch the worker job that already took it; per-entry jobs as ClusterBackend."""
        if not job or not job.get("pool"):
            # never taken (a queued first attempt names no pool): a new claim makes
            # its old ticket invalid, so a late worker drops it
            return super().adopt(key, job)
        if job.get("backend") != self.name:
            return False
        ticket = job.get("ticket")
        qdir = job.get("queue_directory") or str(self.store.root / QUEUE_DIR / job["pool"])
        if ticket and not job.get("job_id"):
            try:
                os.unlink(os.path.join(str(qdir), str(ticket)))
            except FileNotFoundError:
                pass  # taken: a worker that records itself later finds our new ticket
            return False
        if not job.get("job_id"):
            return False
        new = {**job, "owner": self._owner, "adopted_from": job.get("owner"),
               "adopted": time.time()}
        self.store.write_json(key, JOB_JSON, new)
        self._pool_adopted[key] = new
        return True

    def _watch_foreign(self, task: Task, job: dict[str, Any]) -> None:
        jid = str(job["job_id"])
        ident = f"job:{jid}"
        w = self._workers.get(ident)
        if w is None:
            w = self._workers[ident] = _Worker(None, str(job.get("job_name") or "?"), jid,
                                               stderr=job.get("stderr"), took=True)
        task.job_id = jid
        task.info.update(mode="pool", ticket=job.get("ticket"), attempt=int(job.get("attempt")
                         or 1), state="taken", worker=ident, started=False, foreign=True)
        self._pool_tasks[task.key] = task
        self._next_pstatus = 0.0

    # ------------------------------------------------------------- workers
    def _alive(self) -> list[_Worker]:
        return [w for w in self._workers.values() if w.token and not w.ended]

    def _ensure_workers(self, just_queued: bool = False) -> list[Event]:
        """Keep min(K, entries in the pool) worker jobs while tickets wait."""
        now = time.monotonic()
        alive = len(self._alive())
        if alive >= self.k or now < self._submit_blocked_until:
            return []
        if not just_queued and not any(t.info.get("state") == "queued"
                                       for t in self._pool_tasks.values()):
            return []
        want = min(self.k, self._outstanding())
        events: list[Event] = []
        while alive < want and now >= self._submit_blocked_until:
            self._refill()
            if self._tokens < 1.0:
                self._throttled = True
                break
            self._tokens -= 1.0
            try:
                self._start_worker()
            except SubmissionError as e:
                events += self._submit_failed(e)
                break
            alive += 1
        return events

    def _start_worker(self) -> None:
        token = secrets.token_hex(4)
        name = job_name(f"xcache-pool-{self.pool_id}", token)
        wdir = worker_dir(self.qdir, token)
        os.makedirs(wdir, mode=self.store.dir_mode, exist_ok=True)
        out, err = str(wdir / "job.out"), str(wdir / "job.err")
        argv = [sys.executable, "-m", "executorlib_cache.pool_worker", str(self.store.root),
                self.pool_id, "--worker", token, "--backend", self.name, "--job-name", name,
                "--idle", f"{self.idle:g}"]
        limit = self.worker_resources.get("run_time_max")
        if limit:
            argv += ["--time-limit", str(limit)]
        w = _Worker(token, name, stderr=err)
        jid = None
        if self._submit_failures and self._last_name and self._last_worker:
            # the last attempt failed transiently: its answer may have been lost
            jid = self._lookup_worker(self._last_name)
            if jid is not None:
                w = self._last_worker
        if jid is None:
            self._last_name, self._last_worker = name, w
            jid = self.submit_job(name=name, working_directory=str(wdir),
                                  command=job_script(argv, self._cwd, self._pythonpath),
                                  resources=self.worker_resources, stdout=out, stderr=err,
                                  what=f"pool worker {name}")
            self.calls["workers"] += 1
        w.job_id = jid
        w.submitted = time.monotonic()
        assert w.token is not None
        self._workers[w.token] = w
        self._submit_failures = 0
        self._write_pool_json()
        self._pstatus_interval = STATUS_MIN
        self._next_pstatus = min(self._next_pstatus, time.monotonic() + STATUS_MIN)

    def _lookup_worker(self, name: str) -> str | None:
        self.calls["lookup"] += 1
        try:
            proc = run_command(self.scheduler.lookup_command([name]))
        except SchedulerError:
            return None
        if proc.returncode != 0:
            return None
        found = self.scheduler.parse_lookup(proc.stdout, [name]).get(name)
        return str(found[0]) if found else None

    def _submit_failed(self, e: SubmissionError) -> list[Event]:
        """A worker job was refused.  Transient: retry later (1-2-4-8 s).  Permanent
        (or retries used up): if no worker lives, the waiting entries fail with the
        scheduler's text; else the live workers go on and we ask again later."""
        now = time.monotonic()
        transient = self.scheduler.submit_error_is_transient(str(e))
        if transient and self._submit_failures < len(SUBMIT_RETRY_DELAYS):
            self._submit_blocked_until = now + SUBMIT_RETRY_DELAYS[self._submit_failures]
            self._submit_failures += 1
            return []
        tries = self._submit_failures + 1
        self._submit_failures = 0
        if self._alive():
            warnings.warn(f"{self.name}: could not start another pool worker ({e}); "
                          f"{len(self._alive())} worker(s) go on", stacklevel=2)
            self._submit_blocked_until = now + SUBMIT_BACKOFF
            return []
        msg = str(e) if tries == 1 else f"{e} (gave up after {tries} attempts)"
        self._submit_blocked_until = now + SUBMIT_RETRY_DELAYS[0]
        return self._fail_waiting(lambda key: SubmitFailed(
            key, f"cannot start a {self.name} pool worker job for this task: {msg}"))

    def _fail_waiting(self, make: Any) -> list[Event]:
        events: list[Event] = []
        for task in list(self._pool_tasks.values()):
            if self._pooled(task) and task.info.get("state") == "queued" \
                    and self._withdraw(task):
                task.info["state"] = "failed"
                events.append(make(task.key))
        return events

    # ------------------------------------------------------------- poller side
    @property
    def check_interval(self) -> float:  # type: ignore[override]
        base = super().check_interval
        if not self._pool_tasks and not self._alive():
            return base
        nxt = min(self._next_pstat, self._next_pstatus)
        if self._submit_blocked_until > time.monotonic():
            nxt = min(nxt, self._submit_blocked_until)
        return max(0.02, min(base, nxt - time.monotonic()))

    def check(self, tasks: dict[str, Task]) -> list[Event]:
        # the poller forgets tasks it resolved (or whose futures were all cancelled)
        self._pool_tasks = {k: t for k, t in self._pool_tasks.items()
                            if tasks.get(k) is t and t.info.get("state") in ("queued", "taken")}
        pooled = self._pool_tasks
        others = ({k: t for k, t in tasks.items() if not self._pooled(t)} if pooled
                  else tasks)
        events = super().check(others)
        if self._deferred:
            events += self._deferred
            self._deferred = []
        if not pooled and not self._alive():
            return events
        now = time.monotonic()
        if now >= self._next_pstat:
            events += self._pool_stat(dict(pooled), now)
        if now >= self._next_pstatus:
            events += self._pool_status(dict(pooled), now)
        events += self._ensure_workers()
        return events

    def _listing(self) -> tuple[set[str], dict[str, str], set[str]]:
        """(queued tickets, ticket -> worker that took it, workers that said goodbye)."""
        queued: set[str] = set()
        taken: dict[str, str] = {}
        exited: set[str] = set()
        try:
            names = os.listdir(self._qdir)
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

    def _pool_stat(self, pooled: dict[str, Task], now: float) -> list[Event]:
        """One listdir of the queue + stats of the result files of taken tickets."""
        events: list[Event] = []
        queued, taken, exited = self._listing()
        changed = False
        for token in exited:
            w = self._workers.get(token)
            if w is not None and not w.clean:
                w.clean = w.took = True
                if not w.ended:
                    w.ended, w.ended_at, w.grace = True, now, 0.0
                changed = True
        for key, task in pooled.items():
            info = task.info
            if info.get("state") not in ("queued", "taken"):
                continue
            ticket = str(info.get("ticket") or "")
            if ticket in queued and not info.get("foreign"):
                continue  # still waiting for a worker: it cannot have a result
            names = self.store.names(key) or set()
            if RESULT in names or ERROR in names:
                info["state"] = "done"
                self._lost_since.pop(ticket, None)
                events.append(Finished(key, "done" if RESULT in names else "failed"))
                changed = True
                continue
            if info.get("foreign"):
                continue
            taker = taken.get(ticket)
            if taker is not None:
                self._lost_since.pop(ticket, None)
                w = self._workers.get(taker)
                if info.get("worker") != taker:
                    info.update(worker=taker, state="taken")
                    if w is not None:
                        w.took = True
                        self._start_failures = 0
                    changed = True
                if not info.get("started"):
                    info["started"] = True
                    task.job_id = w.job_id if w is not None else None
                    events.append(Started(key))
                continue
            # neither queued, taken nor finished: a result hidden by NFS for a moment,
            # or a worker dropped a ticket it could not record: re-queue after a grace
            first = self._lost_since.setdefault(ticket, now)
            if now - first >= result_grace():
                self._lost_since.pop(ticket, None)
                events += self._requeue_or_fail(task, "its ticket vanished without a result "
                                                "(taken by a worker that could not record it)")
                changed = True
        events += self._handle_dead_workers(pooled, taken, now)
        fast = changed or bool(self._lost_since)
        self._pstat_interval = STAT_MIN if fast else min(STAT_MAX, self._pstat_interval * 1.5)
        self._next_pstat = now + self._pstat_interval
        return events

    def _handle_dead_workers(self, pooled: dict[str, Task], taken: dict[str, str],
                             now: float) -> list[Event]:
        """Entries a dead worker was running: queue them again once, or fail them."""
        events: list[Event] = []
        for ident, w in self._workers.items():
            if not w.ended or w.handled or now - w.ended_at < w.grace:
                continue
            w.handled = True
            lost = [t for t in pooled.values() if t.info.get("state") == "taken"
                    and (t.info.get("worker") == ident or taken.get(t.info.get("ticket", ""))
                         == ident)]
            if not w.took and not w.clean:
                self._start_failures += 1
            if lost:
                self._keep_logs = True
            why = (f"{w.describe(self.name)} ended {w.state or 'GONE'} while running this task"
                   f"{f' ({w.reason})' if w.reason else ''}" if not w.clean
                   else f"{w.describe(self.name)} exited while running this task")
            for task in lost:
                names = self.store.names(task.key) or set()
                if RESULT in names or ERROR in names:
                    task.info["state"] = "done"
                    events.append(Finished(task.key, "done" if RESULT in names else "failed"))
                    continue
                events += self._requeue_or_fail(task, why, worker=w)
            if w.token:
                for ticket, token in taken.items():
                    if token == w.token:
                        try:
                            os.unlink(f"{self._qdir}/{taken_name(token, ticket)}")
                        except FileNotFoundError:
                            pass
        if self._start_failures >= MAX_START_FAILURES and not self._alive():
            self._start_failures = 0
            dead = [w for w in self._workers.values() if w.ended and not w.took]
            last = dead[-1] if dead else None
            text = tail(last.stderr) if last else ""
            msg = (f"{MAX_START_FAILURES} {self.name} pool worker jobs in a row ended "
                   "without taking a task"
                   + (f"; the last, {last.describe(self.name)}, ended {last.state or 'GONE'}"
                      if last else ""))
            if text:
                msg += f"\n--- last lines of {last.stderr if last else '?'} ---\n{text}"
            self._keep_logs = True
            events += self._fail_waiting(lambda key: Died(key, msg, state="WORKER_START"))
        return events

    def _requeue_or_fail(self, task: Task, why: str, worker: _Worker | None = None
                         ) -> list[Event]:
        """Under the claim lock: a result after all, a new ticket, or Died."""
        info = task.info
        key = task.key
        history = info.setdefault("deaths", [])
        history.append(why)
        with self.store.claim(key):
            names = self.store.names(key) or set()
            if RESULT in names or ERROR in names:
                info["state"] = "done"
                return [Finished(key, "done" if RESULT in names else "failed")]
            attempt = int(info.get("attempt") or 1)
            if attempt < MAX_ATTEMPTS:
                self.store.reset_for_retry(key)  # started.json/job.json of the lost run
                self._make_queue()
                self._enqueue(task, attempt + 1)
                info["deaths"] = history
                return []
        info["state"] = "failed"
        msg = why
        if len(history) > 1:
            msg += f" (attempt {len(history)}; before: {'; '.join(history[:-1])})"
        err = worker.stderr if worker is not None else None
        text = tail(err)
        if text:
            msg += f"\n--- last lines of {err} ---\n{text}"
        elif err:
            msg += f" (nothing on stderr: {err})"
        state = (worker.state if worker is not None else None) or "GONE"
        return [Died(key, f"task {key}: {msg}", state=state)]

    def _pool_status(self, pooled: dict[str, Task], now: float) -> list[Event]:
        """ONE status call for every worker job that may still run."""
        events: list[Event] = []
        watched = [w for w in self._workers.values() if not w.ended and w.job_id]
        if not watched:
            self._next_pstatus = now + self._pstatus_interval
            return events
        ids = sorted({str(w.job_id) for w in watched})
        self.calls["status"] += 1
        try:
            states = query_states(self.scheduler, ids)
        except SchedulerError as e:
            self._pstatus_failures += 1
            if self._pstatus_failures >= MAX_STATUS_FAILURES:
                self._pstatus_failures = 0
                for key, task in pooled.items():
                    if task.info.get("state") in ("queued", "taken"):
                        self._withdraw(task)
                        task.info["state"] = "failed"
                        events.append(Died(key, f"cannot ask {self.name} about the pool's "
                                                f"worker jobs {', '.join(ids)} "
                                                f"({MAX_STATUS_FAILURES} failures in a row): "
                                                f"{e}", state="UNKNOWN"))
            self._pstatus_interval = min(STATUS_MAX, self._pstatus_interval * 2)
            self._next_pstatus = time.monotonic() + self._pstatus_interval
            return events
        self._pstatus_failures = 0
        changed = False
        sched = self.scheduler
        for w in watched:
            state, reason = states.get(str(w.job_id), (None, ""))
            if state != w.state or reason != w.reason:
                changed = True
            w.state, w.reason = state, reason
            if state is not None and sched.is_active(state):
                w.seen_alive = True
                continue
            if state is None and now - w.submitted < 2.0 and not w.seen_alive:
                continue  # just submitted: give the scheduler a moment to list it
            w.ended, w.ended_at = True, now
            w.grace = (result_grace() if state is None or state in sched.MAY_HAVE_RESULT
                       else GRACE_KILLED)
            self._next_pstat = min(self._next_pstat, now + min(w.grace, STAT_MIN))
        young = any(now - w.submitted < YOUNG for w in watched)
        self._pstatus_interval = (STATUS_MIN if changed or young
                                  else min(STATUS_MAX, self._pstatus_interval * 1.5))
        self._next_pstatus = time.monotonic() + self._pstatus_interval
        return events

    # ------------------------------------------------------------- shutdown
    def shutdown(self, wait: bool = True) -> None:
        """wait=True: every call is resolved; stop the workers (``.stop``), cancel
        those still queued in the scheduler (one call) and remove the queue
        (kept if a worker died, for its logs).  wait=False: leave the workers
        running the tickets they have; they exit when the queue stays empty."""
        super().shutdown(wait)
        if not wait or not self._created:
            return
        try:
            atomic_write(self.qdir / STOP, b"", self.store.file_mode)
        except OSError:
            pass
        pending = [str(w.job_id) for w in self._alive() if w.job_id and not w.seen_alive
                   and not w.took]
        if pending:
            self._to_cancel.extend(pending)
            self._flush_cancels()
        if not self._keep_logs:
            _remove_dir(self.qdir)


class SlurmPoolBackend(PoolBackend):
    name = "slurm"
    scheduler = slurm


class FluxPoolBackend(PoolBackend):
    name = "flux"
    scheduler = flux


def _pools(cache_root: str | os.PathLike[str], backend: str | None
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


def _remove_dir(path: Path) -> None:
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
    exit.  (A pool that lost a worker is kept by its driver for the logs: until
    the next driver on this cache sweeps it.)  Returns the pools removed."""
    from ..liveness import owner_alive

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
        _remove_dir(pool)
        removed.append(pool.name)
    return removed


def pool_worker_ids(cache_root: str | os.PathLike[str], backend: str | None = None
                    ) -> dict[str, list[str]]:
    """Worker job ids of every pool queue in a cache, by backend (``pool.json``)."""
    out: dict[str, list[str]] = {}
    for _pool, info in _pools(cache_root, backend):
        ids = [str(j) for j in (info.get("workers") or {}).values() if j]
        if ids:
            out.setdefault(str(info.get("backend")), []).extend(ids)
    return out


def stop_pools(cache_root: str | os.PathLike[str], backend: str | None = None) -> None:
    """Tell the workers of the cache's pools to exit (``.stop`` in each queue)."""
    for pool, _info in _pools(cache_root, backend):
        try:
            atomic_write(pool / STOP, b"")
        except OSError:
            pass


__all__ = ["FluxPoolBackend", "PoolBackend", "SlurmPoolBackend", "pool_worker_ids",
           "stop_pools", "sweep_pools"]
