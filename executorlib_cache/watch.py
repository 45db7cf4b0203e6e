"""A future for an existing entry (``get_future_from_cache``), resolved when the
process running it finishes it."""

from __future__ import annotations

import os
import threading
import time

from . import claims
from .errors import TaskDiedError
from .future import CacheFuture
from .resources import validate_cache_key
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


def get_future_from_cache(cache_directory: str | os.PathLike[str], cache_key: str
                          ) -> CacheFuture:
    """A future for the existing entry ``cache_key`` of ``cache_directory``.

    Finished: a done future with the result.  Failed: **raises** the stored exception
    (the function's own type, with the remote traceback as ``__cause__``), as
    executorlib does.  Queued or running: a future that resolves when the entry
    finishes (executorlib's never completes).  Raises ``FileNotFoundError`` (with
    executorlib's message) when there is no such entry or directory, ``ValueError``/
    ``TypeError`` for a key that is not a valid key.
    """
    validate_cache_key(cache_key)  # "../elsewhere" must not read (and unpickle) outside
    missing = FileNotFoundError(
        f"Neither input nor output file for cache key {cache_key} found in cache directory "
        f"{cache_directory}.")
    try:
        store = Store(cache_directory, create=False)
    except FileNotFoundError:
        raise missing from None
    future = CacheFuture(cache_key)
    if not store.exists(cache_key):
        raise missing
    outcome = store.read_outcome(cache_key)
    if outcome is not None:
        future.set_outcome(outcome.status, outcome.payload, outcome.meta)
        if outcome.status != "done":
            raise future.exception()  # type: ignore[misc]
        return future
    watch_entry(store, future)
    return future
