"""Tests of the fake ``flux`` command (tests/fakes/flux) through pysqa's FLUX mode.

The flux backend is tested against the fake because flux-core cannot be
installed on the CI machines; these tests pin down that the fake behaves like
flux where pysqa and the backend look: submit output, ``flux jobs`` states,
cancel, dependencies, time limits and resources.  They also exercise the
project's flux template (scheduler_templates/flux.sh, loaded from flux.yaml).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require, skip_unless_ci

pysqa = require("pysqa")

REPO = Path(__file__).resolve().parents[1]
FAKES = REPO / "tests" / "fakes"
TEMPLATES = REPO / "scheduler_templates"

try:  # the real bindings, if a machine has flux-core
    import flux.job  # noqa: F401
except ImportError:  # pysqa's FLUX mode needs flux.job.JobID: use the stand-in
    sys.path.insert(0, str(FAKES / "pyflux"))

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def fake_flux(tmp_path, monkeypatch):
    """Fake flux first on PATH, with its own state dir and a short kill timeout."""
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_FLUX_STATE", str(tmp_path / "flux-state"))
    monkeypatch.setenv("FAKE_FLUX_CORES", "4")
    monkeypatch.setenv("FAKE_FLUX_KILL_TIMEOUT", "1")
    yield tmp_path
    # leave no job behind, whatever the test did
    subprocess.run(["flux", "cancel", "--all", "--quiet"], capture_output=True, check=False)


@pytest.fixture
def qa(fake_flux):
    """pysqa adapter configured from the project's flux.yaml + flux.sh."""
    from pysqa.base.config import read_config
    from pysqa.queueadapter import set_queue_adapter

    return set_queue_adapter(
        config=read_config(file_name=str(TEMPLATES / "flux.yaml")), directory=str(TEMPLATES)
    )


def wait_status(qa, jobid, wanted, timeout=30.0):
    """Poll pysqa until the job's status is in `wanted`; return the statuses seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = qa.get_status_of_jobs(process_id_lst=[jobid])[0]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in wanted:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"job {jobid}: wanted {wanted}, saw {seen}")


def raw_status(jobid) -> str:
    out = subprocess.run(
        ["flux", "jobs", "-n", "-o", "{status_abbrev} {returncode} {exception.type}", str(jobid)],
        capture_output=True, text=True, check=True,
    ).stdout
    return out.strip()


def submit(qa, workdir, command, **kwargs):
    kwargs.setdefault("cores", 1)
    kwargs.setdefault("job_name", "t")
    return qa.submit_job(working_directory=str(workdir), command=command, **kwargs)


def test_submit_prints_f58_id_and_job_runs_with_flux_env(qa, fake_flux):
    work = fake_flux / "w1"
    jobid = submit(qa, work, 'echo "id=$FLUX_JOB_ID size=$FLUX_JOB_SIZE"; echo oops >&2',
                   cores=2, stdout_path="out.txt", stderr_path="err.txt")
    assert isinstance(jobid, int) and jobid > 0
    assert wait_status(qa, jobid, {"finished"})[-1] == "finished"
    from flux.job import JobID

    assert (work / "out.txt").read_text() == f"id={JobID(jobid).f58} size=2\n"
    assert (work / "err.txt").read_text() == "oops\n"
    assert raw_status(jobid) == "CD 0"
    # pysqa's parse of `flux jobs -a --no-header`: the id and the mapped status
    df = qa.get_queue_status()
    assert list(df["jobid"]) == [jobid] and list(df["status"]) == ["finished"]


def test_batch_output_default_and_directive_override(fake_flux, monkeypatch):
    work = fake_flux / "w2"
    work.mkdir()
    script = work / "job.sh"
    script.write_text("#!/bin/bash\n# flux: -n 2\n# flux: --job-name=from-directive\necho hi\n")
    out = subprocess.run(["flux", "batch", "-n", "1", str(script)], cwd=work,
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("\u0192") and out.endswith("\n") and len(out.split()) == 1
    monkeypatch.setenv("FLUX_F58_FORCE_ASCII", "1")
    jobid = out.strip()
    for _ in range(200):
        if raw_status(jobid).startswith("CD"):
            break
        time.sleep(0.05)
    fields = subprocess.run(["flux", "jobs", "-n", "-o", "{id.f58} {name} {ntasks}", jobid],
                            capture_output=True, text=True, check=True).stdout.split()
    assert fields == ["f" + jobid[1:], "from-directive", "1"]  # the command line wins
    assert (work / f"flux-{jobid}.out").read_text() == "hi\n"


def test_status_pending_running_finished_and_failed(qa, fake_flux):
    hog = submit(qa, fake_flux / "hog", "sleep 2", cores=4)  # all 4 fake cores
    wait_status(qa, hog, {"running"})
    queued = submit(qa, fake_flux / "queued", "sleep 1; exit 3", cores=1)
    assert qa.get_status_of_jobs(process_id_lst=[queued]) == ["pending"]  # S: waits for cores
    assert raw_status(queued).startswith("S")
    seen = wait_status(qa, queued, {"F", "finished"})
    # pysqa leaves flux's F (failed) unmapped
    assert seen[-1] == "F" and "running" in seen
    assert raw_status(queued) == "F 3"
    assert raw_status(hog) == "CD 0"


def test_cancel_kills_the_process_group(qa, fake_flux):
    work = fake_flux / "cancel"
    pidfile = work / "child.pid"
    jobid = submit(qa, work, f"sleep 300 & echo $! > {pidfile}; wait")
    wait_status(qa, jobid, {"running"})
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.05)
    child = int(pidfile.read_text())
    qa.delete_job(process_id=jobid)
    seen = wait_status(qa, jobid, {"error"}, timeout=10)  # CA maps to "error"
    assert seen[-1] == "error"
    assert raw_status(jobid).split()[::2] == ["CA", "cancel"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child), "background child of a canceled job survived"


def test_cancel_pending_and_inactive(qa, fake_flux):
    blocker = submit(qa, fake_flux / "b", "sleep 30")
    dependent = submit(qa, fake_flux / "d", "echo never > ran.txt", dependency_list=[blocker])
    assert qa.get_status_of_jobs(process_id_lst=[dependent]) == ["pending"]  # D
    assert raw_status(dependent).startswith("D")
    qa.delete_job(process_id=dependent)
    wait_status(qa, dependent, {"error"}, timeout=10)
    assert raw_status(dependent) == "CA -128 cancel"
    assert not (fake_flux / "d" / "ran.txt").exists()
    # like flux, cancelling an inactive job is an error (exit 1, message on stderr)
    res = subprocess.run(["flux", "cancel", str(dependent)], capture_output=True, text=True)
    assert res.returncode == 1 and "job is inactive" in res.stderr
    res = subprocess.run(["flux", "cancel", "12345"], capture_output=True, text=True)
    assert res.returncode == 1 and "unknown job id" in res.stderr
    qa.delete_job(process_id=blocker)


def test_dependency_afterok_runs_in_order(qa, fake_flux):
    work = fake_flux / "dep"
    first = submit(qa, work, "sleep 1; echo first >> order.txt")
    second = submit(qa, work, "echo second >> order.txt", dependency_list=[first])
    third = submit(qa, work, "echo third >> order.txt", dependency_list=[first, second])
    wait_status(qa, third, {"finished"}, timeout=20)
    assert (work / "order.txt").read_text().split() == ["first", "second", "third"]


def test_dependency_on_failed_job_fails_dependent_without_running(qa, fake_flux):
    work = fake_flux / "depfail"
    bad = submit(qa, work, "exit 1")
    after = submit(qa, work, "echo ran > ran.txt", dependency_list=[bad])
    wait_status(qa, after, {"F"}, timeout=20)
    assert raw_status(after) == "F  dependency"  # fatal exception, never ran: no return code
    assert not (work / "ran.txt").exists()


def test_unknown_dependency_and_unsatisfiable_request_are_refused(qa, fake_flux):
    work = fake_flux / "refused"
    assert submit(qa, work, "true", dependency_list=[424242]) is None
    assert "not found" in (work / "pysqa.err").read_text()
    (work / "pysqa.err").unlink()
    assert submit(qa, work, "true", cores=64) is None  # more than FAKE_FLUX_CORES
    assert "unsatisfiable request" in (work / "pysqa.err").read_text()


def test_time_limit_kills_job_as_timeout(qa, fake_flux):
    work = fake_flux / "tl"
    t0 = time.monotonic()
    jobid = submit(qa, work, "trap '' TERM; sleep 60", run_time_max=1)  # ignores SIGTERM
    seen = wait_status(qa, jobid, {"TO"}, timeout=15)
    elapsed = time.monotonic() - t0
    assert seen[-1] == "TO" and raw_status(jobid).split()[::2] == ["TO", "timeout"]
    # 1 s limit + 1 s kill timeout (SIGKILL after the ignored SIGTERM) + polling
    assert 1.0 <= elapsed < 6.0, elapsed


def test_leftover_processes_are_killed_when_the_script_ends(qa, fake_flux):
    work = fake_flux / "leftover"
    pidfile = work / "bg.pid"
    jobid = submit(qa, work, f"sleep 300 & echo $! > {pidfile}")
    wait_status(qa, jobid, {"finished"})
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def test_default_pysqa_flux_template_works_too(fake_flux):
    from pysqa import QueueAdapter

    qa = QueueAdapter(queue_type="flux")
    work = fake_flux / "default"
    jobid = qa.submit_job(working_directory=str(work), command="echo $CORES", cores=3,
                          job_name="dflt")
    wait_status(qa, jobid, {"finished"})
    assert (work / "time.out").read_text() == "3\n"  # pysqa's template: --output=time.out


def test_flux_template_renders_all_resource_options():
    from jinja2 import Template

    text = Template((TEMPLATES / "flux.sh").read_text()).render(
        job_name="j", working_directory="/w", cores=2, threads_per_core=3, gpus_per_core=1,
        run_time_max=90.5, dependency_list=[11, 12], exclusive=True, partition="pdebug",
        stdout_path="o.txt", stderr_path="e.txt", flux_cmd_args=["--urgency=5"],
        command="flux run -n 2 python -m x",
    )
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert lines[1:-2] == [
        "# flux: --job-name=j", "# flux: -n 2", "# flux: -c 3", "# flux: -g 1",
        "# flux: -N 1", "# flux: --exclusive", "# flux: -t 91s", "# flux: --queue=pdebug",
        "# flux: --dependency=afterok:11", "# flux: --dependency=afterok:12",
        "# flux: --output=o.txt", "# flux: --error=e.txt", "# flux: --urgency=5",
    ]
    assert lines[-1] == "flux run -n 2 python -m x"


def test_flux_run_starts_mpi_ranks(qa, fake_flux):
    if shutil.which("mpiexec") is None:
        skip_unless_ci("needs mpiexec (pip install mpich)")
    require("mpi4py")
    work = fake_flux / "mpi"
    # one file per rank: mpiexec may interleave the ranks' stdout ("22\n\n")
    code = ("from mpi4py import MPI; c = MPI.COMM_WORLD; "
            "open(f'rank{c.Get_rank()}.txt', 'w').write(str(c.Get_size()))")
    jobid = submit(qa, work, f'flux run -n 2 {sys.executable} -c "{code}"', cores=2,
                   stdout_path="out.txt")
    wait_status(qa, jobid, {"finished", "F"}, timeout=60)
    assert raw_status(jobid) == "CD 0", (work / "out.txt").read_text()
    assert [(work / f"rank{r}.txt").read_text() for r in (0, 1)] == ["2", "2"]


def test_resource_list(fake_flux):
    out = subprocess.run(["flux", "resource", "list"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0].split() == ["STATE", "NNODES", "NCORES", "NGPUS", "NODELIST"]
    assert out[1].split()[:4] == ["free", "1", "4", "0"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False
