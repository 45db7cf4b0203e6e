"""SlurmClusterExecutor against a real SLURM (scripts/start-slurm.sh), no mocks.

Runs when ``CI=true`` or ``XCACHE_TEST_SLURM=1``; otherwise the module is
skipped with a note on how to enable it.  Scheduler calls are counted with
PATH wrappers around sbatch/squeue/scancel that log every call to a file, so
the tests can say "no new sbatch" and "squeue grows with time, not tasks".
The time-limit job is started when the module starts (it needs 60-90 s of
SLURM time) and checked by the last test, so the suite stays well under the
4-minute budget.  Every job a test leaves behind is cancelled afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from conftest import SLURM_WANTED, job_dir, job_of, outcome_meta, require

if not SLURM_WANTED:
    pytest.skip("SLURM tests are off: run `sudo bash scripts/test.sh` (starts a local "
                "SLURM), or set XCACHE_TEST_SLURM=1 where SLURM is running",
                allow_module_level=True)

require("pysqa")

from executorlib_cache import catalog  # noqa: E402
from executorlib_cache.catalog import terminate_tasks_in_cache  # noqa: E402
from executorlib_cache.cluster_executor import SlurmClusterExecutor  # noqa: E402
from executorlib_cache.errors import (  # noqa: E402
    SubmissionError,
    TaskDiedError,
    UpstreamFailedError,
)
from executorlib_cache.store import Store  # noqa: E402

pytestmark = pytest.mark.timeout(90)
# jobs unpickle the functions below by value: importing this module (and pytest)
# in every job would cost ~1 s of CPU each on this 2-core machine
cloudpickle.register_pickle_by_value(sys.modules[__name__])
#: job ids of the module's own time-limit job: not counted as a test's calls
FOREIGN_IDS: set[str] = set()
REAL = {name: shutil.which(name) for name in ("sbatch", "squeue", "scancel")}
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- functions run in jobs
def add(a: int, b: int) -> int:
    return a + b


def sleep_then(x: Any, seconds: float) -> Any:
    time.sleep(seconds)
    return x


def fail_after(x: Any, seconds: float) -> Any:
    time.sleep(seconds)
    raise ValueError(f"boom {x}")


def mpi_rank(x: int) -> tuple[int, int, int]:
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size(), x


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", autouse=True)
def slurm_answers() -> None:
    if not all(REAL.values()):
        pytest.fail(f"SLURM tests are enabled but commands are missing: {REAL}; "
                    "run `sudo bash scripts/start-slurm.sh`")
    proc = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.fail(f"SLURM tests are enabled but SLURM does not answer ({proc.stderr.strip()});"
                    " run `sudo bash scripts/start-slurm.sh`")


class Calls:
    """Reads the log the sbatch/squeue/scancel wrappers append to."""

    def __init__(self, log: Path, fail_flag: Path) -> None:
        self.log, self.fail_flag = log, fail_flag

    def lines(self, name: str | None = None) -> list[str]:
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        return [ln for ln in text.splitlines()
                if (name is None or ln.split()[0] == name) and not self._foreign(ln)]

    @staticmethod
    def _foreign(line: str) -> bool:
        """A status call of the module's time-limit executor (same process, same PATH)."""
        words = line.split()
        if words[0] != "squeue" or "-j" not in words:
            return False
        return set(words[words.index("-j") + 1].split(",")) <= FOREIGN_IDS

    def count(self, name: str | None = None) -> int:
        return len(self.lines(name))

    def fail_squeue(self, on: bool) -> None:
        if on:
            self.fail_flag.touch()
        else:
            self.fail_flag.unlink(missing_ok=True)


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """sbatch/squeue/scancel first on PATH: log each call, then run the real one."""
    bindir, log, flag = tmp_path / "bin", tmp_path / "calls.log", tmp_path / "squeue-fails"
    bindir.mkdir()
    for name, real in REAL.items():
        fail = ""
        if name == "squeue":
            fail = (f'if [ -e "{flag}" ]; then echo "slurm_load_jobs error: Socket timed out '
                    'on send/recv operation" >&2; exit 1; fi\n')
        path = bindir / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{fail}exec "{real}" "$@"\n')
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return Calls(log, flag)


@pytest.fixture
def cache(tmp_path: Path) -> Any:
    path = tmp_path / "cache"
    yield path
    if path.exists():  # leave no job behind, whatever the test did
        terminate_tasks_in_cache(path)



def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def slurm_state(job_id: str) -> str:
    out = subprocess.run([str(REAL["squeue"]), "-h", "-t", "all", "-j", job_id, "-o", "%T"],
                         capture_output=True, text=True).stdout
    return out.strip()


def figure(name: str, value: Any) -> None:
    """Measured numbers, shown with -s and collected in $XCACHE_FIGURES if set."""
    print(f"[figure] {name} = {value}")
    path = os.environ.get("XCACHE_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({name: value}) + "\n")


# the time-limit job starts with the module and is checked by the last test
@pytest.fixture(scope="module", autouse=True)
def time_limit_job(tmp_path_factory: pytest.TempPathFactory, slurm_answers: None) -> Any:
    cache = tmp_path_factory.mktemp("timelimit") / "cache"
    exe = SlurmClusterExecutor(cache_directory=cache)
    fut = exe.submit(sleep_then, "late", 600, resource_dict={"run_time_max": 60})
    t0 = time.monotonic()
    wait_for(lambda: job_of(cache, fut.key).get("job_id"), 20, "the time-limit job's id")
    FOREIGN_IDS.add(job_of(cache, fut.key)["job_id"])
    yield exe, fut, t0
    exe.shutdown(wait=False, cancel_futures=True)
    terminate_tasks_in_cache(cache)


# ---------------------------------------------------------------- tests
def test_twenty_tasks_then_cache_hits_cost_no_scheduler_call(cache: Path, calls: Calls) -> None:
    t0 = time.monotonic()
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        futs = [exe.submit(add, i, 1000) for i in range(20)]
        assert [f.result(timeout=60) for f in futs] == [i + 1000 for i in range(20)]
    elapsed = time.monotonic() - t0
    n_sbatch, n_squeue = calls.count("sbatch"), calls.count("squeue")
    figure("20 trivial tasks (s)", round(elapsed, 2))
    figure("20 trivial tasks: sbatch calls", n_sbatch)
    figure("20 trivial tasks: squeue calls", n_squeue)
    assert n_sbatch == 20
    assert n_squeue <= elapsed / 0.5 + 4, (n_squeue, elapsed)
    for line in calls.lines("squeue"):  # only our ids, never the whole queue
        assert " -j " in f" {line} ", line
    job = job_of(cache, futs[0].key)
    for field in ("backend", "job_id", "owner", "submitted", "job_name", "stdout", "stderr",
                  "working_directory"):
        assert field in job, field
    assert job["backend"] == "slurm" and job["job_name"].startswith(futs[0].key)

    before = calls.count()
    t0 = time.monotonic()
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        futs = [exe.submit(add, i, 1000) for i in range(20)]
        assert [f.result(timeout=5) for f in futs] == [i + 1000 for i in range(20)]
    figure("20 cached tasks re-run (s)", round(time.monotonic() - t0, 3))
    assert calls.count() == before, calls.lines()[before:]


def test_a_done_job_leaves_one_file_and_its_printed_output(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Format 2 on the cluster path: once a call is done, its entry is one file; the
    job's script and empty logs go, a log with something in it stays to be read."""
    from executorlib_cache.backends import cluster

    monkeypatch.setattr(cluster, "KEEP_JOB_DIRS", False)
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        quiet = exe.submit(add, 1, 2)
        loud = exe.submit(print, "hello from the job")
        assert quiet.result(timeout=60) == 3 and loud.result(timeout=60) is None
    store = Store(cache, create=False)
    for f in (quiet, loud):
        assert store.kinds(f.key) == {"done"}  # no claim, no task file left
    assert not job_dir(cache, quiet.key).exists()
    assert sorted(p.name for p in job_dir(cache, loud.key).iterdir()) == ["job.out"]
    assert "hello from the job" in (job_dir(cache, loud.key) / "job.out").read_text()
    info = catalog.describe(cache, loud.key)
    assert "hello from the job" in "\n".join(info["logs"]["stdout"]["tail"])


def test_mpi_task_returns_every_rank(cache: Path) -> None:
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(mpi_rank, 7, resource_dict={"cores": 2})
        assert fut.result(timeout=60) == [(0, 2, 7), (1, 2, 7)]
    script = (job_dir(cache, fut.key) / "run_queue.sh").read_text()
    assert "#SBATCH --ntasks=2" in script and "srun -n 2" in script and "--mpi" in script


def rank_one_dies(x: int) -> int:
    """Rank 1 dies without a word (as a rank killed in ``MPI_Init`` does); rank 0
    then waits for it in a collective."""
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 1:
        os._exit(3)
    return MPI.COMM_WORLD.allreduce(x)


def test_a_rank_that_dies_ends_the_job_instead_of_hanging(cache: Path) -> None:
    """srun runs the ranks with --kill-on-bad-exit=1: the other ranks are stopped
    and the call fails with the job's state within seconds.  Regression: SLURM's
    default (KillOnBadExit=0) left rank 0 waiting until the job's time limit; seen
    when mpich's PMI2 client killed one rank in MPI_Init on the multi-node cluster."""
    t0 = time.monotonic()
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(rank_one_dies, 1, resource_dict={"cores": 2, "run_time_max": 600})
        exc = fut.exception(timeout=60)
    assert isinstance(exc, TaskDiedError), repr(exc)
    assert time.monotonic() - t0 < 45, time.monotonic() - t0
    assert "--kill-on-bad-exit=1" in (job_dir(cache, fut.key) / "run_queue.sh").read_text()


def test_dependency_chain_is_queued_at_once(cache: Path, calls: Calls) -> None:
    t0 = time.monotonic()
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        chain = [exe.submit(add, 0, 1)]
        for _ in range(4):
            chain.append(exe.submit(add, chain[-1], 1))
        assert chain[-1].result(timeout=60) == 5
    figure("chain of 5 (s)", round(time.monotonic() - t0, 2))
    store = Store(cache, create=False)
    jobs = [job_of(cache, f.key) for f in chain]
    first_done = outcome_meta(store.root, chain[0].key)["finished"]
    assert jobs[-1]["queued"] < first_done, "the last link was not queued before the first ran"
    for up, down, fut in zip(jobs[:-1], jobs[1:], chain[1:], strict=True):
        assert down["dependencies"] == [up["job_id"]]
        script = (job_dir(cache, fut.key) / "run_queue.sh").read_text()
        assert f"--dependency=afterok:{up['job_id']}" in script
        assert "--kill-on-invalid-dep=yes" in script
    assert calls.count("sbatch") == 5


def test_upstream_failure_fails_dependents_quickly(cache: Path) -> None:
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        up = exe.submit(fail_after, "x", 1.0)
        down = exe.submit(add, up, 1)
        down2 = exe.submit(add, down, 1)
        wait_for(lambda: job_of(cache, down2.key).get("job_id"), 20, "the dependents' job ids")
        ids = [job_of(cache, f.key)["job_id"] for f in (down, down2)]
        with pytest.raises(ValueError, match="boom x"):
            up.result(timeout=60)
        t_fail = time.monotonic()
        exc, exc2 = down.exception(timeout=10), down2.exception(timeout=10)
        latency = time.monotonic() - t_fail
    figure("upstream failed -> dependents failed (s)", round(latency, 2))
    assert isinstance(exc, UpstreamFailedError) and exc.upstream_key == up.key, repr(exc)
    assert isinstance(exc2, UpstreamFailedError) and exc2.upstream_key == down.key, repr(exc2)
    assert up.key in str(exc)
    assert latency < 2.0
    # their jobs never ran: cancelled by us (or by SLURM: DependencyNeverSatisfied)
    for jid in ids:
        wait_for(lambda jid=jid: slurm_state(jid) == "CANCELLED", 10, f"job {jid} cancelled")


def test_scancel_of_a_running_job_fails_its_future_fast(cache: Path) -> None:
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(sleep_then, 1, 120)
        wait_for(fut.running, 30, "the job to start")
        jid = job_of(cache, fut.key)["job_id"]
        t0 = time.monotonic()
        subprocess.run([str(REAL["scancel"]), jid], check=True)
        exc = fut.exception(timeout=15)
        latency = time.monotonic() - t0
    figure("scancel -> future failed (s)", round(latency, 2))
    assert isinstance(exc, TaskDiedError), repr(exc)
    msg = str(exc)
    assert "CANCELLED" in msg and jid in msg and fut.key in msg
    assert "last lines of" in msg and "job.err" in msg, msg
    assert latency < 5.0


def test_bad_partition_fails_at_once_with_sbatchs_text(cache: Path) -> None:
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        t0 = time.monotonic()
        fut = exe.submit(add, 1, 2, resource_dict={"partition": "nosuchpart"})
        exc = fut.exception(timeout=10)
        latency = time.monotonic() - t0
    assert isinstance(exc, SubmissionError), repr(exc)
    assert "invalid partition" in str(exc).lower(), str(exc)
    assert latency < 3.0


def test_user_queue_limits_are_errors_not_clamps(cache: Path, tmp_path: Path) -> None:
    conf = tmp_path / "pysqa"
    conf.mkdir()
    shutil.copy(REPO / "scheduler_templates" / "slurm.sh", conf / "slurm.sh")
    (conf / "queue.yaml").write_text(
        "queue_type: SLURM\nqueue_primary: small\n"
        "queues:\n  small: {cores_min: 1, cores_max: 2, run_time_max: 3600, script: slurm.sh}\n")
    with SlurmClusterExecutor(cache_directory=cache, pysqa_config_directory=conf) as exe:
        with pytest.raises(ValueError, match="cores.*exceeds the maximum 2"):
            exe.submit(add, 1, 2, resource_dict={"cores": 4})
        with pytest.raises(ValueError, match="run_time_max.*exceeds"):
            exe.submit(add, 1, 2, resource_dict={"run_time_max": 7200})
        assert exe.submit(add, 1, 2).result(timeout=60) == 3
    with pytest.raises(ValueError, match="max_workers"):  # packing: tests/test_packing.py
        SlurmClusterExecutor(cache_directory=cache, max_workers=0)


def test_cancel_queued_futures_and_terminate_tasks_in_cache(cache: Path, calls: Calls) -> None:
    exe = SlurmClusterExecutor(cache_directory=cache)
    blocker = exe.submit(sleep_then, 1, 60)
    deps = [exe.submit(add, blocker, i) for i in range(3)]
    wait_for(lambda: all(job_of(cache, f.key).get("job_id") for f in deps), 20, "job ids")
    ids = {f.key: job_of(cache, f.key)["job_id"] for f in [blocker, *deps]}
    assert deps[0].cancel()
    wait_for(lambda: slurm_state(ids[deps[0].key]) == "CANCELLED", 5, "scancel of a queued job")
    n_scancel = calls.count("scancel")
    cancelled = terminate_tasks_in_cache(cache)
    assert sorted(cancelled) == sorted(ids[f.key] for f in [blocker, *deps[1:]])
    assert calls.count("scancel") == n_scancel + 1  # ONE call for all of them
    assert isinstance(blocker.exception(timeout=10), TaskDiedError)
    for f in deps[1:]:  # their own jobs were cancelled, and so was their upstream
        assert isinstance(f.exception(timeout=10), (TaskDiedError, UpstreamFailedError))
    exe.shutdown()


def test_shutdown_cancel_futures_scancels_queued_jobs_in_one_call(cache: Path,
                                                                 calls: Calls) -> None:
    exe = SlurmClusterExecutor(cache_directory=cache)
    blocker = exe.submit(sleep_then, 2, 60)
    deps = [exe.submit(add, blocker, i) for i in range(3)]
    wait_for(lambda: all(job_of(cache, f.key).get("job_id") for f in deps), 20, "job ids")
    ids = [job_of(cache, f.key)["job_id"] for f in deps]
    blocker_id = job_of(cache, blocker.key)["job_id"]
    exe.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in deps)
    # the blocker too, unless the poller had seen it start (a running future stays)
    expected = sorted(ids + ([blocker_id] if blocker.cancelled() else []))
    assert [sorted(line.split()[1:]) for line in calls.lines("scancel")] == [expected]
    for jid in ids:
        wait_for(lambda jid=jid: slurm_state(jid) == "CANCELLED", 5, f"job {jid} cancelled")


DRIVER = """
import sys
from executorlib_cache.cluster_executor import SlurmClusterExecutor

def slow(x):
    import time
    time.sleep(4)
    return x * 10

def total(*xs):
    return sum(xs)

exe = SlurmClusterExecutor(cache_directory=sys.argv[1])
futs = [exe.submit(slow, i) for i in range(4)]
last = exe.submit(total, *futs)
print("SUBMITTED", flush=True)
if sys.argv[2] == "detach":
    exe.shutdown(wait=False)
    print("DETACHED", exe._backend.calls, flush=True)
    sys.exit(0)
print("RESULT", [f.result() for f in futs], last.result(), flush=True)
print("CALLS", exe._backend.calls, flush=True)
exe.shutdown()
"""


def _driver(tmp_path: Path) -> Path:
    path = tmp_path / "driver.py"
    path.write_text(textwrap.dedent(DRIVER))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _job_ids(cache: Path) -> dict[str, Any]:
    if not cache.is_dir():
        return {}
    store = Store(cache, create=False)
    return {k: (store.read_claim(k) or {}).get("job_id") for k in store.keys()}


def test_killed_driver_reattaches_without_resubmitting(cache: Path, calls: Calls,
                                                       tmp_path: Path) -> None:
    driver = _driver(tmp_path)
    proc = subprocess.Popen([sys.executable, str(driver), str(cache), "wait"], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(_job_ids(cache)) == 5 and all(_job_ids(cache).values()), 30,
                 "5 job ids recorded")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert calls.count("sbatch") == 5
    # the kill may also come between sbatch and recording the id: forget one id
    store = Store(cache, create=False)
    lost = next(k for k in store.keys() if k.startswith("slow"))
    job = store.read_claim(lost) or {}
    lost_id, job["job_id"], job["submitted"] = job["job_id"], None, time.time() - 60
    store.write_claim(lost, job)

    t0 = time.monotonic()
    out = subprocess.run([sys.executable, str(driver), str(cache), "wait"], env=_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    figure("re-attach after SIGKILL (s)", round(time.monotonic() - t0, 2))
    assert "RESULT [0, 10, 20, 30] 60" in out.stdout, out.stdout + out.stderr
    assert "'submit': 0" in out.stdout and "'lookup': 1" in out.stdout, out.stdout
    assert calls.count("sbatch") == 5  # nothing submitted twice
    assert job_of(cache, lost)["job_id"] == lost_id


def test_second_driver_adopts_the_jobs_of_a_driver_that_dies(cache: Path, calls: Calls,
                                                             tmp_path: Path) -> None:
    """B attaches to A's claims while A lives; when A dies, B adopts A's queued jobs
    (poller take-over) instead of submitting them again."""
    driver = _driver(tmp_path)
    a = subprocess.Popen([sys.executable, str(driver), str(cache), "wait"], env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = None
    try:
        wait_for(lambda: len(_job_ids(cache)) == 5 and all(_job_ids(cache).values()), 30,
                 "A's 5 job ids")
        b = subprocess.Popen([sys.executable, str(driver), str(cache), "wait"], env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert b.stdout is not None
        assert b.stdout.readline().strip() == "SUBMITTED"
    finally:
        a.send_signal(signal.SIGKILL)
        a.communicate()
    assert b is not None
    out, err = b.communicate(timeout=60)
    assert b.returncode == 0, err
    assert "RESULT [0, 10, 20, 30] 60" in out and "'submit': 0" in out, out + err
    assert calls.count("sbatch") == 5


def test_detached_graph_runs_and_a_later_run_collects_it(cache: Path, calls: Calls,
                                                         tmp_path: Path) -> None:
    driver = _driver(tmp_path)
    out = subprocess.run([sys.executable, str(driver), str(cache), "detach"], env=_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "DETACHED" in out.stdout, out.stdout + out.stderr
    ids = _job_ids(cache)
    assert len(ids) == 5 and all(ids.values()), ids  # the whole graph is in the queue
    assert calls.count("sbatch") == 5
    out = subprocess.run([sys.executable, str(driver), str(cache), "wait"], env=_env(),
                         capture_output=True, text=True, timeout=60)
    assert "RESULT [0, 10, 20, 30] 60" in out.stdout, out.stdout + out.stderr
    assert calls.count("sbatch") == 5


def test_transient_squeue_errors_are_tolerated_persistent_ones_fail(cache: Path,
                                                                    calls: Calls) -> None:
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        calls.fail_squeue(True)
        fut = exe.submit(sleep_then, 5, 3.0)
        wait_for(lambda: calls.count("squeue") >= 2, 10, "two failing squeue calls")
        calls.fail_squeue(False)
        assert fut.result(timeout=30) == 5

        calls.fail_squeue(True)
        t0 = time.monotonic()
        fut = exe.submit(sleep_then, 6, 120)
        exc = fut.exception(timeout=30)
        calls.fail_squeue(False)
    assert isinstance(exc, TaskDiedError), repr(exc)
    assert "Socket timed out" in str(exc) and "5 failures in a row" in str(exc)
    figure("persistent squeue failure -> futures failed (s)", round(time.monotonic() - t0, 1))


@pytest.mark.timeout(200)
def test_time_limit_kill_is_reported_as_timeout(time_limit_job: Any) -> None:
    """Last on purpose: its job started with the module (SLURM kills at 60-90 s)."""
    _exe, fut, t0 = time_limit_job
    exc = fut.exception(timeout=180)
    figure("time limit 60 s -> future failed after (s)", round(time.monotonic() - t0, 1))
    assert isinstance(exc, TaskDiedError), repr(exc)
    assert "TIMEOUT" in str(exc), str(exc)


def nested_srun(x: int) -> list[str]:
    """Each rank starts a job step of its own inside the call's job."""
    from mpi4py import MPI

    out = subprocess.run(["srun", "-n", "1", "hostname"], capture_output=True, text=True,
                         timeout=60)
    return MPI.COMM_WORLD.gather(f"{out.returncode}:{out.stdout.strip()}", root=0) or []


@pytest.mark.timeout(120)
def test_a_rank_can_start_srun_inside_its_job(cache: Path) -> None:
    """Issue 12, item 12: with cores=2 both CPUs of the job run the call's step; a
    rank's own ``srun`` used to wait for free CPUs until the time limit.  Every
    batch script exports SLURM_OVERLAP=1 (srun --overlap), so the nested step runs."""
    t0 = time.monotonic()
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        out = exe.submit(nested_srun, 1, resource_dict={"cores": 2}).result(timeout=100)
    assert time.monotonic() - t0 < 60
    assert len(out[0]) == 2 and all(line.startswith("0:") for line in out[0]), out
    assert "export SLURM_OVERLAP=1" in next((cache / ".jobs").glob("*/run_queue.sh")).read_text()


@pytest.mark.parametrize("form", ["on cluster", "semicolon", "warning after", "no id"])
@pytest.mark.timeout(90)
def test_every_form_sbatch_prints_is_tracked(cache: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, form: str
                                             ) -> None:
    """Issue 12, item 11: sbatch on federated/multi-cluster sites prints ``Submitted
    batch job 123 on cluster ci`` or ``123;ci``, sometimes with warnings after the
    id; when no id can be read at all, the job is found by its unique name.  The
    job is never left untracked: the call completes, job.json holds the id."""
    bindir = tmp_path / "sbatch-bin"
    bindir.mkdir()
    show = {"on cluster": 'echo "Submitted batch job $id on cluster ci"',
            "semicolon": 'echo "$id;ci"',
            "warning after": 'echo "$id"; echo "sbatch: warning: job may be held"',
            "no id": 'echo "sbatch: job accepted"'}[form]
    wrapper = bindir / "sbatch"
    wrapper.write_text(f'#!/bin/sh\nid=$("{REAL["sbatch"]}" --parsable "$@") || exit $?\n'
                       f'id=${{id%%;*}}\n{show}\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(add, 40, 2)
        assert fut.result(timeout=60) == 42
    jid = str(job_of(cache, fut.key)["job_id"])
    assert jid.isdigit()
    wait_for(lambda: slurm_state(jid) == "COMPLETED", 20, f"job {jid} to complete")
