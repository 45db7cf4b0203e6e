"""Backends by name: ``local`` here; ``slurm``/``flux`` when pysqa is installed.

The registry lets code that only has an entry's ``job.json`` (the CLI, a
second driver) ask the right scheduler about it.
"""

from __future__ import annotations

from .base import Backend
from .local import LocalBackend


def backend_class(name: str) -> type[Backend]:
    if name == "local":
        return LocalBackend
    try:
        from . import cluster
    except ImportError:
        return Backend
    return cluster.backend_class(name)


def query_job_states(backend: str, job_ids: list[str]) -> dict[str, str]:
    """Scheduler state per job id (one scheduler call); unknown ids are absent."""
    from . import cluster

    return cluster.query_job_states(backend, job_ids)


def cancel_jobs(backend: str, job_ids: list[str]) -> None:
    from . import cluster

    cluster.cancel_jobs(backend, job_ids)
