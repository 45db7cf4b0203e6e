"""Resolve a future for an entry some other process is running."""

from __future__ import annotations

import threading
import time

from .backends import backend_class
from .errors import TaskDiedError
from .future import CacheFuture
from .serialization import load_exception, loads
from .store import JOB_JSON, Store


def _job_still_queued(job: dict | None) -> bool:
    """A cluster job outlives its driver (``shutdown(wait=False)``, a killed driver):
    ask the scheduler once before declaring the entry abandoned."""
    if not job or not job.get("job_id") or job.get("backend") not in ("slurm", "flux"):
        return False
    try:
        from .backends import cluster

        states = cluster.query_job_states(job["backend"], [str(job["job_id"])])
        sched = cluster.SCHEDULERS[job["backend"]]
    except Exception:
        return True  # the scheduler did not answer: keep waiting rather than guess
    state = states.get(str(job["job_id"]))
    return state is not None and sched.is_active(state)


def watch_entry(store: Store, future: CacheFuture, interval: float = 0.2,
                owner_check: float = 2.0) -> threading.Thread:
    """Poll the entry's files until it finishes or nobody can finish it."""

    def run() -> None:
        next_owner = time.monotonic() + owner_check
        while not future.done():
            outcome = store.read_outcome(future.key)
            if outcome is not None:
                if future.set_running_or_notify_cancel():
                    if outcome.status == "done":
                        future.set_result(loads(outcome.payload))
                    else:
                        future.set_exception(load_exception(outcome.payload, outcome.meta))
                return
            if time.monotonic() >= next_owner:
                next_owner = time.monotonic() + owner_check
                job = store.read_json(future.key, JOB_JSON)
                cls = backend_class((job or {}).get("backend", "local"))
                if not cls.claim_is_live(store, future.key, job) and \
                        not _job_still_queued(job):
                    if store.read_outcome(future.key) is None and \
                            future.set_running_or_notify_cancel():
                        future.set_exception(TaskDiedError(
                            f"entry {future.key} is not finished and nobody is running it "
                            f"(claim: {job})"))
                    continue
            time.sleep(interval)

    t = threading.Thread(target=run, name=f"xcache-watch-{future.key}", daemon=True)
    t.start()
    return t
