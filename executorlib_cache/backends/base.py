"""The backend interface: what every backend implements, and the events it reports.

A backend only *runs* entries.  The poller (``poller.py``) owns futures,
dependencies and the cache, and calls a backend from its one thread::

    poller loop                         backend
    ───────────                         ───────
    start(ctx) once                     open sockets / nothing
    can_dispatch(task)? ── yes ──▶      dispatch(task, upstream_job_ids)
    sockets ready        ──────▶        collect(ready)   -> [Event]   (messages)
    every check_interval ──────▶        check(inflight)  -> [Event]   (stats, status)
    future cancelled     ──────▶        cancel(task)
    an owner died        ──────▶        adopt(key, claim) under the claim lock
    end                  ──────▶        shutdown(wait)

Events: :class:`Started`, :class:`Finished` (a result or error is in the cache, or
in the message), :class:`Died` (no result can come: the scheduler's state and log
tail in the message), :class:`Requeue` (a worker died before starting the call:
hand it out again) and :class:`SubmitFailed` (the scheduler refused the job).

Implementations: ``local.py`` (persistent worker processes over zmq),
``cluster.py`` (one batch job per call) and ``pool.py`` (calls packed into at most
K worker jobs), the last two for SLURM and flux alike through a dialect
(``schedulers/``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import zmq

from ..future import CacheFuture
from ..resources import Resources
from ..store import Store


@dataclass
class Task:
    """One entry this driver is responsible for (running it, or watching it).

    ``payload`` is the pickled call; ``deps`` maps upstream keys to their futures;
    ``meta`` is the task's metadata (stored with the call in the entry's file).
    ``job_id`` is the scheduler job
    that runs it (dependents are queued ``afterok`` on it); ``job`` is the backend's
    own record of where it runs (a typed object per backend, opaque to the poller).
    """

    key: str
    futures: list[CacheFuture]
    payload: bytes
    resources: Resources
    deps: dict[str, CacheFuture]
    attached: bool = False  # another live process owns the claim: only watch the files
    dispatched: bool = False
    job_id: str | None = None
    job: Any = None
    requeued: int = 0  # times handed out again after a worker died before starting it
    meta: dict[str, Any] = field(default_factory=dict)  # the task metadata


@dataclass
class Finished:
    """The call finished: ``status`` is ``"done"`` or ``"failed"``; ``payload`` None
    means "read it from the store"."""

    key: str
    status: str
    payload: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Died:
    """No result can come; ``state`` is the scheduler's (e.g. ``"CANCELLED"``,
    ``"TIMEOUT"``) or how the process ended."""

    key: str
    message: str
    state: str | None = None


@dataclass
class Started:
    """The call began running (the future turns RUNNING)."""

    key: str


@dataclass
class Requeue:
    """A call handed to a worker that died before starting it: dispatch it again."""

    key: str
    message: str = ""  # how the worker died, for the error if it keeps happening


@dataclass
class SubmitFailed:
    """The scheduler refused the job (or accepted one it can never run)."""

    key: str
    message: str


Event = Finished | Died | Started | SubmitFailed | Requeue


class Backend:
    """Base class; subclasses override what their scheduler needs (see the module
    docstring for when the poller calls what).  Every method runs in the poller's
    thread, except :meth:`validate`, which ``submit()`` calls in the user's."""

    name = "base"
    #: the future turns RUNNING when handed over (a free local worker starts at once)
    running_on_dispatch = False
    #: "done": hand over when every upstream finished; "queued": when every
    #: upstream has a job id (the scheduler holds the dependent with afterok)
    dispatch_after = "done"
    #: shutdown(wait=False) leaves queued jobs to run without a driver
    detach_on_shutdown = False
    #: seconds between check() calls while work is in flight
    check_interval = 0.1
    #: the worker writes task.h5 (local: takes ~0.5 ms per task off the driver);
    #: cluster backends need it on disk before the job starts, so the driver writes it
    worker_writes_task = False
    #: how many tasks are ready to dispatch (set by the poller before can_dispatch)
    demand = 0

    def __init__(self, store: Store, max_workers: int | None = None) -> None:
        self.store = store
        self.max_workers = max_workers

    def validate(self, resources: Resources) -> None:
        """Raise at ``submit()`` for resources this backend cannot honour
        (``ValueError``/``ImportError`` naming the key and what to do instead)."""

    def start(self, ctx: zmq.Context) -> None:
        """Called once in the poller thread before the first dispatch."""

    def sockets(self) -> list[zmq.Socket]:
        """zmq sockets the poller waits on besides its own (messages -> collect())."""
        return []

    def can_dispatch(self, task: Task) -> bool:
        """Is there room for ``task`` now?  False keeps it (and all after it) ready."""
        return True

    def dispatch(self, task: Task, upstream_job_ids: list[str]) -> None:
        """Hand ``task`` over: to a worker, or as a job queued ``afterok`` on
        ``upstream_job_ids``.  Raises ``SubmissionError`` if refused."""
        raise NotImplementedError

    def collect(self, ready: set[Any]) -> list[Event]:
        """Events from the sockets in ``ready`` (and batched work such as cancels)."""
        return []

    def check(self, tasks: dict[str, Task]) -> list[Event]:
        """Events from looking at the in-flight ``tasks`` (files, processes, scheduler)."""
        return []

    def cancel(self, task: Task) -> None:
        """Withdraw a dispatched task that has not started (best effort)."""

    def shutdown(self, wait: bool = True) -> None:
        """Stop workers / forget the scheduler connection (``wait=False``: do not wait
        for workers that still run a call; they finish it and exit)."""

    def goes_on(self, task: Task) -> str | None:
        """Where a dispatched task keeps running if this driver stops now ("local
        worker 123", "slurm job 45"), or None if it would not run without us."""
        return None

    def interrupt(self) -> None:
        """Ctrl-C: stop at once what this backend runs on this machine (local
        workers); scheduler jobs are left alone (they go on; ``xcache rm --force`` or
        ``terminate_tasks_in_cache`` cancels them)."""

    def adopt(self, key: str, job: dict[str, Any] | None) -> bool:
        """Take over a claim whose owner died (called under the entry's claim lock).

        A scheduler job submitted by a driver that was killed may still be queued
        or running: rather than submit again, a cluster backend rewrites the claim
        with this driver as owner, returns True, and ``dispatch()`` then tracks the
        existing job.  Default (local): nothing outlives its driver, so False.
        """
        return False


__all__ = ["Backend", "Died", "Event", "Finished", "Requeue", "Started", "SubmitFailed",
           "Task"]
