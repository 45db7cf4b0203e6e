"""Batch schedulers as declared dialects: what to run, and how to read what it prints.

Every rule about a scheduler's command lines and output formats lives in one pure
module per scheduler (``slurm.py``, ``flux.py``), PSI/J style, so each is testable
without a scheduler (``tests/test_cluster_units.py``).  The one place that runs the
commands is :mod:`.commands`; the backends (``backends/``) submit through pysqa
with the templates in ``scheduler_templates/``.  Nothing here imports driver code,
so the compute side (a pool worker launching MPI ranks, a runner recording its
job id) may use it.

A dialect is a module with the members of :class:`Dialect`.  Native states
(``PENDING``, ``COMPLETING``, ``NODE_FAIL``; flux's ``SCHED``, ``CLEANUP``...) are
kept for messages and parsed into one small shared table, :class:`Phase`:

=============  ==============================================  ======================
phase          meaning                                          e.g.
=============  ==============================================  ======================
``QUEUED``     not started; still active                        PENDING, DEPEND, SCHED
``RUNNING``    started and not final (includes clean-up)        RUNNING, COMPLETING, C
``COMPLETED``  ended with exit 0: the result may still be       COMPLETED
               on its way (NFS attribute caches)
``FAILED``     ended non-zero: an error file may be on its way  FAILED
``KILLED``     ended by the scheduler: no result is coming      CANCELLED, TIMEOUT,
                                                                OUT_OF_MEMORY, NODE_FAIL
=============  ==============================================  ======================
"""

from __future__ import annotations

from types import ModuleType

from .base import Dialect, JobStatus, Phase

#: the backend names that are batch schedulers
NAMES = ("slurm", "flux")


def dialect(name: str) -> ModuleType:
    """The dialect module of scheduler ``name``; ``ValueError`` for another name."""
    if name == "slurm":
        from . import slurm

        return slurm
    if name == "flux":
        from . import flux

        return flux
    raise ValueError(f"unknown scheduler {name!r}: choose from {', '.join(NAMES)}")


__all__ = ["NAMES", "Dialect", "JobStatus", "Phase", "dialect"]
