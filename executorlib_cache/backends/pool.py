"""Many small calls in a few scheduler jobs: ``SlurmClusterExecutor(max_workers=K)``.

Thousands of short calls as thousands of jobs swamp the scheduler, hit per-user
job limits and spend more time queued than running.  With ``max_workers=K`` the
cluster executors start at most K *worker jobs* (each sized by the executor's
``resource_dict``, submitted through the same :class:`~.submission.Submitter`:
templates, sbatch's error text, the token bucket) and hand ready entries to them
through a queue directory (``pool_queue.py`` has the layout and why a rename is
the exactly-once hand-out)::

    driver (this module)                         K worker jobs (compute/pool_worker.py)
    ready entry -> @claim {pool, ticket}    ──▶  rename ticket -> .t.<worker>.<ticket>
                -> empty ticket file             claim lock: ticket still ours? job id
    stat result files of taken tickets      ◀──  run_entry(): <enc>.h5
    the ONE status call covers the workers       unlink .t.<worker>.<ticket>

* **Only ready entries get a ticket** (``dispatch_after = "done"``): a worker
  never meets an entry whose upstreams are unfinished.
* **A worker that dies** (time limit, scancel, node failure, a task that killed
  its process) loses only the entries it was running: each is queued again once
  (a new ticket), and fails with ``TaskDiedError`` ("slurm worker job 123 ended
  TIMEOUT while running this task") if its second worker dies too.  A call lost
  to a worker's time limit is retried only on a worker with enough time left (the
  ticket's claim says how much: 1.25 x how long it ran; a worker with less puts
  it back and retires), and not at all when it ran out of most of a whole worker's
  limit: then it fails at once, with a hint to give it its own ``run_time_max``.  The driver
  keeps up to K workers alive while tickets wait.
* **Entries that do not fit a worker** (more ``cores`` than the worker's, another
  partition, other gpus, memory, time limit ...) go as their own job: this backend
  holds a :class:`~.cluster.ClusterBackend` for them, sharing its submitter and its
  :class:`~.tracker.JobTracker`, so the worker jobs and those jobs are asked about
  in ONE status call per tick.
* **Cancel** of an entry whose ticket is still queued unlinks the ticket.
* **Driver death**: workers finish the tickets they see and exit when the queue
  stays empty.  A later driver that finds such a claim (owner dead) unlinks the
  old ticket if it is still there and queues the entry in its own pool; if a
  worker already took it, the later driver tracks that worker job.
"""

from __future__ import annotations

import functools
import itertools
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .. import claims, pool_queue
from ..errors import SubmissionError
from ..liveness import identity
from ..resources import Resources
from ..store import Store
from .base import Backend, Died, Event, Started, SubmitFailed, Task
from .cluster import ClusterBackend, finished_event, result_grace
from .submission import tail
from .tracker import MAX_STATUS_FAILURES, STAT_MAX, STAT_MIN, Backoff, Poll
from .workers import Worker, WorkerJobs

#: resource keys that do not change where a call can run (per call, not per job)
PER_CALL_KEYS = frozenset({"cwd", "cache_key"})
#: attempts per entry when its worker job dies (the first run and one retry)
MAX_ATTEMPTS = 2
#: a call that ran out of more than this share of a worker's time limit is not retried
#: on another worker (it would run out again): it fails with a hint at once
WORKER_TIME_SHARE = 0.7
#: a retried call is taken only by a worker with this many times what it ran before left
RETRY_TIME_FACTOR = 1.25
#: worker jobs in a row that ended without taking a ticket: the workers cannot start
MAX_START_FAILURES = 3


def idle_grace() -> float:
    """Seconds a worker waits with an empty queue before it exits (XCACHE_POOL_IDLE)."""
    try:
        return float(os.environ.get("XCACHE_POOL_IDLE", pool_queue.IDLE_DEFAULT))
    except ValueError:
        return pool_queue.IDLE_DEFAULT


@dataclass
class Ticket:
    """Where one pooled call is (``Task.job`` of this backend)."""

    name: str  #: the ticket file name
    attempt: int
    state: str = "queued"  #: queued | taken | done | failed | cancelled
    worker: str | None = None  #: ident of the worker that took it
    started: bool = False
    foreign: bool = False  #: taken by a dead driver's worker: only watched
    deaths: list[str] = field(default_factory=list)

    @property
    def open(self) -> bool:
        """Queued or taken: the call may still run."""
        return self.state in ("queued", "taken")


def _refused(message: str, key: str) -> Event:
    return SubmitFailed(key, message)


def _ticket(task: Task) -> Ticket | None:
    return task.job if isinstance(task.job, Ticket) else None


class PoolBackend(Backend):
    """Ready entries go to up to ``max_workers`` worker jobs; see the module docstring.

    ``resources`` (the executor's ``resource_dict``) sizes every worker job.
    Raises ``ValueError`` for ``max_workers`` < 1, and what the submitter raises.
    """

    dispatch_after = "done"  # a ticket only for an entry whose upstreams finished
    detach_on_shutdown = True
    worker_writes_task = False

    def __init__(self, store: Store, sched: ModuleType, max_workers: int | None = None,
                 pysqa_config_directory: str | os.PathLike[str] | None = None,
                 resources: dict[str, Any] | None = None) -> None:
        if max_workers is None or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        super().__init__(store, max_workers)
        self.sched = sched
        self.name = sched.NAME
        #: the calls that do not fit a worker, as their own jobs
        self.jobs = ClusterBackend(store, sched, pysqa_config_directory)
        self.calls = self.jobs.calls
        self.calls["workers"] = 0  # worker jobs submitted (also counted in "submit")
        self.submitter, self.tracker = self.jobs.submitter, self.jobs.tracker
        self.k = max_workers
        self.worker_resources = Resources({k: v for k, v in (resources or {}).items()
                                           if k not in PER_CALL_KEYS and v is not None})
        self.pool_id = secrets.token_hex(4)
        self.qdir = pool_queue.queue_dir(store.root, self.pool_id)
        self._qdir = str(self.qdir)
        self.idle = idle_grace()
        self._owner = identity()
        self._seq = itertools.count()
        self._pool_adopted: dict[str, dict[str, Any]] = {}  # key -> claim taken over
        self._created = False
        self.stat = Backoff(STAT_MIN, STAT_MAX)
        self._lost_since: dict[str, float] = {}  # ticket -> first seen neither queued nor taken
        self._keep_logs = False
        #: pooled entries in flight (queued, taken, or watched on an adopted worker)
        self._pool_tasks: dict[str, Task] = {}
        self._deferred: list[Event] = []
        self.workers = WorkerJobs(store, sched, self.submitter, self.tracker, self.calls,
                                  self.qdir, self.pool_id, self.worker_resources, self.idle,
                                  on_started=self._write_pool_json)

    # ------------------------------------------------------------- routing
    def validate(self, resources: Any) -> None:
        self.jobs.validate(resources)

    def fits(self, resources: dict[str, Any]) -> bool:
        """Can a worker run this call?  The same job-level resources (partition,
        gpus, memory, time limit, ...) and no more cores than a worker has."""
        w = Resources.stored(self.worker_resources)
        for k in (set(resources) | set(w)) - PER_CALL_KEYS:
            if k == "cores":
                if Resources.stored(resources).cores > w.cores:
                    return False
            elif resources.get(k) != w.get(k):
                return False
        return True

    def can_dispatch(self, task: Task) -> bool:
        if task.key in self._pool_adopted or (task.key not in self.jobs._adopted
                                              and self.fits(task.resources)):
            return True  # a ticket costs no scheduler call: only worker jobs are throttled
        return self.jobs.can_dispatch(task)

    def dispatch(self, task: Task, upstream_job_ids: list[str]) -> None:
        job = self._pool_adopted.pop(task.key, None)
        if job is not None:  # a dead driver's worker runs it: watch that worker job
            self._watch_foreign(task, job)
            return
        if task.key in self.jobs._adopted or not self.fits(task.resources):
            self.jobs.dispatch(task, upstream_job_ids)
            return
        self._make_queue()
        self._enqueue(task, attempt=1)
        for ev in self._ensure_workers(just_queued=True):
            if ev.key == task.key and isinstance(ev, SubmitFailed):
                raise SubmissionError(ev.message)  # the poller fails this one
            self._deferred.append(ev)  # reported by the next check()

    def _outstanding(self) -> int:
        return sum(1 for t in self._pool_tasks.values() if (tk := _ticket(t)) and tk.open)

    # ------------------------------------------------------------- tickets
    def _make_queue(self) -> None:
        if self._created:
            return
        mode = self.store.dir_mode
        os.makedirs(self.qdir.parent, mode=mode, exist_ok=True)
        pool_queue.sweep_pools(self.store.root)
        os.makedirs(self.qdir, mode=mode, exist_ok=True)
        os.makedirs(self.qdir / pool_queue.WORKERS, mode=mode, exist_ok=True)
        self._created = True
        self._write_pool_json()

    def _write_pool_json(self) -> None:
        info = {"backend": self.name, "pool": self.pool_id, "owner": self._owner,
                "created": time.time(), "max_workers": self.max_workers,
                "resources": self.worker_resources,
                "workers": self.workers.job_ids()}
        pool_queue.write_json(self.qdir / pool_queue.POOL_JSON, info, self.store.file_mode)

    def _enqueue(self, task: Task, attempt: int, min_time_left: float | None = None) -> None:
        """A ticket for the entry's claim (its token names that claim).

        The first attempt reuses the claim ``submit()`` wrote: one file created per
        entry here, the ticket.  A retry writes a new claim (@claim with pool,
        ticket and attempt) first, so a late worker of the old ticket drops it."""
        key = task.key
        claim = claims.read_claim(self.store, key) if attempt == 1 else None
        if claim is None or "owner" not in claim or "submitted" not in claim:
            claim = claims.claim_record(self.name, task.meta, pool=self.pool_id,
                                        attempt=attempt, queue_directory=self._qdir)
            if min_time_left:  # a retry after a time limit: only a worker with this left
                claim["min_time_left"] = round(RETRY_TIME_FACTOR * min_time_left, 1)
            claim["ticket"] = pool_queue.ticket_name(next(self._seq),
                                                     claims.claim_token(claim), key)
            claims.write_claim(self.store, key, claim)
            ticket = claim["ticket"]
        else:
            ticket = pool_queue.ticket_name(next(self._seq), claims.claim_token(claim), key)
        fd = os.open(f"{self._qdir}/{ticket}", os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     self.store.file_mode)
        os.close(fd)
        task.job_id = None
        old = _ticket(task)
        task.job = Ticket(ticket, attempt, deaths=old.deaths if old else [])
        self._pool_tasks[key] = task
        self.stat.soon(time.monotonic() + STAT_MIN)

    def _withdraw(self, task: Task) -> bool:
        """Unlink a queued ticket: True if no worker can take it any more."""
        tk = _ticket(task)
        if tk is None or tk.foreign:
            return False
        return pool_queue.unlink(f"{self._qdir}/{tk.name}")  # False: taken, it runs

    def cancel(self, task: Task) -> None:
        tk = _ticket(task)
        if tk is None:
            self.jobs.cancel(task)
            return
        if self._withdraw(task):  # give the claim back: the entry reads "pending" again
            claims.release(self.store, task.key)
        tk.state = "cancelled"
        self._pool_tasks.pop(task.key, None)

    # ------------------------------------------------------------- adoption
    def adopt(self, key: str, job: dict[str, Any] | None) -> bool:
        """A dead driver's claim: withdraw its ticket (then queue it here afresh), or
        watch the worker job that already took it; per-call jobs as ClusterBackend."""
        if not job or not job.get("pool"):
            # never taken (a queued first attempt names no pool): a new claim makes
            # its old ticket invalid, so a late worker drops it
            return self.jobs.adopt(key, job)
        if job.get("backend") != self.name:
            return False
        ticket = job.get("ticket")
        qdir = job.get("queue_directory") or str(pool_queue.queue_dir(self.store.root,
                                                                       job["pool"]))
        if ticket and not job.get("job_id"):
            # taken or not: a worker that records itself later finds our new claim
            pool_queue.unlink(os.path.join(str(qdir), str(ticket)))
            return False
        if not job.get("job_id"):
            return False
        self._pool_adopted[key] = claims.adopt_record(self.store, key, job)
        return True

    def _watch_foreign(self, task: Task, job: dict[str, Any]) -> None:
        jid = str(job["job_id"])
        ident = self.workers.adopt(jid, str(job.get("job_name") or "?"), job.get("stderr"))
        task.job_id = jid
        task.job = Ticket(str(job.get("ticket")), int(job.get("attempt") or 1),
                          state="taken", worker=ident, foreign=True)
        self._pool_tasks[task.key] = task

    # ------------------------------------------------------------- workers
    def _ensure_workers(self, just_queued: bool = False) -> list[Event]:
        """Keep min(K, entries in the pool) worker jobs while tickets wait; when none
        can be started and none lives, the waiting entries fail with the reason."""
        if not just_queued and not any((tk := _ticket(t)) and tk.state == "queued"
                                       for t in self._pool_tasks.values()):
            return []
        failure = self.workers.ensure(min(self.k, self._outstanding()))
        if failure is None:
            return []
        return self._fail_waiting(lambda key: SubmitFailed(key, failure))

    def _fail_waiting(self, make: Callable[[str], Event]) -> list[Event]:
        events: list[Event] = []
        for task in list(self._pool_tasks.values()):
            tk = _ticket(task)
            if tk is not None and tk.state == "queued" and self._withdraw(task):
                tk.state = "failed"
                events.append(make(task.key))
        return events

    # ------------------------------------------------------------- poller side
    @property
    def check_interval(self) -> float:  # type: ignore[override]
        """Seconds until the next look at the queue, a status call or a retry."""
        base = self.jobs.check_interval
        if not self._pool_tasks and not self.workers.alive():
            return base
        nxt = min(self.stat.next_at, self.tracker.next_at)
        if self.workers.blocked_until > time.monotonic():
            nxt = min(nxt, self.workers.blocked_until)
        return max(0.02, min(base, nxt - time.monotonic()))

    def collect(self, ready: set[Any]) -> list[Event]:
        return self.jobs.collect(ready)

    def check(self, tasks: dict[str, Task]) -> list[Event]:
        # the poller forgets tasks it resolved (or whose futures were all cancelled)
        self._pool_tasks = {k: t for k, t in self._pool_tasks.items()
                            if tasks.get(k) is t and (tk := _ticket(t)) and tk.open}
        pooled = dict(self._pool_tasks)
        others = {k: t for k, t in tasks.items() if _ticket(t) is None}
        now = time.monotonic()
        finished: set[str] = set()
        events = self.jobs.stat_pass(others, now, finished)
        if self._deferred:
            events += self._deferred
            self._deferred = []
        active = bool(pooled) or bool(self.workers.alive())
        if active and self.stat.due(now):
            events += self._pool_stat(pooled, now)
        watched = self.workers.watched()
        ids = self.jobs.watched_ids(others, finished) | {str(w.job_id) for w in watched}
        poll = self.tracker.poll(ids, now)  # ONE status call for jobs and workers
        if poll is not None:
            events += self.jobs.apply_statuses(others, poll, now, finished)
            events += self._apply_worker_statuses(pooled, watched, poll, now)
        events += self.jobs.retry_pass(others, now, finished)
        if active:
            events += self._ensure_workers()
        return events

    def _pool_stat(self, pooled: dict[str, Task], now: float) -> list[Event]:
        """One listdir of the queue + stats of the result files of taken tickets."""
        events: list[Event] = []
        queued, taken, exited = pool_queue.listing(self._qdir)
        changed = False
        for token in exited:
            w = self.workers.all.get(token)
            if w is not None and not w.clean:
                w.clean = w.took = True
                if not w.ended:
                    w.ended, w.ended_at, w.grace = True, now, 0.0
                changed = True
        for key, task in pooled.items():
            tk = _ticket(task)
            if tk is None or not tk.open:
                continue
            if tk.name in queued and not tk.foreign:
                continue  # still waiting for a worker: it cannot have a result
            done = finished_event(self.store, key)
            if done is not None:
                tk.state = "done"
                self._lost_since.pop(tk.name, None)
                events.append(done)
                changed = True
                continue
            if tk.foreign:
                continue
            taker = taken.get(tk.name)
            if taker is not None:
                self._lost_since.pop(tk.name, None)
                w = self.workers.all.get(taker)
                if tk.worker != taker:
                    tk.worker, tk.state = taker, "taken"
                    if w is not None:
                        w.took = True
                        self.workers.start_failures = 0
                    changed = True
                if not tk.started:
                    tk.started = True
                    task.job_id = w.job_id if w is not None else None
                    events.append(Started(key))
                continue
            # neither queued, taken nor finished: a result hidden by NFS for a moment,
            # or a worker dropped a ticket it could not record: re-queue after a grace
            first = self._lost_since.setdefault(tk.name, now)
            if now - first >= result_grace():
                self._lost_since.pop(tk.name, None)
                events += self._requeue_or_fail(task, "its ticket vanished without a result "
                                                "(taken by a worker that could not record it)")
                changed = True
        events += self._handle_dead_workers(pooled, taken, now)
        self.stat.after(now, progressed=changed or bool(self._lost_since))
        return events

    def _handle_dead_workers(self, pooled: dict[str, Task], taken: dict[str, str],
                             now: float) -> list[Event]:
        """Entries a dead worker was running: queue them again once, or fail them."""
        events: list[Event] = []
        for ident, w in self.workers.all.items():
            if not w.ended or w.handled or now - w.ended_at < w.grace:
                continue
            w.handled = True
            lost = [t for t in pooled.values() if (tk := _ticket(t)) and tk.state == "taken"
                    and (tk.worker == ident or taken.get(tk.name) == ident)]
            if not w.took and not w.clean and not w.requeued:  # it could not start
                self.workers.start_failures += 1
            if lost:
                self._keep_logs = True
            reason = w.status.reason if w.status else ""
            if w.requeued:
                why = (f"{w.describe(self.name)} was requeued by {self.name} (node failure "
                       "or requeue) while running this task; the requeued job was cancelled")
            elif w.clean:
                why = f"{w.describe(self.name)} exited while running this task"
            else:
                why = (f"{w.describe(self.name)} ended {w.state} while running this task"
                       f"{f' ({reason})' if reason else ''}")
            for task in lost:
                done = finished_event(self.store, task.key)
                if done is not None:
                    _ticket(task).state = "done"  # type: ignore[union-attr]
                    events.append(done)
                    continue
                events += self._requeue_or_fail(task, why, worker=w)
            if w.token:
                for ticket, token in taken.items():
                    if token == w.token:
                        pool_queue.unlink(f"{self._qdir}/{pool_queue.taken_name(token, ticket)}")
        if self.workers.start_failures >= MAX_START_FAILURES and not self.workers.alive():
            self.workers.start_failures = 0
            dead = [w for w in self.workers.all.values() if w.ended and not w.took]
            last = dead[-1] if dead else None
            text = tail(last.stderr) if last else ""
            msg = (f"{MAX_START_FAILURES} {self.name} pool worker jobs in a row ended "
                   "without taking a task"
                   + (f"; the last, {last.describe(self.name)}, ended {last.state}"
                      if last else ""))
            if text:
                msg += f"\n--- last lines of {last.stderr if last else '?'} ---\n{text}"
            self._keep_logs = True
            events += self._fail_waiting(lambda key: Died(key, msg, state="WORKER_START"))
        return events

    def _requeue_or_fail(self, task: Task, why: str, worker: Worker | None = None
                         ) -> list[Event]:
        """Under the claim lock: a result after all, a new ticket, or Died."""
        tk = _ticket(task)
        assert tk is not None
        key = task.key
        tk.deaths.append(why)
        hint = ""
        with self.store.claim(key):
            done = finished_event(self.store, key)
            if done is not None:
                tk.state = "done"
                return [done]
            needs = self._time_needed(key, worker)
            limit = self.worker_resources.run_time_max
            if needs and limit and needs > WORKER_TIME_SHARE * limit:
                # it ran out of a worker's whole time limit: a retry on any worker would too
                hint = (f"; it ran {needs:.0f} s and a worker job has {limit} s "
                        "(run_time_max): give this call its own time limit, e.g. "
                        "resource_dict={'run_time_max': ...}, so it runs as its own job, "
                        "or raise the executor's run_time_max")
            elif tk.attempt < MAX_ATTEMPTS:
                self.store.reset_for_retry(key)  # the lost run's claim and task file
                self._make_queue()
                self._enqueue(task, tk.attempt + 1, min_time_left=needs)
                return []
        tk.state = "failed"
        history = tk.deaths
        msg = why
        if len(history) > 1:
            msg += f" (attempt {len(history)}; before: {'; '.join(history[:-1])})"
        err = worker.stderr if worker is not None else None
        text = tail(err)
        if text:
            msg += f"\n--- last lines of {err} ---\n{text}"
        elif err:
            msg += f" (nothing on stderr: {err})"
        state = worker.state if worker is not None else "GONE"
        return [Died(key, f"task {key}: {msg}{hint}", state=state)]

    def _time_needed(self, key: str, worker: Worker | None) -> float | None:
        """Seconds a call that died with its worker at the time limit needs at least
        (how long it ran before the kill), else None.  The worker recorded the time it
        had left when it took the call (``time_left``): a kill at the limit means it ran
        exactly that long; the driver only notices the end a poll or more later."""
        if worker is None or worker.state != "TIMEOUT":
            return None
        claim = claims.read_claim(self.store, key) or {}
        taken, left = claim.get("taken"), claim.get("time_left")
        if not isinstance(taken, (int, float)):
            return None
        ran = max(0.0, time.time() - (time.monotonic() - worker.ended_at) - taken)
        if isinstance(left, (int, float)) and left >= 0:
            ran = min(ran, float(left))
        return ran

    def _apply_worker_statuses(self, pooled: dict[str, Task], watched: list[Worker],
                               poll: Poll, now: float) -> list[Event]:
        """What one status call means for the worker jobs."""
        events: list[Event] = []
        if poll.error is not None:
            if poll.gave_up and watched:
                ids = ", ".join(sorted(str(w.job_id) for w in watched))
                for key, task in pooled.items():
                    tk = _ticket(task)
                    if tk is not None and tk.open:
                        self._withdraw(task)
                        tk.state = "failed"
                        events.append(Died(
                            key, f"cannot ask {self.name} about the pool's worker jobs {ids} "
                            f"({MAX_STATUS_FAILURES} failures in a row): {poll.error}",
                            state="UNKNOWN"))
            return events
        for w in watched:
            st = poll.statuses.get(str(w.job_id))
            if st is not None and self.sched.unsatisfiable(st) and w.token:
                # the worker's request can never run (flux: "unsatisfiable request"):
                # as a refused submission, the calls waiting for a worker fail now
                w.status, w.ended, w.handled, w.ended_at = st, True, True, now
                msg = (f"cannot start a {self.name} pool worker job for this task: "
                       f"{self.name} cannot run {w.describe(self.name)}: {st.reason}")
                events += self._fail_waiting(functools.partial(_refused, msg))
        soonest = self.workers.apply_statuses([w for w in watched if not w.ended], poll, now)
        if self.workers.to_cancel:  # requeued worker jobs: one scancel in this turn
            self.jobs._to_cancel.extend(self.workers.to_cancel)
            self.workers.to_cancel = []
        if soonest is not None:
            self.stat.soon(min(soonest, now + STAT_MIN))
        return events

    # ------------------------------------------------------------- shutdown
    def goes_on(self, task: Task) -> str | None:
        """A ticket goes on with the pool's worker jobs (queued or taken); a call run
        as its own job goes on as that job."""
        tk = _ticket(task)
        if tk is None:
            return self.jobs.goes_on(task)
        if not tk.open:
            return None
        if tk.state == "taken" and task.job_id:
            return f"{self.name} worker job {task.job_id}"
        return f"the {self.name} worker jobs of pool {self.pool_id}"

    def shutdown(self, wait: bool = True) -> None:
        """wait=True: every call is resolved; stop the workers (``.stop``), cancel
        those still queued in the scheduler (one call) and remove the queue
        (kept if a worker died, for its logs).  wait=False: leave the workers
        running the tickets they have; they exit when the queue stays empty."""
        self.jobs.shutdown(wait)
        if not wait or not self._created:
            return
        pool_queue.stop(self.qdir, self.store.file_mode)
        pending = [str(w.job_id) for w in self.workers.alive() if w.job_id and not w.seen_alive
                   and not w.took]
        if pending:
            self.jobs._to_cancel.extend(pending)
            self.jobs._flush_cancels()
        if not self._keep_logs:
            pool_queue.remove_dir(self.qdir)


__all__ = ["MAX_ATTEMPTS", "PER_CALL_KEYS", "PoolBackend", "Ticket", "Worker", "idle_grace"]
