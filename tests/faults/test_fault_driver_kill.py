"""Fault 2 (local backend): ``kill -9`` of the driver while tasks are in flight,
then a new driver.  Every result arrives, nothing runs twice (each execution
appends a line to a counter file; the counter is compared with the call list).

Kill moments, all exact (no sleeps): inside a claim lock mid-submit, halfway
through writing a claim, between writing a claim and handing it to a worker
(``XCACHE_CRASH_AT`` in the driver), and as the first / a middle / a dependent /
the last call starts (its worker SIGKILLs the driver: the orphaned workers are
still finishing their tasks when the new driver starts).  And at every point of
the one file a local driver writes besides claims: the failed file it records
when a worker dies or an upstream failed.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from executorlib_cache import list_cache
from faults.faultlib import (
    DRIVER,
    PY,
    check_finished_clean,
    check_no_false_files,
    driver_expected,
    duplicates,
    entry_files,
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
    rows = list_cache(cache, check_scheduler=False)
    assert len(rows) == len(want_ids) and {r["status"] for r in rows} == {"done"}
    for r in rows:  # each one file in its shard: no claim, no temp file left of the kill
        check_finished_clean(cache, r["key"])


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


# the driver records failures itself: a call whose worker died, and its dependent
FAILING = """
import json, sys
from executorlib_cache import SingleNodeExecutor
from faults.faultlib import work, work_dies, work_plus

cache, counter = sys.argv[1], sys.argv[2]
with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
    dies = exe.submit(work_dies, counter, 1)
    dependent = exe.submit(work_plus, counter, 1001, dies)
    fine = exe.submit(work, counter, 2)
    print("KEYS", json.dumps([dies.key, dependent.key, fine.key]), flush=True)
    print("RESULTS", json.dumps([type(dies.exception()).__name__,
                                 type(dependent.exception()).__name__, fine.result()]),
          flush=True)
"""
# (crash point in the driver, which of its failure records: 0 the death, 1 the upstream)
FAILURE_RECORDS = [(f"error.h5:{when}", n) for n in (0, 1)
                   for when in ("mid_write", "before_replace", "after_replace")]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("point", "skip"), FAILURE_RECORDS,
                         ids=[f"{p}-{('death', 'upstream')[n]}" for p, n in FAILURE_RECORDS])
def test_driver_killed_while_recording_a_failure(point, skip, tmp_path, counts):
    cache, counter = tmp_path / "cache", tmp_path / "count"
    script = tmp_path / "failing.py"
    script.write_text(FAILING)
    cmd = [PY, str(script), str(cache), str(counter)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env=env_with(XCACHE_CRASH_AT=point, XCACHE_CRASH_SKIP=str(skip)))
    assert proc.returncode == -9, proc.stderr
    assert f"crash point {point}" in proc.stderr
    keys = json.loads(next(ln for ln in proc.stdout.splitlines()
                           if ln.startswith("KEYS ")).split(" ", 1)[1])
    hit = keys[skip]  # the entry whose failure was being written
    check_no_false_files(cache, hit)
    files = set(entry_files(cache, hit))
    if point.endswith("after_replace"):  # the new state: recorded (its claim not yet gone)
        assert "failed" in files and files <= {"failed", "claim"}, files
    else:  # the old state: claimed, nothing recorded
        assert files == {"claim"}, files
    rows = xcache_ls(cache)
    assert not {k: r for k, r in rows.items() if r["status"] in ("corrupt", "tampered")}

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env_with())
    assert again.returncode == 0, again.stderr
    assert parse_results(again.stdout) == ["TaskDiedError", "UpstreamFailedError", 4]
    ran = executions(counter)
    # the dying call ran once per driver (a failure is retried), its dependent never,
    # the good call once
    assert sorted(ran) == [1, 1, 2], ran
    counts.add("2. kill -9 of the driver recording a failure (local)", calls=3,
               duplicates=max(0, ran.count(2) - 1))
    rows = xcache_ls(cache)
    assert [rows[k]["status"] for k in keys] == ["failed", "failed", "done"]
    assert [rows[k]["reason"] for k in keys[:2]] == ["died", "upstream"]
    for key, kind in zip(keys, ("failed", "failed", "done"), strict=True):
        check_finished_clean(cache, key, kind)


PREFETCHED_DRIVER = """
import sys, time
from executorlib_cache import SingleNodeExecutor
from faults.faultlib import wait_for_file, work
cache, counter, flag = sys.argv[1:4]
exe = SingleNodeExecutor(cache_directory=cache, max_workers=1)
a = exe.submit(wait_for_file, flag, 1)   # holds the only worker
b = exe.submit(work, counter, 2)        # handed to the same worker ahead of time
print(a.key, b.key, flush=True)
time.sleep(600)                         # killed by the test
"""


@pytest.mark.timeout(60)
def test_a_dead_drivers_prefetched_call_does_not_run_once_its_claim_is_gone(tmp_path):
    """Regression: a local worker holds a second call ahead of time; its driver is
    killed and the call's entry removed (``xcache rm --force``) before the worker
    gets to it.  The orphaned worker finishes the call it runs and skips the other:
    nobody asked for it any more, and a new driver would run it again."""
    from executorlib_cache.liveness import local_runner, orphan_workers
    from executorlib_cache.store import Store

    cache, counter, flag = tmp_path / "cache", tmp_path / "count", tmp_path / "flag"
    script = tmp_path / "prefetch.py"
    script.write_text(PREFETCHED_DRIVER)
    proc = subprocess.Popen([PY, str(script), str(cache), str(counter), str(flag)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env_with())
    store = Store(cache)
    try:
        key_a, key_b = proc.stdout.readline().split()
        owner = {"host": __import__("socket").gethostname(), "pid": proc.pid}
        # wait until the worker runs a (and so holds b): its running file says a
        deadline = time.monotonic() + 30
        while local_runner((store.read_claim(key_a) or {}).get("workers"), key_a) is None:
            assert time.monotonic() < deadline, "a never started"
            time.sleep(0.05)
        assert len(orphan_workers(owner, cache)) == 1
    except BaseException:
        flag.touch()  # the orphaned worker must not wait for it forever
        raise
    finally:
        proc.kill()
        proc.wait(timeout=30)  # (not communicate: the orphaned worker holds the pipes)
    store.release_claim(key_b)  # what `xcache rm --force` does to a queued call
    flag.touch()  # a finishes; the orphaned worker then reaches b
    deadline = time.monotonic() + 30
    while orphan_workers(owner, cache):
        assert time.monotonic() < deadline, "the orphaned worker did not exit"
        time.sleep(0.1)
    assert executions(counter) == [], "the removed call ran after its driver died"
    assert set(entry_files(cache, key_a)) == {"done"}
    assert entry_files(cache, key_b) == {}
