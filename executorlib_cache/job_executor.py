"""executorlib's ``SlurmJobExecutor`` and ``FluxJobExecutor``: run the calls inside the
allocation the script already has.

executorlib starts one ``srun``/``flux run`` step per call with an interactive worker
in it.  Here both are :class:`~executorlib_cache.executor.SingleNodeExecutor` with
executorlib's signature: the calls run in persistent worker processes on the node
the script runs on (inside the allocation), MPI calls (``cores > 1``) through
``mpiexec``, and every call is a cache entry as with the other executors.  To spread
calls over the nodes of an allocation, use :class:`~executorlib_cache.FluxClusterExecutor`
inside ``flux start`` (docs/flux.md).  ``pmi_mode`` is accepted (MPI calls go through
``mpiexec``, whose PMI is its own); executorlib's flux handles (``flux_executor``,
``flux_executor_nesting``, ``flux_log_files``) must be left at their defaults.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .errors import UnsupportedOptionError
from .executor import SingleNodeExecutor


class SlurmJobExecutor(SingleNodeExecutor):
    """executorlib's ``SlurmJobExecutor`` signature; runs as :class:`SingleNodeExecutor`
    on the node of the allocation the script runs on (see the module docstring)."""

    def __init__(
        self,
        max_workers: int | None = None,
        cache_directory: str | os.PathLike[str] | None = None,
        max_cores: int | None = None,
        resource_dict: dict[str, Any] | None = None,
        pmi_mode: str | None = None,
        hostname_localhost: bool | None = None,
        block_allocation: bool = False,
        init_function: Callable[..., Any] | None = None,
        disable_dependencies: bool = False,
        refresh_rate: float = 0.01,
        plot_dependency_graph: bool = False,
        plot_dependency_graph_filename: str | os.PathLike[str] | None = None,
        export_workflow_filename: str | os.PathLike[str] | None = None,
        log_obj_size: bool = False,
        wait: bool = True,
        restart_limit: int = 0,
        openmpi_oversubscribe: bool = False,
        **options: Any,
    ) -> None:
        """executorlib's parameters in executorlib's order; ``pmi_mode`` is accepted and
        has no effect here (``mpiexec`` starts MPI calls); the rest as
        :class:`SingleNodeExecutor` (keyword-only ``secret``, ``dir_mode``,
        ``file_mode``, ``progress``, ``recompute`` in ``options``)."""
        del pmi_mode
        super().__init__(
            max_workers, cache_directory, max_cores, resource_dict, hostname_localhost,
            block_allocation, init_function, disable_dependencies, refresh_rate,
            plot_dependency_graph, plot_dependency_graph_filename, export_workflow_filename,
            log_obj_size, wait, restart_limit, openmpi_oversubscribe, **options)


class FluxJobExecutor(SingleNodeExecutor):
    """executorlib's ``FluxJobExecutor`` signature; runs as :class:`SingleNodeExecutor`
    (see the module docstring)."""

    def __init__(
        self,
        max_workers: int | None = None,
        cache_directory: str | os.PathLike[str] | None = None,
        max_cores: int | None = None,
        resource_dict: dict[str, Any] | None = None,
        pmi_mode: str | None = None,
        flux_executor: Any = None,
        flux_executor_nesting: bool = False,
        flux_log_files: bool = False,
        hostname_localhost: bool | None = None,
        block_allocation: bool = False,
        init_function: Callable[..., Any] | None = None,
        disable_dependencies: bool = False,
        refresh_rate: float = 0.01,
        plot_dependency_graph: bool = False,
        plot_dependency_graph_filename: str | os.PathLike[str] | None = None,
        export_workflow_filename: str | os.PathLike[str] | None = None,
        log_obj_size: bool = False,
        wait: bool = True,
        restart_limit: int = 0,
        openmpi_oversubscribe: bool = False,
        **options: Any,
    ) -> None:
        """executorlib's parameters in executorlib's order.  Raises
        :class:`~executorlib_cache.errors.UnsupportedOptionError` for a
        ``flux_executor``, ``flux_executor_nesting=True`` or ``flux_log_files=True``
        (executorlib's interactive flux mode: use :class:`FluxClusterExecutor` inside
        the flux instance)."""
        del pmi_mode
        if flux_executor is not None or flux_executor_nesting or flux_log_files:
            raise UnsupportedOptionError(
                "flux_executor, flux_executor_nesting and flux_log_files belong to "
                "executorlib's interactive flux mode, which executorlib_cache does not "
                "have: leave them unset, or use FluxClusterExecutor inside the flux "
                "instance (one flux job per call)")
        super().__init__(
            max_workers, cache_directory, max_cores, resource_dict, hostname_localhost,
            block_allocation, init_function, disable_dependencies, refresh_rate,
            plot_dependency_graph, plot_dependency_graph_filename, export_workflow_filename,
            log_obj_size, wait, restart_limit, openmpi_oversubscribe, **options)
