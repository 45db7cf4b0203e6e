"""Resolve a future for an entry some other process is running (``get_future_from_cache``)."""

from __future__ import annotations

import threading
import time

from . import claims
from .errors import TaskDiedError
from .future import CacheFuture
from .store import Store


def watch_entry(store: Store, future: CacheFuture, interval: float = 0.2,
                owner_check: float = 2.0) -> threading.Thread:
    """Poll the entry's files (every ``interval`` s) until it finishes, or until
    nobody can finish it (checked every ``owner_check`` s with the claim protocol:
    :func:`claims.lost_reasons`, which asks the scheduler about a cluster job whose
    driver is gone), then fail the future with :class:`TaskDiedError`."""

    def run() -> None:
        next_owner = time.monotonic() + owner_check
        while not future.done():
            outcome = store.read_outcome(future.key)
            if outcome is not None:
                future.set_outcome(outcome.status, outcome.payload, outcome.meta)
                return
            if time.monotonic() >= next_owner:
                next_owner = time.monotonic() + owner_check
                job = claims.read_claim(store, future.key)
                if not claims.is_live(store, future.key, job):
                    view = claims.ClaimView.read(store, future.key)
                    why = claims.lost_reasons(store, [view]).get(future.key)
                    if why is not None and store.read_outcome(future.key) is None and \
                            future.set_running_or_notify_cancel():
                        future.set_exception(TaskDiedError(
                            f"entry {future.key} is not finished and nobody is running it: "
                            f"{why} (claim: {job})"))
                        return
            time.sleep(interval)

    t = threading.Thread(target=run, name=f"xcache-watch-{future.key}", daemon=True)
    t.start()
    return t
