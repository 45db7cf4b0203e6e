"""Futures inside arguments become references to cache keys.

A task never stores an upstream *value* or *path*: it stores a
:class:`DependencyRef` naming the upstream key.  That keeps keys stable
whether the upstream was pending or done at submit time, and lets the
runner on any node resolve the value from the cache directory.

Two kinds of derived futures (``future.py``) are recognised by their attributes,
so this low layer needs no import of them: a future with a ``selector_path``
(``split_future`` / ``get_item_from_future``) becomes a reference with that
selector -- the runner indexes the upstream value, no entry of its own -- and a
future with ``batch_members`` (``Executor.batched``) becomes the list of its
members' references.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .errors import SerializationError, UpstreamFailedError


@dataclass(frozen=True)
class DependencyRef:
    """Placeholder for the result of the entry ``key``; with a ``selector`` (a tuple of
    indices/keys), for ``result[s0][s1]...`` of it."""

    key: str
    selector: tuple | None = None


def select(value: Any, path: tuple | None) -> Any:
    """``value[s0][s1]...`` for ``path``; None stays None (as executorlib's selectors).
    Raises what indexing raises (``IndexError``, ``KeyError``, ``TypeError``)."""
    for s in path or ():
        if value is None:
            return None
        value = value[s]
    return value


def _map_leaves(obj: Any, leaf: Callable[[Any], Any]) -> Any:
    """``leaf`` applied to every value inside (exactly) list/tuple/dict containers.
    :class:`SerializationError` for a container that contains itself (or nesting
    deeper than the interpreter's recursion limit)."""
    try:
        return _walk(obj, leaf)
    except RecursionError:
        raise SerializationError(
            "an argument contains itself (a self-referencing list or dict) or is nested "
            "too deeply to be a call's argument here: pass it in another form") from None


def _walk(obj: Any, leaf: Callable[[Any], Any]) -> Any:
    if type(obj) is list:
        return [_walk(x, leaf) for x in obj]
    if type(obj) is tuple:
        return tuple(_walk(x, leaf) for x in obj)
    if type(obj) is dict:
        return {k: _walk(v, leaf) for k, v in obj.items()}
    return leaf(obj)


def replace_futures(obj: Any, found: dict[str, Future]) -> Any:
    """Return ``obj`` with every future (also inside list/tuple/dict) replaced
    by a :class:`DependencyRef`; collect the futures in ``found`` by key."""

    def leaf(x: Any) -> Any:
        if not isinstance(x, Future):
            return x
        members = getattr(x, "batch_members", None)
        if members is not None:
            return [leaf(m) for m in members]
        key = getattr(x, "key", None)
        if not isinstance(key, str):
            raise TypeError(
                "only futures returned by an executorlib_cache executor can be passed as "
                f"arguments (got {type(x).__name__} without a cache key)"
            )
        path = getattr(x, "selector_path", None)
        if path:
            found.setdefault(key, getattr(x, "root_future", x))
            return DependencyRef(key, tuple(path))
        found[key] = x
        return DependencyRef(key)

    return _map_leaves(obj, leaf)


def foreign_futures(obj: Any, is_foreign: Callable[[Future], bool]) -> list[Future]:
    """The futures inside ``obj`` (list/tuple/dict, batches) for which ``is_foreign``:
    futures of an executor on another cache directory, whose values this cache's
    runners cannot load by key."""
    found: list[Future] = []

    def leaf(x: Any) -> Any:
        if isinstance(x, Future):
            members = getattr(x, "batch_members", None)
            for m in members if members is not None else [x]:
                root = getattr(m, "root_future", m)
                if is_foreign(root):
                    found.append(m)
        return x

    _map_leaves(obj, leaf)
    return found


def inline_futures(obj: Any, which: list[Future]) -> Any:
    """``obj`` with the futures of ``which`` (all done) replaced by their values;
    a failed one raises its exception."""
    ids = {id(f) for f in which}

    def leaf(x: Any) -> Any:
        if isinstance(x, Future):
            members = getattr(x, "batch_members", None)
            if members is not None and any(id(m) in ids for m in members):
                return [leaf(m) for m in members]
            if id(x) in ids:
                return x.result()
        return x

    return _map_leaves(obj, leaf)


def failed_key(futures: list[Future]) -> str:
    """The key of the first failed or cancelled future of ``futures`` (the one a
    dependent's ``UpstreamFailedError`` names).  A future without a key -- a call of
    another cache never submitted, because its own upstream failed -- is named by
    the upstream it names; ``"?"`` when none has a key."""
    for f in futures:
        if f.done() and (f.cancelled() or f.exception() is not None):
            key = getattr(f, "key", "")
            exc = None if f.cancelled() else f.exception()
            if not key and isinstance(exc, UpstreamFailedError):
                key = exc.upstream_key
            return key or "?"
    return "?"


def inline_done_futures(obj: Any, pending_message: str) -> Any:
    """``obj`` with every future (also inside list/tuple/dict) replaced by its value:
    ``disable_dependencies=True``.  Raises ``ValueError(pending_message)`` for a future
    that is not done, and a done future's own exception (``CancelledError`` for a
    cancelled one)."""

    def leaf(x: Any) -> Any:
        if not isinstance(x, Future):
            return x
        if not x.done():
            raise ValueError(pending_message)
        return x.result()

    return _map_leaves(obj, leaf)


def resolve_refs(obj: Any, load: Callable[[str], Any]) -> Any:
    """Inverse of :func:`replace_futures`: ``load(key)`` gives an upstream value
    (a selector is applied to it, :func:`select`)."""
    return _map_leaves(obj, lambda x: select(load(x.key), x.selector)
                       if isinstance(x, DependencyRef) else x)
