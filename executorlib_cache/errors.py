"""Every exception the package raises, in one family kept apart by cause.

"The function raised" re-raises the user's *own* exception type, with the remote
traceback text as ``__cause__`` (:class:`RemoteTraceback`).  Everything below
:class:`XCacheError` means something else went wrong::

    XCacheError
    ├── TaskDiedError          the process or job running a call ended without a result
    ├── UpstreamFailedError    a call could not run: a call it depends on failed
    ├── SubmissionError        the scheduler refused the job (its own text in the message)
    ├── SchedulerError         a scheduler command could not run or failed (status, cancel)
    ├── DetachedError          the executor stopped watching a call that goes on without it
    ├── SerializationError     an argument or return value cannot be pickled (also TypeError)
    ├── RemoteError            stands in for a remote exception that cannot be unpickled
    ├── RemoteTraceback        the traceback text of a remote exception (as ``__cause__``)
    ├── CorruptEntryError      an entry file exists but cannot be read
    │   └── TamperedEntryError its signature does not match the secret: never unpickled
    ├── ClaimTimeoutError      an entry's claim lock was held too long (also TimeoutError)
    ├── CatalogError           bad input to ``xcache``/the catalog (also ValueError)
    ├── UnsupportedResourceError  a resource_dict key this backend cannot honour
    │                          (also ValueError and TypeError)
    ├── UnsupportedOptionError  an executorlib option with no counterpart here
    │                          (also ValueError and NotImplementedError)
    ├── GraphvizMissingError   drawing needs Graphviz
    └── BrokenExecutor         the executor's management thread died (also
                               ``concurrent.futures.BrokenExecutor``)

Every class also derives from the built-in type code written for the standard
library expects (``RuntimeError``, ``TypeError``, ``ValueError``, ``TimeoutError``),
so ``except RuntimeError`` keeps working.

All of them survive pickling with their attributes (a runner raises them in another
process): :meth:`XCacheError.__reduce__` rebuilds an instance without calling
``__init__`` again, so a subclass may take any constructor arguments.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

#: longest error message kept from a root cause in an :class:`UpstreamFailedError`
ROOT_MESSAGE_MAX = 500


def _rebuild(cls: type[BaseException], args: tuple, state: dict[str, Any]) -> BaseException:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class XCacheError(Exception):
    """Base class of every error raised by executorlib_cache itself."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class RemoteTraceback(XCacheError):
    """The traceback text of an exception raised in a worker or job.

    Set as ``__cause__`` of the re-raised exception, so a traceback printed in the
    driver shows where the call failed remotely (as ``concurrent.futures`` does).
    """

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class RemoteError(XCacheError):
    """Stands in for an exception that could not be pickled back from the call;
    its message is ``module.Type: message`` of the original."""


class TaskDiedError(XCacheError, RuntimeError):
    """The process or job running a call ended without writing a result (killed,
    out of memory, time limit, node failure, segfault).  The message names the
    process or job, its state and the tail of its log when there is one."""


class SubmissionError(XCacheError, RuntimeError):
    """The scheduler refused a job, or accepted one it can never run (flux's
    ``unsatisfiable request``); the scheduler's own text is in the message."""


class SchedulerError(XCacheError, RuntimeError):
    """A scheduler command (``squeue``, ``flux jobs``, ``scancel``...) could not be
    run, timed out or failed; the message carries its stderr."""


class DetachedError(XCacheError):
    """The executor stopped watching this call before it finished -- Ctrl-C during
    ``shutdown()``, or ``shutdown(wait=False)`` of a cluster executor -- while the
    call goes on in its worker or job and writes its result into the cache, where a
    re-run (or :func:`~executorlib_cache.get_future_from_cache`) finds it.  The
    message says where it goes on."""


class SerializationError(XCacheError, TypeError):
    """An argument, a function or a return value cannot be pickled (cloudpickle);
    the message names which one and its type."""


class CorruptEntryError(XCacheError):
    """An entry file exists but cannot be read as a valid entry."""


class TamperedEntryError(CorruptEntryError):
    """An entry's HMAC does not match the secret: it is refused, never unpickled."""


class ClaimTimeoutError(XCacheError, TimeoutError):
    """An entry's claim lock stayed held by another live process for longer than
    ``XCACHE_CLAIM_TIMEOUT`` (a dead holder's lock is released by the kernel at once:
    fcntl byte-range locks, ``locks.py``)."""


class CatalogError(XCacheError, ValueError):
    """A problem with what the user asked the catalog or ``xcache`` for (unknown
    key, bad duration...).  The message is one line, meant to be shown as is."""


class UnsupportedResourceError(XCacheError, ValueError, TypeError):
    """A ``resource_dict`` key the executor cannot honour, raised at construction or
    ``submit()`` instead of silently dropping it; the message names the key(s) and
    what this executor honours.  Also a ``TypeError``: executorlib raises that for
    some of the same keys (``gpus_per_core`` on its SingleNodeExecutor)."""


class UnsupportedOptionError(XCacheError, ValueError, NotImplementedError):
    """An executorlib constructor option that this package does not implement
    (``block_allocation=True``, ``init_function``...); the message says what to use
    instead.  A ``ValueError`` (what executorlib raises for the same options in its
    file mode) and a ``NotImplementedError``."""


class GraphvizMissingError(XCacheError, RuntimeError):
    """Rendering needs Graphviz (python package + ``dot`` binary) and it is missing."""


class BrokenExecutor(XCacheError, concurrent.futures.BrokenExecutor):
    """The executor's management thread died; pending futures fail with this, the
    original exception as ``__cause__``.  Results already written stay in the cache."""


class UpstreamFailedError(XCacheError, RuntimeError):
    """A call could not run because a call it depends on failed or was cancelled.

    Attributes: ``upstream_key`` (the immediate upstream), ``root_key``,
    ``root_type`` and ``root_message`` (the first failure of the chain: its key, its
    exception type and message, cut to :data:`ROOT_MESSAGE_MAX` characters).  The
    message names both once, so it stays bounded along a chain of any length
    (it used to embed the previous link's ``repr``, doubling per link).
    """

    def __init__(self, message: str, upstream_key: str, *, root_key: str | None = None,
                 root_type: str | None = None, root_message: str | None = None) -> None:
        super().__init__(message)
        self.upstream_key = upstream_key
        self.root_key = root_key or upstream_key
        self.root_type = root_type
        self.root_message = root_message

    @classmethod
    def because(cls, upstream_key: str, upstream_exc: BaseException | None,
                cancelled: bool = False) -> UpstreamFailedError:
        """The error of a call whose upstream ``upstream_key`` failed with
        ``upstream_exc`` (or was cancelled): the root cause is carried over from
        an upstream that itself failed for an upstream."""
        if cancelled:
            return cls(f"upstream task {upstream_key} was cancelled", upstream_key,
                       root_type="CancelledError", root_message="cancelled")
        if isinstance(upstream_exc, UpstreamFailedError):
            root_key, root_type = upstream_exc.root_key, upstream_exc.root_type
            root_message = upstream_exc.root_message
        else:
            root_key = upstream_key
            root_type = type(upstream_exc).__name__ if upstream_exc is not None else None
            root_message = str(upstream_exc)[:ROOT_MESSAGE_MAX] if upstream_exc else None
        return cls.from_root(upstream_key, root_key, root_type, root_message)

    @classmethod
    def from_root(cls, upstream_key: str, root_key: str, root_type: str | None,
                  root_message: str | None) -> UpstreamFailedError:
        """Build the bounded message from the immediate upstream and the root cause."""
        root_message = (root_message or "")[:ROOT_MESSAGE_MAX]
        cause = f"{root_type or 'an error'}: {root_message}" if root_message else \
            (root_type or "an error")
        if root_key == upstream_key:
            msg = f"upstream task {upstream_key} failed: {cause}"
        else:
            msg = f"upstream task {upstream_key} failed; root cause: task {root_key} raised {cause}"
        return cls(msg, upstream_key, root_key=root_key, root_type=root_type,
                   root_message=root_message)


__all__ = [
    "BrokenExecutor", "CatalogError", "ClaimTimeoutError", "CorruptEntryError", "DetachedError",
    "GraphvizMissingError", "RemoteError", "RemoteTraceback", "SchedulerError",
    "SerializationError", "SubmissionError", "TamperedEntryError", "TaskDiedError",
    "UpstreamFailedError", "XCacheError",
]
