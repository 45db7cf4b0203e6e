"""Faults 2, 6 and 7 on a real SLURM, through the public ``SlurmClusterExecutor``.

* 2: ``kill -9`` of the driver while jobs are in flight (outside, after some
  executions; and from inside, at the driver's own job.json writes around
  sbatch), then a new driver: every result arrives, nothing runs twice.
* 6: a slow shared file system: the runner's result.h5 shows up only after the
  job ended (``XCACHE_CRASH_ACTION=divert`` parks it; the test renames it into
  place later).  A bounded grace (``XCACHE_RESULT_GRACE``) covers it: no false
  "died"; a result that never comes fails the future soon after the grace.
* 7: sbatch / squeue failing transiently (PATH wrappers around the real
  commands that fail their first K calls).

Runs when ``CI`` or ``XCACHE_TEST_SLURM`` is set (tests/test_slurm.py covers the
scheduler basics, a killed driver's 5 jobs being re-attached and squeue
failing on and off; these extend it).
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import entry_path, require

from faults.conftest import slurm_wanted
from faults.faultlib import (
    PY,
    check_finished_clean,
    check_no_false_files,
    entry_files,
    env_with,
    executions,
    parse_results,
    wait_for,
    wait_for_file,
    work,
)

if not slurm_wanted():
    pytest.skip("SLURM fault tests run with CI=1 or XCACHE_TEST_SLURM=1",
                allow_module_level=True)
require("pysqa")

from executorlib_cache.catalog import list_cache, terminate_tasks_in_cache  # noqa: E402
from executorlib_cache.cluster_executor import SlurmClusterExecutor  # noqa: E402
from executorlib_cache.errors import SubmissionError, TaskDiedError  # noqa: E402
from executorlib_cache.store import Store  # noqa: E402

REAL = {name: shutil.which(name) for name in ("sbatch", "squeue")}
SLURM_DRIVER = """
import json, sys, time
from executorlib_cache.cluster_executor import SlurmClusterExecutor
from executorlib_cache.store import Store
from faults.faultlib import work

cache, counter, n, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
one_by_one = sys.argv[5:] == ["one-by-one"]
with SlurmClusterExecutor(cache_directory=cache) as exe:
    store = Store(cache)
    futs = []
    for i in range(n):
        futs.append(exe.submit(work, counter, i, delay))
        # one by one: the next call is submitted once this one's job id is recorded, so
        # that the driver's writes come in a fixed order (see WRITES)
        while one_by_one and not (store.read_claim(futs[-1].key) or {}).get("job_id") \\
                and not store.finished(futs[-1].key):
            time.sleep(0.01)
    print("SUBMITTED", flush=True)
    print("RESULTS", json.dumps([[f.result() for f in futs]]), flush=True)
"""


@pytest.fixture(autouse=True)
def slurm_answers():
    if not all(REAL.values()):
        pytest.fail(f"SLURM tests are enabled but commands are missing: {REAL}")


class Wrappers:
    """sbatch/squeue first on PATH: log each call; fail the next ``fail[name]`` calls."""

    def __init__(self, bindir: Path) -> None:
        self.bindir, self.log = bindir, bindir / "calls.log"

    def fail_next(self, name: str, k: int) -> None:
        (self.bindir / f"{name}.fail").write_text(str(k))

    def calls(self, name: str) -> int:
        try:
            return sum(1 for ln in self.log.read_text().splitlines() if ln.split()[0] == name)
        except FileNotFoundError:
            return 0


ERRORS = {"sbatch": "sbatch: error: Batch job submission failed: Socket timed out on "
                    "send/recv operation",
          "squeue": "squeue: error: slurm_receive_msg: Socket timed out on send/recv operation"}


@pytest.fixture
def wrappers(tmp_path, monkeypatch) -> Wrappers:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    w = Wrappers(bindir)
    for name, real in REAL.items():
        fail = bindir / f"{name}.fail"
        (bindir / name).write_text(f"""#!/bin/sh
echo "{name} $*" >> "{w.log}"
k=$(cat "{fail}" 2>/dev/null || echo 0)
if [ "$k" -gt 0 ]; then
  echo $((k - 1)) > "{fail}"
  echo "{ERRORS[name]}" >&2
  exit 1
fi
exec "{real}" "$@"
""")
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return w


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "cache"
    yield path
    if path.exists():
        terminate_tasks_in_cache(path)


def job_ids(cache: Path) -> dict[str, str | None]:
    if not cache.is_dir():
        return {}
    store = Store(cache, create=False)
    return {k: (store.read_claim(k) or {}).get("job_id") for k in store.keys()}


def slurm_state(job_id: str) -> str:
    out = subprocess.run([str(REAL["squeue"]), "-h", "-t", "all", "-j", job_id, "-o", "%T"],
                         capture_output=True, text=True).stdout
    return out.strip()


# ------------------------------------------------------------------ 2. killed driver
N = 8
#: the driver's writes for call k, submitting one by one: its @task.h5 and its claim
#: (claims.claim, under the claim lock), the claim with the job name (before sbatch,
#: under the lock), sbatch, the claim with the job id (claims.update_claim, under it)
K = 3  # the crash hits call 3, while calls 0-2 have jobs (running or done)
KILLS = {
    "after-2-executions": ("executions", 2),
    "mid-task-write": ("hook", {"XCACHE_CRASH_AT": "task.h5:mid_write",
                                "XCACHE_CRASH_SKIP": str(K)}),
    "task-written-not-claimed": ("hook", {"XCACHE_CRASH_AT": "task.h5:after_replace",
                                          "XCACHE_CRASH_SKIP": str(K)}),
    "mid-claim-write": ("hook", {"XCACHE_CRASH_AT": "job.json:mid_write",
                                 "XCACHE_CRASH_SKIP": str(3 * K)}),
    "job-name-not-recorded": ("hook", {"XCACHE_CRASH_AT": "job.json:before_replace",
                                       "XCACHE_CRASH_SKIP": str(3 * K + 1)}),
    # submitted, its id not recorded: the next driver finds the job by its name
    "job-id-not-recorded": ("hook", {"XCACHE_CRASH_AT": "job.json:before_replace",
                                     "XCACHE_CRASH_SKIP": str(3 * K + 2)}),
    "right-after-the-job-id-write": ("hook", {"XCACHE_CRASH_AT": "job.json:after_replace",
                                              "XCACHE_CRASH_SKIP": str(3 * K + 2)}),
    # the claim lock is taken 3 times per call: claims.claim, the job-name write,
    # update_claim
    "in-the-claim-lock-of-update-claim": ("hook", {"XCACHE_CRASH_AT": "claim:held",
                                                   "XCACHE_CRASH_SKIP": str(3 * K + 2)}),
}


def claims_on_disk(cache: Path) -> dict[str, dict]:
    store = Store(cache, create=False)
    return {k: store.read_claim(k) or {} for k in store.keys() if store.read_claim(k)}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("moment", list(KILLS))
def test_slurm_driver_killed_then_new_driver_runs_each_call_once(moment, tmp_path, cache,
                                                                 wrappers, counts):
    counter = tmp_path / "count"
    script = tmp_path / "driver.py"
    script.write_text(SLURM_DRIVER)
    kind, value = KILLS[moment]
    env = env_with(**(value if kind == "hook" else {}))
    cmd = [PY, str(script), str(cache), str(counter), str(N), "1.5"]
    proc = subprocess.Popen(cmd + (["one-by-one"] if kind == "hook" else []),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        if kind == "executions":
            wait_for(lambda: len(executions(counter)) >= value, 60, f"{value} executions")
            proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -9, err
    sbatch_before = wrappers.calls("sbatch")
    if kind == "hook":
        assert f"crash point {value['XCACHE_CRASH_AT']}" in err
        # it hit call K: calls 0..K-1 were submitted, call K at the step named
        jobs = claims_on_disk(cache)
        submitted = K + (moment in ("job-id-not-recorded", "right-after-the-job-id-write",
                                    "in-the-claim-lock-of-update-claim"))
        assert sbatch_before == submitted, (moment, sbatch_before)
        named = [j for j in jobs.values() if j.get("job_name") and not j.get("job_id")]
        assert len(named) == (moment in ("job-id-not-recorded",
                                         "in-the-claim-lock-of-update-claim")), jobs

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=env_with())
    assert done.returncode == 0, done.stderr
    assert parse_results(done.stdout) == [[i * i for i in range(N)]]
    ran = executions(counter)
    counts.add("2. kill -9 of the driver, jobs in flight (SLURM)", calls=N,
               lost=len(set(range(N)) - set(ran)), duplicates=len(ran) - len(set(ran)))
    assert sorted(ran) == list(range(N)), f"executions: {sorted(ran)}"
    # every call has one job; a job the killed driver had submitted was adopted
    assert wrappers.calls("sbatch") - sbatch_before <= N - min(sbatch_before, N)
    # each entry one file: claims and task files went with the outcomes, no temp file
    # of the killed driver is left
    store = Store(cache, create=False)
    keys = list(store.keys())
    assert len(keys) == N
    for key in keys:
        check_finished_clean(cache, key)


#: crash points of the runner in a SLURM job (claims.mark_started: the claim rewrite
#: recording "started" and "runner", under the claim lock)
RUNNER_IN_JOB = ["claim:held", "job.json:before_replace", "job.json:after_replace"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("point", RUNNER_IN_JOB)
def test_runner_killed_in_its_slurm_job_then_a_rerun_runs_once(point, tmp_path, cache,
                                                               monkeypatch, counts):
    counter = str(tmp_path / "count")
    monkeypatch.setenv("XCACHE_RESULT_GRACE", "2")
    # read by the runner in the job (sbatch exports the environment); this driver
    # process imported the store long ago and is not affected
    monkeypatch.setenv("XCACHE_CRASH_AT", point)
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(work, counter, 4)
        exc = fut.exception(timeout=60)
    monkeypatch.delenv("XCACHE_CRASH_AT")
    assert isinstance(exc, TaskDiedError), repr(exc)
    assert executions(counter) == []  # killed before the call began
    # the driver recorded the death: one failed file (claim and task file removed)
    check_no_false_files(cache, fut.key)
    assert set(entry_files(cache, fut.key)) == {"failed"}
    row = list_cache(cache, check_scheduler=False)[0]
    assert row["status"] == "failed" and row["reason"] == "died", row
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        assert exe.submit(work, counter, 4).result(timeout=60) == 16
    assert executions(counter) == [4]
    check_finished_clean(cache, fut.key)
    counts.add("1. kill -9 of the runner at a crash point (SLURM job)", calls=1,
               duplicates=max(0, len(executions(counter)) - 1))


# ------------------------------------------------------------------ 6. slow file system
@pytest.mark.timeout(90)
def test_result_appearing_after_the_job_ended_is_not_a_false_death(tmp_path, cache,
                                                                   monkeypatch, counts):
    grace = 8.0
    counter = str(tmp_path / "count")
    monkeypatch.setenv("XCACHE_RESULT_GRACE", str(grace))
    # read by the runner in the job (sbatch exports the environment); this driver
    # process imported the store long ago and is not affected
    monkeypatch.setenv("XCACHE_CRASH_AT", "result.h5:before_replace")
    monkeypatch.setenv("XCACHE_CRASH_ACTION", "divert")
    t_submit = time.monotonic()
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        late = exe.submit(work, counter, 1)
        never = exe.submit(work, counter, 2)
        for fut in (late, never):
            wait_for(lambda f=fut: job_ids(cache).get(f.key), 30, "a job id")
        ids = job_ids(cache)
        # alive_at: before a squeue that still showed the job (so it ended later);
        # ended_at: after the first squeue that showed it ended (so it ended before)
        alive_at = {late.key: t_submit, never.key: t_submit}
        ended_at: dict[str, float] = {}

        def ended(key: str) -> bool:
            if key not in ended_at:
                t = time.monotonic()
                if slurm_state(str(ids[key])) in ("", "COMPLETED"):
                    ended_at[key] = time.monotonic()
                else:
                    alive_at[key] = t
            return key in ended_at

        wait_for(lambda: ended(late.key) and ended(never.key), 60, "both jobs to end")
        done = entry_path(cache, late.key)
        diverted = done.with_name(f".{done.name}.diverted")  # (fileio._diverted)
        assert diverted.exists() and not done.exists()
        # the file shows up 1.5 s after we saw the job end (the driver, asking every
        # 0.5 s while a job is young, has seen it too): inside the grace
        time.sleep(max(0.0, ended_at[late.key] + 1.5 - time.monotonic()))
        assert not late.done(), "resolved before its result was visible"
        os.replace(diverted, done)
        assert late.result(timeout=20) == 1
        exc = never.exception(timeout=grace + 30)
        failed_at = time.monotonic()
    assert isinstance(exc, TaskDiedError), repr(exc)
    assert "COMPLETED" in str(exc) or "no longer known" in str(exc), str(exc)
    assert failed_at - alive_at[never.key] >= grace, "declared dead within the grace"
    assert failed_at - ended_at[never.key] <= grace + 15, "not declared dead soon after"
    assert "failed" not in entry_files(cache, late.key)  # no false "died" recorded
    assert set(entry_files(cache, late.key)) == {"done"}
    counts.add("6. slow shared file system (result visible after the job ended)",
               scenarios=2, calls=2)


# ------------------------------------------------------------------ 7. scheduler hiccups
@pytest.mark.timeout(90)
def test_transient_sbatch_failures_do_not_fail_futures(tmp_path, cache, wrappers, counts):
    counter = str(tmp_path / "count")
    wrappers.fail_next("sbatch", 2)
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        futs = [exe.submit(work, counter, i) for i in range(3)]
        assert [f.result(timeout=60) for f in futs] == [0, 1, 4]
    assert sorted(executions(counter)) == [0, 1, 2]  # retried, not submitted twice
    assert wrappers.calls("sbatch") >= 5
    counts.add("7. scheduler hiccups (sbatch / squeue failing)", calls=3)


@pytest.mark.timeout(90)
def test_persistent_sbatch_failure_fails_futures_with_sbatchs_text(tmp_path, cache, wrappers,
                                                                   counts):
    counter = str(tmp_path / "count")
    wrappers.fail_next("sbatch", 1000)
    t0 = time.monotonic()
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(work, counter, 1)
        exc = fut.exception(timeout=60)
    assert isinstance(exc, SubmissionError), repr(exc)
    assert "Socket timed out" in str(exc)
    assert time.monotonic() - t0 < 60
    assert executions(counter) == []
    counts.add("7. scheduler hiccups (sbatch / squeue failing)", calls=1)
    # the failure is recorded, not cached: with sbatch back, a re-run submits it again
    wrappers.fail_next("sbatch", 0)
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        assert exe.submit(work, counter, 1).result(timeout=60) == 1


@pytest.mark.timeout(90)
def test_squeue_failing_just_below_the_limit_is_tolerated(tmp_path, cache, wrappers, counts):
    from executorlib_cache.backends.tracker import MAX_STATUS_FAILURES

    counter = str(tmp_path / "count")
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(work, counter, 7, 10.0)  # still running while squeue fails
        wait_for(lambda: job_ids(cache).get(fut.key), 30, "a job id")
        wrappers.fail_next("squeue", MAX_STATUS_FAILURES - 1)
        before = wrappers.calls("squeue")
        assert fut.result(timeout=60) == 49
        assert wrappers.calls("squeue") - before >= MAX_STATUS_FAILURES - 1
    assert Store(cache).read_outcome(fut.key).status == "done"
    check_finished_clean(cache, fut.key)  # its claim and task file went with the outcome
    counts.add("7. scheduler hiccups (sbatch / squeue failing)", calls=1)


# ------------------------------------------------------------------ security on SLURM
@pytest.mark.timeout(90)
@pytest.mark.parametrize("max_workers", [None, 1], ids=["one-job-per-call", "pool-worker"])
def test_slurm_jobs_write_with_the_executors_modes(tmp_path, cache, max_workers):
    """Every file a job writes gets the executor's modes; pool workers too
    (regression, issue 11: they got neither dir_mode nor file_mode)."""
    flag = tmp_path / "go"

    def modes_now() -> dict[str, str]:
        modes = {}
        for p in cache.rglob("*"):
            try:  # (a temp file may be renamed meanwhile)
                st = p.stat()
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                modes[str(p.relative_to(cache))] = oct(st.st_mode & 0o777)
        return modes

    old = os.umask(0o022)
    try:
        with SlurmClusterExecutor(cache_directory=cache, dir_mode=0o750, file_mode=0o640,
                                  max_workers=max_workers) as exe:
            fut = exe.submit(wait_for_file, str(flag), 9)
            # in flight: the claim, the task file, the job script and the job's logs
            in_flight = [entry_path(cache, fut.key, "claim"), entry_path(cache, fut.key, "task")]
            try:
                wait_for(lambda: all(p.exists() for p in in_flight) and
                         any(p.endswith("run_queue.sh") for p in modes_now()) and
                         any(p.endswith("job.out") for p in modes_now()), 40, "the job to run")
                during = modes_now()
            finally:
                flag.touch()  # (never leave the job waiting: the executor waits for it)
            assert fut.result(timeout=40) == 9
    finally:
        os.umask(old)
    # every file, the claim, the task file, the job script and the job's logs included
    # (issue 12, item 14: they used to be 0644 whatever file_mode said); pool workers'
    # files too
    modes = {**during, **modes_now()}
    assert {str(p.relative_to(cache)) for p in in_flight} <= set(during), during
    assert set(modes.values()) == {"0o640"}, modes
    dirs = {str(p.relative_to(cache)): oct(p.stat().st_mode & 0o777)
            for p in cache.rglob("*") if p.is_dir()}
    assert set(dirs.values()) <= {"0o750"}, dirs
