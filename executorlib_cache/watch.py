"""Resolve a future for an entry some other process is running."""

from __future__ import annotations

import threading
import time

from .backends import backend_class
from .errors import TaskDiedError
from .future import CacheFuture
from .serialization import load_exception, loads
from .store import JOB_JSON, Store


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
                if not cls.claim_is_live(store, future.key, job):
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
