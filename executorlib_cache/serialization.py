"""Turning calls, results and exceptions into bytes and back (cloudpickle).

Pickling errors are made specific: a user who passes an open file or a lock
learns *which* argument is the problem at ``submit()``, not from a dead job.
:func:`load_outcome` is the one place that turns a stored outcome into the value
a future returns or the exception it raises (with the remote traceback as
``__cause__``, as ``concurrent.futures.ProcessPoolExecutor`` does).
"""

from __future__ import annotations

import pickle
import threading
import traceback
from typing import Any

import cloudpickle

from .errors import RemoteError, RemoteTraceback, SerializationError

PROTOCOL = 5


def dumps(obj: Any) -> bytes:
    """cloudpickle with protocol 5 (functions of ``__main__`` by value)."""
    return cloudpickle.dumps(obj, protocol=PROTOCOL)


_loading_call = threading.local()


def loads_call(payload: bytes) -> Any:
    """Unpickle a call in a worker or runner.  Unpickling imports the function's
    module; while it does, :func:`loading_call` is true, so that an executor that
    module's top-level code creates fails at once (:class:`RuntimeError`) instead of
    waiting on the very call being loaded -- the hang ``multiprocessing`` prevents
    with its ``if __name__ == "__main__"`` rule."""
    _loading_call.active = True
    try:
        return loads(payload)
    finally:
        _loading_call.active = False


def loading_call() -> bool:
    """True while this thread unpickles a call (:func:`loads_call`)."""
    return getattr(_loading_call, "active", False)


def refuse_executor_while_loading_call() -> None:
    """Raise :class:`RuntimeError` when an executor is made during :func:`loads_call`
    (a worker importing a module whose top-level code runs an executor)."""
    if loading_call():
        raise RuntimeError(
            "an executor was created while a worker was importing the module of a call "
            "(its top-level code makes an executor, and would wait on the call being "
            "loaded): put that code under `if __name__ == \"__main__\":` or in a "
            "function, and import the module's functions from there")


def loads(data: bytes) -> Any:
    """Unpickle (the standard ``pickle.loads``; cloudpickle output needs no more)."""
    return pickle.loads(data)


def dumps_call(fn: Any, args: tuple, kwargs: dict) -> bytes:
    """Pickle ``(fn, args, kwargs)``; on failure name the culprit."""
    try:
        return dumps((fn, args, kwargs))
    except Exception as exc:
        for label, value in _parts(fn, args, kwargs):
            try:
                dumps(value)
            except Exception as e:
                raise SerializationError(
                    f"{label} of {getattr(fn, '__name__', fn)!r} cannot be pickled "
                    f"({type(value).__name__}): {e}"
                ) from e
        raise SerializationError(f"the call cannot be pickled: {exc}") from exc


def _parts(fn: Any, args: tuple, kwargs: dict) -> list[tuple[str, Any]]:
    parts: list[tuple[str, Any]] = [("the function", fn)]
    parts += [(f"positional argument {i}", a) for i, a in enumerate(args)]
    parts += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    return parts


def dumps_exception(exc: BaseException) -> tuple[bytes, dict[str, Any]]:
    """Payload and metadata of a failure; the exception survives unpicklable."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    meta: dict[str, Any] = {
        "error_type": type(exc).__qualname__,
        "error_module": type(exc).__module__,
        "error_message": str(exc)[:2000],
        "traceback": tb[-32000:],
    }
    root_key = getattr(exc, "root_key", None)
    if root_key:  # an UpstreamFailedError: its root cause travels along the chain
        meta.update(root_key=root_key, root_type=getattr(exc, "root_type", None),
                    root_message=getattr(exc, "root_message", None))
    exc.__traceback__ = None
    try:
        payload = dumps(exc)
        pickle.loads(payload)  # some exceptions pickle but do not unpickle
    except Exception:
        payload = dumps(RemoteError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"))
    return payload, meta


def load_outcome(status: str, payload: bytes, meta: dict[str, Any]
                 ) -> tuple[Any, BaseException | None]:
    """A stored outcome as ``(value, None)`` (``status == "done"``) or ``(None, exc)``.

    A value that cannot be unpickled here (its class is not importable, say) is
    returned as ``(None, SerializationError)`` naming the entry, with the unpickling
    error as ``__cause__``: the caller fails the future with it.  The entry stays
    (it is intact; a process that can import the class reads it).
    """
    if status == "done":
        try:
            return loads(payload), None
        except Exception as e:
            err = SerializationError(
                f"the result of {meta.get('key') or 'this call'} cannot be unpickled in "
                f"this process ({type(e).__name__}: {e}); the entry is intact: import "
                "what its value needs (the module defining its class) and read it again")
            err.__cause__ = e
            return None, err
    return None, load_exception(payload, meta)


def load_exception(payload: bytes, meta: dict[str, Any]) -> BaseException:
    """Rebuild the remote exception with its traceback text as ``__cause__``."""
    try:
        exc = loads(payload) if payload else None
    except Exception:
        exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(
            f"{meta.get('error_module', '?')}.{meta.get('error_type', '?')}: "
            f"{meta.get('error_message', '')}"
        )
    tb = meta.get("traceback")
    if tb:
        exc.__cause__ = RemoteTraceback(tb)
    return exc
