"""``max_workers=K`` on the cluster executors: many calls packed into at most K worker jobs.

The SLURM tests run against a real SLURM and are gated exactly like
``tests/test_slurm.py`` (``CI=true`` or ``XCACHE_TEST_SLURM=1``; enabled but no
SLURM answering is a failure).  sbatch/squeue/scancel are counted with PATH
wrappers (jobs inherit PATH, so a worker's own squeue is counted too).  The flux
tests use the fake ``flux`` (tests/fakes/flux) and always run; they also cover
what a 60 s SLURM minimum would make slow: a worker retiring before its time
limit, and a worker killed at it.  Every job a test leaves behind is cancelled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from conftest import SLURM_WANTED, job_dir, job_of, outcome_meta, require

require("pysqa")

from executorlib_cache.backends.pool import PoolBackend  # noqa: E402
from executorlib_cache.catalog import list_cache, terminate_tasks_in_cache  # noqa: E402
from executorlib_cache.claims import claim_token  # noqa: E402
from executorlib_cache.cluster_executor import (  # noqa: E402
    FluxClusterExecutor,
    SlurmClusterExecutor,
)
from executorlib_cache.compute.pool_worker import (  # noqa: E402
    PoolWorker,
    parse_slurm_time_left,
)
from executorlib_cache.errors import TaskDiedError  # noqa: E402
from executorlib_cache.liveness import identity  # noqa: E402
from executorlib_cache.pool_queue import (  # noqa: E402
    parse_taken,
    queue_dir,
    sweep_pools,
    taken_name,
    ticket_key,
    ticket_name,
)
from executorlib_cache.store import Store  # noqa: E402

needs_slurm = pytest.mark.skipif(
    not SLURM_WANTED, reason="SLURM tests are off: run `sudo bash scripts/test.sh` (starts a local "
    "SLURM), or set XCACHE_TEST_SLURM=1 where SLURM is running")

REPO = Path(__file__).resolve().parents[1]
FAKES = REPO / "tests" / "fakes"
REAL = {name: shutil.which(name) for name in ("sbatch", "squeue", "scancel")}
pytestmark = pytest.mark.timeout(90)
# workers unpickle the functions below by value (no import of this module in the jobs)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


# ---------------------------------------------------------------- functions run in workers
def count(i: int, path: str) -> int:
    """Appends one line per execution: duplicates in the file = a task ran twice."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{i}\n".encode())
    finally:
        os.close(fd)
    return i * 2


def add(a: int, b: int) -> int:
    return a + b


def total(*xs: int) -> int:
    return sum(xs)


def sleep_then(x: Any, seconds: float) -> Any:
    time.sleep(seconds)
    return x


def mpi_rank(x: int) -> tuple[int, int, int]:
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size(), x


# ---------------------------------------------------------------- helpers
class Calls:
    """Reads the log the sbatch/squeue/scancel wrappers append to."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def lines(self, name: str | None = None) -> list[str]:
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        return [ln for ln in text.splitlines() if name is None or ln.split()[0] == name]

    def count(self, name: str | None = None) -> int:
        return len(self.lines(name))


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Calls:
    if not all(REAL.values()):
        pytest.fail(f"SLURM tests are enabled but commands are missing: {REAL}; "
                    "run `sudo bash scripts/start-slurm.sh`")
    proc = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.fail(f"SLURM tests are enabled but SLURM does not answer ({proc.stderr.strip()});"
                    " run `sudo bash scripts/start-slurm.sh`")
    bindir, log = tmp_path / "bin", tmp_path / "calls.log"
    bindir.mkdir()
    for name, real in REAL.items():
        path = bindir / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexec "{real}" "$@"\n')
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return Calls(log)


@pytest.fixture
def cache(tmp_path: Path) -> Any:
    path = tmp_path / "cache"
    yield path
    if path.exists():  # leave no job behind (entries' jobs and the pools' worker jobs)
        terminate_tasks_in_cache(path)


@pytest.fixture
def flux_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fake flux first on PATH with its own state; no job outlives the test."""
    try:
        import flux.job  # noqa: F401
    except ImportError:  # pysqa's FLUX mode needs flux.job.JobID: use the stand-in
        monkeypatch.syspath_prepend(str(FAKES / "pyflux"))
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_FLUX_STATE", str(tmp_path / "flux-state"))
    monkeypatch.setenv("FAKE_FLUX_CORES", "4")
    monkeypatch.setenv("FAKE_FLUX_KILL_TIMEOUT", "1")
    path = tmp_path / "cache"
    yield path
    if path.exists():
        terminate_tasks_in_cache(path, backend="flux")
    subprocess.run(["flux", "cancel", "--all", "--quiet"], capture_output=True, check=False)




def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def executions(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def figure(name: str, value: Any) -> None:
    """Measured numbers, shown with -s and collected in $XCACHE_FIGURES if set."""
    print(f"[figure] {name} = {value}")
    out = os.environ.get("XCACHE_FIGURES")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps({name: value}) + "\n")


def worker_self_queries(calls: Calls) -> int:
    """A worker without run_time_max asks squeue once for its own time left."""
    return sum(1 for ln in calls.lines("squeue") if "%L" in ln)


# ---------------------------------------------------------------- pure parts
def test_ticket_names_round_trip() -> None:
    key = "f-v1-0123.with.dots"
    t = ticket_name(42, "ab12cd34", key)
    assert t.startswith("0000000042.") and ticket_key(t) == key
    assert parse_taken(taken_name("w1234567", t)) == ("w1234567", t)
    assert parse_taken(t) is None
    assert sorted([ticket_name(10, "ff", "b"), ticket_name(9, "00", "a")])[0].endswith(".a")


def test_slurm_time_left_formats() -> None:
    assert parse_slurm_time_left("1-02:03:04") == 93784
    assert parse_slurm_time_left("02:03:04") == 7384
    assert parse_slurm_time_left("3:04\n") == 184
    for text in ("UNLIMITED", "NOT_SET", "INVALID", ""):
        assert parse_slurm_time_left(text) is None


def test_sweep_removes_only_finished_queues_of_dead_drivers(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    dead = {"host": "no-such-host", "pid": 1, "start": "0"}
    alive = identity()
    for name, owner, files in [("idle", dead, [".exit.w1"]), ("waiting", dead, ["0000000001.x.k"]),
                               ("running", dead, [".t.w1.0000000001.x.k"]),
                               ("live", alive, [])]:
        q = root / ".queue" / name
        q.mkdir(parents=True)
        (q / "pool.json").write_text(json.dumps({"backend": "slurm", "owner": owner}))
        for f in files:
            (q / f).touch()
    assert sweep_pools(root) == ["idle"]
    assert sorted(p.name for p in (root / ".queue").iterdir()) == ["live", "running", "waiting"]


def test_a_requeued_worker_job_takes_no_ticket(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The rerun of a worker job SLURM requeued (SLURM_RESTART_COUNT=1): its driver
    already queued again what the first run held, so it exits at once and says why."""
    from executorlib_cache.compute.pool_worker import main

    store = Store(tmp_path / "cache")
    qdir = queue_dir(store.root, "p1")
    (qdir / "workers").mkdir(parents=True)
    ticket = ticket_name(0, "ab12cd34", "f-v1-" + "0" * 32)
    (qdir / ticket).touch()
    monkeypatch.setenv("SLURM_JOB_ID", "1000042")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert main([str(store.root), "p1", "--worker", "w1", "--backend", "slurm",
                 "--time-limit", "600"]) == 0
    assert (qdir / ticket).exists()  # not taken
    info = json.loads((qdir / ".exit.w1").read_text())
    assert "requeued" in info["reason"] and info["tasks"] == 0 and info["job_id"] == "1000042"


def test_what_fits_a_worker() -> None:
    pool = PoolBackend.__new__(PoolBackend)
    pool.worker_resources = {"cores": 2, "threads_per_core": 1, "partition": "short",
                             "run_time_max": 600}
    base = {"cores": 1, "threads_per_core": 1, "partition": "short", "run_time_max": 600}
    assert pool.fits(base)
    assert pool.fits({**base, "cores": 2, "cwd": "/tmp", "cache_key": "k"})
    assert not pool.fits({**base, "cores": 3})
    assert not pool.fits({**base, "partition": "long"})
    assert not pool.fits({**base, "gpus_per_core": 1})
    assert not pool.fits({**base, "run_time_max": 60})


# ---------------------------------------------------------------- SLURM
@needs_slurm
def test_200_tasks_in_4_worker_jobs_then_cache_hits(cache: Path, calls: Calls,
                                                    tmp_path: Path) -> None:
    counter = tmp_path / "ran.txt"
    t0 = time.monotonic()
    with SlurmClusterExecutor(cache_directory=cache, max_workers=4) as exe:
        futs = [exe.submit(count, i, str(counter)) for i in range(200)]
        assert [f.result(timeout=60) for f in futs] == [2 * i for i in range(200)]
    elapsed = time.monotonic() - t0
    n_sbatch, n_squeue = calls.count("sbatch"), calls.count("squeue")
    figure("packing: 200 trivial tasks, max_workers=4 (s)", round(elapsed, 2))
    figure("packing: 200 tasks sbatch/squeue", [n_sbatch, n_squeue])
    # exactly K worker jobs: work never ran out while tickets waited, nobody died
    assert n_sbatch == 4, calls.lines("sbatch")
    assert worker_self_queries(calls) <= 4  # no run_time_max: one squeue -o %L per worker
    assert n_squeue - worker_self_queries(calls) <= elapsed / 0.5 + 4, (n_squeue, elapsed)
    for line in calls.lines("squeue"):  # only our ids, never the whole queue
        assert " -j " in f" {line} ", line
    assert sorted(executions(counter)) == list(range(200))  # each ran exactly once
    # the xcache view: an entry run in a pool names its worker's job, as its runner does
    job_ids = set()
    for f in futs:
        job, ran = job_of(cache, f.key), outcome_meta(cache, f.key)
        assert job["backend"] == "slurm" and job["job_id"] == ran["job_id"], (job, ran)
        assert job["job_name"].startswith("xcache-pool-") and "pool" in job
        job_ids.add(job["job_id"])
    assert 1 <= len(job_ids) <= 4
    assert not (cache / ".queue").exists() or not any((cache / ".queue").iterdir())

    before = calls.count()
    with SlurmClusterExecutor(cache_directory=cache, max_workers=4) as exe:
        futs = [exe.submit(count, i, str(counter)) for i in range(200)]
        assert [f.result(timeout=5) for f in futs] == [2 * i for i in range(200)]
    assert calls.count() == before, calls.lines()[before:]  # cache hits: no scheduler call
    assert len(executions(counter)) == 200


DRIVER = """
import sys
from executorlib_cache.cluster_executor import SlurmClusterExecutor

def count(i, path, nap):
    import os, time
    time.sleep(nap)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, f"{i}\\n".encode())
    os.close(fd)
    return i * 2

with SlurmClusterExecutor(cache_directory=sys.argv[1], max_workers=2,
                          resource_dict={"run_time_max": 300}) as exe:
    futs = [exe.submit(count, i, sys.argv[2], float(sys.argv[4])) for i in range(int(sys.argv[3]))]
    print("SUBMITTED", flush=True)
    print("RESULT", sum(f.result(timeout=60) for f in futs), flush=True)
    print("CALLS", exe._backend.calls, flush=True)
"""


def _driver(tmp_path: Path, cache: Path, counter: Path, n: int, nap: float
            ) -> subprocess.Popen[str]:
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.Popen([sys.executable, str(driver), str(cache), str(counter), str(n),
                             str(nap)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@needs_slurm
def test_two_racing_drivers_run_every_task_once(cache: Path, calls: Calls,
                                                tmp_path: Path) -> None:
    counter = tmp_path / "ran.txt"
    n = 120
    procs = [_driver(tmp_path, cache, counter, n, 0.0) for _ in range(2)]
    outs = [p.communicate(timeout=80) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert f"RESULT {2 * sum(range(n))}" in out, out + err
    assert sorted(executions(counter)) == list(range(n))  # no call ran twice
    assert calls.count("sbatch") <= 4  # two pools of at most 2 workers each


@needs_slurm
def test_killed_driver_then_rerun_runs_every_task_once(cache: Path, calls: Calls,
                                                       tmp_path: Path) -> None:
    """SIGKILL while the workers are half-way: they finish what they took; the re-run
    adopts what a worker runs, re-queues what waits, and nothing runs twice."""
    counter = tmp_path / "ran.txt"
    n = 150
    first = _driver(tmp_path, cache, counter, n, 0.05)
    try:
        wait_for(lambda: len(executions(counter)) >= 30, 40, "30 calls to run")
    finally:
        first.kill()
        first.communicate()
    out, err = _driver(tmp_path, cache, counter, n, 0.05).communicate(timeout=80)
    assert f"RESULT {2 * sum(range(n))}" in out, out + err
    assert sorted(executions(counter)) == list(range(n))
    assert calls.count("sbatch") <= 4


@needs_slurm
def test_dependencies_inside_a_pool(cache: Path, calls: Calls) -> None:
    t0 = time.monotonic()
    with SlurmClusterExecutor(cache_directory=cache, max_workers=3,
                              resource_dict={"run_time_max": 300}) as exe:
        chain = [exe.submit(add, 0, 1)]
        for _ in range(4):
            chain.append(exe.submit(add, chain[-1], 1))
        leaves = [exe.submit(sleep_then, i, 0.2) for i in range(6)]
        fan_in = exe.submit(total, *leaves, chain[-1])
        assert chain[-1].result(timeout=60) == 5
        assert fan_in.result(timeout=60) == sum(range(6)) + 5
    figure("packing: chain of 5 + fan-in of 7 (s)", round(time.monotonic() - t0, 2))
    assert calls.count("sbatch") <= 3
    # a worker never ran an entry before its upstreams had finished
    for up, down in [*zip(chain[:-1], chain[1:], strict=True),
                     *[(leaf, fan_in) for leaf in [*leaves, chain[-1]]]]:
        finished = outcome_meta(cache, up.key)["finished"]
        started = outcome_meta(cache, down.key)["started"]
        assert started >= finished, (up.key, down.key)
        assert job_of(cache, down.key).get("pool"), "a dependent ran outside the pool"


@needs_slurm
def test_a_task_needing_more_cores_than_a_worker_goes_as_its_own_job(cache: Path,
                                                                      calls: Calls) -> None:
    with SlurmClusterExecutor(cache_directory=cache, max_workers=2,
                              resource_dict={"run_time_max": 300}) as exe:
        small = [exe.submit(add, i, 1) for i in range(10)]
        big = exe.submit(mpi_rank, 7, resource_dict={"cores": 2})
        assert [f.result(timeout=60) for f in small] == list(range(1, 11))
        assert big.result(timeout=60) == [(0, 2, 7), (1, 2, 7)]
    job = job_of(cache, big.key)
    assert "pool" not in job and job["job_name"].startswith(big.key[:20]), job
    script = (job_dir(cache, big.key) / "run_queue.sh").read_text()
    assert "#SBATCH --ntasks=2" in script and "executorlib_cache.compute.runner" in script
    assert all("pool" in job_of(cache, f.key) for f in small)
    assert calls.count("sbatch") <= 3  # <= 2 workers + the big one


@needs_slurm
def test_scancel_of_a_worker_retries_its_task_once_then_fails_it(cache: Path,
                                                                 calls: Calls) -> None:
    scancel = str(REAL["scancel"])
    with SlurmClusterExecutor(cache_directory=cache, max_workers=2,
                              resource_dict={"run_time_max": 300}) as exe:
        victim = exe.submit(sleep_then, "survived", 4)
        others = [exe.submit(add, i, 100) for i in range(20)]
        wait_for(victim.running, 30, "the victim to start in a worker")
        first = job_of(cache, victim.key)["job_id"]
        subprocess.run([scancel, first], check=True)
        assert victim.result(timeout=60) == "survived"  # retried in another worker
        assert [f.result(timeout=30) for f in others] == [i + 100 for i in range(20)]
        job = job_of(cache, victim.key)
        assert job.get("attempt") == 2 and job["job_id"] != first, job

        doomed = exe.submit(sleep_then, "never", 60)
        t0 = time.monotonic()
        for attempt in (1, 2):
            wait_for(lambda a=attempt: job_of(cache, doomed.key).get("started")
                     and job_of(cache, doomed.key).get("attempt", 1) == a, 30,
                     f"attempt {attempt} of the doomed task to start")
            jid = job_of(cache, doomed.key)["job_id"]
            subprocess.run([scancel, jid], check=True)
        exc = doomed.exception(timeout=30)
        figure("packing: 2nd scancel -> future failed (s)", round(time.monotonic() - t0, 1))
    assert isinstance(exc, TaskDiedError), repr(exc)
    msg = str(exc)
    assert f"worker job {jid}" in msg and "ended CANCELLED while running this task" in msg, msg
    assert "attempt 2" in msg and doomed.key in msg, msg
    assert calls.count("sbatch") <= 5  # 2 workers + at most one replacement per scancel


@needs_slurm
def test_cancel_of_a_queued_entry_withdraws_it(cache: Path, calls: Calls,
                                                tmp_path: Path) -> None:
    counter = tmp_path / "ran.txt"
    with SlurmClusterExecutor(cache_directory=cache, max_workers=1,
                              resource_dict={"run_time_max": 300}) as exe:
        blocker = exe.submit(sleep_then, 1, 3)
        queued = [exe.submit(count, i, str(counter)) for i in range(3)]
        wait_for(blocker.running, 30, "the blocker to start")
        assert queued[1].cancel()
        assert queued[0].result(timeout=30) == 0 and queued[2].result(timeout=30) == 4
        assert blocker.result(timeout=30) == 1
    assert executions(counter) == [0, 2]  # the cancelled call never ran
    store = Store(cache, create=False)
    assert store.file_status(queued[1].key) == "pending"  # the claim was given back
    assert calls.count("sbatch") == 1


# ---------------------------------------------------------------- flux (fake)
def test_flux_pool_runs_tasks_in_k_workers(flux_cache: Path, tmp_path: Path) -> None:
    counter = tmp_path / "ran.txt"
    with FluxClusterExecutor(cache_directory=flux_cache, max_workers=2,
                             resource_dict={"run_time_max": 120}) as exe:
        futs = [exe.submit(count, i, str(counter)) for i in range(40)]
        chain = exe.submit(add, exe.submit(add, futs[0], 1), 1)
        assert [f.result(timeout=60) for f in futs] == [2 * i for i in range(40)]
        assert chain.result(timeout=30) == 2
        calls = dict(exe._backend.calls)
    assert calls["workers"] == calls["submit"] == 2, calls
    assert sorted(executions(counter)) == list(range(40))
    job = job_of(flux_cache, futs[0].key)
    assert job["backend"] == "flux" and job["job_id"].isdigit()  # decimal, like the per-job path


def test_flux_worker_retires_before_its_time_limit(flux_cache: Path) -> None:
    """run_time_max=6 s: the worker takes no task once less than 1.5 x its longest task
    is left, exits cleanly, and the driver starts the next worker."""
    with FluxClusterExecutor(cache_directory=flux_cache, max_workers=1,
                             resource_dict={"run_time_max": 6}) as exe:
        futs = [exe.submit(sleep_then, i, 0.8) for i in range(10)]
        assert [f.result(timeout=60) for f in futs] == list(range(10))
        calls = dict(exe._backend.calls)
    assert calls["workers"] >= 2, calls
    assert {job_of(flux_cache, f.key).get("attempt", 1) for f in futs} == {1}  # none killed


def test_flux_worker_killed_at_its_time_limit_fails_the_task_with_timeout(
        flux_cache: Path) -> None:
    """A call that runs out of (most of) a whole worker's time limit would run out on
    any worker: it fails at once -- no second worker burnt on it -- with a hint to
    give it its own run_time_max (issue 12, item 13)."""
    with FluxClusterExecutor(cache_directory=flux_cache, max_workers=1,
                             resource_dict={"run_time_max": 3}) as exe:
        long = exe.submit(sleep_then, "late", 30)
        exc = long.exception(timeout=60)
        short = exe.submit(add, 1, 1)  # a new worker takes what comes next
        assert short.result(timeout=30) == 2
        calls = dict(exe._backend.calls)
    assert isinstance(exc, TaskDiedError), repr(exc)
    assert "ended TIMEOUT while running this task" in str(exc), str(exc)
    assert "attempt 2" not in str(exc) and "its own time limit" in str(exc), str(exc)
    assert calls["workers"] == 2, calls  # the one that timed out, the one for `short`


def test_a_call_lost_to_a_time_limit_is_retried_on_a_worker_with_time_enough(
        flux_cache: Path) -> None:
    """run_time_max=8: the worker runs a 3 s call, then takes a 5 s call with ~4.7 s
    left and is killed at its limit.  The call ran ~4.7 s (< 0.7 x 8): it is queued
    again for a worker with at least 1.25 x that left -- a fresh one -- and finishes."""
    with FluxClusterExecutor(cache_directory=flux_cache, max_workers=1,
                             resource_dict={"run_time_max": 8}) as exe:
        first = exe.submit(sleep_then, "a", 3.0)
        second = exe.submit(sleep_then, "b", 5.0)
        assert first.result(timeout=60) == "a"
        assert second.result(timeout=60) == "b"
    job = job_of(flux_cache, second.key)
    assert job.get("attempt") == 2 and job.get("min_time_left", 0) > 4, job


def test_a_worker_with_too_little_time_left_gives_the_retry_back(tmp_path: Path) -> None:
    """The pool worker's side: a ticket whose claim needs more time than the worker
    has left goes back to the queue, and the worker retires."""
    store = Store(tmp_path / "cache")
    key = "f-v1-" + "1" * 32
    claim = {"backend": "flux", "owner": identity(), "submitted": time.time(), "pool": "p1",
             "job_id": None, "attempt": 2, "min_time_left": 100.0}
    store.write_claim(key, claim)
    qdir = queue_dir(store.root, "p1")
    (qdir / "workers").mkdir(parents=True)
    ticket = ticket_name(0, claim_token(claim), key)
    (qdir / ticket).touch()
    worker = PoolWorker(str(store.root), "p1", "w1", backend="flux", time_limit=60.0)
    assert worker.take(ticket) and (qdir / ticket).exists()
    assert worker.tasks == 0 and worker.retire and "needs 100 s" in worker.retire
    assert "needs 100 s" in worker.serve()


def test_pool_worker_gives_a_ticket_back_when_the_claim_stays_held(tmp_path: Path) -> None:
    """Regression (issue 11): the worker caught ``filelock.Timeout`` but the store
    raises its own timeout error, so a claim held longer than the worker waits
    crashed the worker instead of putting the ticket back for a later try."""
    store = Store(tmp_path / "cache")
    key = "f-v1-" + "0" * 32
    claim = {"backend": "slurm", "owner": identity(), "submitted": time.time(),
             "pool": "p1", "job_id": None}
    store.write_claim(key, claim)
    qdir = queue_dir(store.root, "p1")
    (qdir / "workers").mkdir(parents=True)
    ticket = ticket_name(0, claim_token(claim), key)
    (qdir / ticket).touch()
    holder = subprocess.Popen(  # another process holds the entry's claim lock
        [sys.executable, "-c", "import sys, time\nfrom executorlib_cache.store import Store\n"
         f"with Store({str(store.root)!r}).claim({key!r}):\n"
         "    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        worker = PoolWorker(str(store.root), "p1", "w1", claim_timeout=0.5)
        assert worker.take(ticket)  # did not raise
        assert (qdir / ticket).exists(), "the ticket was not put back"
        assert worker.tasks == 0
    finally:
        holder.kill()
        holder.wait()


@needs_slurm
def test_a_dead_drivers_queued_ticket_is_not_lost_while_a_worker_job_runs(
        tmp_path: Path, calls: Calls) -> None:
    """A packed call whose ticket waits in the queue of a dead driver's pool is run by
    the pool's worker jobs if one still runs: ``xcache ls`` lists it ``queued`` (it
    asks the scheduler about the workers named in ``pool.json``), and ``lost`` once
    no worker job is left.  The worker here is a real SLURM job that only sleeps."""
    cache = tmp_path / "cache"
    store = Store(cache)
    out = subprocess.run(["sbatch", "--parsable", "--wrap", "sleep 60", "-o", "/dev/null"],
                         capture_output=True, text=True, timeout=30, check=True)
    job = out.stdout.strip().split(";")[0]
    try:
        dead = subprocess.Popen(["true"])
        dead.wait()
        owner = {"host": identity()["host"], "pid": dead.pid, "start": "x"}
        qdir = queue_dir(store.root, "p1")
        (qdir / "workers").mkdir(parents=True)
        (qdir / "pool.json").write_text(json.dumps(
            {"backend": "slurm", "pool": "p1", "owner": owner, "workers": {"w1": job}}))
        key = "f-v1-" + "2" * 32
        store.write_task(key, b"call", {})
        # the claim submit() wrote: a first attempt's ticket reuses it (no pool in it)
        claim = {"backend": "slurm", "job_id": None, "owner": owner,
                 "submitted": time.time()}
        store.write_claim(key, claim)
        (qdir / ticket_name(0, claim_token(claim), key)).touch()
        wait_for(lambda: job in subprocess.run(["squeue", "-h", "-o", "%i"],
                                               capture_output=True, text=True).stdout,
                 30, "the worker job to be listed")
        [row] = list_cache(cache)
        assert row["status"] == "queued", row
    finally:
        subprocess.run(["scancel", job], capture_output=True, timeout=30)
    wait_for(lambda: job not in subprocess.run(["squeue", "-h", "-o", "%i"],
                                               capture_output=True, text=True).stdout,
             30, "the worker job to end")
    [row] = list_cache(cache)
    assert row["status"] == "lost" and "is gone" in row["problem"], row
