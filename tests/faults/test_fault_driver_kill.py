"""Fault 2 (local backend): ``kill -9`` of the driver while tasks are in flight,
then a new driver.  Every result arrives, nothing runs twice (each execution
appends a line to a counter file; the counter is compared with the call list).

Kill moments, all exact (no sleeps): inside a claim lock mid-submit, halfway
through writing a claim, between writing a claim and handing it to a worker
(``XCACHE_CRASH_AT`` in the driver), and as the first / a middle / a dependent /
the last call starts (its worker SIGKILLs the driver: the orphaned workers are
still finishing their tasks when the new driver starts).
"""

from __future__ import annotations

import subprocess
import time

import pytest

from executorlib_cache import get_cache_data
from faults.faultlib import (
    DRIVER,
    PY,
    driver_expected,
    duplicates,
    env_with,
    executions,
    parse_results,
    xcache_ls,
)

N = 60
DELAY = "0.01"


def start_driver(tmp_path, cache, counter, **env):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return subprocess.Popen([PY, str(script), str(cache), str(counter), str(N), DELAY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env_with(**env))


def wait_killed(proc):
    """The driver is SIGKILLed from inside (a crash point, or its own worker)."""
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -9, (proc.returncode, err)
    return out, err


def check_after_kill(cache):
    rows = xcache_ls(cache)
    bad = {k: r for k, r in rows.items() if r["status"] in ("corrupt", "tampered", "failed")}
    assert not bad, bad


def finish_and_count(tmp_path, cache, counter, counts, label):
    script = tmp_path / "driver.py"
    proc = subprocess.run([PY, str(script), str(cache), str(counter), str(N), DELAY],
                          capture_output=True, text=True, timeout=60, env=env_with())
    assert proc.returncode == 0, proc.stderr
    want_results, want_ids = driver_expected(N)
    assert parse_results(proc.stdout) == want_results
    ran = executions(counter)
    lost = len(set(want_ids) - set(ran))
    dups = len(ran) - len(set(ran))
    counts.add(label, calls=len(want_ids), lost=lost, duplicates=dups)
    assert lost == 0
    assert dups == 0, f"executed twice: {duplicates(counter)}"
    assert sorted(ran) == want_ids
    rows = get_cache_data(cache, check_scheduler=False)
    assert len(rows) == len(want_ids) and {r["status"] for r in rows} == {"done"}


MOMENTS = {
    # the driver kills itself (XCACHE_CRASH_AT) at an exact point of its own writes
    "in-claim-lock-mid-submit": {"XCACHE_CRASH_AT": "claim:held", "XCACHE_CRASH_SKIP": "25"},
    "after-claim-before-dispatch": {"XCACHE_CRASH_AT": "job.json:after_replace",
                                    "XCACHE_CRASH_SKIP": "40"},
    "mid-claim-write": {"XCACHE_CRASH_AT": "job.json:mid_write", "XCACHE_CRASH_SKIP": "7"},
    # a worker kills its driver as call i starts (tasks in flight in both workers)
    "first-execution": {"FAULTS_KILL_PARENT_AT": "0"},
    "half-done": {"FAULTS_KILL_PARENT_AT": str(N // 2)},
    "among-the-dependents": {"FAULTS_KILL_PARENT_AT": "1030"},
    "last-dependent": {"FAULTS_KILL_PARENT_AT": str(1000 + 6 * ((N - 1) // 6))},
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_driver_killed_then_new_driver_finishes_exactly_once(moment, tmp_path, counts):
    cache, counter = tmp_path / "cache", tmp_path / "count"
    env = MOMENTS[moment]
    out, err = wait_killed(start_driver(tmp_path, cache, counter, **env))
    assert "RESULTS" not in out
    if "XCACHE_CRASH_AT" in env:
        assert "crash point" in err
    check_after_kill(cache)
    finish_and_count(tmp_path, cache, counter, counts,
                     "2. kill -9 of the driver, tasks in flight (local)")


@pytest.mark.timeout(120)
def test_driver_killed_three_times_in_a_row(tmp_path, counts):
    """Kill, kill, kill (each new driver inherits the previous one's debris), finish."""
    cache, counter = tmp_path / "cache", tmp_path / "count"
    for at in (3, 20, 1024):
        t0 = time.monotonic()
        wait_killed(start_driver(tmp_path, cache, counter, FAULTS_KILL_PARENT_AT=str(at)))
        assert time.monotonic() - t0 < 60
        check_after_kill(cache)
    finish_and_count(tmp_path, cache, counter, counts,
                     "2. kill -9 of the driver, tasks in flight (local)")
