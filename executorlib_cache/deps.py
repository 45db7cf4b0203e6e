"""Futures inside arguments become references to cache keys.

A task never stores an upstream *value* or *path*: it stores a
:class:`DependencyRef` naming the upstream key.  That keeps keys stable
whether the upstream was pending or done at submit time, and lets the
runner on any node resolve the value from the cache directory.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DependencyRef:
    """Placeholder for the result of the entry ``key``."""

    key: str


def replace_futures(obj: Any, found: dict[str, Future]) -> Any:
    """Return ``obj`` with every future (also inside list/tuple/dict/set) replaced
    by a :class:`DependencyRef`; collect the futures in ``found`` by key."""
    if isinstance(obj, Future):
        key = getattr(obj, "key", None)
        if not isinstance(key, str):
            raise TypeError(
                "only futures returned by an executorlib_cache executor can be passed as "
                f"arguments (got {type(obj).__name__} without a cache key)"
            )
        found[key] = obj
        return DependencyRef(key)
    if type(obj) is list:
        return [replace_futures(x, found) for x in obj]
    if type(obj) is tuple:
        return tuple(replace_futures(x, found) for x in obj)
    if type(obj) is dict:
        return {k: replace_futures(v, found) for k, v in obj.items()}
    return obj


def resolve_refs(obj: Any, load: Callable[[str], Any]) -> Any:
    """Inverse of :func:`replace_futures`: ``load(key)`` gives an upstream value."""
    if isinstance(obj, DependencyRef):
        return load(obj.key)
    if type(obj) is list:
        return [resolve_refs(x, load) for x in obj]
    if type(obj) is tuple:
        return tuple(resolve_refs(x, load) for x in obj)
    if type(obj) is dict:
        return {k: resolve_refs(v, load) for k, v in obj.items()}
    return obj
