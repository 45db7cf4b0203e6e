"""One batch job per call (SLURM, flux), behind the Backend interface.

Why it is built the way it is:

* **The cache is the truth, the scheduler is only asked who died.**  Every
  tick first stats the in-flight entries' files (a result file = finished, no
  scheduler call); then ONE status call for all our job ids (:class:`JobTracker`)
  tells which of the rest died.  A job that ended or vanished without a result
  file gets a bounded grace period (NFS attribute caches can hide a just-written
  file) before its future fails with the scheduler's state and the tail of the
  job's stderr.
* **Submission through pysqa** (:class:`~.submission.Submitter`), with our
  templates or the user's ``pysqa_config_directory``; a failing submit raises
  :class:`SubmissionError` with the scheduler's own text.
* **Exactly once across driver deaths.**  the claim (``@claim``) gets a unique job name
  *before* sbatch and the job id right after.  A driver that finds a claim whose
  owner died adopts it (:meth:`ClusterBackend.adopt`): with an id it just tracks
  the job in its batched status call; with only a name it looks the name up
  (one call) before submitting anything.  An adopted job that turns out to have
  died unwatched is retried, as any recorded failure is on a re-run.
* **Dependencies are queued at once** (``dispatch_after = "queued"``) with
  ``afterok`` + ``--kill-on-invalid-dep=yes``; ``shutdown(wait=False)`` leaves
  the whole graph in the queue (``detach_on_shutdown``).
* **Kind to the scheduler**: the submitter's token bucket throttles submissions,
  status calls are adaptive, cancels are batched into one ``scancel`` per poller
  turn.  Transient status failures are tolerated; after ``MAX_STATUS_FAILURES``
  in a row the futures fail with the scheduler's error text.  A transient
  submission error is retried after 1, 2, 4, 8 s (from the poller's checks,
  never blocking it), each retry first looking the last attempt up by name.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .. import claims
from ..errors import SchedulerError, SubmissionError
from ..schedulers import JobStatus, Phase, commands
from ..store import DONE, FAILED, Store
from .base import Backend, Died, Event, Finished, Started, SubmitFailed, Task
from .submission import Submitter, env_float, job_name, job_script, runner_argv, tail
from .tracker import MAX_STATUS_FAILURES, STAT_MAX, STAT_MIN, Backoff, JobTracker, Poll

#: ``XCACHE_KEEP_JOB_DIRS=1``: keep a done call's job script and empty logs (debugging)
KEEP_JOB_DIRS = os.environ.get("XCACHE_KEEP_JOB_DIRS", "") not in ("", "0")
GRACE_KILLED = 0.5  # cancelled / time limit / OOM: no result can be coming
SUBMIT_SETTLE = 3.0  # a claim this fresh may still have an sbatch in flight
#: a transient submission error (socket timeout, controller busy) is retried after
#: these delays; then the future fails
SUBMIT_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)


#: what a user can do about a job that ended this way
STATE_HINTS = {
    "OUT_OF_MEMORY": " (it used more memory than it asked for: raise resource_dict "
                     "['memory_max'] in GB)",
    "TIMEOUT": " (it ran longer than its time limit: raise resource_dict['run_time_max'] "
               "in seconds)",
    "NODE_FAIL": " (a node of the job failed; a re-run retries it)",
}


def result_grace() -> float:
    """Seconds a finished job's result file may take to show up (NFS attribute caches;
    ``XCACHE_RESULT_GRACE``, default 5)."""
    return env_float("XCACHE_RESULT_GRACE", 5.0)


def grace_for(status: JobStatus | None) -> float:
    """How long an ended job's result may still be on its way: a job that ran to
    its end (or is no longer known) may have written one; a killed job did not."""
    if status is None or status.phase in (Phase.COMPLETED, Phase.FAILED):
        return result_grace()
    return GRACE_KILLED


def finished_event(store: Store, key: str) -> Finished | None:
    """A Finished event if the entry's files hold an outcome (two stats at most)."""
    status = store.finished(key)
    if status in (DONE, FAILED):
        return Finished(key, status)
    return None


@dataclass
class Job:
    """Where one call runs: its scheduler job (``Task.job`` of this backend)."""

    record: dict[str, Any] = field(default_factory=dict)  #: its claim record
    adopted: bool = False  #: taken over from a dead driver
    seen_alive: bool = False
    started: bool = False
    status: JobStatus | None = None  #: the last the scheduler said
    gone_since: float | None = None  #: ended/unknown without a result since (monotonic)
    grace: float = 0.0
    submit_attempts: int = 0
    retry_at: float | None = None  #: a transient submission error: try again then
    retry_upstream: list[str] = field(default_factory=list)


class ClusterBackend(Backend):
    """One batch job per entry, for the scheduler ``sched`` (a dialect module).

    ``submitter`` and ``tracker`` may be shared with a :class:`~.pool.PoolBackend`
    that holds this backend for the calls that do not fit its workers; then both
    submit through one token bucket and ask one status call per tick.
    """

    dispatch_after = "queued"
    detach_on_shutdown = True
    running_on_dispatch = False
    worker_writes_task = False

    def __init__(self, store: Store, sched: ModuleType,
                 pysqa_config_directory: str | os.PathLike[str] | None = None, *,
                 submitter: Submitter | None = None, tracker: JobTracker | None = None,
                 calls: dict[str, int] | None = None) -> None:
        super().__init__(store, None)
        self.sched = sched
        self.name = sched.NAME
        #: scheduler calls made (tests and benchmarks read these)
        self.calls = calls if calls is not None else \
            {"submit": 0, "status": 0, "cancel": 0, "lookup": 0}
        self.submitter = submitter or Submitter(sched, store, pysqa_config_directory,
                                                self.calls)
        self.tracker = tracker or JobTracker(sched, self.calls)
        self.stat = Backoff(STAT_MIN, STAT_MAX)
        self._adopted: dict[str, dict[str, Any]] = {}  # key -> claim taken over
        self._to_cancel: list[str] = []
        self._next_retry = float("inf")

    # ------------------------------------------------------------- submit side
    def validate(self, resources: Any) -> None:
        self.submitter.validate(resources)

    def adopt(self, key: str, job: dict[str, Any] | None) -> bool:
        if not job or job.get("backend") != self.name or not job.get("job_name"):
            return False  # never reached the scheduler: submit it afresh
        self._adopted[key] = claims.adopt_record(self.store, key, job)
        return True

    def can_dispatch(self, task: Task) -> bool:
        return task.key in self._adopted or self.submitter.may_submit()

    def dispatch(self, task: Task, upstream_job_ids: list[str]) -> None:
        upstream = [str(j) for j in upstream_job_ids]
        record = self._adopted.pop(task.key, None)
        if record is not None:
            jid = record.get("job_id")
            if not jid:
                try:
                    jid = self._lookup_by_name(task.key, record)
                except SubmissionError as e:
                    if not self.sched.submit_error_is_transient(str(e)):
                        raise
                    self._defer(task, upstream, 1)  # the retry looks the name up first
                    return
            if jid:
                self._track(task, record, str(jid), adopted=True)
                return
        self.submitter.take_token()
        self._submit_or_defer(task, upstream)

    def _submit_or_defer(self, task: Task, upstream_job_ids: list[str]) -> None:
        """Submit; on a transient error keep the task and retry later (check()).

        A retry first looks the failed attempt's job name up: a submission whose
        answer was lost (socket timeout) may have been accepted after all.
        Raises SubmissionError for a permanent error or when retries ran out.
        """
        job = task.job if isinstance(task.job, Job) else None
        attempt = job.submit_attempts if job else 0
        try:
            if attempt:
                record = claims.read_claim(self.store, task.key) or {}
                jid = (self._lookup_by_name(task.key, record, settle=False)
                       if record.get("job_name") else None)
                if jid:
                    self._track(task, record, jid)
                    return
            self._submit(task, upstream_job_ids)
        except SubmissionError as e:
            if self.sched.dependency_refused(str(e)) and attempt < len(SUBMIT_RETRY_DELAYS):
                # an upstream ended between our look and the submission: its future
                # resolves in a moment (the poller then fails this task with
                # UpstreamFailedError); if it succeeded, the retry needs no afterok
                self._defer(task, upstream_job_ids, attempt + 1)
                return
            if attempt >= len(SUBMIT_RETRY_DELAYS) or \
                    not self.sched.submit_error_is_transient(str(e)):
                if attempt:
                    raise SubmissionError(f"{e} (gave up after {attempt + 1} attempts)") from e
                raise
            self._defer(task, upstream_job_ids, attempt + 1)

    def _defer(self, task: Task, upstream_job_ids: list[str], attempt: int) -> None:
        retry_at = time.monotonic() + SUBMIT_RETRY_DELAYS[attempt - 1]
        if not isinstance(task.job, Job):
            task.job = Job()
        task.job_id = None
        task.job.submit_attempts = attempt
        task.job.retry_at = retry_at
        task.job.retry_upstream = upstream_job_ids
        self._next_retry = min(self._next_retry, retry_at)

    def _lookup_by_name(self, key: str, record: dict[str, Any], settle: bool = True
                        ) -> str | None:
        """The name was written but not the id: was the job submitted after all?"""
        name = str(record["job_name"])
        age = time.time() - float(record.get("submitted") or 0)
        if settle and 0 <= age < SUBMIT_SETTLE:  # its sbatch may still be on its way
            time.sleep(SUBMIT_SETTLE - age)
        try:
            found = self.submitter.lookup(name)
        except SchedulerError as e:
            raise SubmissionError(f"cannot check whether {key} was already submitted "
                                  f"(job name {name}): {e}") from e
        if found is None:
            return None
        claims.update_claim(self.store, key, record, job_id=found)
        return found

    def _submit(self, task: Task, upstream_job_ids: list[str]) -> None:
        """Name in the claim, submit through pysqa, id in the claim (each atomic)."""
        key = task.key
        entry = self.store.job_dir(key)  # the script, stdout and stderr of its job
        os.makedirs(entry, self.store.dir_mode, exist_ok=True)
        out, err = os.path.join(entry, "job.out"), os.path.join(entry, "job.err")
        name = job_name(key, secrets.token_hex(4))
        old = {k: v for k, v in (claims.read_claim(self.store, key) or {}).items()
               if k not in claims.SUBMISSION_FIELDS}
        fresh = claims.claim_record(self.name, task.meta)
        record = claims.write_claim(self.store, key, {  # keeps function, upstream_keys
            **fresh, **old, **{k: fresh[k] for k in ("backend", "job_id", "owner", "submitted")},
            "job_name": name, "stdout": out, "stderr": err, "working_directory": entry,
            "dependencies": upstream_job_ids,
        })
        argv = runner_argv(self.sched, sys.executable, self.store, key, task.resources)
        command = job_script(argv, self.submitter.cwd, self.submitter.pythonpath,
                             self.sched.JOB_ENV)
        jid = self.submitter.submit(name=name, working_directory=entry, command=command,
                                    resources=task.resources, stdout=out, stderr=err,
                                    dependency_list=upstream_job_ids, what=key)
        extra = {"job_id_f58": self.sched.f58_encode(int(jid))} if self.name == "flux" else {}
        record = claims.update_claim(self.store, key, record, job_id=jid, queued=time.time(),
                                     **extra)
        self._track(task, record, jid)

    def _track(self, task: Task, record: dict[str, Any], jid: str, adopted: bool = False
               ) -> None:
        now = time.monotonic()
        task.job_id = jid
        task.job = Job(record=record, adopted=adopted)
        self.tracker.track(jid, now, at_once=adopted)
        self.stat.soon(now + STAT_MIN)

    # ------------------------------------------------------------- poller side
    @property
    def check_interval(self) -> float:  # type: ignore[override]
        """Seconds until the next stat pass, status call, retry or token."""
        nxt = min(self.stat.next_at, self.tracker.next_at, self._next_retry)
        if self.submitter.throttled:
            nxt = min(nxt, self.submitter.next_token_at())
        return max(0.02, nxt - time.monotonic())

    def collect(self, ready: set[Any]) -> list[Event]:
        self._flush_cancels()
        return []

    def cancel(self, task: Task) -> None:
        """scancel (batched: flushed in the next poller turn) and give the claim
        back, so the entry reads "pending" again, as an unsubmitted cancel does."""
        if task.job_id:
            self._to_cancel.append(task.job_id)
            claims.release(self.store, task.key)

    def _flush_cancels(self) -> None:
        if not self._to_cancel:
            return
        ids, self._to_cancel = self._to_cancel, []
        self.calls["cancel"] += 1
        try:
            commands.cancel_jobs(self.name, ids)
        except SchedulerError as e:
            warnings.warn(f"{self.name}: cancelling job(s) {', '.join(ids)}: {e}",
                          stacklevel=2)

    def shutdown(self, wait: bool = True) -> None:
        self._flush_cancels()

    def goes_on(self, task: Task) -> str | None:
        """A call with a job goes on as that job (queued or running)."""
        return f"{self.name} job {task.job_id}" if task.job_id else None

    def check(self, tasks: dict[str, Task]) -> list[Event]:
        now = time.monotonic()
        finished: set[str] = set()
        events = self.stat_pass(tasks, now, finished)
        poll = self.tracker.poll(self.watched_ids(tasks, finished), now)
        if poll is not None:
            events += self.apply_statuses(tasks, poll, now, finished)
        events += self.retry_pass(tasks, now, finished)
        return events

    def watched_ids(self, tasks: dict[str, Task], finished: set[str]) -> set[str]:
        """Job ids of the tasks still waiting for an outcome (for the status call)."""
        return {str(t.job_id) for k, t in tasks.items() if k not in finished and t.job_id}

    def retry_pass(self, tasks: dict[str, Task], now: float, finished: set[str]
                   ) -> list[Event]:
        """Submissions that failed transiently and are due for another attempt."""
        if now < self._next_retry:
            return []
        events: list[Event] = []
        self._next_retry = float("inf")
        for key, task in tasks.items():
            job = task.job
            if not isinstance(job, Job) or job.retry_at is None or task.job_id \
                    or key in finished:
                continue
            if any(f.done() and (f.cancelled() or f.exception() is not None)
                   for f in task.deps.values()):
                job.retry_at = None  # an upstream failed: the poller fails this task
                continue
            if now >= job.retry_at:
                job.retry_at = None
                try:
                    self._submit_or_defer(task, self._pending_upstream_ids(task))
                except SubmissionError as e:
                    events.append(SubmitFailed(key, str(e)))
                    continue
            job = task.job
            if isinstance(job, Job) and job.retry_at is not None:
                self._next_retry = min(self._next_retry, job.retry_at)
        return events

    def stat_pass(self, tasks: dict[str, Task], now: float, finished: set[str]
                  ) -> list[Event]:
        """Result files first: no scheduler call for a job that wrote its result."""
        if not self.stat.due(now):
            return []
        events: list[Event] = []
        changed = waiting = False
        for key, task in tasks.items():
            job = task.job if isinstance(task.job, Job) else None
            done = finished_event(self.store, key)
            if done is not None:
                if done.status == DONE and not KEEP_JOB_DIRS:
                    tidy_job_dir(self.store.job_dir(key))
                events.append(done)
                finished.add(key)
                changed = True
            elif job is not None and job.gone_since is not None:
                if now - job.gone_since >= job.grace:
                    state = job.status.state if job.status else "GONE"
                    events.append(Died(key, self._death_message(task), state=state))
                    finished.add(key)
                    changed = True
                else:
                    waiting = True
            elif job is not None and not job.started and \
                    (self.store.read_claim(key) or {}).get("started"):
                job.started = True
                events.append(Started(key))
                changed = True
        self.stat.after(now, progressed=changed or waiting)
        return events

    def apply_statuses(self, tasks: dict[str, Task], poll: Poll, now: float,
                       finished: set[str]) -> list[Event]:
        """What one status call means for our per-call jobs."""
        watched = {k: t for k, t in tasks.items()
                   if k not in finished and t.job_id and isinstance(t.job, Job)}
        events: list[Event] = []
        if poll.error is not None:
            if poll.gave_up:
                for key, task in watched.items():
                    events.append(Died(key, f"cannot ask {self.name} about job {task.job_id} "
                                            f"({MAX_STATUS_FAILURES} failures in a row): "
                                            f"{poll.error}", state="UNKNOWN"))
            return events
        for key, task in watched.items():
            job: Job = task.job
            st = poll.statuses.get(str(task.job_id))
            job.status = st
            ev: Event | None = None
            if st is not None and self.sched.unsatisfiable(st):
                finished.add(key)  # the request can never run: refused, not died
                ev = SubmitFailed(key, f"{self.name} cannot run job {task.job_id} of task "
                                       f"{key}: {st.reason or st.state}")
            elif st is not None and self.sched.dependency_never_satisfied(st):
                ev = self._upstream_broken(task)
            elif st is not None and st.active:
                job.seen_alive = True
                job.gone_since = None  # e.g. requeued after a node failure
                if st.phase is Phase.RUNNING and not job.started:
                    job.started = True
                    ev = Started(key)
            elif job.adopted and not job.seen_alive:
                # died while no driver watched it: a re-run retries it, as any failure
                ev = self._resubmit(task)
            elif job.gone_since is None:  # ended or purged without a result (yet)
                job.gone_since = now
                job.grace = grace_for(st)
                self.stat.soon(now + min(job.grace, STAT_MIN))
            if ev is not None:
                events.append(ev)
        return events

    def _upstream_broken(self, task: Task) -> Event | None:
        """The scheduler says an afterok upstream of this job ended badly.

        If an upstream future failed, the poller fails this task with
        UpstreamFailedError (it is told as soon as that future fails): wait.  If
        every upstream succeeded, the dependency was on a stale job of an earlier
        attempt: submit again (no afterok needed any more).
        """
        deps = list(task.deps.values())
        if deps and all(f.done() and not f.cancelled() and f.exception() is None
                        for f in deps):
            return self._resubmit(task)
        return None

    def _pending_upstream_ids(self, task: Task) -> list[str]:
        """Job ids of the upstreams that have not finished (afterok on those only)."""
        upstream = []
        for up_key, fut in task.deps.items():
            if not fut.done():
                up = claims.read_claim(self.store, up_key) or {}
                if up.get("job_id"):
                    upstream.append(str(up["job_id"]))
        return upstream

    def _resubmit(self, task: Task) -> Event | None:
        upstream = self._pending_upstream_ids(task)
        self.submitter.take_token()
        if isinstance(task.job, Job):
            task.job.submit_attempts = 0
        try:
            self._submit_or_defer(task, upstream)
        except SubmissionError as e:
            return SubmitFailed(task.key, str(e))
        return None

    def _death_message(self, task: Task) -> str:
        job: Job = task.job
        record = job.record
        st = job.status
        who = (f"{self.name} job {task.job_id} ({record.get('job_name', '?')}) "
               f"of task {task.key}")
        if st is None:
            what = (f"{who} is no longer known to {self.name} (ended and purged) and wrote "
                    "no result")
        else:
            what = f"{who} ended {st.state}{f' ({st.reason})' if st.reason else ''} " \
                   "without a result"
            what += STATE_HINTS.get(st.state, "")
        err = log_file(self.sched, record, str(task.job_id))
        text = tail(err)
        if text:
            return f"{what}\n--- last lines of {err} ---\n{text}"
        return f"{what} (nothing on stderr{f': {err}' if err else ''})"


def tidy_job_dir(base: str) -> None:
    """After a job's call is done: drop its script and empty log files, and the
    directory if nothing is left (a log with something in it stays for the user to
    read; ``xcache rm``/``prune`` remove it with the entry)."""
    try:
        with os.scandir(base) as it:
            for d in it:
                try:
                    if d.name == "run_queue.sh" or d.stat().st_size == 0:
                        os.unlink(d.path)
                except OSError:
                    pass
        os.rmdir(base)
    except OSError:
        pass


def log_file(sched: ModuleType, record: dict[str, Any], job_id: str) -> str | None:
    """The job's stderr named in its claim or, if that is empty (a user's template
    that names no output file), the file the scheduler writes by default."""
    err = record.get("stderr")
    candidates = [str(err)] if err else []
    workdir = record.get("working_directory")
    if workdir and job_id:
        candidates += sched.default_log_files(job_id, str(workdir))
    for path in candidates:  # the first that has something to say
        try:
            if os.path.getsize(path) > 0:
                return path
        except OSError:
            continue
    for path in candidates[1:]:  # the scheduler wrote its default file: ours is unused
        if os.path.exists(path):
            return path
    return str(err) if err else None


__all__ = ["ClusterBackend", "GRACE_KILLED", "Job", "SUBMIT_RETRY_DELAYS", "grace_for",
           "result_grace"]
