"""The worker that runs inside a pool job (``max_workers=K`` of the cluster executors).

    python -m executorlib_cache.compute.pool_worker CACHE POOL --worker TOKEN \\
        --backend slurm [--job-name NAME] [--time-limit SECONDS] [--idle SECONDS] \\
        [--dir-mode OCTAL --file-mode OCTAL]

One scheduler job, many cache entries.  The driver (``backends/pool.py``) writes
one empty *ticket* per ready entry into a small queue directory
(``pool_queue.py`` has the layout and why a rename hands a ticket out exactly
once); this worker takes tickets and runs the entries with
:func:`~executorlib_cache.compute.runner.run_entry`, in this process (``cores > 1``:
``srun``/``flux run`` of the MPI runner inside the allocation).  After the rename
it checks, under the entry's claim lock (:func:`claims.confirm_claim`), that
the entry's ``@claim`` still holds the claim the ticket was written for (a driver that took
the claim over meanwhile wrote another ticket: the stale one is dropped) and
records its own job id there, so a claim is never run twice and ``xcache`` shows
the worker's job id.  A claim lock held too long by someone else puts the ticket
back for a later try.

A SLURM worker job that was requeued (``SLURM_RESTART_COUNT`` > 0) exits at once:
the driver has already queued again what its first run held.  Otherwise the
worker exits when the queue stayed empty for ``--idle`` seconds (a driver
that is still submitting keeps its workers), when ``.stop`` appears or the
queue directory is gone, or before its time limit: it takes no new entry when
less than max(1.5 x the longest task it ran, a margin) is left.  Without
``--time-limit`` a SLURM worker asks ``squeue`` once for its own time left.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
from typing import Any

from ..claims import confirm_claim, read_claim
from ..errors import ClaimTimeoutError, TaskDiedError
from ..pool_queue import (
    EXIT,
    IDLE_DEFAULT,
    STOP,
    is_ticket,
    queue_dir,
    taken_name,
    ticket_key,
    ticket_token,
    unlink,
    worker_dir,
    write_json,
)
from ..resources import Resources
from ..schedulers import dialect
from ..store import Store
from .runner import failure, run_entry

#: seconds between looks at an empty queue: short at first, then up to POLL_MAX
POLL_MIN, POLL_MAX = 0.002, 0.05
MARGIN_MAX = 30.0  # never stop taking entries earlier than this before the limit
MARGIN_FRACTION = 0.1  # ... or this share of the limit, if smaller


# ---------------------------------------------------------------------- time limit
def parse_slurm_time_left(text: str) -> float | None:
    """``squeue -o %L``: ``[days-]hh:mm:ss``, ``mm:ss``, ``UNLIMITED`` ... -> seconds."""
    s = text.strip()
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", s)
    if not m:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def slurm_time_left() -> float | None:
    """Seconds left of this SLURM job (one squeue), None if unknown or unlimited."""
    jid = os.environ.get("SLURM_JOB_ID")
    if not jid:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-j", jid, "-o", "%L"], capture_output=True,
                             text=True, timeout=30, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_slurm_time_left(out)


def process_age() -> float:
    """Seconds since this process started (Linux ``/proc``; 0 elsewhere).  The batch
    script ``exec``s the worker, so this is about the job's age: interpreter start-up
    counts against the time limit too."""
    try:
        with open("/proc/self/stat", "rb") as f:
            start_ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


#: seconds a worker waits for an entry's claim lock before it puts the ticket back
CLAIM_WAIT = 30.0


# ---------------------------------------------------------------------- the worker
class PoolWorker:
    """One worker job's loop: take tickets, confirm their claims, run the entries.

    ``time_limit``/``idle`` in seconds; ``dir_mode``/``file_mode`` are the
    executor's permissions, for every file this worker and its MPI runners write;
    ``claim_timeout``: seconds to wait for an entry's claim lock before giving the
    ticket back.
    """

    def __init__(self, cache: str, pool: str, worker: str, backend: str = "slurm",
                 job_name: str | None = None, time_limit: float | None = None,
                 idle: float = IDLE_DEFAULT, started: float | None = None,
                 dir_mode: int | None = None, file_mode: int | None = None,
                 claim_timeout: float = CLAIM_WAIT) -> None:
        self.store = Store(cache, create=False, dir_mode=dir_mode, file_mode=file_mode)
        self.cache = str(self.store.root)
        self.pool, self.worker, self.backend = pool, worker, backend
        self.qdir = queue_dir(self.store.root, pool)
        self._qdir = str(self.qdir)
        self.claim_timeout = claim_timeout
        self.job_id = dialect(backend).current_job_id(os.environ)
        self.job_name = job_name
        wdir = worker_dir(self.qdir, worker)
        self.stdout, self.stderr = str(wdir / "job.out"), str(wdir / "job.err")
        self.started = time.monotonic() if started is None else started
        self.time_limit = time_limit
        self.idle = idle
        self.longest = 0.0
        self.tasks = 0
        self.dropped = 0
        self.retire: str | None = None  # why this worker stops taking tickets

    def time_left(self) -> float | None:
        """Seconds of this job's time limit left (None: no limit known)."""
        if self.time_limit is None:
            return None
        return self.time_limit - (time.monotonic() - self.started)

    # ------------------------------------------------------------- loop
    def serve(self) -> str:
        """Take and run tickets until idle, stopped or near the time limit; the reason."""
        pending: list[str] = []
        idle_since: float | None = None
        delay = POLL_MIN
        while True:
            if os.path.exists(f"{self._qdir}/{STOP}"):
                return "stopped by the driver"
            now = time.monotonic()
            if self.retire:
                return self.retire
            if self.time_limit is not None:
                left = self.time_limit - (now - self.started)
                margin = min(MARGIN_MAX, MARGIN_FRACTION * self.time_limit)
                if left < max(1.5 * self.longest, margin):
                    return (f"time limit near ({left:.0f} s of {self.time_limit:.0f} s left, "
                            f"longest task {self.longest:.1f} s)")
            if not pending:
                try:
                    pending = sorted(n for n in os.listdir(self._qdir) if is_ticket(n))
                except FileNotFoundError:
                    return "queue directory removed"
                pending.reverse()  # pop() from the end = oldest first
            if not pending:
                if idle_since is None:
                    idle_since = now
                elif now - idle_since >= self.idle:
                    return f"queue empty for {self.idle:g} s"
                time.sleep(delay)
                delay = min(POLL_MAX, delay * 1.5)
                continue
            ticket = pending.pop()
            if self.take(ticket):
                idle_since = None
                delay = POLL_MIN

    def take(self, ticket: str) -> bool:
        """Rename the ticket to our name (exactly one worker wins), then run it."""
        taken = f"{self._qdir}/{taken_name(self.worker, ticket)}"
        try:
            os.rename(f"{self._qdir}/{ticket}", taken)
        except FileNotFoundError:
            return False  # another worker was faster, or the driver withdrew it
        key = ticket_key(ticket)
        need = (read_claim(self.store, key) or {}).get("min_time_left")
        left = self.time_left()
        if isinstance(need, (int, float)) and left is not None and left < need:
            # a retry after a time limit needs more time than this worker has: give
            # the ticket back for a worker with more time, and retire
            try:
                os.rename(taken, f"{self._qdir}/{ticket}")
            except FileNotFoundError:
                pass
            self.retire = (f"ticket {ticket} needs {need:.0f} s, {left:.0f} s left: "
                           "left for a fresh worker")
            return True
        try:
            mine = confirm_claim(
                self.store, key, ticket_token(ticket), self.claim_timeout,
                job_id=self.job_id, job_name=self.job_name, stdout=self.stdout,
                stderr=self.stderr, pool=self.pool, ticket=ticket, queue_directory=self._qdir,
                worker=self.worker, taken=time.time(),
                time_left=None if left is None else round(left, 1))
        except ClaimTimeoutError:  # somebody holds the claim for long: put the ticket back
            try:
                os.rename(taken, f"{self._qdir}/{ticket}")
            except FileNotFoundError:
                pass
            time.sleep(0.1)
            return True
        if not mine:  # withdrawn, taken over by another driver, or finished
            self.dropped += 1
            unlink(taken)
            return True
        t0 = time.monotonic()
        self._run(key, mine)
        self.longest = max(self.longest, time.monotonic() - t0)
        self.tasks += 1
        unlink(taken)  # only now: a worker that dies mid-task leaves it for the driver
        return True

    def _run(self, key: str, claim: dict[str, Any]) -> None:
        try:
            payload, meta = self.store.read_task(key)
        except Exception:  # run_entry reads it again and records why it cannot
            run_entry(self.store, key, backend=self.backend)
            return
        resources = Resources.stored(meta.get("resource_dict"))
        if resources.mpi:
            self._run_mpi(key, resources)
        else:
            run_entry(self.store, key, payload, meta, backend=self.backend, task_file=True,
                      extra_meta={"stdout": self.stdout, "stderr": self.stderr,
                                  "claim": claim})

    def _run_mpi(self, key: str, resources: Resources) -> None:
        """``srun -n N`` / ``flux run -n N`` of the MPI runner inside this allocation."""
        modes = ["--dir-mode", oct(self.store.dir_mode)[2:],
                 "--file-mode", oct(self.store.file_mode)[2:]]
        argv = [*dialect(self.backend).launcher(resources), sys.executable, "-m",
                "executorlib_cache.compute.runner", "--mpi", "--backend", self.backend,
                *modes, self.cache, key]
        rc = subprocess.run(argv, stdin=subprocess.DEVNULL).returncode
        if self.store.finished(key) is None:
            exc = TaskDiedError(f"{' '.join(argv[:3])} ... of task {key} exited with code {rc} "
                                f"without a result (pool worker job {self.job_id})")
            out, meta = failure(exc)
            meta.update(reason="died", job_id=self.job_id, host=socket.gethostname(),
                        backend=self.backend, finished=time.time())
            self.store.write_outcome(key, "failed", out, meta)

    def say_goodbye(self, reason: str) -> None:
        """Write ``.exit.<worker>`` (why it ended, tasks run): the driver then
        knows it ended cleanly, without asking the scheduler.
        """
        info = {"reason": reason, "tasks": self.tasks, "dropped": self.dropped,
                "job_id": self.job_id, "host": socket.gethostname(), "pid": os.getpid(),
                "longest": round(self.longest, 3), "ended": time.time()}
        try:
            write_json(self.qdir / f"{EXIT}{self.worker}", info, self.store.file_mode)
        except OSError:
            pass  # the driver removed the queue: nobody is waiting for this


def main(argv: list[str] | None = None) -> int:
    """Command line of a pool worker (see the module docstring); exit 0."""
    started = time.monotonic() - process_age()
    parser = argparse.ArgumentParser(prog="python -m executorlib_cache.compute.pool_worker")
    parser.add_argument("cache_directory")
    parser.add_argument("pool")
    parser.add_argument("--worker", required=True, help="this worker's token (names files)")
    parser.add_argument("--backend", default="slurm", choices=("slurm", "flux"))
    parser.add_argument("--job-name", default=None)
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds this job may run (the executor's run_time_max)")
    parser.add_argument("--idle", type=float, default=IDLE_DEFAULT,
                        help="exit after the queue stayed empty this long")
    parser.add_argument("--dir-mode", type=lambda v: int(v, 8), default=None,
                        help="octal permissions of directories the tasks create")
    parser.add_argument("--file-mode", type=lambda v: int(v, 8), default=None,
                        help="octal permissions of files the tasks write")
    ns = parser.parse_args(argv)
    limit = ns.time_limit
    if limit is None and ns.backend == "slurm":
        left = slurm_time_left()
        limit = None if left is None else left + (time.monotonic() - started)
        # (time left counts from now: add what already passed, so both count from start)
    worker = PoolWorker(ns.cache_directory, ns.pool, ns.worker, ns.backend, ns.job_name,
                        limit, ns.idle, started, dir_mode=ns.dir_mode, file_mode=ns.file_mode)
    restarts = os.environ.get("SLURM_RESTART_COUNT") or "0"
    if ns.backend == "slurm" and restarts != "0":
        # a requeued worker job (node failure, scontrol requeue): the driver counted
        # its first run as dead and queued the calls it held again; a rerun with the
        # same token takes nothing (the driver cancels such a job when it sees it)
        reason = f"requeued by SLURM (SLURM_RESTART_COUNT={restarts}): takes no task"
    else:
        reason = worker.serve()
    if not os.path.exists(worker.qdir / STOP):  # after .stop the driver is not listening
        worker.say_goodbye(reason)
    print(f"executorlib_cache pool worker {ns.worker}: ran {worker.tasks} task(s); {reason}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
