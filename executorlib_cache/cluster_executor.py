"""Executors that run every call as a batch job (SLURM or flux, through pysqa).

    with SlurmClusterExecutor(cache_directory="cache") as exe:
        fut = exe.submit(fn, x, resource_dict={"cores": 2, "run_time_max": 600})
        fut.result()

Same cache, keys and futures as :class:`SingleNodeExecutor`; only the backend
differs (``backends/cluster.py``).  Why a separate module: importing it pulls
in nothing heavy; pysqa (and pandas behind it) is loaded when an executor is
created.  See ``docs/slurm.md`` for the resource mapping and what to expect.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .backends.base import Backend
from .backends.cluster import ClusterBackend
from .backends.pool import PoolBackend
from .errors import UnsupportedOptionError
from .executor import BaseExecutor
from .options import MAX_CORES_CLUSTER, positive_int_or_none
from .schedulers import dialect


class _ClusterExecutor(BaseExecutor):
    #: the scheduler dialect (``schedulers/<name>.py``)
    scheduler = "slurm"

    def __init__(
        self,
        max_workers: int | None = None,
        cache_directory: str | os.PathLike[str] | None = None,
        max_cores: int | None = None,
        resource_dict: dict[str, Any] | None = None,
        pysqa_config_directory: str | os.PathLike[str] | None = None,
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
        openmpi_oversubscribe: bool = False,
        *,
        secret: str | bytes | None = None,
        dir_mode: int | None = None,
        file_mode: int | None = None,
        progress: bool = False,
        recompute: bool = False,
    ) -> None:
        """executorlib's parameters in executorlib's order (see :class:`BaseExecutor`
        for the ones shared with ``SingleNodeExecutor``); here:

        ``max_workers``: None (default): every call is its own job.  K: run the
        calls in at most K worker jobs, each sized by ``resource_dict`` (calls
        that need more, e.g. more cores or another partition, still go as their
        own job); see "Many small tasks" in docs/slurm.md.  (executorlib raises
        for any value: this packing is our own.)
        ``cache_directory``: where entries live (default ``$XCACHE_DIR`` or
        ``.xcache``); it must be visible from the compute nodes.
        ``max_cores``: must be None; raises ``UnsupportedOptionError`` with
        executorlib's message (the scheduler allocates cores per job).
        ``resource_dict``: defaults for every call (see docs/slurm.md); with
        ``max_workers`` also the size and time limit of every worker job.
        ``pysqa_config_directory``: your own pysqa ``queue.yaml`` + templates
        instead of the shipped ``scheduler_templates``.
        ``pmi_mode``: the PMI of MPI ranks in every job, e.g. ``"pmix"`` for OpenMPI 5
        (flux: ``flux run -o pmi=pmix``; SLURM: ``srun --mpi=pmix``); a call's
        ``resource_dict["pmi_mode"]`` overrides it.
        ``openmpi_oversubscribe``: SLURM ``srun --oversubscribe`` for MPI calls; flux
        refuses it (``UnsupportedResourceError``), as executorlib does.
        ``secret``: sign entries (passed on to the jobs as ``XCACHE_SECRET``).
        """
        if max_cores is not None:
            positive_int_or_none("max_cores", max_cores)
            raise UnsupportedOptionError(MAX_CORES_CLUSTER)
        self._pysqa_config_directory = pysqa_config_directory
        if pmi_mode is not None:
            resource_dict = {"pmi_mode": pmi_mode, **(resource_dict or {})}
        super().__init__(
            max_workers, cache_directory, None, resource_dict, hostname_localhost,
            block_allocation, init_function, disable_dependencies, refresh_rate,
            plot_dependency_graph, plot_dependency_graph_filename, export_workflow_filename,
            log_obj_size, wait, 0, openmpi_oversubscribe, secret=secret, dir_mode=dir_mode,
            file_mode=file_mode, progress=progress, recompute=recompute)

    def _make_backend(self, max_workers: int | None, max_cores: int | None) -> Backend:
        sched = dialect(self.scheduler)
        if max_workers is None:
            return ClusterBackend(self._store, sched, self._pysqa_config_directory)
        return PoolBackend(self._store, sched, max_workers, self._pysqa_config_directory,
                           resources=self._resources)


class SlurmClusterExecutor(_ClusterExecutor):
    """Every call is one SLURM job (sbatch through pysqa); results come back
    through the cache directory, which must be on a file system the nodes share."""

    scheduler = "slurm"


class FluxClusterExecutor(_ClusterExecutor):
    """Every call is one flux job (``flux batch`` through pysqa's flux mode)."""

    scheduler = "flux"


__all__ = ["FluxClusterExecutor", "SlurmClusterExecutor"]
