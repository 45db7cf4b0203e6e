"""The future handed to users: a ``concurrent.futures.Future`` with a cache key, and
the futures derived from it (``split_future``, ``get_item_from_future``, batches)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any

from .serialization import load_outcome


class CacheFuture(Future):
    """A future for one cache entry.

    ``key`` names the entry (``Store.path_of(key, ...)``).  Only the executor's poller
    resolves it (or ``submit()`` itself on a cache hit, before anyone can see it).
    ``cancel()`` also withdraws the task from the backend (scancel for jobs).
    """

    def __init__(self, key: str, cache_root: str | None = None) -> None:
        super().__init__()
        self.key = key
        #: the cache directory of the entry (set by submit(): a future passed to an
        #: executor on another directory is given as its value)
        self.cache_root: str | None = cache_root
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


# ---------------------------------------------------------------- derived futures
class _Derived(Future):
    """A future computed from others by done-callbacks: a real ``Future`` (it works
    with ``concurrent.futures.wait``/``as_completed``); ``cancel()`` is passed on."""

    def _settle(self, compute: Callable[[], Any]) -> None:
        if self.done():
            return
        try:
            value = compute()
        except BaseException as e:  # noqa: BLE001 - the future carries it
            try:
                self.set_exception(e)
            except Exception:  # settled meanwhile (InvalidStateError)
                pass
            return
        try:
            self.set_result(value)
        except Exception:
            pass


class FutureSelector(_Derived):
    """One element of another future's result: ``result()[selector]``.

    Passed as an argument to ``submit()``, it is a dependency on the *upstream* entry
    with a selector: the call's key is the upstream key plus the selector, the runner
    indexes the upstream value, and no cache entry is made for the element.  Its
    result is None when the upstream result is None (as in executorlib); indexing
    errors (``IndexError``, ``KeyError``) and the upstream's exception are raised by
    ``result()``.  ``cancel()`` cancels the upstream future.

    Attributes: ``future`` (the future it selects from), ``selector``, ``key`` (the
    upstream entry's key, or None for a future of another kind), ``selector_path``
    (the selectors from that entry, outermost first) and ``root_future``.
    """

    def __init__(self, future: Future, selector: Any) -> None:
        super().__init__()
        self.future = future
        self.selector = selector
        self.selector_path: tuple = (*getattr(future, "selector_path", ()), selector)
        self.root_future: Future = getattr(future, "root_future", future)
        self.key = getattr(future, "key", None)
        future.add_done_callback(self._upstream_done)

    def _upstream_done(self, future: Future) -> None:
        if future.cancelled():
            Future.cancel(self)
            return
        self._settle(lambda: _select(future.result(), self.selector))

    def cancel(self) -> bool:
        """Cancel the upstream future (and with it this one); False if it runs."""
        return self.future.cancel()

    def running(self) -> bool:
        """True while the upstream call runs."""
        return not self.done() and self.future.running()

    def __repr__(self) -> str:
        return f"<FutureSelector {self.key}{list(self.selector_path)} state={self._state.lower()}>"


def _select(value: Any, selector: Any) -> Any:
    return None if value is None else value[selector]


def split_future(future: Future, n: int) -> list[FutureSelector]:
    """``n`` futures for the elements ``0..n-1`` of ``future``'s result (a tuple or
    list of length ``n``): ``a, b = split_future(exe.submit(divmod, 7, 2), n=2)``.

    Non-blocking; each is usable as an argument without an extra cache entry (see
    :class:`FutureSelector`).  Raises ``ValueError`` for ``n`` not an int >= 1 and
    ``TypeError`` for something that is not a future.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if not isinstance(future, Future):
        raise TypeError(f"split_future needs a Future, got {type(future).__name__}")
    return [FutureSelector(future, i) for i in range(n)]


def get_item_from_future(future: Future, key: Any) -> FutureSelector:
    """A future for ``future.result()[key]`` (e.g. one entry of a dict result); see
    :class:`FutureSelector`.  Raises ``TypeError`` for something that is not a future.
    """
    if not isinstance(future, Future):
        raise TypeError(f"get_item_from_future needs a Future, got {type(future).__name__}")
    return FutureSelector(future, key)


class BatchFuture(_Derived):
    """The list of the results of ``batch_members`` (futures), in their order.

    Done when every member is done; fails with the first failed member's exception
    (in member order; ``CancelledError`` for a cancelled one).  Passed to
    ``submit()``, it is the list of its members' references: no extra cache entry,
    no blocking.  ``cancel()`` cancels the members that have not started.
    """

    def __init__(self, members: list[Future]) -> None:
        super().__init__()
        self.batch_members = list(members)
        self._left = len(self.batch_members)
        self._count_lock = threading.Lock()
        for m in self.batch_members:
            m.add_done_callback(self._member_done)

    def _member_done(self, _: Future) -> None:
        with self._count_lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._settle(self._collect)

    def _collect(self) -> list[Any]:
        for m in self.batch_members:
            if m.cancelled():
                raise CancelledError()
            exc = m.exception()
            if exc is not None:
                raise exc
        return [m.result() for m in self.batch_members]

    def cancel(self) -> bool:
        """Cancel every member that has not started; True if this future is cancelled."""
        for m in self.batch_members:
            m.cancel()
        return Future.cancel(self)

    def __repr__(self) -> str:
        return f"<BatchFuture of {len(self.batch_members)} state={self._state.lower()}>"


def batched(futures: list[Future], n: int) -> list[BatchFuture]:
    """``ceil(len(futures)/n)`` futures, batch ``i`` holding ``futures[i*n:(i+1)*n]``
    in input order (the last may be shorter); see :class:`BatchFuture`.  Raises
    ``ValueError`` for ``n`` not an int >= 1, ``TypeError`` for a non-future element.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    items = list(futures)
    bad = [type(f).__name__ for f in items if not isinstance(f, Future)]
    if bad:
        raise TypeError(f"batched() takes a list of futures, got {bad[0]}")
    return [BatchFuture(items[i:i + n]) for i in range(0, len(items), n)]
