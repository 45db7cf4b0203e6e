"""Fault 3: four drivers racing on the same calls in one cache directory, and a
driver SIGKILLed while it holds a claim lock.

Each call executes exactly once whichever driver wins its claim; the others
attach and read the result.  Claim locks are ``flock``s: the kernel releases
them when the holder dies, so a killed holder never blocks a later run (shown
directly with ``flock(LOCK_NB)`` on the lock file before and after the kill).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time

import pytest

from faults.faultlib import (
    DRIVER,
    PY,
    driver_expected,
    env_with,
    executions,
    parse_results,
    wait_for,
)

N = 200


def lock_is_held(path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our flock, if we got it
    return False


@pytest.mark.timeout(120)
def test_four_drivers_race_on_200_calls_each_runs_once(tmp_path, counts):
    cache, counter = tmp_path / "cache", tmp_path / "count"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    cmd = [PY, str(script), str(cache), str(counter), str(N), "0", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env_with()) for _ in range(4)]
    outs = [p.communicate(timeout=100) for p in procs]
    want_results, want_ids = driver_expected(N)
    hangs = 0
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert parse_results(out) == want_results
    ran = executions(counter)
    lost, dups = len(set(want_ids) - set(ran)), len(ran) - len(set(ran))
    counts.add("3. four drivers racing on the same calls", calls=4 * len(want_ids), lost=lost,
               duplicates=dups, hangs=hangs)
    assert sorted(ran) == want_ids  # every call once: no loss, no duplicate


@pytest.mark.timeout(90)
def test_driver_killed_inside_a_claim_lock_does_not_block_the_next(tmp_path, counts):
    cache, counter = tmp_path / "cache", tmp_path / "count"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    n = "40"
    errfile = tmp_path / "stuck.err"
    with open(errfile, "w") as err:
        stuck = subprocess.Popen(
            [PY, str(script), str(cache), str(counter), n, "0", "1"], stdout=subprocess.DEVNULL,
            stderr=err, env=env_with(XCACHE_CRASH_AT="claim:held", XCACHE_CRASH_ACTION="hang",
                                     XCACHE_CRASH_SKIP="17"))
    try:
        wait_for(lambda: "crash point claim:held" in errfile.read_text(), 30,
                 "the driver to hang inside a claim lock")
        held = [p for p in (cache / ".locks").iterdir() if lock_is_held(p)]
        assert len(held) == 1, held  # the 18th call's lock, held by the hanging driver
        stuck.send_signal(signal.SIGKILL)
        stuck.wait(timeout=10)
    finally:
        if stuck.poll() is None:
            stuck.kill()
            stuck.wait()
    assert not lock_is_held(held[0])  # the kernel released it with the process

    t0 = time.monotonic()
    proc = subprocess.run([PY, str(script), str(cache), str(counter), n, "0", "1"],
                          capture_output=True, text=True, timeout=60, env=env_with())
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    want_results, want_ids = driver_expected(int(n))
    assert parse_results(proc.stdout) == want_results
    # a stale lock would block it for the claim timeout (60 s), then fail it
    assert elapsed < 40, f"the next driver took {elapsed:.1f} s"
    ran = executions(counter)
    counts.add("3. driver SIGKILLed holding a claim lock, then a new driver",
               calls=len(want_ids), lost=len(set(want_ids) - set(ran)),
               duplicates=len(ran) - len(set(ran)))
    assert sorted(ran) == want_ids
