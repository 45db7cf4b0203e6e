"""executorlib_cache: a file-system-backed job queue whose cache is the database."""

__version__ = "0.1.0"

from .catalog import get_cache_data  # noqa: E402
from .cluster_executor import (  # noqa: E402
    FluxClusterExecutor,
    SlurmClusterExecutor,
    terminate_tasks_in_cache,
)
from .executor import SingleNodeExecutor, get_future_from_cache  # noqa: E402
from .future import CacheFuture  # noqa: E402

# the function shadows its module as an attribute on purpose (``executorlib_cache.progress(
# futures)``); the module stays importable as ``from executorlib_cache.progress import ...``
from .progress import progress  # noqa: E402

__all__ = [
    "CacheFuture",
    "FluxClusterExecutor",
    "SingleNodeExecutor",
    "SlurmClusterExecutor",
    "terminate_tasks_in_cache",
    "get_cache_data",
    "get_future_from_cache",
    "progress",
    "__version__",
]
