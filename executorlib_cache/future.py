"""The future handed to users: a ``concurrent.futures.Future`` with a cache key."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class CacheFuture(Future):
    """A future for one cache entry.

    ``key`` names the entry (``<cache>/<key>/``).  Only the executor's poller
    resolves it (or ``submit()`` itself on a cache hit, before anyone can see it).
    ``cancel()`` also withdraws the task from the backend (scancel for jobs).
    """

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self._on_cancel: Callable[[CacheFuture], Any] | None = None

    def cancel(self) -> bool:
        cancelled = super().cancel()
        if cancelled and self._on_cancel is not None:
            self._on_cancel(self)
        return cancelled

    def __repr__(self) -> str:
        return f"<CacheFuture {self.key} state={self._state.lower()}>"
