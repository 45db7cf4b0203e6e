"""The cluster path on a real MULTI-NODE SLURM (scripts/start-multinode.sh), no mocks.

Three slurmd "nodes" (node1..node3, 2 CPUs each), each in its own network and UTS
namespace on this machine, sharing its file system (as a cluster shares its parallel
file system) and its munged.  The cluster runs next to the single-node one of the
rest of the suite: it is found only through ``SLURM_CONF`` (``XCACHE_TEST_SLURM_MN``
holds its path; ``scripts/test.sh`` starts the cluster and sets it), which every test
sets before it creates an executor, so sbatch/squeue/scancel and the jobs (which
inherit the environment) talk to it.

Runs when ``XCACHE_TEST_SLURM_MN`` is set; in CI (``CI=true``) a missing cluster is
a failure, not a skip.  Node failures are made with ``scontrol update state=down``
(an admin takes the node out: SLURM acts at once) and with
``scripts/multinode-node.sh kill`` (every process of the node is SIGKILLed, as a
power loss; SLURM notices after SlurmdTimeout=5/MessageTimeout=2, ~10 s), so these
tests need root.  Every test that takes a node away brings it back, and an autouse
fixture checks that all nodes are up before each test.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from conftest import job_dir, job_of, outcome_meta, require, skip_unless_ci

MN_CONF = os.environ.get("XCACHE_TEST_SLURM_MN", "")
if not MN_CONF:
    skip_unless_ci("the multi-node SLURM is not up: run `sudo bash scripts/test.sh` (starts "
                   "it), or `sudo bash scripts/start-multinode.sh` and set "
                   "XCACHE_TEST_SLURM_MN=/etc/slurm-mn/slurm.conf")
if os.geteuid() != 0:
    skip_unless_ci("the multi-node tests take nodes down (scontrol, scripts/multinode-node.sh): "
                   "they need root")

require("pysqa")

from executorlib_cache.catalog import terminate_tasks_in_cache  # noqa: E402
from executorlib_cache.cluster_executor import SlurmClusterExecutor  # noqa: E402
from executorlib_cache.errors import SubmissionError, TaskDiedError  # noqa: E402
from executorlib_cache.store import Store  # noqa: E402

pytestmark = pytest.mark.timeout(90)
# the jobs unpickle the functions below by value (no import of this module in jobs)
cloudpickle.register_pickle_by_value(sys.modules[__name__])
REPO = Path(__file__).resolve().parents[1]
NODE_SCRIPT = REPO / "scripts" / "multinode-node.sh"
REAL = {name: shutil.which(name) for name in ("sbatch", "squeue", "scancel", "scontrol",
                                              "sinfo")}
REASON = "xcache-test"


# ---------------------------------------------------------------- functions run in jobs
def where(x: Any, seconds: float = 0.0) -> tuple[str, Any]:
    """The node it ran on (its UTS namespace's hostname = the SLURM node name)."""
    time.sleep(seconds)
    return socket.gethostname(), x


def combine(*ups: tuple[str, Any]) -> tuple[str, list[tuple[str, Any]]]:
    return socket.gethostname(), list(ups)


def add(a: int, b: int) -> int:
    return a + b


def sleep_then(x: Any, seconds: float) -> Any:
    time.sleep(seconds)
    return x


def ranks_and_hosts(x: int) -> tuple[int, int, str, str, int]:
    """rank, size, MPI's processor name, hostname, and an allreduce across all ranks."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    total = comm.allreduce(comm.Get_rank() + x)
    return comm.Get_rank(), comm.Get_size(), MPI.Get_processor_name(), socket.gethostname(), total


def run_count_then(seconds: float) -> tuple[int, str]:
    """SLURM_RESTART_COUNT (set in a requeued job's rerun) and the node; only the
    first run sleeps."""
    restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    if restarts == 0:
        time.sleep(seconds)
    return restarts, socket.gethostname()


def count_then(i: int, path: str, seconds: float) -> tuple[str, int]:
    """One line per execution (a call that ran twice shows twice), then its node."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{i}\n".encode())
    finally:
        os.close(fd)
    time.sleep(seconds)
    return socket.gethostname(), i


# ---------------------------------------------------------------- helpers
def mn_env() -> dict[str, str]:
    return {**os.environ, "SLURM_CONF": MN_CONF}


def slurm(*argv: str, check: bool = True, timeout: float = 30) -> str:
    """Run a real SLURM command against the multi-node cluster (never the wrappers)."""
    proc = subprocess.run([str(REAL[argv[0]]), *argv[1:]], capture_output=True, text=True,
                          env=mn_env(), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def node_states() -> dict[str, str]:
    out = slurm("sinfo", "-h", "-N", "-o", "%N %T")
    return dict(line.split() for line in out.splitlines() if line.strip())


def node_script(action: str, node: str) -> None:
    proc = subprocess.run(["bash", str(NODE_SCRIPT), action, node], capture_output=True,
                          text=True, env=mn_env(), timeout=70)
    assert proc.returncode == 0, f"multinode-node.sh {action} {node}: {proc.stderr}"


def bring_back(node: str) -> None:
    """Resume a node an admin set DOWN, or restart the slurmd of a killed one."""
    node_script("start", node)


def job_info(job_id: str) -> tuple[str, list[str]]:
    """(state, nodes) of a job as squeue shows it (nodes expanded: node[1-2] -> 2 names)."""
    out = slurm("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T|%N", check=False).strip()
    if not out:
        return "", []
    state, nodelist = out.split("|", 1)
    nodes = slurm("scontrol", "show", "hostnames", nodelist).split() if nodelist else []
    return state, nodes


def scontrol_job(job_id: str) -> dict[str, str]:
    out = slurm("scontrol", "show", "job", "-o", job_id)
    return dict(w.split("=", 1) for w in out.split() if "=" in w)



def wait_for(predicate: Any, timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def figure(name: str, value: Any) -> None:
    """Measured numbers, shown with -s and collected in $XCACHE_FIGURES if set."""
    print(f"[figure] {name} = {value}")
    path = os.environ.get("XCACHE_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({name: value}) + "\n")


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


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def nodes() -> list[str]:
    """The cluster answers, with its nodes (module start)."""
    if not all(REAL.values()):
        pytest.fail(f"multi-node tests are enabled but SLURM commands are missing: {REAL}")
    proc = subprocess.run([str(REAL["sinfo"]), "-h", "-N", "-o", "%N"], capture_output=True,
                          text=True, env=mn_env(), timeout=30)
    if proc.returncode != 0:
        pytest.fail(f"the multi-node SLURM ({MN_CONF}) does not answer: {proc.stderr.strip()}; "
                    "run `sudo bash scripts/start-multinode.sh`")
    names = sorted(set(proc.stdout.split()))
    assert len(names) >= 3, f"need 3 nodes, the cluster has {names}"
    return names[:3]


@pytest.fixture(autouse=True)
def mn(nodes: list[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """SLURM_CONF -> the multi-node cluster for the test (executors, jobs, wrappers);
    every node up before the test (and after it, whatever it did)."""
    monkeypatch.setenv("SLURM_CONF", MN_CONF)

    def all_up() -> None:
        for node, state in node_states().items():
            if state not in ("idle", "mixed", "allocated"):
                bring_back(node)
    all_up()
    yield nodes
    all_up()


@pytest.fixture
def cache(tmp_path: Path, mn: list[str]) -> Any:
    path = tmp_path / "cache"
    yield path
    if path.exists():  # leave no job behind (SLURM_CONF still points at the cluster)
        terminate_tasks_in_cache(path)


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mn: list[str]) -> Calls:
    """sbatch/squeue/scancel first on PATH: log each call, then run the real one
    (jobs inherit PATH: a pool worker's own squeue is logged too)."""
    bindir, log = tmp_path / "bin", tmp_path / "calls.log"
    bindir.mkdir()
    for name in ("sbatch", "squeue", "scancel"):
        path = bindir / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexec "{REAL[name]}" "$@"\n')
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return Calls(log)


# ---------------------------------------------------------------- 1. jobs over nodes
#: what SLURM's pmi2 plugin logs when the pip mpich 5.0.2 PMI2 client sends it
#: uninitialised bytes in MPI_Init (see docs/slurm.md, "Several nodes")
MPICH_PMI2_FLAW = "mpi/pmi2: value not properly terminated in client request"


def test_mpi_ranks_run_on_two_nodes(cache: Path, mn: list[str]) -> None:
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(ranks_and_hosts, 100, resource_dict={"cores": 4, "num_nodes": 2})
        done, _ = wait([fut], timeout=45)
        assert done, f"no result in 45 s: {fut}"  # a dead rank ends the job: never a hang
        exc = fut.exception()
        if isinstance(exc, TaskDiedError):
            err = job_dir(cache, fut.key) / "job.err"
            if err.exists() and MPICH_PMI2_FLAW in err.read_text(errors="replace"):
                # Why xfail: MPI_Init failed inside the pip mpich 5.0.2 wheel's PMI2
                # client, not in this package (reproduced with a bare `srun -N 2 -n 4
                # python -c 'from mpi4py import MPI'`; it depends on the heap's contents,
                # docs/slurm.md "Several nodes").  What CI must still see is checked
                # first: the call failed promptly as TaskDiedError, it did not hang.
                pytest.xfail(f"mpich 5.0.2 PMI2 client flaw in MPI_Init: {exc}")
        if exc is not None:
            raise exc
        res = fut.result()
    assert [r[:2] for r in res] == [(i, 4) for i in range(4)], res
    assert {r[4] for r in res} == {0 + 1 + 2 + 3 + 4 * 100}  # the ranks talked across nodes
    for _rank, _size, mpi_name, hostname, _total in res:
        assert mpi_name == hostname and hostname in mn, res
    hosts = [r[3] for r in res]
    assert len(set(hosts)) == 2, f"ranks not on two nodes: {hosts}"
    # SLURM's own view of the job agrees
    _state, job_nodes = job_info(job_of(cache, fut.key)["job_id"])
    assert sorted(job_nodes) == sorted(set(hosts)), (job_nodes, hosts)
    script = (job_dir(cache, fut.key) / "run_queue.sh").read_text()
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks=4" in script
    assert "srun -n 4" in script


def test_impossible_node_requests_fail_at_submit(cache: Path, calls: Calls,
                                                 mn: list[str]) -> None:
    cpus = int(slurm("sinfo", "-h", "-n", mn[0], "-o", "%c").split()[0])
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        t0 = time.monotonic()
        more_nodes = exe.submit(add, 1, 1, resource_dict={"cores": 4, "num_nodes": 4})
        more_cores = exe.submit(add, 1, 2, resource_dict={"cores": 2 * cpus + 1,
                                                          "num_nodes": 2})
        exc_nodes = more_nodes.exception(timeout=10)
        exc_cores = more_cores.exception(timeout=10)
        latency = time.monotonic() - t0
        # fewer ranks than nodes: sbatch would only warn ("can't run 1 processes on 2
        # nodes, setting nnodes to 1") and run on ONE node; submit() refuses it instead
        with pytest.raises(ValueError, match=r"num_nodes=2 with cores=1"):
            exe.submit(add, 1, 3, resource_dict={"num_nodes": 2})
    assert isinstance(exc_nodes, SubmissionError), repr(exc_nodes)
    assert "Node count specification invalid" in str(exc_nodes), str(exc_nodes)
    assert isinstance(exc_cores, SubmissionError), repr(exc_cores)
    assert "Requested node configuration is not available" in str(exc_cores), str(exc_cores)
    assert latency < 5.0
    assert calls.count("sbatch") == 2  # the refused-at-submit call never reached sbatch


# ---------------------------------------------------------------- 2. node failure
def _wait_state(job_id: str, states: set[str], timeout: float) -> float:
    """Poll squeue (real, not counted) until the job is in one of ``states``."""
    wait_for(lambda: job_info(job_id)[0] in states, timeout,
             f"job {job_id} to be {'/'.join(sorted(states))}", step=0.05)
    return time.monotonic()


def test_node_set_down_fails_its_running_job_with_node_fail(cache: Path,
                                                            mn: list[str]) -> None:
    node = mn[1]
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(sleep_then, "never", 120, resource_dict={
            "slurm_cmd_args": ["--no-requeue", f"--nodelist={node}"]})
        wait_for(fut.running, 30, "the job to start")
        jid = job_of(cache, fut.key)["job_id"]
        try:
            slurm("scontrol", "update", f"nodename={node}", "state=down", f"reason={REASON}")
            t_slurm = _wait_state(jid, {"NODE_FAIL"}, 15)
            exc = fut.exception(timeout=15)
            latency = time.monotonic() - t_slurm
        finally:
            bring_back(node)
    figure("node set DOWN: SLURM says NODE_FAIL -> future failed (s)", round(latency, 2))
    assert isinstance(exc, TaskDiedError), repr(exc)
    msg = str(exc)
    assert "NODE_FAIL" in msg and jid in msg and fut.key in msg, msg
    assert latency < 5.0


@pytest.mark.timeout(120)
def test_node_power_loss_under_a_two_node_job(cache: Path, mn: list[str]) -> None:
    """Every process of node3 is killed (slurmd, slurmstepd, the rank): SLURM marks the
    node DOWN after ~10 s and the job NODE_FAIL; the future fails soon after, the
    rank on the other node is killed by SLURM, nothing hangs."""
    a, b = mn[1], mn[2]
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(sleep_then, "never", 300, resource_dict={
            "cores": 2, "num_nodes": 2, "slurm_cmd_args": ["--no-requeue", f"--nodelist={a},{b}"]})
        wait_for(fut.running, 30, "the job to start")
        jid = job_of(cache, fut.key)["job_id"]
        wait_for(lambda: bool(job_of(cache, fut.key).get("started")), 30, "the ranks to start")
        try:
            t_kill = time.monotonic()
            node_script("kill", b)
            t_slurm = _wait_state(jid, {"NODE_FAIL"}, 40)
            exc = fut.exception(timeout=15)
            t_fut = time.monotonic()
        finally:
            bring_back(b)
        t_shutdown = time.monotonic()
    shutdown = time.monotonic() - t_shutdown
    figure("node killed -> SLURM says NODE_FAIL (s)", round(t_slurm - t_kill, 1))
    figure("node killed: SLURM says NODE_FAIL -> future failed (s)", round(t_fut - t_slurm, 2))
    assert isinstance(exc, TaskDiedError), repr(exc)
    assert "NODE_FAIL" in str(exc) and jid in str(exc), str(exc)
    assert t_fut - t_slurm < 5.0
    assert shutdown < 5.0
    # SLURM killed the rank on the surviving node: it is free again
    wait_for(lambda: node_states()[a] == "idle", 10, f"{a} to be idle again", step=0.2)


def test_job_requeued_by_a_node_failure_gives_the_result_of_its_rerun(
        cache: Path, calls: Calls) -> None:
    """A --requeue job whose node goes DOWN is requeued (PENDING, Restarts=1); SLURM
    holds it ~2 min (BeginTime), so the test lets it start at once (StartTime=now, as
    an admin could). The future follows the one job id to the rerun's result."""
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(run_count_then, 120, resource_dict={"slurm_cmd_args": ["--requeue"]})
        wait_for(fut.running, 30, "the job to start")
        jid = job_of(cache, fut.key)["job_id"]
        _state, (node,) = job_info(jid)
        try:
            slurm("scontrol", "update", f"nodename={node}", "state=down", f"reason={REASON}")
            _wait_state(jid, {"PENDING"}, 15)
            info = scontrol_job(jid)
            assert info["Restarts"] == "1", info
            time.sleep(1.5)  # several status calls see it requeued: nothing may resolve
            assert fut.running() and not fut.done()
            slurm("scontrol", "update", f"jobid={jid}", "StartTime=now")
            restarts, rerun_node = fut.result(timeout=30)
        finally:
            bring_back(node)
    assert restarts == 1 and rerun_node != node, (restarts, rerun_node, node)
    assert job_of(cache, fut.key)["job_id"] == jid  # the same job, not a new submission
    assert calls.count("sbatch") == 1
    outcome = outcome_meta(cache, fut.key)
    assert outcome["status"] == "done" and outcome["host"] == rerun_node, outcome


def test_scontrol_requeue_is_followed_to_the_rerun(cache: Path, calls: Calls) -> None:
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(run_count_then, 120, resource_dict={"slurm_cmd_args": ["--requeue"]})
        wait_for(fut.running, 30, "the job to start")
        jid = job_of(cache, fut.key)["job_id"]
        slurm("scontrol", "requeue", jid)
        _wait_state(jid, {"PENDING"}, 15)
        time.sleep(1.5)
        assert fut.running() and not fut.done()
        slurm("scontrol", "update", f"jobid={jid}", "StartTime=now")
        restarts, _node = fut.result(timeout=30)
    assert restarts == 1
    assert calls.count("sbatch") == 1 and job_of(cache, fut.key)["job_id"] == jid


# ---------------------------------------------------------------- 3. packed workers
@pytest.mark.timeout(120)
def test_packed_workers_spread_over_nodes_and_a_dead_node_costs_only_its_call(
        cache: Path, calls: Calls, tmp_path: Path, mn: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """max_workers=3 exclusive workers: one per node. The node of the worker that runs
    a long call goes DOWN: that call is retried once in another worker (attempt 2),
    the waiting calls run in the other workers, every other call runs exactly once.
    SLURM requeues the dead worker's job (JobRequeue=1, its default): the driver
    counts it as dead at once rather than waiting ~2 min for the rerun (regression)."""
    counter = tmp_path / "ran.txt"
    monkeypatch.setenv("XCACHE_POOL_IDLE", "30")  # workers wait for the calls that follow
    with SlurmClusterExecutor(cache_directory=cache, max_workers=3,
                              resource_dict={"exclusive": True, "run_time_max": 600}) as exe:
        first = [exe.submit(count_then, i, str(counter), 2.0) for i in range(6)]
        wait_for(lambda: len(exe._backend.workers.alive()) == 3 and all(
            job_info(str(w.job_id))[0] == "RUNNING" for w in exe._backend.workers.alive()),
            30, "3 worker jobs running", step=0.2)
        placed = {str(w.job_id): job_info(str(w.job_id))[1] for w in exe._backend.workers.alive()}
        hosts = [f.result(timeout=60)[0] for f in first]
        # SLURM put the three workers on three nodes, and the calls ran on all of them
        assert sorted(n for ns in placed.values() for n in ns) == sorted(mn), placed
        assert set(hosts) == set(mn), hosts

        victim = exe.submit(count_then, 100, str(counter), 6.0)
        wait_for(victim.running, 30, "the victim to start in a worker")
        worker_id = job_of(cache, victim.key)["job_id"]
        (node,) = placed.get(worker_id) or job_info(worker_id)[1]
        rest = [exe.submit(count_then, i, str(counter), 0.5) for i in range(10, 20)]
        try:
            t_down = time.monotonic()
            slurm("scontrol", "update", f"nodename={node}", "state=down", f"reason={REASON}")
            assert victim.result(timeout=60)[1] == 100  # its second attempt
            t_victim = time.monotonic()
            results = [f.result(timeout=60) for f in rest]
        finally:
            bring_back(node)
    figure("packing: worker's node DOWN -> its call's 2nd attempt done (s)",
           round(t_victim - t_down, 1))
    job = job_of(cache, victim.key)
    assert job.get("attempt") == 2 and job["job_id"] != worker_id, job
    # SLURM requeued the dead worker's job (JobRequeue=1); the driver cancelled it
    assert scontrol_job(worker_id)["Restarts"] == "1"
    assert any(worker_id in line.split() for line in calls.lines("scancel")), calls.lines()
    wait_for(lambda: job_info(worker_id)[0] == "CANCELLED", 10, "the requeued worker cancelled")
    assert victim.result()[0] != node
    assert [r[1] for r in results] == list(range(10, 20))
    assert node not in {r[0] for r in results[2:]}, results  # nothing more ran there
    ran = sorted(int(x) for x in counter.read_text().split())
    assert ran == sorted([*range(6), 100, 100, *range(10, 20)]), ran  # only the victim twice
    assert calls.count("sbatch") <= 5  # 3 workers + at most 2 replacements


# ---------------------------------------------------------------- 4. shared cache
def test_results_travel_between_nodes_through_the_cache(cache: Path, mn: list[str]) -> None:
    n1, n2, n3 = mn
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        up1 = exe.submit(where, "a", 1.0, resource_dict={"slurm_cmd_args": [f"--nodelist={n1}"]})
        up2 = exe.submit(where, "b", 1.0, resource_dict={"slurm_cmd_args": [f"--nodelist={n2}"]})
        down = exe.submit(combine, up1, up2,
                          resource_dict={"slurm_cmd_args": [f"--nodelist={n3}"]})
        # the dependent is in the queue (afterok) before its upstreams ran
        wait_for(lambda: job_of(cache, down.key).get("job_id"), 20, "the dependent's job id")
        assert not up1.done() and not up2.done()
        assert up1.result(timeout=60) == (n1, "a")  # written on n1, read by the driver
        assert up2.result(timeout=60) == (n2, "b")
        # the dependent on n3 read both results, written on n1 and n2
        assert down.result(timeout=60) == (n3, [(n1, "a"), (n2, "b")])
    store = Store(cache, create=False)
    for fut, node in ((up1, n1), (up2, n2), (down, n3)):
        assert outcome_meta(store.root, fut.key).get("host") == node
    dep = job_of(cache, down.key)["dependencies"]
    assert sorted(dep) == sorted([job_of(cache, up1.key)["job_id"],
                                  job_of(cache, up2.key)["job_id"]])


# ---------------------------------------------------------------- 5. one status call
def test_one_status_call_per_tick_with_jobs_on_every_node(cache: Path, calls: Calls,
                                                          mn: list[str]) -> None:
    cpus = int(slurm("sinfo", "-h", "-n", mn[0], "-o", "%c").split()[0])
    n = cpus * len(mn)  # one job per CPU of the cluster: all run at once, on every node
    t0 = time.monotonic()
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        futs = [exe.submit(where, i, 3.0) for i in range(n)]
        results = [f.result(timeout=60) for f in futs]
    elapsed = time.monotonic() - t0
    n_squeue = calls.count("squeue")
    figure(f"{n} jobs on {len(mn)} nodes (s)", round(elapsed, 2))
    figure(f"{n} jobs on {len(mn)} nodes: squeue calls", n_squeue)
    assert [r[1] for r in results] == list(range(n))
    assert {r[0] for r in results} == set(mn), results
    assert calls.count("sbatch") == n
    assert n_squeue <= elapsed / 0.5 + 4, (n_squeue, elapsed)
    ids = {job_of(cache, f.key)["job_id"] for f in futs}
    for line in calls.lines("squeue"):  # one call for all of our ids, never per job
        assert " -j " in f" {line} ", line
        asked = set(line.split(" -j ")[1].split()[0].split(","))
        assert asked <= ids, line
    assert max(len(line.split(" -j ")[1].split()[0].split(","))
               for line in calls.lines("squeue")) > 1
