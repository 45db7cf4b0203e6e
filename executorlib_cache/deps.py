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


def _map_leaves(obj: Any, leaf: Callable[[Any], Any]) -> Any:
    """``leaf`` applied to every value inside (exactly) list/tuple/dict containers."""
    if type(obj) is list:
        return [_map_leaves(x, leaf) for x in obj]
    if type(obj) is tuple:
        return tuple(_map_leaves(x, leaf) for x in obj)
    if type(obj) is dict:
        return {k: _map_leaves(v, leaf) for k, v in obj.items()}
    return leaf(obj)


def replace_futures(obj: Any, found: dict[str, Future]) -> Any:
    """Return ``obj`` with every future (also inside list/tuple/dict) replaced
    by a :class:`DependencyRef`; collect the futures in ``found`` by key."""

    def leaf(x: Any) -> Any:
        if not isinstance(x, Future):
            return x
        key = getattr(x, "key", None)
        if not isinstance(key, str):
            raise TypeError(
                "only futures returned by an executorlib_cache executor can be passed as "
                f"arguments (got {type(x).__name__} without a cache key)"
            )
        found[key] = x
        return DependencyRef(key)

    return _map_leaves(obj, leaf)


def resolve_refs(obj: Any, load: Callable[[str], Any]) -> Any:
    """Inverse of :func:`replace_futures`: ``load(key)`` gives an upstream value."""
    return _map_leaves(obj, lambda x: load(x.key) if isinstance(x, DependencyRef) else x)
