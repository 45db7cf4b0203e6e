"""Progress bars: counts by state, cache hits counted as cached, quiet off a terminal."""

from __future__ import annotations

import io
import sys
import threading
import time
from concurrent.futures import Future

import pytest
from rich.console import Console

import executorlib_cache
from executorlib_cache import SingleNodeExecutor
from executorlib_cache.progress import Counts, ProgressTracker, count

progress_module = sys.modules["executorlib_cache.progress"]
pytestmark = pytest.mark.timeout(120)


def slow(x, seconds=0.2):
    time.sleep(seconds)
    return x


def fail(x):
    raise ValueError(x)


def tty() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=160, color_system=None), buf


def test_count_every_state():
    done, failed, cancelled, running, pending, cached = (Future() for _ in range(6))
    done.set_result(1)
    failed.set_exception(ValueError())
    cancelled.cancel()
    running.set_running_or_notify_cancel()
    cached.set_result(2)
    cached.cached = True  # what the executor sets on a cache hit
    c = count([done, failed, cancelled, running, pending, cached])
    assert c == Counts(done=1, cached=1, failed=1, cancelled=1, running=1, pending=1)
    assert (c.total, c.finished) == (6, 4)
    assert c.describe() == ("1 done, 1 cached, 1 failed, 1 cancelled, 1 running, 1 waiting")


def test_progress_is_the_package_level_helper():
    assert executorlib_cache.progress is progress_module.progress


def test_progress_waits_shows_counts_and_cached_on_rerun(cache_dir):
    console, buf = tty()
    with SingleNodeExecutor(cache_directory=cache_dir, max_workers=2) as exe:
        futs = [exe.submit(slow, i) for i in range(4)] + [exe.submit(fail, "x")]
        out = executorlib_cache.progress(futs, description="first", console=console)
        assert out == futs and all(f.done() for f in futs)
        assert [f.result() for f in out[:4]] == [0, 1, 2, 3]
    text = buf.getvalue()
    assert "first" in text and "5/5" in text and "4 done" in text and "1 failed" in text
    assert "0 cached" in text

    console, buf = tty()
    with SingleNodeExecutor(cache_directory=cache_dir, max_workers=2) as exe:
        futs = [exe.submit(slow, i) for i in range(4)] + [exe.submit(fail, "x")]
        executorlib_cache.progress(futs, console=console)
    # the 4 results are cache hits; the failure is retried (failures are not hits)
    assert count(futs) == Counts(cached=4, failed=1)
    assert "4 cached" in buf.getvalue()


def test_quiet_when_not_a_terminal():
    buf = io.StringIO()
    f: Future = Future()
    threading.Timer(0.3, f.set_result, args=(1,)).start()
    t0 = time.monotonic()
    assert progress_module.progress([f], console=Console(file=buf)) == [f]
    assert time.monotonic() - t0 < 5 and buf.getvalue() == ""


def test_timeout():
    f: Future = Future()
    console, _ = tty()
    with pytest.raises(TimeoutError, match="1 of 1 futures unfinished"):
        progress_module.progress([f], timeout=0.3, console=console)
    with pytest.raises(TimeoutError):
        progress_module.progress([f], timeout=0.2, console=Console(file=io.StringIO()))


def test_executor_progress_option_draws_until_shutdown(cache_dir, monkeypatch):
    console, buf = tty()
    monkeypatch.setattr(sys.modules["executorlib_cache.executor"], "ProgressTracker",
                        lambda description: ProgressTracker(description, console=console))
    with SingleNodeExecutor(cache_directory=cache_dir, max_workers=2, progress=True) as exe:
        futs = [exe.submit(slow, i, 0.1) for i in range(6)]
    assert [f.result() for f in futs] == list(range(6))
    text = buf.getvalue()
    assert "SingleNodeExecutor" in text and "6/6" in text and "6 done" in text
    buf.truncate(0)
    with SingleNodeExecutor(cache_directory=cache_dir, max_workers=2, progress=True) as exe:
        for i in range(6):
            exe.submit(slow, i, 0.1)
        assert exe._progress is not None and exe._progress.counts() == Counts(cached=6)
    assert "6 cached" in buf.getvalue()


def test_executor_progress_off_a_terminal_keeps_nothing(cache_dir, capsys):
    with SingleNodeExecutor(cache_directory=cache_dir, progress=True) as exe:
        assert exe.submit(slow, 1, 0).result(timeout=60) == 1
        assert exe._progress is not None and not exe._progress.enabled
        assert exe._progress.counts() == Counts()  # no references kept when not drawing
    captured = capsys.readouterr()
    assert "━" not in captured.err and "━" not in captured.out


def test_nested_bars_share_one_display(cache_dir, monkeypatch):
    """progress(futures) inside an executor with progress=True: two rows, no LiveError."""
    console, buf = tty()
    monkeypatch.setattr(sys.modules["executorlib_cache.executor"], "ProgressTracker",
                        lambda description: ProgressTracker(description, console=console))
    with SingleNodeExecutor(cache_directory=cache_dir, max_workers=2, progress=True) as exe:
        outer = [exe.submit(slow, i, 0.05) for i in range(4)]
        inner = progress_module.progress(outer[:2], description="inner", console=console)
        assert all(f.done() for f in inner)
    text = buf.getvalue()
    assert "inner" in text and "2/2" in text and "4/4" in text
    assert progress_module._shared == {}  # the shared display was stopped


def test_tracker_keeps_no_finished_future():
    """A finished future holds its result (maybe a big array): the bar must drop it."""
    import gc
    import weakref

    console, _ = tty()
    tracker = ProgressTracker("t", console=console)
    done: Future = Future()
    waiting: Future = Future()
    tracker.add(done)
    tracker.add(waiting)
    done.set_result(bytearray(10))
    ref = weakref.ref(done)
    del done
    gc.collect()
    assert ref() is None
    assert tracker.counts() == Counts(done=1, pending=1)
    waiting.set_exception(ValueError())
    assert tracker.counts() == Counts(done=1, failed=1)
    tracker.close()
