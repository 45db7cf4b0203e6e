"""The shared state table and the dialect contract (see the package docstring)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from ..resources import Resources


class Phase(enum.Enum):
    """Where a job is in its life, the same for every scheduler (see the module table)."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"

    @property
    def active(self) -> bool:
        """Queued or running: the job may still write a result."""
        return self in (Phase.QUEUED, Phase.RUNNING)


@dataclass(frozen=True)
class JobStatus:
    """One job as the scheduler reports it: native ``state`` (upper case, e.g.
    ``"NODE_FAIL"``), its :class:`Phase`, and the scheduler's ``reason`` text
    (SLURM's reason column, flux's exception type and note; "" if none)."""

    state: str
    phase: Phase
    reason: str = ""

    @property
    def active(self) -> bool:
        """Queued or running (:attr:`Phase.active`)."""
        return self.phase.active


class Dialect(Protocol):
    """What a scheduler module declares (``slurm.py``, ``flux.py``).  Every function
    is pure: it builds a command line or parses output, it never runs anything."""

    NAME: str  #: the backend name recorded in entries ("slurm", "flux")
    QUEUE_TYPE: str  #: pysqa's queue_type
    CONFIG_FILES: tuple[str, ...]  #: pysqa configuration file names, in order of preference
    WHY_UNSUPPORTED: dict[str, str]  #: resource keys it refuses, and why
    JOB_ENV: dict[str, str]  #: variables exported in every batch script

    def unsupported(self, resources: dict[str, Any]) -> list[str]:
        """resource_dict keys this scheduler cannot honour (sorted)."""

    def not_as_asked(self, resources: dict[str, Any]) -> str | None:
        """Why the scheduler would accept this request but run something else (its
        own submission would only warn), or None; ``submit()`` raises it."""

    def template_vars(self, resources: dict[str, Any]) -> dict[str, Any]:
        """resource_dict -> variables of the job template."""

    def launcher(self, resources: dict[str, Any]) -> list[str]:
        """Command prefix that starts ``cores`` MPI ranks inside a job ([] for one)."""

    def parse_job_id(self, output: str) -> str:
        """The job id in the submission command's output (``ValueError`` if none)."""

    def normalize_job_id(self, text: str) -> str:
        """Any printed form of an id -> the one form entries record."""

    def current_job_id(self, environ: Any) -> str | None:
        """The job this process runs in, from its environment (None outside one)."""

    def status_command(self, job_ids: list[str], mine: bool = False) -> list[str]:
        """ONE status command for ``job_ids`` (``mine``: all of our user's jobs)."""

    def parse_status(self, output: str) -> dict[str, JobStatus]:
        """Its output -> {id: JobStatus} (unparseable lines skipped)."""

    def status_error(self, returncode: int, stderr: str) -> str:
        """A failed status command: ``"empty"`` (no id known), ``"mine"`` (ask for
        our user's jobs instead) or ``"error"``."""

    def lookup_command(self, names: list[str]) -> list[str]:
        """ONE command listing jobs by name."""

    def parse_lookup(self, output: str, names: list[str] | None = None
                     ) -> dict[str, tuple[str, JobStatus]]:
        """Its output -> {name: (id, JobStatus)}, the newest id per name."""

    def cancel_command(self, job_ids: list[str]) -> list[str]:
        """ONE cancel command for ``job_ids``."""

    def cancel_error_is_benign(self, text: str) -> bool:
        """The cancel command only complained about jobs that already ended."""

    def submit_error_is_transient(self, text: str) -> bool:
        """A submission error that may pass when tried again."""

    def dependency_never_satisfied(self, status: JobStatus) -> bool:
        """The job waits on an ``afterok`` upstream that can never succeed."""

    def unsatisfiable(self, status: JobStatus) -> bool:
        """The scheduler accepted the job but can never run it (a refused request)."""

    def dependency_refused(self, text: str) -> bool:
        """A submission error saying an ``afterok`` upstream already failed or is gone."""

    def default_log_files(self, job_id: str, working_directory: str) -> list[str]:
        """Where the scheduler writes a job's output when no file was named."""


def common_template_vars(resources: dict[str, Any]) -> dict[str, Any]:
    """The template variables every scheduler's template takes the same way:
    ``cores``, ``threads_per_core`` (when > 1), ``gpus_per_core``, ``num_nodes``,
    ``run_time_max`` (seconds), ``partition`` and ``exclusive`` (when set)."""
    res = Resources.stored(resources)
    out: dict[str, Any] = {"cores": res.cores}
    if res.threads > 1:
        out["threads_per_core"] = res.threads
    for key in ("gpus_per_core", "num_nodes", "run_time_max", "partition"):
        if resources.get(key):
            out[key] = resources[key]
    if resources.get("exclusive"):
        out["exclusive"] = True
    return out


__all__ = ["Dialect", "JobStatus", "Phase", "common_template_vars"]
