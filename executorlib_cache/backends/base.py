"""What every backend implements, and the events it reports to the poller.

A backend only *runs* entries; the poller owns futures, dependencies and the
cache.  Implementations: ``local`` (persistent worker processes over zmq),
``slurm`` and ``flux`` (jobs through pysqa).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from ..future import CacheFuture
from ..liveness import identity, orphan_workers, owner_alive, pid_alive
from ..store import HOST, STARTED_JSON, Store


def claim_record(backend: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The job.json a driver writes when it claims an entry, before any job exists."""
    return {
        "backend": backend, "job_id": None, "owner": identity(), "submitted": time.time(),
        # task.json may come later (a local worker writes it): the graph needs these
        "function": meta.get("function"), "upstream_keys": list(meta.get("dependencies", [])),
    }


@dataclass
class Task:
    """One entry this driver is responsible for (running it, or watching it)."""

    key: str
    futures: list[CacheFuture]
    payload: bytes
    resources: dict[str, Any]
    deps: dict[str, CacheFuture]
    attached: bool = False  # another live process owns the claim: only watch the files
    dispatched: bool = False
    job_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # backend scratch space
    meta: dict[str, Any] = field(default_factory=dict)  # task.json content


@dataclass
class Finished:
    key: str
    status: str  # "done" | "failed"
    payload: bytes | None = None  # None: read it from the store
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Died:
    key: str
    message: str
    state: str | None = None  # scheduler state, e.g. "CANCELLED", "TIMEOUT"


@dataclass
class Started:
    key: str


@dataclass
class Requeue:
    """A task handed to a worker that died before starting it: dispatch it again."""

    key: str
    message: str = ""  # how the worker died, for the error if it keeps happening


@dataclass
class SubmitFailed:
    key: str
    message: str


Event = Finished | Died | Started | SubmitFailed | Requeue


class Backend:
    """Base class; subclasses override what their scheduler needs."""

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

    def __init__(self, store: Store, max_workers: int | None = None) -> None:
        self.store = store
        self.max_workers = max_workers

    def validate(self, resources: dict[str, Any]) -> None:
        """Raise at submit() for resources this backend cannot honour."""

    def start(self, ctx: zmq.Context) -> None:
        """Called once in the poller thread before the first dispatch."""

    def sockets(self) -> list[zmq.Socket]:
        return []

    #: how many tasks are ready to dispatch (set by the poller before can_dispatch)
    demand = 0

    def can_dispatch(self, task: Task) -> bool:
        return True

    def dispatch(self, task: Task, upstream_job_ids: list[str]) -> None:
        raise NotImplementedError

    def collect(self, ready: set[Any]) -> list[Event]:
        return []

    def check(self, tasks: dict[str, Task]) -> list[Event]:
        return []

    def cancel(self, task: Task) -> None:
        """Withdraw a dispatched task that has not started (best effort)."""

    def shutdown(self, wait: bool = True) -> None:
        """Stop workers / forget the scheduler connection."""

    def adopt(self, key: str, job: dict[str, Any] | None) -> bool:
        """Take over a claim whose owner died (called under the entry's claim lock).

        A scheduler job submitted by a driver that was killed may still be queued
        or running: rather than submit again, a cluster backend rewrites job.json
        with this driver as owner, returns True, and ``dispatch()`` then tracks the
        existing job.  Default (local): nothing outlives its driver, so False.
        """
        return False

    # -------------------------------------------------------------- claims
    @staticmethod
    def claim_is_live(store: Store, key: str, job: dict[str, Any] | None) -> bool:
        """Is somebody still going to finish this claimed entry?

        Default (local): the owning driver is alive, or the runner process that
        started it (started.json) is still alive on this host, or a worker of the
        dead driver still lives (it may have the task in hand, not yet started).
        """
        if job is None:
            return False
        if owner_alive(job.get("owner"), store.root):
            return True
        started = store.read_json(key, STARTED_JSON)
        if started and started.get("host") == HOST and "pid" in started:
            return pid_alive(int(started["pid"]))
        # a worker of the dead driver may hold the task without having started it yet
        return bool(orphan_workers(job.get("owner"), store.root))
