"""executorlib's constructor options: which ones mean something here, and the errors
for the ones that do not.

The executors take executorlib 1.11's parameters in executorlib's order (a script
switches by changing its import).  This module decides, in one place, what each
option that has no counterpart here does:

* ``hostname_localhost``, ``refresh_rate``, ``log_obj_size``: accepted and ignored
  (documented no-ops: there is no zmq connection to name a host for, futures
  resolve on events rather than on a polling interval, and no objects are sent over
  a socket whose size could be logged).
* ``block_allocation=True``, ``init_function``, ``restart_limit != 0``: executorlib's
  interactive worker pools; refused with :class:`UnsupportedOptionError` saying what
  to use instead.
* ``max_cores`` on the cluster executors: refused with executorlib's message (the
  scheduler allocates cores per job).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

from .errors import UnsupportedOptionError

BLOCK_ALLOCATION = (
    "block_allocation=True is executorlib's interactive mode (a fixed pool of workers "
    "that keep state between calls), which executorlib_cache does not have. Use "
    "max_workers=K instead: SingleNodeExecutor keeps K worker processes alive between "
    "calls, and SlurmClusterExecutor/FluxClusterExecutor(max_workers=K) pack the calls "
    "into K worker jobs."
)
INIT_FUNCTION = (
    "init_function is not supported: the state it prepares is not part of any cache "
    "key, so cached results would silently depend on it. Pass what it prepares as an "
    "argument instead (or submit the preparation and pass its future)."
)
RESTART_LIMIT = (
    "restart_limit applies to executorlib's block-allocation workers. Here a worker "
    "that dies is replaced at once, its call fails with TaskDiedError, and re-running "
    "the script runs it again (failures are never cache hits); use restart_limit=0."
)
#: executorlib's message, verbatim, plus what to do here
MAX_CORES_CLUSTER = (
    "The number of cores cannot be controlled with the pysqa based backend. "
    "(The scheduler allocates cores per job: give resource_dict={'cores': n}; "
    "max_workers=K packs the calls into K worker jobs.)"
)
#: executorlib's message for a pending future passed with disable_dependencies=True
DISABLED_DEPENDENCIES = "Future objects are not supported as input if disable_dependencies=True."


def positive_int_or_none(name: str, value: Any) -> int | None:
    """``value`` if it is None or an int >= 1; else ``ValueError`` naming ``name``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
    return value


def executor_wide_options(cache_directory: Any, resource_dict: Any, recompute: Any
                          ) -> tuple[Any, Any, bool]:
    """Check and normalize an executor's ``cache_directory`` and ``recompute``.

    executorlib also accepts both inside the constructor's ``resource_dict``: they are
    taken out of it here (``ValueError`` if ``cache_directory`` is given twice and
    differently).  ``recompute`` must be a bool (``TypeError``); ``cache_directory``
    a non-empty path or None (``ValueError``).  Returns the three, normalized."""
    if resource_dict is not None and not isinstance(resource_dict, dict):
        raise TypeError(f"resource_dict must be a dict, got {type(resource_dict).__name__}")
    if isinstance(resource_dict, dict) and (
            "recompute" in resource_dict or "cache_directory" in resource_dict):
        resource_dict = dict(resource_dict)
        recompute = resource_dict.pop("recompute", recompute)
        other = resource_dict.pop("cache_directory", None)
        if cache_directory is not None and other is not None and \
                os.fspath(other) != os.fspath(cache_directory):
            raise ValueError(f"cache_directory={cache_directory!r} and resource_dict"
                             f"['cache_directory']={other!r} differ: give one")
        cache_directory = cache_directory if cache_directory is not None else other
    if not isinstance(recompute, bool):
        raise TypeError(f"recompute must be True or False, got {recompute!r}")
    if cache_directory is not None and (
            not isinstance(cache_directory, (str, os.PathLike)) or not os.fspath(cache_directory)):
        raise ValueError(f"cache_directory must be a non-empty path (or None: $XCACHE_DIR, "
                         f"else .xcache), got {cache_directory!r}")
    return cache_directory, resource_dict, recompute


def check_interactive_options(block_allocation: Any, init_function: Any,
                              restart_limit: Any = 0) -> None:
    """Raise :class:`UnsupportedOptionError` for executorlib's interactive-mode options
    (``block_allocation=True``, an ``init_function``, ``restart_limit != 0``)."""
    if block_allocation:
        raise UnsupportedOptionError(BLOCK_ALLOCATION)
    if init_function is not None:
        raise UnsupportedOptionError(INIT_FUNCTION)
    if restart_limit:
        raise UnsupportedOptionError(RESTART_LIMIT)


__all__ = ["DISABLED_DEPENDENCIES", "MAX_CORES_CLUSTER", "UnsupportedOptionError",
           "check_interactive_options", "positive_int_or_none"]


#: executorlib's message for a function with a ``resource_dict`` parameter
RESOURCE_DICT_PARAMETER = ("The parameter resource_dict is used internally in executorlib, so it "
                           "cannot be used as a parameter in the submitted functions.")


def takes_resource_dict(fn: Callable[..., Any]) -> bool:
    """``fn`` declares a parameter ``resource_dict`` (which ``submit`` consumes); cached
    per function (``inspect.signature`` costs ~15 us, a cache hit ~0.1 ms in all)."""
    try:
        return _takes_resource_dict_cached(fn)
    except TypeError:  # unhashable callable
        return _has_resource_dict(fn)


@functools.lru_cache(maxsize=4096)
def _takes_resource_dict_cached(fn: Callable[..., Any]) -> bool:
    return _has_resource_dict(fn)


def _has_resource_dict(fn: Callable[..., Any]) -> bool:
    try:
        return "resource_dict" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return False


def remembering_init(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` that first records its arguments as ``self._init_call`` (only the
    outermost ``__init__`` of a class records: a subclass's, not ``super()``'s)."""

    @functools.wraps(init)  # keeps the signature (inspect follows __wrapped__)
    def remembering(self: Any, *args: Any, **kw: Any) -> None:
        if not hasattr(self, "_init_call"):
            self._init_call = (args, kw)
        init(self, *args, **kw)

    return remembering
