"""The one place that runs scheduler commands (status, cancel, look-up by name).

Each function makes ONE scheduler call for any number of jobs (flux: a second one
in one documented case), never one per job: a site's controller serves every
user, and DESIGN.md promises one ``squeue`` per tick.  Submission goes through
pysqa (``backends/submission.py``), which runs ``sbatch``/``flux batch`` with
:func:`run_command` too.
"""

from __future__ import annotations

import shlex
import subprocess
from types import ModuleType
from typing import Any

from ..errors import SchedulerError
from . import JobStatus, dialect

#: seconds one scheduler command may take before it counts as failed
COMMAND_TIMEOUT = 30.0


def run_command(cmd: list[str], cwd: str | None = None, env: Any = None,
                timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run a scheduler command and return it whatever its exit code.

    Raises :class:`SchedulerError` when it cannot be started or takes longer than
    ``timeout`` seconds (an overloaded controller: the caller retries later).
    """
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, encoding="utf-8",
                              errors="replace", timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise SchedulerError(f"{shlex.join(cmd[:3])} ... did not answer within {timeout:g} s"
                             ) from e
    except OSError as e:
        raise SchedulerError(f"cannot run {cmd[0]!r}: {e.strerror or e}") from e


def error_text(proc: subprocess.CompletedProcess[str]) -> str:
    """stderr then stdout of a finished command, or "(no output)"."""
    return (proc.stderr.strip() + "\n" + proc.stdout.strip()).strip() or "(no output)"


def query_states(sched: ModuleType, job_ids: list[str]) -> dict[str, JobStatus]:
    """{id: JobStatus} for those of ``job_ids`` the scheduler still knows.

    One call (flux: a second one listing our user's jobs when the first failed on
    an unknown id).  An id missing from the answer is unknown to the scheduler
    (ended and purged).  Raises :class:`SchedulerError` on a real failure.
    """
    if not job_ids:
        return {}
    proc = run_command(sched.status_command(job_ids))
    if proc.returncode != 0:
        how = sched.status_error(proc.returncode, proc.stderr)
        if how == "empty":
            return {}
        if how == "mine":
            proc = run_command(sched.status_command(job_ids, mine=True))
        if proc.returncode != 0:
            raise SchedulerError(f"{shlex.join(proc.args[:2])} failed "
                                 f"(exit {proc.returncode}): {error_text(proc)}")
    states = sched.parse_status(proc.stdout)
    wanted = set(job_ids)
    return {k: v for k, v in states.items() if k in wanted}


def job_states(backend: str, job_ids: list[str]) -> dict[str, JobStatus]:
    """:func:`query_states` by backend name ("slurm", "flux")."""
    return query_states(dialect(backend), [str(i) for i in job_ids])


def lookup_names(sched: ModuleType, names: list[str]) -> dict[str, tuple[str, JobStatus]]:
    """Jobs found by their (unique) names: {name: (id, JobStatus)}; ONE call.

    Used when a submission's answer was lost (a timeout, an unreadable id): was the
    job queued after all?  Raises :class:`SchedulerError` when the call fails.
    """
    proc = run_command(sched.lookup_command(names))
    if proc.returncode != 0:
        raise SchedulerError(f"{shlex.join(proc.args[:2])} failed (exit {proc.returncode}): "
                             f"{error_text(proc)}")
    return sched.parse_lookup(proc.stdout, names)


def cancel_jobs(backend: str, job_ids: list[str]) -> None:
    """Cancel jobs with ONE scheduler call.  Jobs that already ended are fine; any
    other failure raises :class:`SchedulerError` with the scheduler's text."""
    ids = sorted({str(i) for i in job_ids})
    if not ids:
        return
    sched = dialect(backend)
    proc = run_command(sched.cancel_command(ids))
    text = error_text(proc)
    if proc.returncode != 0 and not sched.cancel_error_is_benign(text):
        raise SchedulerError(f"{shlex.join(proc.args[:2])} failed (exit {proc.returncode}): "
                             f"{text}")


__all__ = ["COMMAND_TIMEOUT", "cancel_jobs", "error_text", "job_states", "lookup_names",
           "query_states", "run_command"]
