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
                        workers / SLURM jobs ── write ─▶ <cache>/<key>/

Tasks "attached" to a claim held by another live process (a second driver)
are only watched: their result file is stat'ed, and if the owner dies without
a result this driver takes the claim over and runs the task itself.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections import deque
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
    SubmissionError,
    TaskDiedError,
    UpstreamFailedError,
)
from .future import CacheFuture
from .serialization import dumps_exception
from .store import ERROR, RESULT, Store

_ids = itertools.count()
ATTACHED_CHECK_MIN, ATTACHED_CHECK_MAX = 0.02, 0.5
OWNER_CHECK_INTERVAL = 2.0


def _crashed(error: BaseException | None) -> BrokenExecutor:
    exc = BrokenExecutor(f"executorlib_cache poller crashed: {error!r}")
    exc.__cause__ = error
    return exc


class Poller:
    """The one owner of pending work: every unresolved task of an executor lives in
    its tables, and only its thread resolves futures (see the module docstring)."""

    def __init__(self, store: Store, backend: Backend, ctx: zmq.Context) -> None:
        self.store = store
        self.backend = backend
        self._ctx = ctx
        self._inbox: deque[tuple[str, Any]] = deque()
        self._wake_addr = f"inproc://xcache-wake-{id(self)}-{next(_ids)}"
        self._wake_rx = ctx.socket(zmq.PULL)
        self._wake_rx.bind(self._wake_addr)
        self._wake_tx = ctx.socket(zmq.PUSH)
        self._wake_tx.connect(self._wake_addr)
        self._wake_lock = threading.Lock()
        self._wake_pending = False  # coalesce wake-ups: one message per idle period
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
        self._started = False
        self.error: BaseException | None = None

    # ------------------------------------------------------------ caller side
    def put(self, task: Task) -> None:
        """Hand a claimed task to the loop (any thread); starts the thread on first use."""
        self._post(("task", task))
        if self.error is not None:  # the loop is gone: nobody else would resolve it
            self._fail_inbox()

    def _fail_inbox(self) -> None:
        """After a crash: fail the futures of tasks still waiting in the inbox."""
        while True:
            try:
                kind, item = self._inbox.popleft()
            except IndexError:
                return
            if kind == "task":
                exc = _crashed(self.error)
                for f in item.futures:
                    if f.set_running_or_notify_cancel():
                        f.set_exception(exc)

    def cancel(self, future: CacheFuture) -> None:
        """A future of this executor was cancelled: withdraw its task (any thread)."""
        self._post(("cancel", future))

    def stop(self, detach: bool = False) -> None:
        """Finish when every task is resolved (``detach``: when every task is handed
        to a backend that keeps running without a driver).
        """
        self._post(("stop", detach))

    def unresolved_futures(self) -> list[CacheFuture]:
        """Futures not yet resolved (a snapshot; safe from any thread)."""
        return [f for task in list(self._tasks.values()) for f in list(task.futures)]

    def join(self, timeout: float | None = None) -> None:
        """Wait for the loop's thread to end (``timeout`` in seconds, None: forever)."""
        if self._started:
            self._thread.join(timeout)

    def _post(self, item: tuple[str, Any]) -> None:
        self._inbox.append(item)
        if not self._started:
            self._started = True
            self._thread.start()
        if self._wake_pending:
            return
        with self._wake_lock:
            self._wake_pending = True
            try:
                self._wake_tx.send(b"", zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # closing

    # ------------------------------------------------------------ the loop
    def _run(self) -> None:
        try:
            self.backend.start(self._ctx)
            zpoller = zmq.Poller()
            for sock in [self._wake_rx, *self.backend.sockets()]:
                zpoller.register(sock, zmq.POLLIN)
            while True:
                ready = dict(zpoller.poll(self._timeout_ms()))
                self._drain_wake(ready)
                self._take_inbox()
                self._handle(self.backend.collect(set(ready)))
                self._periodic_checks()
                self._dispatch_ready()
                if self._finished():
                    break
        except BaseException as exc:  # a bug here must not leave futures hanging
            self.error = exc
            for task in list(self._tasks.values()):
                self._fail(task, _crashed(exc), record=False)
            self._fail_inbox()  # and those submitted meanwhile (they used to hang)
            raise
        finally:
            try:
                self.backend.shutdown(wait=not self._detach)
            finally:
                self._wake_rx.close(linger=0)
                with self._wake_lock:
                    self._wake_tx.close(linger=0)

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

    def _drain_wake(self, ready: dict[Any, int]) -> None:
        if self._wake_rx in ready:
            self._wake_pending = False
            while True:
                try:
                    self._wake_rx.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break

    # ------------------------------------------------------------ 1. inbox
    def _take_inbox(self) -> None:
        while self._inbox:
            kind, item = self._inbox.popleft()
            if kind == "task":
                self._add(item)
            elif kind == "cancel":
                self._cancel(item)
            elif kind == "upstream":
                self._upstream_progress(item)
            elif kind == "stop":
                self._shutdown = True
                self._detach = bool(item)

    def _add(self, task: Task) -> None:
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
        self._post(("upstream", key))

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
            names = self.store.names(task.key) or set()
            if RESULT in names or ERROR in names:
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
            try:
                if self.store.names(task.key) is not None:
                    self.store.write_outcome(task.key, "failed", payload, meta)
            except OSError:
                pass
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
