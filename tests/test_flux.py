"""FluxClusterExecutor against the fake ``flux`` command (tests/fakes/flux).

flux-core cannot be installed on the CI machines; the fake implements what
pysqa's FLUX mode and our backend run (``flux batch``, ``flux jobs``, ``flux
cancel``, ``flux run``) with flux's formats and really runs the jobs.  The
flux code path shares everything but the pure functions of
``backends/flux.py`` with SLURM, so these tests are about flux's
differences: F58 ids, ``flux jobs`` states, cancel semantics, the
dependency exception, what flux cannot honour (``memory_max``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from conftest import job_dir, job_of, outcome_meta, require

require("pysqa")

from executorlib_cache.catalog import list_cache, terminate_tasks_in_cache  # noqa: E402
from executorlib_cache.cluster_executor import FluxClusterExecutor  # noqa: E402
from executorlib_cache.errors import (  # noqa: E402
    SubmissionError,
    TaskDiedError,
    UpstreamFailedError,
)
from executorlib_cache.schedulers import flux as flux_mod  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAKES = REPO / "tests" / "fakes"
try:  # the real bindings, if a machine has flux-core
    import flux.job  # noqa: F401
except ImportError:  # pysqa's FLUX mode needs flux.job.JobID: use the stand-in
    sys.path.insert(0, str(FAKES / "pyflux"))

pytestmark = pytest.mark.timeout(60)
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


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fake flux first on PATH with its own state; no job outlives the test."""
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_FLUX_STATE", str(tmp_path / "flux-state"))
    monkeypatch.setenv("FAKE_FLUX_CORES", "4")
    monkeypatch.setenv("FAKE_FLUX_KILL_TIMEOUT", "1")
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


def test_submit_results_and_dependency_queued_with_afterok(cache: Path) -> None:
    with FluxClusterExecutor(cache_directory=cache) as exe:
        a = exe.submit(sleep_then, 2, 0.5)
        b = exe.submit(add, a, 3)
        wait_for(lambda: job_of(cache, b.key).get("job_id"), 10, "the dependent's job id")
        assert not a.done()  # queued before its upstream finished
        assert b.result(timeout=30) == 5
        calls = dict(exe._backend.calls)
    ja, jb = job_of(cache, a.key), job_of(cache, b.key)
    assert jb["dependencies"] == [ja["job_id"]]
    assert ja["job_id_f58"] == flux_mod.f58_encode(int(ja["job_id"]))
    script = (job_dir(cache, b.key) / "run_queue.sh").read_text()
    assert f"# flux: --dependency=afterok:{ja['job_id']}" in script
    assert calls["submit"] == 2 and calls["status"] >= 1
    # cache hits: no flux call at all
    with FluxClusterExecutor(cache_directory=cache) as exe:
        assert exe.submit(add, exe.submit(sleep_then, 2, 0.5), 3).result(timeout=5) == 5
        assert exe._backend.calls == {"submit": 0, "status": 0, "cancel": 0, "lookup": 0}


def test_mpi_task_through_flux_run(cache: Path) -> None:
    with FluxClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(mpi_rank, 3, resource_dict={"cores": 2})
        assert fut.result(timeout=60) == [(0, 2, 3), (1, 2, 3)]
    script = (job_dir(cache, fut.key) / "run_queue.sh").read_text()
    assert "# flux: -n 2" in script and "flux run -n 2" in script


def test_function_error_and_upstream_failure(cache: Path) -> None:
    with FluxClusterExecutor(cache_directory=cache) as exe:
        up = exe.submit(fail_after, "k", 0.5)
        down = exe.submit(add, up, 1)
        with pytest.raises(KeyError, match="missing k"):
            up.result(timeout=30)
        exc = down.exception(timeout=5)
    assert isinstance(exc, UpstreamFailedError) and exc.upstream_key == up.key, repr(exc)


def test_flux_cancel_of_a_running_job_fails_its_future(cache: Path) -> None:
    with FluxClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(sleep_then, 1, 60)
        wait_for(fut.running, 20, "the job to start")
        jid = job_of(cache, fut.key)["job_id"]
        t0 = time.monotonic()
        subprocess.run(["flux", "cancel", jid], check=True)
        exc = fut.exception(timeout=15)
        latency = time.monotonic() - t0
    assert isinstance(exc, TaskDiedError), repr(exc)
    assert "CANCELED" in str(exc) and jid in str(exc)
    assert latency < 5.0


def test_future_cancel_withdraws_a_queued_job(cache: Path) -> None:
    exe = FluxClusterExecutor(cache_directory=cache)
    blocker = exe.submit(sleep_then, 1, 30)
    dep = exe.submit(add, blocker, 1)
    wait_for(lambda: job_of(cache, dep.key).get("job_id"), 10, "the dependent's job id")
    jid = job_of(cache, dep.key)["job_id"]
    assert dep.cancel()
    wait_for(lambda: flux_status(jid) == "CANCELED", 10, "flux cancel of the queued job")
    assert terminate_tasks_in_cache(cache, backend="flux") == [job_of(cache, blocker.key)
                                                               ["job_id"]]
    assert isinstance(blocker.exception(timeout=15), TaskDiedError)
    exe.shutdown()


def test_what_flux_cannot_do_is_refused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys flux cannot honour are refused at submit(); an impossible request (more
    cores than the instance has, GPUs on a node without) is accepted by flux and
    failed at once with ``exception type=alloc "unsatisfiable request ..."``
    (FACTS.md): the future fails within seconds with flux's own text as a
    SubmissionError -- the request was never runnable -- not as a dead job."""
    with FluxClusterExecutor(cache_directory=cache) as exe:
        with pytest.raises(ValueError, match="memory_max"):
            exe.submit(add, 1, 2, resource_dict={"memory_max": 2})
        with pytest.raises(ValueError, match="slurm_cmd_args"):
            exe.submit(add, 1, 2, resource_dict={"slurm_cmd_args": ["--qos=high"]})
        t0 = time.monotonic()
        cores = exe.submit(add, 1, 2, resource_dict={"cores": 64})  # more than the node has
        gpus = exe.submit(add, 1, 3, resource_dict={"gpus_per_core": 1})  # no GPU there
        excs = [cores.exception(timeout=20), gpus.exception(timeout=20)]
        latency = time.monotonic() - t0
    for exc in excs:
        assert isinstance(exc, SubmissionError) and not isinstance(exc, TaskDiedError), repr(exc)
        assert "unsatisfiable request" in str(exc) and "alloc" in str(exc), repr(exc)
    assert latency < 10, latency
    assert list_cache(cache)[0]["reason"] == "submit"


def test_flux_jobs_with_unknown_ids_is_read_as_flux_prints_it(cache: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """``flux jobs ID...`` prints the known rows (exit 0) and ``JobID <id> unknown``
    on stderr for each purged id; with none known it exits 1 (FACTS.md).  Both
    read as "these ids are unknown", never as a scheduler failure."""
    from executorlib_cache.schedulers.commands import query_states

    with FluxClusterExecutor(cache_directory=cache) as exe:
        fut = exe.submit(add, 1, 2)
        assert fut.result(timeout=30) == 3
    jid = job_of(cache, fut.key)["job_id"]
    wait_for(lambda: flux_status(jid) == "COMPLETED", 10, "the job to leave R")
    proc = subprocess.run(["flux", "jobs", "-n", jid, "123456789"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "JobID 123456789 unknown" in proc.stderr
    assert query_states(flux_mod, [jid, "123456789"]) == {jid: flux_mod.status("COMPLETED")}
    proc = subprocess.run(["flux", "jobs", "-n", "123456789"], capture_output=True, text=True)
    assert proc.returncode == 1 and "JobID 123456789 unknown" in proc.stderr
    assert query_states(flux_mod, ["123456789", "987654321"]) == {}
    assert flux_mod.status_error(1, proc.stderr) == "empty"


def test_secret_reaches_the_jobs(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit ``secret=`` is handed to the job (XCACHE_SECRET in the submit
    environment): the runner checks the task's signature and signs the result,
    which this driver would otherwise refuse as tampered."""
    monkeypatch.delenv("XCACHE_SECRET", raising=False)
    monkeypatch.delenv("XCACHE_SECRET_FILE", raising=False)
    with FluxClusterExecutor(cache_directory=cache, secret="s3cret") as exe:
        assert exe.submit(add, 20, 22).result(timeout=30) == 42


@pytest.mark.parametrize("max_workers", [None, 2], ids=["one-job-per-call", "pool-workers"])
def test_job_ids_are_recorded_in_one_form(cache: Path, max_workers: int | None) -> None:
    """Regression (issue 11/13): the runner recorded flux's F58 id and the claim the
    decimal one, so one cache showed both (and packed calls showed none).  Every
    record and listing now holds the decimal id, which every flux command accepts."""
    from executorlib_cache import list_cache

    with FluxClusterExecutor(cache_directory=cache, max_workers=max_workers) as exe:
        futs = [exe.submit(add, i, 1) for i in range(3)]
        assert [f.result(timeout=60) for f in futs] == [1, 2, 3]
    rows = {r["key"]: r for r in list_cache(cache)}
    for f in futs:
        shown = rows[f.key]["job_id"]
        assert shown is not None and str(shown).isdigit(), rows[f.key]
        outcome = outcome_meta(cache, f.key)
        assert str(outcome.get("job_id")) == str(shown), outcome
        if max_workers is None:
            assert str(job_of(cache, f.key)["job_id"]) == str(shown)
