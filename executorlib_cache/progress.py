"""Progress of many futures: done / cached / failed / running / waiting.

A long wait on a cluster is easier to sit through when you see it move, and a
re-run is easier to trust when you see that 990 of 1,000 calls came from the
cache.  Two ways in:

* ``executorlib_cache.progress(futures)`` waits for the futures with a bar;
* ``SingleNodeExecutor(progress=True)`` shows one bar for everything the
  executor is given, from the first ``submit()`` until ``shutdown()``.

A future counts as *cached* when ``submit()`` resolved it from the cache
(the executor sets ``future.cached``), not when it merely finished quickly.

Nothing is drawn unless the output is a terminal (rich's
``Console.is_terminal``): a SLURM job's log file or a pipe gets no control
characters.  rich is imported only when a bar is actually drawn.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from .future import future_status

F = TypeVar("F", bound=Future)
REFRESH_SECONDS = 0.25


@dataclass(frozen=True)
class Counts:
    """How many futures are in each state (``finished`` = done + cached + failed + cancelled)."""

    done: int = 0
    cached: int = 0
    failed: int = 0
    cancelled: int = 0
    running: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        """Every future counted."""
        return self.finished + self.running + self.pending

    @property
    def finished(self) -> int:
        """done + cached + failed + cancelled."""
        return self.done + self.cached + self.failed + self.cancelled

    def describe(self) -> str:
        """``"3 done, 1 cached, 0 failed, 2 running, 4 waiting"``."""
        parts = [f"{self.done} done", f"{self.cached} cached", f"{self.failed} failed"]
        if self.cancelled:
            parts.append(f"{self.cancelled} cancelled")
        parts += [f"{self.running} running", f"{self.pending} waiting"]
        return ", ".join(parts)


def count(futures: Iterable[Future]) -> Counts:
    """Count futures by state (see :func:`executorlib_cache.future.future_status`)."""
    tally = {"done": 0, "cached": 0, "failed": 0, "cancelled": 0, "running": 0, "pending": 0}
    for f in futures:
        tally[future_status(f)] += 1
    return Counts(**tally)


#: one rich Progress per console, shared by every bar drawn on it: rich allows one
#: live display at a time, so ``progress(futures)`` inside an executor with
#: ``progress=True`` adds a second row instead of fighting over the same line
_shared: dict[int, list[Any]] = {}  # id(console) -> [Progress, number of bars]
_shared_lock = threading.Lock()
_default_console: Any = None


def _console() -> Any:
    global _default_console
    if _default_console is None:
        from rich.console import Console

        _default_console = Console(stderr=True)
    return _default_console


class _Bar:
    """One row showing :class:`Counts`; inert when the console is not a terminal."""

    def __init__(self, description: str, console: Any = None) -> None:
        self.console = console if console is not None else _console()
        self.enabled = bool(self.console.is_terminal)
        self._progress: Any = None
        self._task: Any = None
        self._description = description

    def update(self, counts: Counts) -> None:
        """Draw ``counts``; the first call adds the row (so it never shows 0/0)."""
        if not self.enabled:
            return
        if self._progress is None:
            self._start(counts)
        self._progress.update(self._task, total=counts.total, completed=counts.finished,
                              counts=_styled(counts))
        self._progress.refresh()

    def _start(self, counts: Counts) -> None:
        with _shared_lock:
            entry = _shared.get(id(self.console))
            if entry is None:
                entry = _shared[id(self.console)] = [_new_progress(self.console), 0]
                entry[0].start()
            entry[1] += 1
            self._progress = entry[0]
            self._task = self._progress.add_task(
                self._description, total=counts.total, completed=counts.finished,
                counts=_styled(counts))

    def stop(self) -> None:
        """The last bar on a console stops the display (its rows stay on screen);
        an inner bar removes its row so that repeated waits do not pile up rows."""
        if self._progress is None:
            return
        with _shared_lock:
            entry = _shared[id(self.console)]
            entry[1] -= 1
            if entry[1] == 0:
                del _shared[id(self.console)]
                self._progress.refresh()
                self._progress.stop()
            else:
                self._progress.remove_task(self._task)
        self._progress = None


def _new_progress(console: Any) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
        auto_refresh=False,
        transient=False,
    )


def _styled(c: Counts) -> str:
    text = (f"[green]{c.done} done[/] [dim green]{c.cached} cached[/] "
            f"[red]{c.failed} failed[/] [cyan]{c.running} running[/] {c.pending} waiting")
    if c.cancelled:
        text += f" [dim]{c.cancelled} cancelled[/]"
    return text


def progress(
    futures: Iterable[F],
    *,
    description: str = "tasks",
    timeout: float | None = None,
    console: Any = None,
) -> list[F]:
    """Wait for ``futures`` showing a progress bar; return them as a list, in order.

    ``[f.result() for f in progress(futures)]`` then never blocks.  A failed
    future does not stop the wait (its exception stays in the future).  Raises
    ``TimeoutError`` if some are still unfinished after ``timeout`` seconds.
    ``console``: a ``rich.console.Console`` to draw on (default: stderr).
    """
    futs = list(futures)
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = _Bar(description, console)
    try:
        pending = {f for f in futs if not f.done()}
        while True:
            bar.update(count(futs))
            if not pending:
                return futs
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(
                    f"{len(pending)} of {len(futs)} futures unfinished after {timeout} s"
                )
            step = REFRESH_SECONDS if bar.enabled else left
            if step is not None and left is not None:
                step = min(step, left)
            _, pending = concurrent.futures.wait(pending, timeout=step)  # type: ignore[assignment]
    finally:
        bar.stop()


class ProgressTracker:
    """The bar behind ``progress=True``: every future an executor hands out.

    Finished futures are tallied by a done-callback and then dropped (a finished
    future holds its result); only unfinished ones are kept, to tell running from
    waiting.  A daemon thread redraws a few times a second; ``close()`` (called by
    ``shutdown()``) draws the final counts and stops.
    """

    def __init__(self, description: str = "tasks", console: Any = None) -> None:
        self._bar = _Bar(description, console)
        self._lock = threading.Lock()
        self._unfinished: dict[int, Future] = {}
        self._tally = dict.fromkeys(("done", "cached", "failed", "cancelled"), 0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        """True when a bar is drawn (stderr is a terminal)."""
        return self._bar.enabled

    def add(self, future: Future) -> None:
        """Count ``future`` from now on (nothing is kept when no bar is drawn)."""
        if not self._bar.enabled:
            return  # nothing is drawn: keep nothing either
        with self._lock:
            self._unfinished[id(future)] = future
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="xcache-progress",
                                                daemon=True)
                self._thread.start()
        future.add_done_callback(self._finished)  # runs at once if already done

    def _finished(self, future: Future) -> None:
        status = future_status(future)
        with self._lock:
            if self._unfinished.pop(id(future), None) is not None:
                self._tally[status] += 1

    def counts(self) -> Counts:
        """A snapshot of the counts (safe from any thread)."""
        with self._lock:
            unfinished = list(self._unfinished.values())
            tally = dict(self._tally)
        running = sum(1 for f in unfinished if f.running())
        return Counts(**tally, running=running, pending=len(unfinished) - running)

    def _run(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            self._bar.update(self.counts())

    def close(self) -> None:
        """Draw the final counts and stop redrawing (waits up to 5 s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._bar.enabled:
            self._bar.update(self.counts())
        self._bar.stop()


__all__ = ["Counts", "ProgressTracker", "count", "progress"]
