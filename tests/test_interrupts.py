"""What users do to an executor besides using it: nothing, Ctrl-C, cancel (issue 12, items 1-4).

Every scenario runs as a user's script in its own interpreter (signals are real:
SIGINT to the driver, as a terminal's Ctrl-C or Jupyter's "interrupt kernel"
sends it), on the local backend; the SLURM and packed-worker variants run against
the real SLURM (``tests/test_slurm.py``'s gating).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import SLURM_WANTED, entry_path

from executorlib_cache import SingleNodeExecutor
from executorlib_cache.errors import UpstreamFailedError

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[1]
needs_slurm = pytest.mark.skipif(
    not SLURM_WANTED, reason="SLURM tests are off: run `sudo bash scripts/test.sh` (starts a "
    "local SLURM), or set XCACHE_TEST_SLURM=1 where SLURM is running")


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "driver.py"
    path.write_text(textwrap.dedent(body))
    return path


class Driver:
    """A user's script in its own interpreter; stdout/stderr go to files (local
    workers inherit them and may outlive the driver, so pipes would not reach EOF).
    SIGINT is reset to its default in the child: a test runner started in the
    background may ignore it, and children inherit that."""

    def __init__(self, path: Path, *args: str) -> None:
        self.out, self.err = path.with_suffix(".out"), path.with_suffix(".err")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(path), *args], cwd=path.parent, env=env,
            stdout=self.out.open("w"), stderr=self.err.open("w"),
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def wait_line(self, marker: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.out.read_text().splitlines():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"no {marker!r} line; stdout:\n{self.out.read_text()}"
                                     f"\nstderr:\n{self.err.read_text()}")
            time.sleep(0.05)

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        rc = self.proc.wait(timeout)
        return rc, self.out.read_text(), self.err.read_text()


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# ---------------------------------------------------------------- 1. nothing
def test_an_executor_that_is_never_used_does_not_hang_anything(tmp_path: Path) -> None:
    """Created and dropped (also again and again, as a re-run notebook cell), or a
    constructor that raises: no thread, no zmq context, garbage collection and
    interpreter exit are immediate."""
    path = script(tmp_path, """
        import gc, sys, threading, time
        from executorlib_cache import SingleNodeExecutor
        t0 = time.monotonic()
        before = threading.active_count()
        exe = SingleNodeExecutor(cache_directory="c")
        del exe
        gc.collect()
        for _ in range(20):  # a notebook cell run again and again
            exe = SingleNodeExecutor(cache_directory="c", max_workers=2)
        gc.collect()
        try:
            SingleNodeExecutor(cache_directory="c", resource_dict={"core": 2})
        except ValueError:
            pass
        gc.collect()
        print("THREADS", threading.active_count() - before)
        print("SECONDS", round(time.monotonic() - t0, 2))
    """)
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    out = dict(line.split() for line in proc.stdout.splitlines())
    assert out["THREADS"] == "0" and float(out["SECONDS"]) < 10, proc.stdout


# ---------------------------------------------------------------- 2. Ctrl-C
DRIVER = """
    import sys, time
    from concurrent.futures import CancelledError
    from pathlib import Path
    from executorlib_cache import SingleNodeExecutor

    LOG = Path(sys.argv[1])

    def work(i, seconds):
        with open(LOG, "a") as f:
            f.write(f"start {i}\\n")
        time.sleep(seconds)
        with open(LOG, "a") as f:
            f.write(f"end {i}\\n")
        return i

    exe = SingleNodeExecutor(cache_directory="cache", max_workers=3)
    futs = [exe.submit(work, i, 3.0) for i in range(3)] + \\
           [exe.submit(work, i, 0.1) for i in range(3, 9)]
    while LOG.read_text().count("start") < 3 if LOG.exists() else True:
        time.sleep(0.05)
    print("SHUTDOWN", flush=True)
    try:
        exe.shutdown()
        print("NOT INTERRUPTED")
    except KeyboardInterrupt:
        print("CAUGHT", flush=True)
    exe.shutdown()  # again, as a user (and the exit hook) does
    states = []
    for f in futs:
        if f.cancelled():
            states.append("cancelled")
        elif isinstance(f.exception(timeout=0), CancelledError):
            states.append("stopped")
        else:
            states.append("done")
    print("STATES", " ".join(states))
    print("KEYS", " ".join(f.key for f in futs))
"""


def test_ctrl_c_during_shutdown_leaves_a_clean_state(tmp_path: Path) -> None:
    """SIGINT while shutdown() waits for 3 running calls: the interrupt reaches the
    caller at once, a second shutdown() finishes at once, every future is resolved
    (calls not started cancelled, running local calls stopped: nothing keeps running
    on this machine), the user reads one line and no traceback, and a re-run
    computes what did not finish."""
    log = tmp_path / "log.txt"
    driver = Driver(script(tmp_path, DRIVER), str(log))
    driver.wait_line("SHUTDOWN")
    time.sleep(0.3)
    t0 = time.monotonic()
    driver.interrupt()
    rc, out, err = driver.finish()
    assert time.monotonic() - t0 < 10
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[:2] == ["SHUTDOWN", "CAUGHT"], out
    fields = dict(line.split(" ", 1) for line in lines[2:])
    states = fields["STATES"].split()
    assert err.count("executorlib_cache: interrupted:") == 1, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert "were cancelled or stopped" in err and "go on" not in err, err
    assert states.count("stopped") >= 3 and set(states) <= {"cancelled", "stopped", "done"}
    time.sleep(3.5)  # the stopped 3 s calls would have ended by now
    text = log.read_text()
    for i, st in enumerate(states):
        assert (f"end {i}" in text) == (st == "done"), (i, st, text)
    assert not workers_of(tmp_path / "cache")
    rerun = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(log)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60,
                           input=None)
    assert "STATES done done done done done done done done done" in rerun.stdout, rerun


def workers_of(cache: Path) -> list[int]:
    """Local worker processes serving ``cache`` that are still alive."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"executorlib_cache.compute.worker" in cmd and str(cache).encode() in cmd:
            found.append(int(pid))
    return found


def test_ctrl_c_in_a_with_block_stops_at_once(tmp_path: Path) -> None:
    """SIGINT while the script waits in fut.result() inside ``with``: the block ends
    at once (no waiting for the running calls), the script stops with the user's
    own KeyboardInterrupt, plus one line from us and no traceback of the exit hook;
    no worker outlives it."""
    path = script(tmp_path, """
        import time
        from executorlib_cache import SingleNodeExecutor
        def nap(s):
            time.sleep(s)
            return s
        with SingleNodeExecutor(cache_directory="cache", max_workers=2) as exe:
            futs = [exe.submit(nap, 30 + i) for i in range(6)]
            print("WAITING", flush=True)
            futs[0].result()
    """)
    driver = Driver(path)
    driver.wait_line("WAITING")
    time.sleep(1.0)
    t0 = time.monotonic()
    driver.interrupt()
    rc, _out, err = driver.finish()
    assert time.monotonic() - t0 < 10
    assert rc != 0 and "KeyboardInterrupt" in err
    assert err.count("executorlib_cache: interrupted:") == 1, err
    assert "6 call(s) were cancelled or stopped" in err, err
    assert "Exception ignored" not in err and "_python_exit" not in err, err
    assert not workers_of(tmp_path / "cache")


def test_an_uncaught_ctrl_c_does_not_make_the_exit_hook_wait(tmp_path: Path) -> None:
    """Without ``with``: a Ctrl-C the script does not catch ends it; the exit hook,
    which otherwise waits for the calls (as concurrent.futures does), stops them."""
    path = script(tmp_path, """
        import time
        from executorlib_cache import SingleNodeExecutor
        def nap(s):
            time.sleep(s)
            return s
        exe = SingleNodeExecutor(cache_directory="cache", max_workers=2)
        futs = [exe.submit(nap, 30 + i) for i in range(3)]
        print("WAITING", flush=True)
        futs[0].result()
    """)
    driver = Driver(path)
    driver.wait_line("WAITING")
    time.sleep(1.0)
    t0 = time.monotonic()
    driver.interrupt()
    rc, _out, err = driver.finish()
    assert time.monotonic() - t0 < 10 and rc != 0
    assert err.count("executorlib_cache: interrupted:") == 1, err
    assert "Exception ignored" not in err, err
    assert not workers_of(tmp_path / "cache")


# ---------------------------------------------------------------- 3./4. cancellation
def sleep_then(i: int, seconds: float, log: str) -> int:
    with open(log, "a") as f:
        f.write(f"{i}\n")
    time.sleep(seconds)
    return i


@pytest.mark.parametrize("trial", range(5))
def test_shutdown_cancel_futures_cancels_every_call_not_started(
        tmp_path: Path, trial: int) -> None:
    """Six 0.5 s calls with one worker, then at once shutdown(cancel_futures=True):
    calls still in the poller's inbox are cancelled too.  A call handed to the worker
    counts as started (the worker holds the next call while it runs one, as
    ProcessPoolExecutor's call queue does): at most two run, and exactly the calls
    whose futures were not cancelled run."""
    log = tmp_path / "log.txt"
    exe = SingleNodeExecutor(cache_directory=tmp_path / "cache", max_workers=1)
    futs = [exe.submit(sleep_then, i, 0.5, str(log)) for i in range(6)]
    exe.shutdown(wait=True, cancel_futures=True)
    ran = sorted(int(x) for x in log.read_text().split()) if log.exists() else []
    kept = [i for i, f in enumerate(futs) if not f.cancelled()]
    assert all(f.done() for f in futs)
    assert len(ran) <= 2 and ran == kept, (ran, [f._state for f in futs])
    assert [f.result() for f in futs if not f.cancelled()] == kept


def test_cancelling_an_upstream_fails_its_dependents_in_the_driver(tmp_path: Path) -> None:
    """With the one worker busy, cancel the upstream: the dependent fails at once
    with UpstreamFailedError naming it, and never reaches a worker."""
    log = tmp_path / "log.txt"
    with SingleNodeExecutor(cache_directory=tmp_path / "cache", max_workers=1) as exe:
        busy = exe.submit(sleep_then, 0, 2.0, str(log))
        up = exe.submit(sleep_then, 1, 0.1, str(log))
        down = exe.submit(sleep_then, up, 0.1, str(log))
        assert up.cancel()
        t0 = time.monotonic()
        exc = down.exception(timeout=10)
        latency = time.monotonic() - t0
        assert busy.result(timeout=30) == 0
    assert isinstance(exc, UpstreamFailedError) and exc.upstream_key == up.key, repr(exc)
    assert "cancelled" in str(exc) and latency < 1.0
    assert log.read_text().split() == ["0"]  # neither up nor down ran


# ---------------------------------------------------------------- SLURM and packed workers
SLURM_DRIVER = """
    import sys, time
    from executorlib_cache import SlurmClusterExecutor
    from executorlib_cache.errors import DetachedError

    def nap(i, seconds):
        time.sleep(seconds)
        return i

    workers = None if sys.argv[1] == "none" else int(sys.argv[1])
    exe = SlurmClusterExecutor(cache_directory="cache", max_workers=workers)
    futs = [exe.submit(nap, i, 4.0) for i in range(3)]
    while not all(f.running() for f in futs[:2]):
        time.sleep(0.1)
    print("SHUTDOWN", flush=True)
    try:
        exe.shutdown()
    except KeyboardInterrupt:
        print("CAUGHT", flush=True)
    exe.shutdown()
    print("STATES", " ".join("detached" if isinstance(f.exception(timeout=0), DetachedError)
                             else "other" for f in futs))
    print("KEYS", " ".join(f.key for f in futs))
"""


@needs_slurm
@pytest.mark.timeout(150)
@pytest.mark.parametrize("workers", ["none", "2"], ids=["one-job-per-call", "packed"])
def test_ctrl_c_during_shutdown_on_slurm(tmp_path: Path, workers: str) -> None:
    """On SLURM the jobs (or pool workers) go on after the interrupt: the futures are
    detached, one line says so, and a re-run collects every result without sbatch."""
    driver = Driver(script(tmp_path, SLURM_DRIVER), workers)
    driver.wait_line("SHUTDOWN", timeout=90)
    time.sleep(0.3)
    driver.interrupt()
    rc, out, err = driver.finish(timeout=60)
    assert rc == 0, err
    lines = dict(line.split(" ", 1) for line in out.splitlines()[2:])
    assert out.splitlines()[1] == "CAUGHT" and lines["STATES"] == "detached detached detached"
    assert err.count("executorlib_cache: interrupted:") == 1 and "Traceback" not in err, err
    assert "slurm" in err
    keys = lines["KEYS"].split()
    wait_for(lambda: all(entry_path(tmp_path / "cache", k).exists() for k in keys), 90,
             "the jobs to finish without their driver")
    rerun = script(tmp_path, """
        import time
        from executorlib_cache import SlurmClusterExecutor

        def nap(i, seconds):
            time.sleep(seconds)
            return i

        with SlurmClusterExecutor(cache_directory="cache") as exe:
            print([exe.submit(nap, i, 4.0).result() for i in range(3)])
            print(exe._backend.calls["submit"])
    """)
    done = subprocess.run([sys.executable, str(rerun)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.split("\n")[:2] == ["[0, 1, 2]", "0"], done.stdout + done.stderr


# ---------------------------------------------------------------- 15./16. smaller
def test_python_dash_m_executorlib_cache_cli_runs_xcache(tmp_path: Path) -> None:
    """The README's layout table names ``executorlib_cache.cli``: ``python -m`` runs it."""
    out = subprocess.run([sys.executable, "-m", "executorlib_cache.cli", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Usage: xcache" in out.stdout, out.stderr


def test_a_refused_configuration_leaves_no_cache_directory_behind(tmp_path: Path) -> None:
    """Every check runs before anything is created: a cache path pysqa refuses (a
    space), a bad resource_dict, a bad mode."""
    from executorlib_cache import SlurmClusterExecutor

    spaced = tmp_path / "my cache"
    with pytest.raises(ValueError, match="whitespace"):
        SlurmClusterExecutor(cache_directory=spaced)
    other = tmp_path / "other"
    with pytest.raises(ValueError, match="unknown resource_dict key"):
        SingleNodeExecutor(cache_directory=other, resource_dict={"core": 2})
    with pytest.raises(ValueError, match="file_mode"):
        SingleNodeExecutor(cache_directory=other, file_mode=0o044)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
