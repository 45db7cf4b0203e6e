"""The worker jobs of one pool (``max_workers=K``): starting them, reading their states.

:class:`WorkerJobs` keeps at most K worker jobs alive while tickets wait, submits
them through the executor's shared :class:`~.submission.Submitter` (one token
bucket with the calls that run as their own jobs) and registers them with the
shared :class:`~.tracker.JobTracker` (one status call per tick for all jobs).
What a dead worker means for the tickets it held is the pool's business
(``pool.py``); here a worker is only a scheduler job that may take tickets.

Submission failures: a transient one (socket timeout, busy controller) is retried
after 1, 2, 4, 8 s, each retry first looking the last attempt up by its unique
name (its answer may have been lost); a permanent one while other workers live is
a warning and another try after :data:`SUBMIT_BACKOFF` s; with no worker alive,
the waiting calls fail with the scheduler's text.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from .. import pool_queue
from ..errors import SchedulerError, SubmissionError
from ..resources import Resources
from ..schedulers import JobStatus, Phase
from ..store import Store
from .cluster import GRACE_KILLED, SUBMIT_RETRY_DELAYS, grace_for
from .submission import Submitter, job_name, job_script, mode_args
from .tracker import JobTracker, Poll

#: after a permanent submission error while other workers live: try again after this
SUBMIT_BACKOFF = 30.0
#: a worker job unknown to the scheduler this soon after submission is not dead yet
LISTING_DELAY = 2.0


@dataclass
class Worker:
    """One worker job: ours (``token`` names its files) or one adopted from a dead driver."""

    token: str | None
    name: str
    job_id: str | None = None
    stderr: str | None = None
    submitted: float = field(default_factory=time.monotonic)
    status: JobStatus | None = None
    seen_alive: bool = False
    ran: bool = False  # the scheduler showed it running (never "queued again" before)
    requeued: bool = False  # queued again after it ran (SLURM requeue): counts as ended
    took: bool = False  # ever took a ticket (or said goodbye): it could start
    ended: bool = False  # gone: no more tickets will be taken by it
    clean: bool = False  # said goodbye (.exit.<token>)
    ended_at: float = 0.0
    grace: float = 0.0
    handled: bool = False  # its lost entries were dealt with

    def describe(self, backend: str) -> str:
        """``"slurm worker job 123 (name)"`` for messages."""
        return f"{backend} worker job {self.job_id or '?'} ({self.name})"

    @property
    def state(self) -> str:
        """The scheduler's last state (``REQUEUED`` for a requeued worker job), or
        ``GONE`` if it never answered for it."""
        if self.requeued:
            return "REQUEUED"
        return self.status.state if self.status else "GONE"


class WorkerJobs:
    """The worker jobs of the pool ``pool_id`` (queue directory ``qdir``), each sized
    by ``resources`` and retiring after ``idle`` seconds without tickets.
    ``on_started`` is called after every new worker job (the pool rewrites its
    ``pool.json``)."""

    def __init__(self, store: Store, sched: ModuleType, submitter: Submitter,
                 tracker: JobTracker, calls: dict[str, int], qdir: Path, pool_id: str,
                 resources: Resources, idle: float, on_started: Callable[[], None]) -> None:
        self.store, self.sched, self.name = store, sched, sched.NAME
        self.submitter, self.tracker, self.calls = submitter, tracker, calls
        self.qdir, self.pool_id = qdir, pool_id
        self.resources, self.idle = resources, idle
        self.on_started = on_started
        #: by token, or "job:<id>" for workers adopted from a dead driver
        self.all: dict[str, Worker] = {}
        self.blocked_until = 0.0  # no submission before this (monotonic)
        self.start_failures = 0  # workers in a row that ended without taking a ticket
        self._submit_failures = 0  # transient failures in a row
        self._last_name: str | None = None  # the last submission (a lost answer)
        self._last_worker: Worker | None = None
        #: ids of requeued worker jobs to cancel (the pool batches them into its scancel)
        self.to_cancel: list[str] = []

    def alive(self) -> list[Worker]:
        """Our worker jobs that have not ended."""
        return [w for w in self.all.values() if w.token and not w.ended]

    def watched(self) -> list[Worker]:
        """Worker jobs (ours and adopted) to ask the scheduler about."""
        return [w for w in self.all.values() if not w.ended and w.job_id]

    def job_ids(self) -> dict[str, str]:
        """{token: job id} of our workers (for ``pool.json``)."""
        return {w.token: w.job_id for w in self.all.values() if w.token and w.job_id}

    def adopt(self, job_id: str, name: str, stderr: str | None) -> str:
        """Watch a dead driver's worker job that runs one of our calls; its ident."""
        ident = f"job:{job_id}"
        if ident not in self.all:
            self.all[ident] = Worker(None, name, job_id, stderr=stderr, took=True)
        self.tracker.track(job_id, time.monotonic(), at_once=True)
        return ident

    def ensure(self, want: int) -> str | None:
        """Start workers until ``want`` are alive (throttled).  Returns a message when
        a worker was refused and none is alive (the waiting calls fail with it)."""
        now = time.monotonic()
        alive = len(self.alive())
        while alive < want and now >= self.blocked_until:
            if not self.submitter.may_submit():
                break
            self.submitter.take_token()
            try:
                self._start()
            except SubmissionError as e:
                return self._submit_failed(e)
            alive += 1
        return None

    def _start(self) -> None:
        token = secrets.token_hex(4)
        name = job_name(f"xcache-pool-{self.pool_id}", token)
        wdir = pool_queue.worker_dir(self.qdir, token)
        os.makedirs(wdir, mode=self.store.dir_mode, exist_ok=True)
        out, err = str(wdir / "job.out"), str(wdir / "job.err")
        argv = [sys.executable, "-m", "executorlib_cache.compute.pool_worker",
                str(self.store.root), self.pool_id, "--worker", token, "--backend", self.name,
                "--job-name", name, "--idle", f"{self.idle:g}", *mode_args(self.store)]
        if self.resources.run_time_max:
            argv += ["--time-limit", str(self.resources.run_time_max)]
        w = Worker(token, name, stderr=err)
        jid = None
        if self._submit_failures and self._last_name and self._last_worker:
            # the last attempt failed transiently: its answer may have been lost
            try:
                jid = self.submitter.lookup(self._last_name)
            except SchedulerError:
                jid = None
            if jid is not None:
                w = self._last_worker
        if jid is None:
            self._last_name, self._last_worker = name, w
            jid = self.submitter.submit(
                name=name, working_directory=str(wdir),
                command=job_script(argv, self.submitter.cwd, self.submitter.pythonpath,
                             self.sched.JOB_ENV),
                resources=self.resources, stdout=out, stderr=err,
                what=f"pool worker {name}")
            self.calls["workers"] += 1
        w.job_id = jid
        w.submitted = time.monotonic()
        assert w.token is not None
        self.all[w.token] = w
        self._submit_failures = 0
        self.on_started()
        self.tracker.track(jid, time.monotonic())

    def _submit_failed(self, e: SubmissionError) -> str | None:
        now = time.monotonic()
        transient = self.sched.submit_error_is_transient(str(e))
        if transient and self._submit_failures < len(SUBMIT_RETRY_DELAYS):
            self.blocked_until = now + SUBMIT_RETRY_DELAYS[self._submit_failures]
            self._submit_failures += 1
            return None
        tries = self._submit_failures + 1
        self._submit_failures = 0
        if self.alive():
            warnings.warn(f"{self.name}: could not start another pool worker ({e}); "
                          f"{len(self.alive())} worker(s) go on", stacklevel=3)
            self.blocked_until = now + SUBMIT_BACKOFF
            return None
        msg = str(e) if tries == 1 else f"{e} (gave up after {tries} attempts)"
        self.blocked_until = now + SUBMIT_RETRY_DELAYS[0]
        return f"cannot start a {self.name} pool worker job for this task: {msg}"

    def apply_statuses(self, watched: list[Worker], poll: Poll, now: float) -> float | None:
        """Mark the workers the scheduler reports ended (or no longer knows); the
        earliest time their lost tickets should be looked at, or None."""
        soonest = None
        for w in watched:
            st = poll.statuses.get(str(w.job_id))
            w.status = st
            if st is not None and st.active:
                if st.phase is Phase.RUNNING:
                    w.ran = True
                elif w.ran and st.state != "CONFIGURING":
                    # it ran and is queued again: SLURM requeued it (a node failure
                    # under JobRequeue=1, SLURM's default, or `scontrol requeue`).  The
                    # worker process and the calls it ran are gone, but the job would
                    # only come back after a hold of ~2 min (BeginTime): it ended for
                    # us.  Cancelled, so that its rerun cannot take tickets later.
                    w.requeued = True
                    w.ended, w.ended_at, w.grace = True, now, GRACE_KILLED
                    self.to_cancel.append(str(w.job_id))
                    at = now + w.grace
                    soonest = at if soonest is None else min(soonest, at)
                    continue
                w.seen_alive = True
                continue
            if st is None and now - w.submitted < LISTING_DELAY and not w.seen_alive:
                continue  # just submitted: give the scheduler a moment to list it
            w.ended, w.ended_at = True, now
            w.grace = grace_for(st)
            at = now + w.grace
            soonest = at if soonest is None else min(soonest, at)
        return soonest


__all__ = ["LISTING_DELAY", "SUBMIT_BACKOFF", "Worker", "WorkerJobs"]
