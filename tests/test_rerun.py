"""Re-running scripts: cache hits, stable keys across processes, racing drivers,
killed drivers and corrupt entries.  Every driver here is a real separate process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import entry_path, run_script, write_script

from executorlib_cache import SingleNodeExecutor, get_future_from_cache, list_cache

DRIVER = """
import os, sys, time
from executorlib_cache import SingleNodeExecutor

COUNTER = sys.argv[2]

def work(i, delay=0.0):
    with open(COUNTER, "a") as fh:      # one line per real execution
        fh.write(f"{i}\\n")
    time.sleep(delay)
    return i * i

if __name__ == "__main__":
    n, delay = int(sys.argv[3]), float(sys.argv[4])
    with SingleNodeExecutor(cache_directory=sys.argv[1], max_workers=2) as exe:
        futs = [exe.submit(work, i, delay) for i in range(n)]
        done_at_submit = sum(f.done() for f in futs)
        print("RESULTS", [f.result() for f in futs])
        print("HITS", done_at_submit)
        print("KEYS", " ".join(f.key for f in futs))
"""


def workers_of(cache_dir: Path) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        try:
            cmd = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"executorlib_cache.compute.worker" in cmd and str(cache_dir).encode() in cmd:
            stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] != "Z":
                pids.append(int(p.name))
    return pids


def wait_for_no_workers(cache_dir: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while workers_of(cache_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def executions(counter: Path) -> list[int]:
    return [int(x) for x in counter.read_text().split()] if counter.exists() else []


def parse(out: str, tag: str) -> str:
    return next(line.split(" ", 1)[1] for line in out.splitlines() if line.startswith(tag))


def test_rerun_in_new_process_is_all_cache_hits(tmp_path, cache_dir):
    script = write_script(tmp_path / "driver.py", DRIVER)
    counter = tmp_path / "count.txt"
    first = run_script(script, str(cache_dir), str(counter), "30", "0")
    assert parse(first.stdout, "RESULTS") == str([i * i for i in range(30)])
    assert sorted(executions(counter)) == list(range(30))
    second = run_script(script, str(cache_dir), str(counter), "30", "0")
    assert parse(second.stdout, "RESULTS") == str([i * i for i in range(30)])
    assert parse(second.stdout, "HITS") == "30"
    assert len(executions(counter)) == 30  # nothing executed again
    assert parse(first.stdout, "KEYS") == parse(second.stdout, "KEYS")


def test_keys_survive_moved_cache_renamed_script_other_cwd_and_hashseed(tmp_path):
    script = write_script(tmp_path / "driver.py", DRIVER)
    counter = tmp_path / "count.txt"
    first = run_script(script, str(tmp_path / "cache"), str(counter), "5", "0",
                       env={"PYTHONHASHSEED": "1"})
    moved = tmp_path / "elsewhere" / "moved-cache"
    moved.parent.mkdir()
    shutil.move(str(tmp_path / "cache"), moved)
    other = tmp_path / "other"
    other.mkdir()
    renamed = write_script(other / "renamed.py", DRIVER)
    second = run_script(renamed, str(moved), str(counter), "5", "0", cwd=tmp_path,
                        env={"PYTHONHASHSEED": "2"})
    assert parse(second.stdout, "HITS") == "5"
    assert parse(first.stdout, "KEYS") == parse(second.stdout, "KEYS")
    assert len(executions(counter)) == 5


def test_failure_is_recorded_but_retried_on_rerun(tmp_path, cache_dir):
    script = write_script(tmp_path / "flaky.py", """
        import sys
        from pathlib import Path
        from executorlib_cache import SingleNodeExecutor

        def flaky(flag):
            attempts = Path(flag + ".attempts")
            attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
            if not Path(flag).exists():
                raise RuntimeError("transient")
            return "ok"

        with SingleNodeExecutor(cache_directory=sys.argv[1]) as exe:
            fut = exe.submit(flaky, sys.argv[2])
            try:
                print("RESULT", fut.result())
            except RuntimeError as e:
                print("FAILED", e)
    """)
    flag = tmp_path / "flag"
    assert "FAILED transient" in run_script(script, str(cache_dir), str(flag)).stdout
    [entry] = [e for e in list_cache(cache_dir)]
    assert entry["status"] == "failed"
    flag.write_text("")
    assert "RESULT ok" in run_script(script, str(cache_dir), str(flag)).stdout
    assert Path(str(flag) + ".attempts").read_text() == "xx"
    assert "RESULT ok" in run_script(script, str(cache_dir), str(flag)).stdout
    assert Path(str(flag) + ".attempts").read_text() == "xx"  # success is a hit


def test_dependent_key_same_whether_upstream_pending_or_done(tmp_path, cache_dir):
    def up(x):
        time.sleep(0.3)
        return x

    def down(y):
        return y + 1

    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        a = exe.submit(up, 1)
        dependent_while_pending = exe.submit(down, a)
        assert not a.done()
        a.result(timeout=30)
        dependent_after_done = exe.submit(down, a)
        assert dependent_while_pending.key == dependent_after_done.key
        assert dependent_after_done.result(timeout=30) == 2
    with SingleNodeExecutor(cache_directory=tmp_path / "other") as exe:
        a2 = exe.submit(up, 1)
        a2.result(timeout=30)
        assert exe.submit(down, a2).key == dependent_while_pending.key


def test_two_racing_drivers_run_each_call_once(tmp_path, cache_dir):
    script = write_script(tmp_path / "driver.py", DRIVER)
    counter = tmp_path / "count.txt"
    cmd = [sys.executable, str(script), str(cache_dir), str(counter), "20", "0.05"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=90) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert parse(out, "RESULTS") == str([i * i for i in range(20)])
    assert sorted(executions(counter)) == list(range(20))


def test_killed_driver_leaves_no_corrupt_entries_and_rerun_completes(tmp_path, cache_dir):
    script = write_script(tmp_path / "driver.py", DRIVER)
    counter = tmp_path / "count.txt"
    for delay in (0.0, 0.15, 0.4):  # kill at different moments
        proc = subprocess.Popen([sys.executable, str(script), str(cache_dir), str(counter),
                                 "40", "0.02"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.4 + delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        data = list_cache(cache_dir)
        assert not [e for e in data if e["status"] == "corrupt"], data
    assert wait_for_no_workers(cache_dir, 15), "orphaned workers outlived their driver"
    out = run_script(script, str(cache_dir), str(counter), "40", "0.02").stdout
    assert parse(out, "RESULTS") == str([i * i for i in range(40)])
    ran = executions(counter)
    assert sorted(set(ran)) == list(range(40))
    # a task whose worker survived its driver finishes instead of running again
    assert len(ran) == 40, f"duplicates: {sorted(i for i in set(ran) if ran.count(i) > 1)}"


def test_corrupt_result_is_warned_moved_aside_and_recomputed(cache_dir):
    def square(x):
        return x * x

    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        keys = [exe.submit(square, i).key for i in range(4)]
        exe.submit(square, 0).result(timeout=30)
    time.sleep(0.2)
    result_files = [entry_path(cache_dir, k) for k in keys]
    result_files[0].write_bytes(b"")  # zero bytes
    result_files[1].write_bytes(os.urandom(600))  # random bytes
    data = result_files[2].read_bytes()
    result_files[2].write_bytes(data[: len(data) // 2])  # truncated
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        with pytest.warns(UserWarning, match="unreadable"):
            futs = [exe.submit(square, i) for i in range(4)]
        assert [f.result(timeout=30) for f in futs] == [0, 1, 4, 9]
    assert len(list((cache_dir / ".corrupt").iterdir())) == 3


def test_get_future_from_cache_and_list_cache(cache_dir):
    def slowly(x):
        time.sleep(1.0)
        return x

    def bad():
        raise ValueError("bad thing")

    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        done = exe.submit(slowly, "done")
        failed = exe.submit(bad)
        done.result(timeout=30)
        with pytest.raises(ValueError):
            failed.result(timeout=30)
        running = exe.submit(slowly, "later")
        time.sleep(0.3)
        watched = get_future_from_cache(cache_dir, running.key)
        assert not watched.done()
        assert watched.result(timeout=30) == "later"
    assert get_future_from_cache(cache_dir, done.key).result() == "done"
    with pytest.raises(ValueError, match="bad thing"):
        get_future_from_cache(cache_dir, failed.key).result()
    with pytest.raises(FileNotFoundError):  # as executorlib (issue 15)
        get_future_from_cache(cache_dir, "nope-v1-0")
    by_key = {e["key"]: e for e in list_cache(cache_dir)}
    assert by_key[done.key]["status"] == "done" and by_key[done.key]["function"] == "slowly"
    assert by_key[failed.key]["status"] == "failed"
    assert by_key[done.key]["runtime"] >= 1.0
