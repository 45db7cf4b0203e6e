"""executorlib_cache: a file-system-backed job queue whose cache is the database.

The public names are loaded on first use (PEP 562): a worker process or a job
runner imports ``executorlib_cache.worker``/``.runner`` without paying for the
executors, the CLI catalog and the cluster backends (~0.1 s per interpreter).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# the function shadows its module as an attribute on purpose (``executorlib_cache.progress(
# futures)``); the module stays importable as ``from executorlib_cache.progress import ...``
from .progress import progress  # noqa: E402

_LAZY = {
    "BaseExecutor": ".executor",
    "CacheFuture": ".future",
    "FutureSelector": ".future",
    "FluxClusterExecutor": ".cluster_executor",
    "SingleNodeExecutor": ".executor",
    "SlurmClusterExecutor": ".cluster_executor",
    "SlurmJobExecutor": ".job_executor",
    "FluxJobExecutor": ".job_executor",
    "get_cache_data": ".catalog",
    "list_cache": ".catalog",
    "get_future_from_cache": ".watch",
    "get_item_from_future": ".future",
    "split_future": ".future",
    "terminate_task_in_cache": ".catalog",
    "terminate_tasks_in_cache": ".catalog",
}

if TYPE_CHECKING:
    from .catalog import (
        get_cache_data,
        list_cache,
        terminate_task_in_cache,
        terminate_tasks_in_cache,
    )
    from .cluster_executor import FluxClusterExecutor, SlurmClusterExecutor
    from .executor import BaseExecutor, SingleNodeExecutor
    from .future import CacheFuture, FutureSelector, get_item_from_future, split_future
    from .job_executor import FluxJobExecutor, SlurmJobExecutor
    from .watch import get_future_from_cache


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'executorlib_cache' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BaseExecutor",
    "CacheFuture",
    "FutureSelector",
    "FluxClusterExecutor",
    "SingleNodeExecutor",
    "SlurmClusterExecutor",
    "SlurmJobExecutor",
    "FluxJobExecutor",
    "terminate_task_in_cache",
    "terminate_tasks_in_cache",
    "get_cache_data",
    "list_cache",
    "get_future_from_cache",
    "get_item_from_future",
    "split_future",
    "progress",
    "__version__",
]
