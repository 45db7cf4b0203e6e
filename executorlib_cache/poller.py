"""The management thread: one per executor, the only place futures resolve.

    submit() ──inbox──▶ ┌──────────────── poller loop ────────────────┐
                        │ 1. take new tasks / cancels from the inbox   │
                        │ 2. collect backend messages (worker "done")  │
                        │ 3. check: dead workers / jobs, result files  │
                        │ 4. fail tasks whose upstream failed          │
                        │ 5. dispatch tasks whose upstreams are ready  │
                        └──────────────────────────────────────────────┘
                               │ backend.dispatch()      ▲ events
                               ▼                         │
                        workers / SLURM jobs ── write ─▶ <cache>/<hh>/<enc>.h5

Tasks "attached" to a claim held by another live process (a second driver)
are only watched: their result file is stat'ed, and if the owner dies without
a result this driver takes the claim over and runs the task itself.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import Any

import zmq

from . import claims
from .backends.base import (
    Backend,
    Died,
    Event,
    Finished,
    Requeue,
    Started,
    SubmitFailed,
    Task,
)
from .errors import (
    BrokenExecutor,
    CorruptEntryError,
    DetachedError,
    SubmissionError,
    TaskDiedError,
    UpstreamFailedError,
)
from .future import CacheFuture
from .inbox import Inbox
from .serialization import dumps_exception
from .store import Store

ATTACHED_CHECK_MIN, ATTACHED_CHECK_MAX = 0.02, 0.5
OWNER_CHECK_INTERVAL = 2.0


def _crashed(error: BaseException | None) -> BrokenExecutor:
    exc = BrokenExecutor(f"executorlib_cache poller crashed: {error!r}")
    exc.__cause__ = error
    return exc


@dataclass
class Interruption:
    """What an interrupt (Ctrl-C during shutdown) left behind, for the one-line report."""

    going_on: list[str] = field(default_factory=list)  #: "slurm job 45", "another driver"
    cancelled: int = 0  #: calls that had not started, or local calls stopped

    def line(self) -> str:
        """One line for the user: what goes on, what was not run, what to do."""
        parts = []
        if self.going_on:
            names = sorted(set(self.going_on))
            where = ", ".join(names[:6]) + ("..." if len(names) > 6 else "")
            parts.append(f"{len(self.going_on)} call(s) go on without this driver ({where})"
                         " and write their results into the cache")
        if self.cancelled:
            parts.append(f"{self.cancelled} call(s) were cancelled or stopped")
        what = "; ".join(parts) or "nothing was left running"
        return (f"executorlib_cache: interrupted: {what}; run the script again to collect "
                "what finished and compute the rest")


class Poller:
    """The one owner of pending work: every unresolved task of an executor lives in
    its tables, and only its thread resolves futures (see the module docstring)."""

    def __init__(self, store: Store, backend: Backend) -> None:
        self.store = store
        self.backend = backend
        self._inbox = Inbox()
        self._tasks: dict[str, Task] = {}  # every unresolved task, by key
        self._blocked: dict[str, Task] = {}  # owned, waiting for upstreams
        self._ready: deque[Task] = deque()  # owned, upstreams ready, not yet dispatched
        self._inflight: dict[str, Task] = {}  # handed to the backend
        self._attached: dict[str, Task] = {}  # claimed by another live process
        self._dependents: dict[str, list[Task]] = {}  # upstream key -> blocked tasks
        #: upstream key -> tasks dispatched before it finished (queued with afterok)
        self._queued_dependents: dict[str, list[Task]] = {}
        self._shutdown = False
        self._detach = False
        self._attached_interval = ATTACHED_CHECK_MIN
        self._next_attached = 0.0
        self._next_owner_check = 0.0
        self._next_check = 0.0
        self._thread = threading.Thread(target=self._run, name="xcache-poller", daemon=True)
        self._start_lock = threading.Lock()
        self._started = False
        #: set when the loop has ended (and every future it held is resolved)
        self.done = threading.Event()
        self.error: BaseException | None = None
        #: what an interrupt left behind (None: not interrupted)
        self.interrupted: Interruption | None = None

    # ------------------------------------------------------------ caller side
    @property
    def started(self) -> bool:
        """The loop was ever started (an executor that was never used has none)."""
        return self._started

    def put(self, task: Task) -> None:
        """Hand a claimed task to the loop (any thread); starts the thread on first use."""
        self._post("task", task)
        if self.error is not None:  # the loop is gone: nobody else would resolve it
            self._fail_inbox()

    def _give_back(self, task: Task) -> None:
        """After a crash: release this process's claim of a task no batch job holds,
        so that a later executor in this live process (a notebook's next cell) runs
        it instead of waiting on a claim nobody serves (best effort)."""
        if not task.attached and task.job_id is None:
            try:
                claims.release_if_mine(self.store, task.key)
            except Exception:  # noqa: BLE001 -- the crash is reported; this is cleanup
                pass

    def _fail_inbox(self) -> None:
        """After a crash: fail the futures of tasks still waiting in the inbox (and
        give their claims back)."""
        for kind, item in self._inbox.take():
            if kind == "task":
                self._give_back(item)
                exc = _crashed(self.error)
                for f in item.futures:
                    if f.set_running_or_notify_cancel():
                        f.set_exception(exc)

    def cancel(self, future: CacheFuture) -> None:
        """A future of this executor was cancelled: withdraw its task (any thread)."""
        if self._started:
            self._post("cancel", future)

    def stop(self, detach: bool = False) -> None:
        """Finish when every task is resolved (``detach``: when every task is handed
        to a backend that keeps running without a driver)."""
        self._post("stop", detach)

    def interrupt(self) -> None:
        """Stop now (Ctrl-C during shutdown): before any other message, cancel what was
        not handed out, let workers and jobs go on without us, resolve every future."""
        self._post("interrupt", None, front=True)

    def unresolved_futures(self) -> list[CacheFuture]:
        """Futures not yet resolved, also of tasks still in the inbox (a snapshot;
        safe from any thread)."""
        queued = [item for kind, item in self._inbox.snapshot() if kind == "task"]
        tasks = [*list(self._tasks.values()), *queued]
        return [f for task in tasks for f in list(task.futures)]

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the loop ended (``timeout`` seconds, None: forever); True if it did.

        Waits in short slices on an Event, so a KeyboardInterrupt can arrive at any
        moment without leaving a lock or the thread's state broken (on Python 3.11 an
        interrupted ``Thread.join()`` can report a live thread as stopped).
        """
        if not self._started:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done.is_set():
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                return False
            self.done.wait(left)
        return True

    def _post(self, kind: str, item: Any, front: bool = False) -> None:
        self._inbox.put(kind, item, front)
        if not self._started:
            with self._start_lock:
                if not self._started:
                    self._inbox.open()
                    self._thread.start()
                    self._started = True

    # ------------------------------------------------------------ the loop
    def _run(self) -> None:
        ctx: zmq.Context | None = None
        try:
            ctx = zmq.Context()
            self.backend.start(ctx)
            wake = self._inbox.open()
            zpoller = zmq.Poller()
            zpoller.register(wake, zmq.POLLIN)
            for sock in self.backend.sockets():
                zpoller.register(sock, zmq.POLLIN)
            while True:
                ready = dict(zpoller.poll(self._timeout_ms()))
                if wake in ready:
                    self._inbox.drain_wake()
                self._take_inbox()
                self._handle(self.backend.collect(set(ready)))
                self._periodic_checks()
                self._dispatch_ready()
                if self._finished():
                    break
            self._detach_the_rest()
        except BaseException as exc:  # a bug here must not leave futures hanging
            self.error = exc
            for task in list(self._tasks.values()):
                self._give_back(task)
                self._fail(task, _crashed(exc), record=False)
            self._fail_inbox()  # and those submitted meanwhile (they used to hang)
            raise
        finally:
            try:
                self.backend.shutdown(wait=not self._detach)
            finally:
                self._inbox.close()
                if ctx is not None:
                    ctx.destroy(linger=0)
                self.done.set()

    def _timeout_ms(self) -> int:
        if self._inbox:
            return 0
        now = time.monotonic()
        deadlines = []
        if self._inflight or self._ready:
            deadlines.append(self._next_check)
        if self._attached:
            deadlines.append(self._next_attached)
        if not deadlines:
            return 1000
        return max(0, min(1000, int((min(deadlines) - now) * 1000) + 1))

    # ------------------------------------------------------------ 1. inbox
    def _take_inbox(self) -> None:
        for kind, item in self._inbox.take():
            if self.interrupted is not None and kind == "task":
                self._drop(item)  # submitted after the interrupt: not started
                self.interrupted.cancelled += 1
            elif kind == "task":
                self._add(item)
            elif kind == "cancel":
                self._cancel(item)
            elif kind == "upstream":
                self._upstream_progress(item)
            elif kind == "stop":
                self._shutdown = True
                self._detach = self._detach or bool(item)
            elif kind == "interrupt":
                self._interrupt()

    def _drop(self, task: Task) -> None:
        """A task that will not run (any more): its claim is given back and its
        futures cancelled -- or, if one was already running (a local call stopped
        by Ctrl-C), failed with CancelledError."""
        if not task.attached:
            claims.release(self.store, task.key)
        self._forget(task)
        for f in task.futures:
            if not f.cancel() and not f.done():
                f.set_exception(CancelledError(
                    f"task {task.key} was stopped by Ctrl-C before it finished; a re-run "
                    "computes it"))

    def _interrupt(self) -> None:
        """Ctrl-C during shutdown: stop now.  Calls not handed out are cancelled;
        calls a worker or job has go on without this driver and write their results
        into the cache (a re-run collects them); every future is resolved."""
        left = self.interrupted = Interruption()
        self._shutdown = self._detach = True
        for task in list(self._tasks.values()):
            where = None
            if task.attached:
                where = "another driver"
            elif task.dispatched:
                where = self.backend.goes_on(task)
            if where is None:
                self._drop(task)
                left.cancelled += 1
                continue
            left.going_on.append(where)
            self._resolve_exception(task, DetachedError(
                f"interrupted before task {task.key} finished: it goes on in {where} and "
                "writes its result into the cache, where a re-run finds it"))
        self._ready.clear()
        self.backend.interrupt()

    def _detach_the_rest(self) -> None:
        """The loop ends with calls still in flight (``shutdown(wait=False)`` of a
        cluster executor): their futures fail with DetachedError, never stay pending."""
        for task in list(self._tasks.values()):
            where = self.backend.goes_on(task) if task.dispatched else None
            self._resolve_exception(task, DetachedError(
                f"the executor was shut down without waiting for task {task.key}; "
                f"{f'it goes on in {where}' if where else 'it was handed out'} and "
                "writes its result into the cache, where a re-run finds it"))

    def _add(self, task: Task) -> None:
        if all(f.cancelled() for f in task.futures):
            self._drop(task)  # cancelled while in the inbox (shutdown(cancel_futures))
            return
        known = self._tasks.get(task.key)
        if known is not None:  # the same call again while in flight: share the outcome
            known.futures.extend(task.futures)
            return
        self._tasks[task.key] = task
        if task.attached:
            self._attached[task.key] = task
            self._next_attached = 0.0
        else:
            self._enqueue(task)

    def _enqueue(self, task: Task) -> None:
        """Owned task: failed at once (an upstream already failed or was cancelled:
        it never reaches a worker or a job), ready now, or blocked until its
        upstreams progress."""
        failed = self._failed_upstream(task)
        if failed is not None:
            self._fail(task, failed, reason="upstream")
            return
        pending = [k for k, f in task.deps.items() if not self._dep_satisfied(k, f)]
        if not pending:
            self._ready.append(task)
            return
        self._blocked[task.key] = task
        for k in pending:
            self._dependents.setdefault(k, []).append(task)
            task.deps[k].add_done_callback(functools.partial(self._upstream_done, k))

    def _upstream_done(self, key: str, _future: Any) -> None:
        self._post("upstream", key)

    def _dep_satisfied(self, key: str, fut: CacheFuture) -> bool:
        if fut.done():
            return True
        return self.backend.dispatch_after == "queued" and self._upstream_job_id(key) is not None

    def _upstream_progress(self, key: str) -> None:
        """An upstream finished (or got a job id): fail, release or keep its dependents."""
        self._check_queued_dependents(key)
        for task in self._dependents.pop(key, []):
            if task.key not in self._blocked:
                continue
            failed = self._failed_upstream(task)
            if failed is not None:
                del self._blocked[task.key]
                self._fail(task, failed, reason="upstream")
            elif all(self._dep_satisfied(k, f) for k, f in task.deps.items()):
                del self._blocked[task.key]
                self._ready.append(task)
            elif not self._dep_satisfied(key, task.deps[key]):
                # e.g. its job id is not known yet: keep waiting on it (the task is still
                # listed under every other upstream it waits for)
                self._dependents.setdefault(key, []).append(task)

    @staticmethod
    def _failed_upstream(task: Task) -> UpstreamFailedError | None:
        for up_key, up in task.deps.items():
            if up.done() and (up.cancelled() or up.exception() is not None):
                if up.cancelled():
                    return UpstreamFailedError.because(up_key, None, cancelled=True)
                return UpstreamFailedError.because(up_key, up.exception())
        return None

    def _cancel(self, future: CacheFuture) -> None:
        task = self._tasks.get(future.key)
        if task is None or any(not f.cancelled() for f in task.futures):
            return  # another future still wants the outcome
        dispatched = task.dispatched
        self._forget(task)
        if task.attached:
            return
        if dispatched:
            self.backend.cancel(task)
        else:  # give the claim back: the entry stays "pending" for a later run
            claims.release(self.store, task.key)

    # ------------------------------------------------------------ 2./3. events
    def _handle(self, events: list[Event]) -> None:
        for ev in events:
            task = self._tasks.get(ev.key)
            if task is None:
                continue
            if isinstance(ev, Finished):
                self._finish(task, ev)
            elif isinstance(ev, Started):
                for f in task.futures:
                    if not f.running() and not f.done():
                        f.set_running_or_notify_cancel()
            elif isinstance(ev, Died):
                self._fail(task, TaskDiedError(ev.message), reason="died", state=ev.state)
            elif isinstance(ev, Requeue):
                self._requeue(task, ev.message)
            elif isinstance(ev, SubmitFailed):
                self._fail(task, SubmissionError(ev.message), reason="submit")

    def _requeue(self, task: Task, message: str) -> None:
        """The worker holding ``task`` died before starting it: hand it out again
        (at most twice, so a task that kills workers before it starts cannot loop)."""
        tries = task.requeued + 1
        if tries > 2:
            self._fail(task, TaskDiedError(f"{message} (the task was handed to {tries} "
                                           "workers; each died before it started)"),
                       reason="died")
            return
        task.requeued = tries
        task.dispatched = False
        self._inflight.pop(task.key, None)
        self._ready.appendleft(task)

    def _periodic_checks(self) -> None:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.backend.check_interval
            self._handle(self.backend.check(self._inflight))
        if now >= self._next_attached:
            self._watch_attached(now)

    def _watch_attached(self, now: float) -> None:
        attached = list(self._attached.values())
        progressed = False
        check_owner = now >= self._next_owner_check
        if check_owner:
            self._next_owner_check = now + OWNER_CHECK_INTERVAL
        for task in attached:
            if self.store.finished(task.key):
                self._finish(task, None)
                progressed = True
            elif check_owner:
                if not claims.is_live(self.store, task.key, claims.read_claim(self.store,
                                                                               task.key)):
                    self._take_over(task)
                    progressed = True
        self._attached_interval = (ATTACHED_CHECK_MIN if progressed
                                   else min(ATTACHED_CHECK_MAX, self._attached_interval * 1.5))
        self._next_attached = now + self._attached_interval

    def _take_over(self, task: Task) -> None:
        """The owner of a claim died without a result: claim it and run it here."""
        how = claims.take_over(self.store, task.key, self.backend, task.payload, task.meta)
        if how == "finished":
            self._finish(task, None)
            return
        if how == "live":
            return
        task.attached = False
        del self._attached[task.key]
        self._enqueue(task)  # owned: dispatch it; adopted: the backend tracks its job

    # ------------------------------------------------------------ 4./5. dispatch
    def _dispatch_ready(self) -> None:
        """FIFO: the head waits for capacity (an MPI task is not starved by 1-core ones)."""
        while self._ready:
            task = self._ready[0]
            if task.key not in self._tasks:
                self._ready.popleft()
                continue
            self.backend.demand = len(self._ready)
            if not self.backend.can_dispatch(task):
                return
            self._ready.popleft()
            if self.backend.running_on_dispatch:
                live = [f for f in task.futures if f.set_running_or_notify_cancel()]
                if not live:
                    self._forget(task)
                    continue
            try:
                self.backend.dispatch(task, self._upstream_job_ids(task))
            except UpstreamFailedError as exc:
                self._fail(task, exc, reason="upstream")
                continue
            except Exception as exc:
                err = exc if isinstance(exc, SubmissionError) else SubmissionError(str(exc))
                self._fail(task, err, reason="submit")
                continue
            task.dispatched = True
            self._inflight[task.key] = task
            for k, f in task.deps.items():  # queued ahead of an unfinished upstream
                if not f.done():
                    self._queued_dependents.setdefault(k, []).append(task)
                    f.add_done_callback(functools.partial(self._upstream_done, k))
            if self.backend.dispatch_after == "queued" and task.key in self._dependents:
                self._upstream_progress(task.key)

    def _check_queued_dependents(self, key: str) -> None:
        """Fail tasks queued with afterok on ``key`` as soon as ``key`` fails.

        The scheduler would cancel their jobs too, but later and as a confusing
        "job died"; here they fail at once with UpstreamFailedError naming ``key``.
        """
        waiting = self._queued_dependents.get(key)
        if not waiting or not waiting[0].deps[key].done():
            return
        del self._queued_dependents[key]
        for task in waiting:
            if self._inflight.get(task.key) is not task:
                continue
            failed = self._failed_upstream(task)
            if failed is not None:
                self.backend.cancel(task)
                self._fail(task, failed, reason="upstream")

    def _upstream_job_id(self, key: str) -> str | None:
        up = self._tasks.get(key)
        if up is None:
            return None
        if up.job_id:
            return up.job_id
        if up.attached:
            job = claims.read_claim(self.store, key)
            return job.get("job_id") if job else None
        return None

    def _upstream_job_ids(self, task: Task) -> list[str]:
        ids = []
        for k, f in task.deps.items():
            if not f.done():
                jid = self._upstream_job_id(k)
                if jid:
                    ids.append(jid)
        return ids

    # ------------------------------------------------------------ resolution
    def _finish(self, task: Task, ev: Finished | None) -> None:
        if ev is None or ev.payload is None:
            try:
                outcome = self.store.read_outcome(task.key)
            except Exception as e:  # present but unreadable here (corrupt, tampered)
                self._resolve_exception(task, e)
                return
            if outcome is None:
                self._resolve_exception(task, CorruptEntryError(
                    f"entry {task.key} has no result file"))
                return
            status, payload, meta = outcome.status, outcome.payload, outcome.meta
        else:
            status, payload, meta = ev.status, ev.payload, ev.meta
        self._forget(task)
        for f in task.futures:
            f.set_outcome(status, payload, meta)

    def _fail(self, task: Task, exc: BaseException, reason: str = "died",
              state: str | None = None, record: bool = True) -> None:
        """A failure not raised by the function: record it (failures are data)."""
        if record and not task.attached:
            payload, meta = dumps_exception(exc)
            meta.update(reason=reason, state=state, backend=self.backend.name,
                        job_id=task.job_id, finished=time.time())
            claims.record_failure(self.store, task.key, payload, meta,
                                  (task.payload, task.meta))
        self._resolve_exception(task, exc)

    def _resolve_exception(self, task: Task, exc: BaseException) -> None:
        self._forget(task)
        for f in task.futures:
            if not f.done() and (f.running() or f.set_running_or_notify_cancel()):
                f.set_exception(exc)

    def _forget(self, task: Task) -> None:
        key = task.key
        self._tasks.pop(key, None)
        self._blocked.pop(key, None)
        self._inflight.pop(key, None)
        self._attached.pop(key, None)
        task.dispatched = False

    def _finished(self) -> bool:
        if not self._shutdown:
            return False
        if self._detach and self.backend.detach_on_shutdown:
            return not self._ready and not self._blocked
        return not self._tasks


__all__ = ["Poller"]
