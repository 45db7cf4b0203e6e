"""The flux path against the facts of a real flux-core (issue 13, ``FACTS.md``).

Each test is one divergence found when the project ran on a real flux-core 0.88,
checked here against the fake ``flux`` (tests/fakes/flux), which obeys those facts
(tests/test_fake_flux.py shows it does).  Items: job states and their timing (a
job stays R after writing its result, C before CA/TO), one id form and the log
file flux really writes, named queues, dependencies refused at submission,
nested flux inside a job, pmix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from conftest import SLURM_WANTED, entry_path, job_dir, job_of, require

require("pysqa")

from executorlib_cache import list_cache  # noqa: E402
from executorlib_cache.backends.base import Task  # noqa: E402
from executorlib_cache.backends.cluster import ClusterBackend  # noqa: E402
from executorlib_cache.catalog import terminate_tasks_in_cache  # noqa: E402
from executorlib_cache.cluster_executor import FluxClusterExecutor  # noqa: E402
from executorlib_cache.errors import SubmissionError, TaskDiedError  # noqa: E402
from executorlib_cache.future import CacheFuture  # noqa: E402
from executorlib_cache.resources import Resources  # noqa: E402
from executorlib_cache.schedulers import flux as flux_mod  # noqa: E402
from executorlib_cache.store import Store  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAKES = REPO / "tests" / "fakes"
try:  # the real bindings, if a machine has flux-core
    import flux.job  # noqa: F401
except ImportError:  # pysqa's FLUX mode needs flux.job.JobID: use the stand-in
    sys.path.insert(0, str(FAKES / "pyflux"))

pytestmark = pytest.mark.timeout(90)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def add(a: int, b: int) -> int:
    return a + b


def sleep_then(x: Any, seconds: float) -> Any:
    time.sleep(seconds)
    return x


def fail_after(x: Any, seconds: float) -> Any:
    time.sleep(seconds)
    raise KeyError(f"missing {x}")


def mpi_rank(x: int) -> tuple[int, int, int]:
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size(), x


def nested(cache: str, x: int) -> dict[str, Any]:
    """Runs inside a flux job: a FluxClusterExecutor here submits into the job's own
    sub-instance (FLUX_URI), not into the outer instance."""
    from executorlib_cache import FluxClusterExecutor as Flux

    with Flux(cache_directory=cache) as inner:
        value = inner.submit(add, x, 100).result(timeout=60)
    listing = subprocess.run(["flux", "jobs", "-a", "-n", "-o", "{id.dec}"],
                             capture_output=True, text=True).stdout.split()
    return {"value": value, "uri": os.environ.get("FLUX_URI"), "inner_jobs": listing,
            "enclosing": os.environ.get("FLUX_ENCLOSING_ID")}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fake flux first on PATH with its own state; no job outlives the test."""
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_FLUX_STATE", str(tmp_path / "flux-state"))
    monkeypatch.setenv("FAKE_FLUX_CORES", "4")
    monkeypatch.setenv("FAKE_FLUX_KILL_TIMEOUT", "1")
    monkeypatch.delenv("FLUX_URI", raising=False)
    path = tmp_path / "cache"
    yield path
    if path.exists():
        terminate_tasks_in_cache(path, backend="flux")
    subprocess.run(["flux", "cancel", "--all", "--quiet"], capture_output=True, check=False)



def flux_status(job_id: str) -> str:
    out = subprocess.run(["flux", "jobs", "-n", "-o", "{status}", job_id],
                         capture_output=True, text=True)
    return out.stdout.strip()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# ---------------------------------------------------------------- pure parts
def test_states_and_texts_as_flux_prints_them() -> None:
    """C (cleanup) is not final; an alloc exception is a refused request; the two
    "unknown id" texts; afterok refusals; the default output file name."""
    assert flux_mod.status("CLEANUP").active and flux_mod.status("RUN").active
    assert not flux_mod.status("CANCELED").active and not flux_mod.status("TIMEOUT").active
    alloc = flux_mod.status("FAILED", "alloc: unsatisfiable request: need 64 slot(s)")
    assert flux_mod.unsatisfiable(alloc)
    assert not flux_mod.unsatisfiable(flux_mod.status("FAILED", "exec: exit 1"))
    assert not flux_mod.unsatisfiable(flux_mod.status("SCHED", "alloc: nothing yet"))
    assert flux_mod.status_error(1, "JobID 123 unknown\nJobID \u0192abc unknown\n") == "empty"
    assert flux_mod.status_error(1, "flux-jobs: ERROR: Unable to connect to Flux") == "error"
    assert flux_mod.dependency_refused(
        "flux batch failed (exit 1): flux-batch: ERROR: dependency: afterok: job "
        "\u0192abc failed or was canceled")
    assert flux_mod.dependency_refused("dependency: afterok: id 12: job not found")
    assert not flux_mod.dependency_refused("'debug' is not a valid queue")
    (log,) = flux_mod.default_log_files("16777216000", "/w")
    assert log == f"/w/flux-{flux_mod.f58_encode(16777216000)}.out" and "\u0192" in log
    assert flux_mod.current_job_id({"FLUX_ENCLOSING_ID": "\u0192Xvt1zF"}) == str(
        flux_mod.f58_decode("\u0192Xvt1zF"))
    assert flux_mod.current_job_id({"FLUX_JOB_ID": "fXvt1zF"}) == str(
        flux_mod.f58_decode("\u0192Xvt1zF"))  # F58 as printed under LANG=C
    assert flux_mod.current_job_id({}) is None
    assert flux_mod.launcher({"cores": 2, "pmi_mode": "pmix"}) == [
        "flux", "run", "-n", "2", "-o", "pmi=pmix"]


# ---------------------------------------------------------------- states and timing
def test_a_result_wins_over_the_state_that_follows_it(cache: Path) -> None:
    """A job stays R for about 1 s after its result file appears; cancelling it in
    that window ends it CA (through C).  The call finished: its future gets the
    value, never a TaskDiedError, and xcache shows it done."""
    with FluxClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(sleep_then, 7, 0.5)
        result = entry_path(cache, fut.key)
        wait_for(result.exists, 30, "the result file")
        jid = job_of(cache, fut.key)["job_id"]
        assert flux_status(jid) == "RUN"  # still R with its result written
        subprocess.run(["flux", "cancel", jid], check=True)
        assert fut.result(timeout=20) == 7
        wait_for(lambda: flux_status(jid) == "CANCELED", 10, "CA")
    (row,) = list_cache(cache)
    assert row["status"] == "done"


def test_a_cancelled_job_passes_cleanup_before_it_is_called_dead(cache: Path) -> None:
    """C (cleanup) for ~0.5 s before CA: the future fails with flux's final state."""
    with FluxClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(sleep_then, 1, 60)
        wait_for(fut.running, 20, "the job to start")
        jid = job_of(cache, fut.key)["job_id"]
        subprocess.run(["flux", "cancel", jid], check=True)
        exc = fut.exception(timeout=20)
    assert isinstance(exc, TaskDiedError) and "CANCELED" in str(exc), repr(exc)
    assert "CLEANUP" not in str(exc)


# ---------------------------------------------------------------- ids and logs
def test_a_dead_jobs_log_is_found_by_the_name_flux_writes(cache: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A site template that names no output file: flux writes ``flux-ƒ<id>.out`` in
    the submission directory (with ``ƒ`` even under LANG=C); the death message
    carries the tail of that file."""
    config = tmp_path / "pysqa"
    config.mkdir()
    template = (REPO / "scheduler_templates" / "flux.sh").read_text()
    lines = [ln for ln in template.splitlines()
             if "--output" not in ln and "--error" not in ln]
    (config / "flux.sh").write_text("\n".join(lines) + "\n")
    (config / "flux.yaml").write_text((REPO / "scheduler_templates" / "flux.yaml").read_text())
    monkeypatch.setenv("LANG", "C")
    monkeypatch.setenv("LC_ALL", "C")
    with FluxClusterExecutor(cache_directory=cache, pysqa_config_directory=config) as exe:
        fut = exe.submit(sleep_then, 1, 60)
        wait_for(fut.running, 20, "the job to start")
        jid = job_of(cache, fut.key)["job_id"]
        assert str(jid).isdigit()
        subprocess.run(["flux", "cancel", jid], check=True)
        exc = fut.exception(timeout=20)
    log = job_dir(cache, fut.key) / f"flux-{flux_mod.f58_encode(int(jid))}.out"
    assert log.exists(), sorted(p.name for p in (cache / fut.key).iterdir())
    assert isinstance(exc, TaskDiedError) and str(log) in str(exc), repr(exc)


# ---------------------------------------------------------------- named queues
def test_named_queues(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With queues configured, ``flux jobs``' default listing gains a QUEUE column
    that breaks pysqa's parser; status here asks for explicit fields and works.
    ``resource_dict={"queue": ...}`` reaches ``--queue``; an unknown queue is
    refused with flux's own text."""
    monkeypatch.setenv("FAKE_FLUX_QUEUES", "batch,debug")
    with FluxClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(sleep_then, 3, 0.3, resource_dict={"queue": "debug"})
        assert fut.result(timeout=30) == 3
        bad = exe.submit(add, 1, 1, resource_dict={"queue": "nope"})
        exc = bad.exception(timeout=20)
        assert exe._backend.calls["status"] >= 1
    jid = job_of(cache, fut.key)["job_id"]
    queue = subprocess.run(["flux", "jobs", "-n", "-o", "{queue}", jid], capture_output=True,
                           text=True).stdout.strip()
    assert queue == "debug"
    assert "# flux: --queue=debug" in (job_dir(cache, fut.key) / "run_queue.sh").read_text()
    assert isinstance(exc, SubmissionError) and "Invalid queue 'nope'" in str(exc), repr(exc)


# ---------------------------------------------------------------- dependencies
def test_afterok_on_an_upstream_that_already_failed_is_not_a_submission_error(
        cache: Path) -> None:
    """flux refuses ``afterok`` on a job that already failed or was cancelled.  The
    driver only queues afterok on unfinished upstreams, so this is a race (the
    upstream fails between the look and the submission): the submission is retried
    once the upstream's future resolves -- the poller then fails the dependent with
    UpstreamFailedError -- instead of failing it as a refused job."""
    store = Store(cache)
    backend = ClusterBackend(store, flux_mod)
    script = cache.parent / "fail.sh"
    script.write_text("#!/bin/sh\nexit 1\n")
    upfail = subprocess.run(["flux", "batch", "-n1", str(script)], capture_output=True, text=True,
                            check=True, cwd=cache.parent)
    up_id = flux_mod.parse_job_id(upfail.stdout)
    wait_for(lambda: flux_status(up_id) == "FAILED", 15, "the upstream to fail")
    up = CacheFuture("up-v1-00")
    task = Task("down-v1-00", [CacheFuture("down-v1-00")], b"", Resources({"cores": 1}),
                {"up-v1-00": up})
    store.write_claim(task.key, {"backend": "flux", "job_id": None})
    backend.dispatch(task, [up_id])  # refused by flux: deferred, not raised
    assert task.job_id is None and task.job.retry_at is not None
    up.set_running_or_notify_cancel()
    up.set_exception(KeyError("upstream"))
    task.job.retry_at = 0.0
    backend._next_retry = 0.0
    assert backend.retry_pass({task.key: task}, time.monotonic(), set()) == []
    assert task.job_id is None  # nothing submitted for a dependent of a failed upstream


def test_a_dependency_that_fails_later_fails_the_dependent_with_upstream_error(
        cache: Path) -> None:
    from executorlib_cache.errors import UpstreamFailedError

    with FluxClusterExecutor(cache_directory=cache) as exe:
        up = exe.submit(fail_after, "k", 1.0)
        down = exe.submit(add, up, 1)
        wait_for(lambda: job_of(cache, down.key).get("job_id"), 15, "the dependent's job")
        jid = job_of(cache, down.key)["job_id"]
        exc = down.exception(timeout=30)
    assert isinstance(exc, UpstreamFailedError) and exc.upstream_key == up.key, repr(exc)
    assert "KeyError" in str(exc)
    wait_for(lambda: flux_status(jid) in ("FAILED", "CANCELED"), 15, "the dependent to end")


# ---------------------------------------------------------------- batch environment
def test_a_call_can_use_flux_inside_its_own_job(cache: Path, tmp_path: Path) -> None:
    """FLUX_URI in a batch job is the job's own sub-instance (FACTS.md): a
    FluxClusterExecutor inside a call submits there, inside the call's allocation,
    and the outer instance never sees those jobs."""
    inner_cache = tmp_path / "inner-cache"
    with FluxClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(nested, str(inner_cache), 5, resource_dict={"cores": 1})
        out = fut.result(timeout=80)
    outer_ids = subprocess.run(["flux", "jobs", "-a", "-n", "-o", "{id.dec}"],
                               capture_output=True, text=True).stdout.split()
    assert out["value"] == 105
    assert out["enclosing"] and out["uri"] and out["uri"] != os.environ.get("FLUX_URI")
    assert out["inner_jobs"] and not set(out["inner_jobs"]) & set(outer_ids)
    (row,) = list_cache(cache)
    assert row["job_id"] == job_of(cache, fut.key)["job_id"]  # the runner found its id


# ---------------------------------------------------------------- pmix
def test_pmi_mode_reaches_flux_run(cache: Path) -> None:
    """``pmi_mode="pmix"`` (OpenMPI 5 under flux needs flux-pmix) reaches
    ``flux run -o pmi=pmix`` for cores > 1; executor-wide or per call."""
    with FluxClusterExecutor(cache_directory=cache, pmi_mode="pmix") as exe:
        fut = exe.submit(mpi_rank, 3, resource_dict={"cores": 2})
        assert fut.result(timeout=60) == [(0, 2, 3), (1, 2, 3)]
    script = (job_dir(cache, fut.key) / "run_queue.sh").read_text()
    assert "flux run -n 2 -o pmi=pmix" in script


def test_flux_not_reachable_is_a_clear_error(cache: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """No FLUX_URI and no system instance: submissions fail with flux's text."""
    monkeypatch.delenv("FAKE_FLUX_STATE")
    with FluxClusterExecutor(cache_directory=cache) as exe:
        exc = exe.submit(add, 1, 2).exception(timeout=30)
    assert isinstance(exc, SubmissionError) and "connect" in str(exc).lower(), repr(exc)


# ---------------------------------------------------------------- flux inside SLURM
@pytest.mark.skipif(not SLURM_WANTED, reason="SLURM tests are off: run `sudo bash "
                    "scripts/test.sh` (starts a local SLURM), or set XCACHE_TEST_SLURM=1")
@pytest.mark.timeout(180)
def test_the_flux_in_slurm_example_runs_under_slurm(tmp_path: Path) -> None:
    """``examples/flux_in_slurm.sh`` as a user submits it: ``srun ... flux start``
    inside a real SLURM job (the fake flux stands in for flux-core), the driver finds
    its instance through FLUX_URI alone (no system instance is configured), and the
    calls run as flux jobs in it.  The example is run as written, on one node (the
    test cluster's size) and with 6 calls instead of 100."""
    if shutil.which("sbatch") is None:
        pytest.fail("SLURM tests are enabled but sbatch is missing")
    text = (REPO / "examples" / "flux_in_slurm.sh").read_text()
    assert "range(100)" in text and "flux start" in text
    script = tmp_path / "flux_in_slurm.sh"
    script.write_text(text.replace("range(100)", "range(6)"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FAKE_FLUX_", "FLUX_", "SLURM_"))}
    env["PATH"] = f"{FAKES}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join([str(FAKES / "pyflux"), str(REPO)])
    out = tmp_path / "job.out"
    proc = subprocess.run(["sbatch", "--wait", "--nodes=1", "--ntasks-per-node=1",
                           "--time=5", "-o", str(out), "-D", str(tmp_path), str(script)],
                          env=env, capture_output=True, text=True, timeout=170)
    log = out.read_text() if out.exists() else ""
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n--- job output ---\n{log}"
    assert "free" in log and "NCORES" in log  # `flux resource list` in the job
    assert log.strip().splitlines()[-1] == str(sum(i * i for i in range(6))), log
    rows = list_cache(tmp_path / "cache")
    assert len(rows) == 6 and {r["backend"] for r in rows} == {"flux"}
    assert all(str(r["job_id"]).isdigit() for r in rows), rows
