"""Exceptions users see, kept apart by cause.

"The function raised" re-raises the user's own exception type.  Everything
here means something else went wrong: the process running the task died, an
upstream failed, the scheduler refused the job, or an entry is unreadable.
"""

from __future__ import annotations


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in a worker/job; set as ``__cause__``."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class RemoteError(Exception):
    """Stands in for an exception that could not be pickled back from the task."""


class TaskDiedError(RuntimeError):
    """The process or job running a task ended without writing a result
    (killed, out of memory, time limit, node failure, segfault)."""


class UpstreamFailedError(RuntimeError):
    """A task could not run because a task it depends on failed."""

    def __init__(self, message: str, upstream_key: str) -> None:
        super().__init__(message)
        self.upstream_key = upstream_key


class SubmissionError(RuntimeError):
    """The scheduler refused a job (sbatch/flux error text in the message)."""
