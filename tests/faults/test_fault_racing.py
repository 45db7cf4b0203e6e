"""Fault 3: four drivers racing on the same calls in one cache directory, and a
driver SIGKILLed while it holds a claim lock.

Each call executes exactly once whichever driver wins its claim; the others
attach and read the result.  Claim locks are byte-range locks (``lockf``), one
of 4096 stripes of ``<cache>/.lock`` per key: the kernel releases them when the
holder dies, so a killed holder never blocks a later run (shown directly by
probing every stripe with ``lockf(LOCK_NB)`` from another process, before and
after the kill).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from executorlib_cache import list_cache
from executorlib_cache.hashing import task_key
from executorlib_cache.locks import STRIPES
from executorlib_cache.naming import SHARDS, digest
from faults.faultlib import (
    DRIVER,
    PY,
    check_finished_clean,
    driver_expected,
    env_with,
    executions,
    parse_results,
    wait_for,
    work,
)

N = 200

# run in a separate process: closing a descriptor of the lock file drops every POSIX
# lock of the process that closes it, and a process never conflicts with its own locks
HELD_STRIPES = f"""
import fcntl, json, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
held = []
for n in range({STRIPES}):
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, n)
    except OSError:
        held.append(n)
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, n)
print(json.dumps(held))
"""


def held_stripes(lock_file) -> list[int]:
    """The stripes of ``<cache>/.lock`` another process holds a lock on."""
    out = subprocess.run([sys.executable, "-c", HELD_STRIPES, str(lock_file)],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return json.loads(out)


def stripe_of(key: str) -> int:
    return int.from_bytes(digest(key)[1:3], "big") % STRIPES


def check_one_file_per_entry(cache, n_entries: int) -> None:
    """Format 2: each finished entry is one file in its shard (no claim, no lock file,
    no temp file); the claim locks are the one ``.lock`` file."""
    rows = list_cache(cache, check_scheduler=False)
    assert len(rows) == n_entries and {r["status"] for r in rows} == {"done"}
    for r in rows:
        check_finished_clean(cache, r["key"])
    in_shards = sum(len(os.listdir(cache / s)) for s in SHARDS)
    assert in_shards == n_entries, f"{in_shards} files in the shards for {n_entries} entries"
    assert (cache / ".lock").is_file() and not (cache / ".locks").exists()


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
    check_one_file_per_entry(cache, len(want_ids))


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
        held = held_stripes(cache / ".lock")
        # the 18th call's stripe, held by the hanging driver (and nothing else)
        assert held == [stripe_of(task_key(work, (str(counter), 17, 0.0), {}))], held
        stuck.send_signal(signal.SIGKILL)
        stuck.wait(timeout=10)
    finally:
        if stuck.poll() is None:
            stuck.kill()
            stuck.wait()
    assert held_stripes(cache / ".lock") == []  # the kernel released it with the process

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
    check_one_file_per_entry(cache, len(want_ids))
