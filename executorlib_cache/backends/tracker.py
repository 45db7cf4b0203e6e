"""Job tracking: ONE status call per tick for every scheduler job of a driver.

A driver may watch per-call jobs and pool worker jobs at once (``max_workers=K``
with calls that do not fit a worker).  Both register their job ids with the same
:class:`JobTracker`, which asks the scheduler once per tick for all of them
(``squeue -j a,b,c -t all`` / ``flux jobs a b c``), never once per job and never
for every user's jobs (DESIGN.md, "kind to the scheduler").

The tick is adaptive (:class:`Backoff`): 0.5 s while jobs are young (tracked for
less than :data:`YOUNG` seconds) or their states change, growing by half up to
2 s while nothing happens; a failed call doubles it.  A scheduler that fails
:data:`MAX_STATUS_FAILURES` times in a row is reported (``Poll.gave_up``) so the
backends fail their futures with its error text instead of waiting forever.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType

from ..errors import SchedulerError
from ..schedulers import JobStatus, commands

STATUS_MIN, STATUS_MAX = 0.5, 2.0  # seconds between status calls (adaptive)
STAT_MIN, STAT_MAX = 0.1, 0.5  # seconds between looks at result files (adaptive)
YOUNG = 10.0  # a job tracked for less than this keeps the status tick short
MAX_STATUS_FAILURES = 5  # consecutive failed status calls before futures fail


class Backoff:
    """An adaptive interval: ``low`` after progress, times ``factor`` up to ``high``
    while nothing happens.  ``next_at`` is a ``time.monotonic()`` deadline."""

    def __init__(self, low: float, high: float, factor: float = 1.5) -> None:
        self.low, self.high, self.factor = low, high, factor
        self.interval = low
        self.next_at = 0.0

    def due(self, now: float) -> bool:
        """The deadline has passed."""
        return now >= self.next_at

    def soon(self, at: float) -> None:
        """Look again no later than ``at`` (and from then on at the short interval)."""
        self.interval = self.low
        self.next_at = min(self.next_at, at)

    def after(self, now: float, progressed: bool, factor: float | None = None) -> None:
        """Schedule the next look after one at ``now``: short if it ``progressed``."""
        if progressed:
            self.interval = self.low
        else:
            self.interval = min(self.high, self.interval * (factor or self.factor))
        self.next_at = now + self.interval


@dataclass
class Poll:
    """One status call's answer.  ``statuses``: every id the scheduler still knows
    (a missing id is unknown: ended and purged).  After a failed call ``error`` is
    set, and ``gave_up`` after :data:`MAX_STATUS_FAILURES` failures in a row."""

    statuses: dict[str, JobStatus] = field(default_factory=dict)
    error: SchedulerError | None = None
    gave_up: bool = False


class JobTracker:
    """The one status call of a driver, shared by every backend part that has jobs.

    ``calls`` is the backend's counter of scheduler calls (``"status"`` is counted
    here); tests and benchmarks read it.
    """

    def __init__(self, sched: ModuleType, calls: dict[str, int]) -> None:
        self.sched = sched
        self.calls = calls
        self.backoff = Backoff(STATUS_MIN, STATUS_MAX)
        self._since: dict[str, float] = {}  # job id -> when it was first tracked
        self._last: dict[str, JobStatus | None] = {}
        self._failures = 0

    @property
    def next_at(self) -> float:
        """``time.monotonic()`` of the next status call."""
        return self.backoff.next_at

    def track(self, job_id: str, now: float, at_once: bool = False) -> None:
        """A new job to watch: ask about it soon (at once for an adopted job, whose
        state nobody knows), then at the short interval while it is young."""
        self._since.setdefault(str(job_id), now)
        self.backoff.soon(now if at_once else now + STATUS_MIN)

    def tracked_for(self, job_id: str, now: float) -> float:
        """Seconds since ``job_id`` was first tracked (0 if it is not)."""
        return now - self._since.get(str(job_id), now)

    def poll(self, job_ids: Iterable[str], now: float) -> Poll | None:
        """ONE status call for ``job_ids`` if one is due, else None.

        Ids not passed are forgotten (their jobs finished or were handed back).
        """
        ids = sorted({str(i) for i in job_ids})
        self._since = {i: self._since.get(i, now) for i in ids}
        self._last = {i: self._last.get(i) for i in ids}
        if not self.backoff.due(now):
            return None
        if not ids:
            self.backoff.after(now, progressed=False)
            return None
        self.calls["status"] = self.calls.get("status", 0) + 1
        try:
            statuses = commands.query_states(self.sched, ids)
        except SchedulerError as e:
            self._failures += 1
            gave_up = self._failures >= MAX_STATUS_FAILURES
            if gave_up:
                self._failures = 0
            self.backoff.after(time.monotonic(), progressed=False, factor=2.0)
            return Poll(error=e, gave_up=gave_up)
        self._failures = 0
        changed = any(statuses.get(i) != self._last.get(i) for i in ids)
        self._last = {i: statuses.get(i) for i in ids}
        young = any(now - since < YOUNG for since in self._since.values())
        self.backoff.after(time.monotonic(), progressed=changed or young)
        return Poll(statuses)


__all__ = ["MAX_STATUS_FAILURES", "STAT_MAX", "STAT_MIN", "STATUS_MAX", "STATUS_MIN",
           "YOUNG", "Backoff", "JobTracker", "Poll"]
