"""The future handed to users: a ``concurrent.futures.Future`` with a cache key."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .serialization import load_outcome


class CacheFuture(Future):
    """A future for one cache entry.

    ``key`` names the entry (``<cache>/<key>/``).  Only the executor's poller
    resolves it (or ``submit()`` itself on a cache hit, before anyone can see it).
    ``cancel()`` also withdraws the task from the backend (scancel for jobs).
    """

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        #: True when submit() found the result in the cache
        self.cached = False
        self._on_cancel: Callable[[CacheFuture], Any] | None = None

    def cancel(self) -> bool:
        """Cancel as ``concurrent.futures`` does (True unless it is running or done),
        and withdraw the call from its backend: a queued ticket is unlinked, a job
        cancelled (``scancel``/``flux cancel``), the claim given back.
        """
        cancelled = super().cancel()
        if cancelled and self._on_cancel is not None:
            self._on_cancel(self)
        return cancelled

    def set_outcome(self, status: str, payload: bytes, meta: dict[str, Any],
                    cached: bool = False) -> bool:
        """Resolve from a stored outcome (``status`` "done" or "failed"; see
        :func:`~executorlib_cache.serialization.load_outcome`).  ``cached`` marks a
        result found in the cache at ``submit()`` (progress bars count it as
        cached).  False if the future was already done or cancelled."""
        if self.done() or not (self.running() or self.set_running_or_notify_cancel()):
            return False
        value, exc = load_outcome(status, payload, meta)
        if exc is not None:
            self.set_exception(exc)
        else:
            self.cached = cached  # before set_result: done-callbacks read it
            self.set_result(value)
        return True

    def __repr__(self) -> str:
        return f"<CacheFuture {self.key} state={self._state.lower()}>"


def future_status(future: Future) -> str:
    """A future's status in the vocabulary of the graph and the progress bar:
    cancelled, failed, cached (resolved from the cache at submit), done, running,
    pending."""
    if future.cancelled():
        return "cancelled"
    if future.done():
        if future.exception() is not None:
            return "failed"
        return "cached" if getattr(future, "cached", False) else "done"
    return "running" if future.running() else "pending"
