"""Unit tests of the cluster backends without a scheduler.

The per-scheduler modules are pure functions (command lines in, parsed output
out), so SLURM's and flux's formats, odd output included, are pinned down
here; the templates are rendered with jinja2 to show that every resource_dict
key reaches the batch script; and the backend's death-detection state machine
is driven with scripted scheduler answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Template

from executorlib_cache.backends import cluster, submission, tracker
from executorlib_cache.backends.base import Died, Finished, Started, Task
from executorlib_cache.errors import SchedulerError, SubmissionError
from executorlib_cache.future import CacheFuture
from executorlib_cache.resources import Resources, merge_resources
from executorlib_cache.schedulers import JobStatus, Phase, commands, flux, slurm
from executorlib_cache.store import Store

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "scheduler_templates"
pytestmark = pytest.mark.timeout(30)

FULL = {"cores": 4, "threads_per_core": 2, "gpus_per_core": 1, "num_nodes": 2,
        "run_time_max": 61, "memory_max": 1.5, "partition": "gpu", "exclusive": True,
        "slurm_cmd_args": ["--qos=high", "--account=abc"], "cwd": "/tmp", "cache_key": "k"}


# ---------------------------------------------------------------- slurm.py
def test_slurm_template_gets_every_resource() -> None:
    v = slurm.template_vars(FULL)
    assert v == {"cores": 4, "threads_per_core": 2, "gpus_per_core": 1, "num_nodes": 2,
                 "run_time_max": 61, "memory_max": "1536M", "partition": "gpu",
                 "exclusive": True, "slurm_cmd_args": ["--qos=high", "--account=abc"]}
    text = Template((TEMPLATES / "slurm.sh").read_text()).render(
        job_name="k.1234", working_directory="/w", command="run", dependency_list=["7", "8"],
        stdout_path="/w/job.out", stderr_path="/w/job.err", **v)
    for line in ("--ntasks=4", "--cpus-per-task=2", "--gpus-per-task=1", "--nodes=2",
                 "--time=2", "--mem=1536M", "--partition=gpu", "--exclusive", "--qos=high",
                 "--account=abc", "--dependency=afterok:7:8", "--kill-on-invalid-dep=yes",
                 "--output=/w/job.out", "--error=/w/job.err", "--job-name=k.1234"):
        assert f"#SBATCH {line}" in text, line
    assert slurm.unsupported(FULL) == []
    assert slurm.template_vars({"cores": 1, "threads_per_core": 1}) == {"cores": 1}


def test_slurm_refuses_more_nodes_than_tasks() -> None:
    """sbatch -N 2 -n 1 only warns "can't run 1 processes on 2 nodes, setting nnodes
    to 1" and runs on one node: refused at submit() instead (flux refuses it itself)."""
    assert slurm.not_as_asked(FULL) is None
    assert slurm.not_as_asked({"cores": 2, "num_nodes": 2}) is None
    assert slurm.not_as_asked({"cores": 1}) is None
    msg = slurm.not_as_asked({"cores": 1, "num_nodes": 2})
    assert msg is not None and "num_nodes=2 with cores=1" in msg
    assert flux.not_as_asked({"cores": 1, "num_nodes": 2}) is None


def test_slurm_memory_and_launcher() -> None:
    assert slurm.memory_spec(4) == 4 and slurm.memory_spec(4.0) == 4
    assert slurm.memory_spec(0.5) == "512M"
    assert slurm.launcher({"cores": 1}) == []
    assert slurm.launcher({"cores": 4, "threads_per_core": 2}) == [
        "srun", "-n", "4", "--kill-on-bad-exit=1", "-c", "2"]


@pytest.mark.parametrize("out, jid", [
    ("123\n", "123"), ("123;cluster\n", "123"),
    ("sbatch: warning: something odd\n456\n", "456"), ("  789  \n\n", "789"),
    # every form sbatch prints (man sbatch): plain, federated/multi-cluster, and
    # warnings after the id line (issue 12, item 11)
    ("Submitted batch job 321\n", "321"), ("Submitted batch job 322 on cluster ci\n", "322"),
    ("323;ci\nsbatch: warning: job will be held\n", "323"),
    ("sbatch: warning: a\nSubmitted batch job 324 on cluster c2\nsbatch: note: b\n", "324"),
])
def test_slurm_job_id(out: str, jid: str) -> None:
    assert slurm.parse_job_id(out) == jid


@pytest.mark.parametrize("out", ["", "\n", "Submitted batch job\n", "error: nope\n"])
def test_slurm_job_id_garbage(out: str) -> None:
    with pytest.raises(ValueError):
        slurm.parse_job_id(out)


def test_slurm_status_parsing_and_commands() -> None:
    out = ("12|RUNNING|None\n\nsqueue: warning: whatever\n13|PENDING|Dependency\n"
           "14|CANCELLED by 0|DependencyNeverSatisfied\n15_3|COMPLETED|None\n"
           "16+0|failed|NonZeroExitCode\nnot a line\n17|\n")
    assert {k: (v.state, v.reason) for k, v in slurm.parse_status(out).items()} == {
        "12": ("RUNNING", ""), "13": ("PENDING", "Dependency"),
        "14": ("CANCELLED", "DependencyNeverSatisfied"), "15_3": ("COMPLETED", ""),
        "16+0": ("FAILED", "NonZeroExitCode")}
    cmd = slurm.status_command(["1", "2"])
    assert cmd[0] == "squeue" and cmd[-2:] == ["-j", "1,2"] and "all" in cmd
    assert "--me" in slurm.status_command([str(i) for i in range(2000)])
    assert slurm.status_error(1, "slurm_load_jobs error: Invalid job id specified") == "empty"
    assert slurm.status_error(1, "Socket timed out on send/recv operation") == "error"
    assert slurm.status("PENDING").active and slurm.status("COMPLETING").active
    assert slurm.status("SOME_NEW_STATE").active and not slurm.status("TIMEOUT").active
    assert slurm.status("RUNNING").phase is Phase.RUNNING
    assert slurm.status("PENDING").phase is Phase.QUEUED
    assert slurm.status("NODE_FAIL").phase is Phase.KILLED
    assert slurm.status("failed").phase is Phase.FAILED
    assert slurm.dependency_never_satisfied(slurm.status("PENDING", "DependencyNeverSatisfied"))
    assert not slurm.dependency_never_satisfied(slurm.status("CANCELLED", "Dependency"))


def test_slurm_lookup_and_cancel() -> None:
    cmd = slurm.lookup_command(["a.1", "b.2"])
    assert "--name=a.1,b.2" in cmd and "--me" in cmd
    out = "5|a.1|COMPLETED|None\n9|a.1|RUNNING|None\n7|b.2|PENDING|Priority\n8|c.3|RUNNING|\n"
    assert slurm.parse_lookup(out, ["a.1", "b.2"]) == {
        "a.1": ("9", slurm.status("RUNNING")), "b.2": ("7", slurm.status("PENDING", "Priority"))}
    assert slurm.cancel_command(["1", "2"]) == ["scancel", "1", "2"]
    assert slurm.cancel_error_is_benign(
        "scancel: error: Kill job error on job id 5: Job/step already completing or completed")
    assert not slurm.cancel_error_is_benign("scancel: error: Access/permission denied")


# ---------------------------------------------------------------- flux.py
def test_flux_ids() -> None:
    for n in (0, 1, 57, 58, 16777216000, 2**63 - 1):
        assert flux.f58_decode(flux.f58_encode(n)) == n
        assert flux.to_decimal(flux.f58_encode(n)) == str(n)
        assert flux.to_decimal("f" + flux.f58_encode(n)[1:]) == str(n)
    assert flux.to_decimal("123") == "123" and flux.to_decimal("0x10") == "16"
    assert flux.parse_job_id("\u0192Xvt1zF\n") == str(flux.f58_decode("\u0192Xvt1zF"))
    with pytest.raises(ValueError):
        flux.parse_job_id("flux-batch: ERROR: unsatisfiable request\n")
    with pytest.raises(ValueError):
        flux.f58_decode("\u0192l0O")  # not in the alphabet


def test_flux_template_and_refusals() -> None:
    assert flux.unsupported(FULL) == ["memory_max", "slurm_cmd_args"]
    ok = {k: v for k, v in FULL.items() if k not in ("memory_max", "slurm_cmd_args")}
    v = flux.template_vars(ok)
    text = Template((TEMPLATES / "flux.sh").read_text()).render(
        job_name="k.1", working_directory="/w", command="run", dependency_list=["5"], **v)
    for line in ("-n 4", "-c 2", "-g 1", "-N 2", "--exclusive", "-t 61s", "--queue=gpu",
                 "--dependency=afterok:5", "--job-name=k.1"):
        assert f"# flux: {line}" in text, line
    assert flux.launcher({"cores": 2}) == ["flux", "run", "-n", "2"]


def test_executorlib_keys_in_dialects_and_templates() -> None:
    """priority is flux's --urgency and refused by SLURM (with the reason);
    openmpi_oversubscribe is srun --oversubscribe and refused by flux;
    error_log_file and submission_template are honoured by both."""
    both = {"cores": 2, "error_log_file": "/e.log", "submission_template": "x"}
    assert slurm.unsupported(both) == [] and flux.unsupported(both) == []
    assert slurm.unsupported({"priority": 3}) == ["priority"]
    assert "--nice" in slurm.WHY_UNSUPPORTED["priority"]
    assert flux.unsupported({"openmpi_oversubscribe": True}) == ["openmpi_oversubscribe"]
    assert flux.WHY_UNSUPPORTED["openmpi_oversubscribe"] == (
        "The option openmpi_oversubscribe is not available with the flux backend.")
    assert slurm.launcher({"cores": 2, "openmpi_oversubscribe": True}) == [
        "srun", "-n", "2", "--kill-on-bad-exit=1", "--oversubscribe"]
    assert slurm.launcher({"cores": 1, "openmpi_oversubscribe": True}) == []
    for priority, line in ((0, "# flux: --urgency=0"), (20, "# flux: --urgency=20")):
        v = flux.template_vars({"cores": 1, "priority": priority})
        text = Template((TEMPLATES / "flux.sh").read_text()).render(
            job_name="k.1", working_directory="/w", command="run", **v)
        assert line in text
    text = Template((TEMPLATES / "flux.sh").read_text()).render(
        job_name="k.1", working_directory="/w", command="run", cores=1)
    assert "urgency" not in text
    # executorlib's defaults mean "nothing asked for": no backend refuses them
    merged = Resources(merge_resources({"gpus_per_core": 0, "exclusive": False,
                                        "slurm_cmd_args": [], "openmpi_oversubscribe": False},
                                       None))
    assert dict(merged) == {"cores": 1, "threads_per_core": 1}
    assert merge_resources(None, {"error_log_file": "rel.log"})["error_log_file"] == \
        os.path.abspath("rel.log")
    with pytest.raises(ValueError, match="priority"):
        merge_resources(None, {"priority": -1})


def test_flux_status_parsing() -> None:
    out = ("100|RUN||\n101|COMPLETED||\n102|FAILED|dependency|dependency: afterok:"
           "\u0192abc can never | be satisfied\n103|CANCELED|cancel|\n\nbogus\n104||x|\n")
    states = flux.parse_status(out)
    assert {k: (v.state, v.reason) for k, v in states.items()} == {
        "100": ("RUN", ""), "101": ("COMPLETED", ""),
        "102": ("FAILED", "dependency: dependency: afterok:\u0192abc can never | be satisfied"),
        "103": ("CANCELED", "cancel")}
    assert flux.dependency_never_satisfied(states["102"])
    assert not flux.dependency_never_satisfied(states["103"])
    assert flux.status("SCHED").active and not flux.status("TIMEOUT").active
    assert flux.status("CLEANUP").active  # C is not final (FACTS.md)
    # as flux prints it: one line per unknown id; exit 1 only when none is known
    assert flux.status_error(1, "JobID 123 unknown\nJobID 124 unknown\n") == "empty"
    assert flux.status_error(1, "flux-jobs: ERROR: Unable to connect to Flux") == "error"
    assert flux.status_command(["1"], mine=True)[-3:-1] == ["-a", "-c"]
    assert flux.cancel_error_is_benign("flux-cancel: ERROR: \u0192x: job is inactive")
    found = flux.parse_lookup("5|a.1|RUN||\n6|b|RUN||\n", ["a.1"])
    assert found == {"a.1": ("5", flux.status("RUN"))}


# ---------------------------------------------------------------- cluster.py helpers
def test_job_name_tail_and_runner_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    key = "f" * 120
    assert submission.job_name(key, "abcd1234") == "f" * 80 + ".abcd1234"
    assert submission.job_name("add-v1-00", "x") == "add-v1-00.x"
    err = tmp_path / "job.err"
    err.write_text("\n".join(f"line {i}" for i in range(100)))
    assert submission.tail(err).splitlines() == [f"line {i}" for i in range(85, 100)]
    assert submission.tail(tmp_path / "missing") == "" and submission.tail(None) == ""
    store = Store(tmp_path / "c", dir_mode=0o750, file_mode=0o640)
    argv = submission.runner_argv(slurm, "/opt/py 3/bin/python", store, "k", {"cores": 2})
    script = submission.job_script(argv, "/home/o'brien", "/a:/b")
    assert "cd '/home/o'\"'\"'brien' ||" in script
    assert "export PYTHONPATH=/a:/b" in script
    assert script.splitlines()[-1] == (
        "exec srun -n 2 --kill-on-bad-exit=1 '/opt/py 3/bin/python' -m "
        "executorlib_cache.compute.runner --mpi "
        f"--backend slurm --dir-mode 750 --file-mode 640 {store.root} k")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = submission.python_path_for_jobs().split(":")
    assert str(tmp_path) in path and not any(p.startswith(sys.prefix + "/") for p in path)


# ---------------------------------------------------------------- backend state machine
class Scripted:
    """Stands in for the scheduler: query_states answers from a list."""

    def __init__(self) -> None:
        self.answers: list[Any] = []
        self.queries: list[list[str]] = []

    def __call__(self, sched: Any, ids: list[str]) -> dict[str, JobStatus]:
        self.queries.append(list(ids))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return {k: sched.status(*v) for k, v in answer.items()}


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("XCACHE_RESULT_GRACE", "0.3")
    scripted = Scripted()
    monkeypatch.setattr(commands, "query_states", scripted)
    store = Store(tmp_path / "cache")
    backend = cluster.ClusterBackend(store, slurm)

    def task(key: str, jid: str = "42", adopted: bool = False,
             deps: dict[str, CacheFuture] | None = None) -> Task:
        store.write_claim(key, {"backend": "slurm", "job_id": jid})
        os.makedirs(store.job_dir(key), exist_ok=True)
        t = Task(key, [CacheFuture(key)], b"", Resources({"cores": 1}), deps or {})
        job = {"job_name": f"{key}.x", "stderr": os.path.join(store.job_dir(key), "job.err")}
        backend._track(t, job, jid, adopted=adopted)
        return t

    def check(tasks: dict[str, Task]) -> list[Any]:
        backend.stat.next_at = backend.tracker.backoff.next_at = 0.0  # everything due now
        return backend.check(tasks)

    return backend, scripted, task, check, store


def test_result_file_means_finished_without_asking(rig: Any) -> None:
    backend, scripted, task, check, store = rig
    t = task("a")
    Path(store.path_of("a", "done")).write_bytes(b"x")
    scripted.answers = [{}]
    events = check({"a": t})
    assert [type(e) for e in events] == [Finished] and scripted.queries == []


def test_running_then_cancelled_dies_after_a_short_grace(rig: Any) -> None:
    backend, scripted, task, check, store = rig
    t = task("a", "42")
    Path(store.job_dir("a"), "job.err").write_text("slurmstepd: error: *** JOB 42 CANCELLED ***\n")
    scripted.answers = [{"42": ("RUNNING", "")}]
    assert [type(e) for e in check({"a": t})] == [Started]
    scripted.answers = [{"42": ("CANCELLED", "")}]
    assert check({"a": t}) == []  # grace: the result may be on its way
    time.sleep(cluster.GRACE_KILLED + 0.05)
    (died,) = check({"a": t})
    assert isinstance(died, Died) and died.state == "CANCELLED"
    assert "CANCELLED" in died.message and "*** JOB 42 CANCELLED ***" in died.message


def test_purged_job_gets_the_nfs_grace(rig: Any) -> None:
    backend, scripted, task, check, store = rig
    t = task("a", "42")
    scripted.answers = [{}]
    assert check({"a": t}) == []
    assert check({"a": t}) == []
    time.sleep(0.35)
    (died,) = check({"a": t})
    assert isinstance(died, Died) and "no longer known" in died.message


def test_transient_status_errors_then_failure(rig: Any) -> None:
    backend, scripted, task, check, store = rig
    t = task("a", "42")
    err = SchedulerError("squeue failed (exit 1): Socket timed out")
    scripted.answers = [err, err, err, err, {"42": ("RUNNING", "")}]
    for _ in range(4):
        assert check({"a": t}) == []
    assert [type(e) for e in check({"a": t})] == [Started]  # the counter resets
    scripted.answers = [err]
    events = [e for _ in range(tracker.MAX_STATUS_FAILURES) for e in check({"a": t})]
    assert len(events) == 1 and isinstance(events[0], Died)
    assert "Socket timed out" in events[0].message


def test_adopted_job_found_dead_is_resubmitted(rig: Any, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    backend, scripted, task, check, store = rig
    t = task("a", "42", adopted=True)
    submitted: list[list[str]] = []
    monkeypatch.setattr(backend, "_submit", lambda task, ups: submitted.append(ups))
    scripted.answers = [{"42": ("TIMEOUT", "TimeLimit")}]
    assert check({"a": t}) == [] and submitted == [[]]


def test_dependency_never_satisfied_waits_for_the_upstream_future(
        rig: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    backend, scripted, task, check, store = rig
    up = CacheFuture("up")
    t = task("a", "42", deps={"up": up})
    submitted: list[list[str]] = []
    monkeypatch.setattr(backend, "_submit", lambda task, ups: submitted.append(ups))
    scripted.answers = [{"42": ("CANCELLED", "DependencyNeverSatisfied")}]
    assert check({"a": t}) == [] and check({"a": t}) == []  # the poller fails it
    up.set_running_or_notify_cancel()
    up.set_result(1)  # a stale dependency of an earlier attempt: run it again
    assert check({"a": t}) == [] and submitted == [[]]


def test_submit_throttle(rig: Any) -> None:
    backend, scripted, task, check, store = rig
    sub = backend.submitter
    sub.rate, sub.burst, sub.tokens = 10.0, 3.0, 3.0
    t = Task("x", [], b"", Resources(), {})
    allowed = 0
    while backend.can_dispatch(t):
        sub.take_token()
        allowed += 1
    assert allowed == 3 and sub.throttled
    assert 0.02 <= backend.check_interval <= 0.11


class FakeCommands:
    """Stands in for subprocess: sbatch fails ``fail`` times, then prints an id."""

    def __init__(self, fail: int, error: str) -> None:
        self.fail, self.error = fail, error
        self.log: list[list[str]] = []

    def __call__(self, cmd: list[str], **kwargs: Any) -> Any:
        self.log.append(list(cmd))
        if cmd[0] == "sbatch":
            if self.fail > 0:
                self.fail -= 1
                return subprocess.CompletedProcess(cmd, 1, "", self.error)
            return subprocess.CompletedProcess(cmd, 0, "77\n", "")
        return subprocess.CompletedProcess(cmd, 0, "", "")  # squeue --name: not found


def _retry_rig(rig: Any, monkeypatch: pytest.MonkeyPatch, fail: int, error: str) -> Any:
    backend, scripted, task, check, store = rig
    fake = FakeCommands(fail, error)
    monkeypatch.setattr(commands, "run_command", fake)
    monkeypatch.setattr(cluster, "SUBMIT_RETRY_DELAYS", (0.01, 0.01, 0.01))
    store.write_claim("r", {"backend": "slurm", "job_id": None})
    t = Task("r", [CacheFuture("r")], b"", Resources({"cores": 1}), {})
    return backend, check, fake, t


def test_transient_sbatch_errors_are_retried_after_a_name_lookup(
        rig: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    backend, check, fake, t = _retry_rig(rig, monkeypatch, 2, "sbatch: error: Batch job "
                                         "submission failed: Socket timed out on send/recv")
    backend.dispatch(t, [])
    assert t.job_id is None and t.job.retry_at is not None
    for _ in range(20):
        time.sleep(0.02)
        assert check({"r": t}) == [] or t.job_id
        if t.job_id:
            break
    assert t.job_id == "77"
    names = [c for c in fake.log if c[0] == "squeue" and any("--name=" in a for a in c)]
    assert len(names) == 2  # before each retry: was the lost submission accepted?
    assert [c[0] for c in fake.log].count("sbatch") == 3


def test_permanent_or_persistent_sbatch_errors_fail(rig: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    backend, check, fake, t = _retry_rig(rig, monkeypatch, 1, "sbatch: error: invalid "
                                         "partition specified: nope")
    with pytest.raises(SubmissionError, match="invalid partition"):
        backend.dispatch(t, [])
    backend, check, fake, t = _retry_rig(rig, monkeypatch, 100, "Socket timed out")
    backend.dispatch(t, [])
    events: list[Any] = []
    for _ in range(50):
        time.sleep(0.02)
        events += check({"r": t})
        if events:
            break
    (ev,) = events
    assert "Socket timed out" in ev.message and "gave up after 4 attempts" in ev.message


def test_a_pool_asks_about_its_jobs_and_its_workers_in_one_status_call(
        rig: Any, tmp_path: Path) -> None:
    """Regression (issue 11): a pool with calls that run as their own jobs made two
    status calls per tick (one for the jobs, one for the workers).  Both now share
    one tracker: one call names every id."""
    from executorlib_cache.backends.pool import PoolBackend
    from executorlib_cache.backends.workers import Worker

    _backend, scripted, _task, _check, store = rig
    pool = PoolBackend(store, slurm, 1, resources={"cores": 1})
    own = Task("own", [CacheFuture("own")], b"", Resources({"cores": 4}), {})
    store.write_claim("own", {"backend": "slurm", "job_id": "41"})
    pool.jobs._track(own, {"job_name": "own.x"}, "41")
    pool.workers.all["w1"] = Worker("w1", "xcache-pool.w1", job_id="42")
    scripted.answers = [{"41": ("RUNNING", ""), "42": ("RUNNING", "")}]
    for _ in range(3):
        pool.stat.next_at = pool.jobs.stat.next_at = pool.tracker.backoff.next_at = 0.0
        pool.check({"own": own})
    assert scripted.queries == [["41", "42"]] * 3


def test_a_requeued_worker_job_counts_as_dead_and_is_cancelled(rig: Any) -> None:
    """A worker job SLURM requeues (node failure under JobRequeue=1, scontrol requeue)
    is PENDING again with a ~2 min hold: its process and the calls it ran are gone.
    The pool counts it as ended (its calls are queued again) and cancels the job, so
    that its rerun cannot take tickets; a worker that never ran may wait as long."""
    from executorlib_cache.backends.pool import PoolBackend
    from executorlib_cache.backends.tracker import Poll
    from executorlib_cache.backends.workers import Worker

    _backend, _scripted, _task, _check, store = rig
    pool = PoolBackend(store, slurm, 2, resources={"cores": 1})
    ran = Worker("w1", "xcache-pool.w1", job_id="42")
    waiting = Worker("w2", "xcache-pool.w2", job_id="43")
    pool.workers.all.update(w1=ran, w2=waiting)
    now = time.monotonic()
    queued = slurm.status("PENDING", "Resources")
    pool._apply_worker_statuses({}, [ran, waiting],
                                Poll({"42": slurm.status("RUNNING"), "43": queued}), now)
    assert not ran.ended and not waiting.ended and pool.jobs._to_cancel == []
    waiting.took = True  # a worker taking tickets while squeue still says CONFIGURING
    pool._apply_worker_statuses({}, [waiting], Poll({"43": slurm.status("CONFIGURING")}), now)
    assert not waiting.ended
    pool._apply_worker_statuses({}, [ran, waiting],
                                Poll({"42": slurm.status("PENDING", "BeginTime"), "43": queued}),
                                now + 1)
    assert ran.ended and ran.requeued and ran.state == "REQUEUED"
    assert not waiting.ended
    assert pool.jobs._to_cancel == ["42"] and pool.workers.to_cancel == []
