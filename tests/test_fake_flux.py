"""Tests of the fake ``flux`` command (tests/fakes/flux), fact by fact.

flux-core cannot be installed on the CI machines, so the flux backend is tested
against a fake.  A real flux-core 0.88 was observed and its behaviour recorded
in /work/shared/flux/FACTS.md; each test below names the fact (FACTS.md) it pins
down and drives the fake directly, through its command line or through pysqa's
FLUX mode as the package does.  The last tests show pysqa 1.1.1's own quirks
happening against the fake, because the package must not rely on them.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAKES = REPO / "tests" / "fakes"
TEMPLATES = REPO / "scheduler_templates"
VENV_BIN = Path(sys.executable).parent  # the venv's python3, mpiexec (mpich wheel)

try:  # the real bindings, if a machine has flux-core
    import flux.job  # noqa: F401
except ImportError:  # pysqa's FLUX mode needs flux.job.JobID: use the stand-in
    sys.path.insert(0, str(FAKES / "pyflux"))

pytestmark = pytest.mark.timeout(90)

KNOBS = ("FLUX_URI", "FAKE_FLUX_QUEUES", "FAKE_FLUX_FEASIBILITY", "FAKE_FLUX_PURGE_AGE",
         "FAKE_FLUX_PURGE_NUM", "FAKE_FLUX_EXIT_LINGER", "FAKE_FLUX_CLEANUP",
         "FAKE_FLUX_KILL_CLEANUP", "FAKE_FLUX_START_DELAY", "FAKE_FLUX_SHUTDOWN_DELAY",
         "FAKE_FLUX_NODES", "FAKE_FLUX_GPUS", "FLUX_F58_FORCE_ASCII", "LC_ALL", "LC_CTYPE",
         "FLUX_JOB_ID", "PMI_SIZE", "PMI_RANK", "PMI_FD")


@pytest.fixture
def fake_flux(tmp_path, monkeypatch):
    """Fake flux first on PATH (then the venv: python3, mpiexec), its own system
    instance (FAKE_FLUX_STATE), 4 cores, a short kill timeout, a UTF-8 locale;
    the observed delays keep their defaults."""
    monkeypatch.setenv("PATH", os.pathsep.join([str(FAKES), str(VENV_BIN), os.environ["PATH"]]))
    monkeypatch.setenv("FAKE_FLUX_STATE", str(tmp_path / "flux-state"))
    monkeypatch.setenv("FAKE_FLUX_CORES", "4")
    monkeypatch.setenv("FAKE_FLUX_KILL_TIMEOUT", "1")
    monkeypatch.setenv("LANG", "C.UTF-8")
    for name in KNOBS:
        monkeypatch.delenv(name, raising=False)
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


# ----------------------------------------------------------------- helpers
def flux(*args, env=None, cwd=None, timeout=60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["flux", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def env_with(**changes) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def batch(work: Path, body: str, *opts, env=None, name="job.sh") -> str:
    """`flux batch OPTS SCRIPT` from `work`; returns the printed id."""
    work.mkdir(parents=True, exist_ok=True)
    script = work / name
    script.write_text("#!/bin/bash\n" + body + "\n")
    res = flux("batch", *opts, script, cwd=work, env=env)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 1
    return res.stdout.strip()


def field(jobid, fmt: str, env=None) -> str:
    res = flux("jobs", "-n", "-o", fmt, jobid, env=env)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def wait_state(jobid, wanted: set[str], timeout=30.0, env=None) -> list[str]:
    """Poll `flux jobs -o {status_abbrev}` until it is in `wanted`; the states seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = field(jobid, "{status_abbrev}", env=env)
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in wanted:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"job {jobid}: wanted {wanted}, saw {seen}")


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


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


def submit(qa, workdir, command, **kwargs):
    kwargs.setdefault("cores", 1)
    kwargs.setdefault("job_name", "t")
    return qa.submit_job(working_directory=str(workdir), command=command, **kwargs)


def times(jobid) -> dict[str, float]:
    keys = ("t_submit", "t_run", "t_cleanup", "t_inactive")
    values = field(jobid, " ".join("{" + k + "}" for k in keys)).split()
    return dict(zip(keys, map(float, values), strict=True))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def to_dec(jobid: str) -> str:
    return flux("job", "id", "--to=dec", jobid).stdout.strip()


# ================================================================= instance and commands
def test_flux_start_runs_cmd_in_a_fresh_instance_and_exits_with_its_status(fake_flux):
    """FACTS.md: `flux start --test-size=1 CMD` runs CMD inside a fresh instance
    (FLUX_URI set for it) and exits with CMD's status; start-up plus shutdown
    takes 1.2-1.8 s."""
    work = fake_flux / "start"
    work.mkdir()
    batch(fake_flux / "outer", "true", "-n1")  # a job in the system instance
    cmd = ("echo $FLUX_URI > uri.txt; flux jobs -a -n | wc -l > njobs.txt; "
           "flux resource list > res.txt; exit 3")
    t0 = time.monotonic()
    res = flux("start", "--test-size=1", "sh", "-c", cmd, cwd=work)
    elapsed = time.monotonic() - t0
    assert res.returncode == 3, res.stderr
    uri = (work / "uri.txt").read_text().strip()
    assert uri.startswith("local://") and str(fake_flux / "flux-state") not in uri
    assert (work / "njobs.txt").read_text().strip() == "0"  # fresh: not the outer job
    assert (work / "res.txt").read_text().splitlines()[1].split()[:4] == ["free", "1", "4", "0"]
    assert 1.2 <= elapsed < 6.0, elapsed  # 0.7 s start + 0.6 s shutdown (+ a loaded machine)
    # the instance is gone afterwards
    gone = flux("jobs", env=env_with(FLUX_URI=uri))
    assert gone.returncode == 1 and "Unable to connect to Flux" in gone.stderr


def test_flux_start_test_size_mocks_nodes(fake_flux):
    """FACTS.md: `--test-size=N` mocks N nodes, each with the same cores."""
    res = flux("start", "--test-size=3", "sh", "-c",
               "flux resource list; flux getattr size; flux run -N 3 -n 3 hostname | wc -l",
               env=env_with(FAKE_FLUX_START_DELAY="0.1", FAKE_FLUX_SHUTDOWN_DELAY="0.1"))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["STATE", "NNODES", "NCORES", "NGPUS", "NODELIST"]
    assert lines[1].split()[:4] == ["free", "3", "12", "0"]
    assert lines[-2:] == ["3", "3"]  # size 3; a 3-node job fits


def test_resource_list_of_the_system_instance(fake_flux, monkeypatch):
    """FACTS.md: `flux resource list` shows `free 1 node, 2 cores, 0 GPUs`."""
    monkeypatch.setenv("FAKE_FLUX_CORES", "2")
    out = flux("resource", "list").stdout.splitlines()
    assert out[0].split() == ["STATE", "NNODES", "NCORES", "NGPUS", "NODELIST"]
    assert out[1].split()[:4] == ["free", "1", "2", "0"]
    assert out[2].split()[:4] == ["allocated", "0", "0", "0"]
    assert flux("resource", "info").stdout.strip() == "1 Nodes, 2 Cores, 0 GPUs"


def _start_detached(work: Path, env=None) -> subprocess.Popen:
    """`flux start` whose CMD records its URI, submits a long job, then sleeps."""
    work.mkdir(parents=True, exist_ok=True)
    cmd = ("echo $FLUX_URI > uri.txt; flux submit sh -c 'echo $$ > job.pid; sleep 300' "
           "> jobid.txt; sleep 300")
    log = open(work / "start.log", "w")
    return subprocess.Popen(["flux", "start", "--test-size=1", "sh", "-c", cmd], cwd=work,
                            stdout=log, stderr=log, env=env)


def test_killing_flux_start_leaves_the_broker_and_flux_shutdown_stops_it(fake_flux):
    """FACTS.md: killing the `flux start` process alone leaves the broker and its
    jobs running; `flux shutdown` stops it."""
    work = fake_flux / "kill-start"
    proc = _start_detached(work)
    wait_for(lambda: (work / "job.pid").exists() and (work / "job.pid").read_text().strip(),
             what="the job in the instance to start")
    uri = (work / "uri.txt").read_text().strip()
    inner = env_with(FLUX_URI=uri)
    jobid = (work / "jobid.txt").read_text().strip()
    job_pid = int((work / "job.pid").read_text())
    proc.kill()
    proc.wait(timeout=10)
    time.sleep(0.5)
    broker = int(flux("getattr", "broker.pid", env=inner).stdout)
    assert _alive(broker) and _alive(job_pid)
    assert field(jobid, "{status_abbrev}", env=inner) == "R"
    res = flux("shutdown", env=inner)
    assert res.returncode == 0, res.stderr
    assert not _alive(broker)
    wait_for(lambda: not _alive(job_pid), 10, "the job's process to die")
    assert "Unable to connect" in flux("jobs", env=inner).stderr


def test_sigterm_to_the_broker_stops_the_instance(fake_flux):
    """FACTS.md: ... (or SIGTERM to the broker, `flux getattr broker.pid`) stops it."""
    work = fake_flux / "term-broker"
    proc = _start_detached(work, env=env_with(FAKE_FLUX_START_DELAY="0.1"))
    wait_for(lambda: (work / "job.pid").exists() and (work / "job.pid").read_text().strip(),
             what="the job in the instance to start")
    inner = env_with(FLUX_URI=(work / "uri.txt").read_text().strip())
    job_pid = int((work / "job.pid").read_text())
    broker = int(flux("getattr", "broker.pid", env=inner).stdout)
    os.kill(broker, signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM  # CMD (sh) killed by SIGTERM
    assert not _alive(job_pid)
    assert flux("jobs", env=inner).returncode == 1


def test_flux_start_does_not_fake_a_pmi_bootstrap(fake_flux):
    """FACTS.md: without --test-size the broker bootstraps from PMI (inside srun it
    would join that job).  Not faked: the fake refuses instead of starting alone."""
    res = flux("start", "true", env=env_with(PMI_SIZE="2", PMI_RANK="0"))
    assert res.returncode == 1 and "PMI" in res.stderr


def test_without_flux_uri_or_system_instance_flux_fails_and_pysqa_raises(fake_flux, monkeypatch):
    """FACTS.md: "Without FLUX_URI, its [pysqa's] status call raises AttributeError
    instead of an error result" - because `flux jobs` cannot connect."""
    monkeypatch.delenv("FAKE_FLUX_STATE")
    monkeypatch.chdir(fake_flux)  # pysqa writes its pysqa.err into the cwd
    res = flux("jobs", "-a")
    assert res.returncode == 1 and "Unable to connect to Flux" in res.stderr
    from pysqa import QueueAdapter

    with pytest.raises(AttributeError):
        QueueAdapter(queue_type="flux").get_status_of_jobs(process_id_lst=[1])
    assert "Unable to connect to Flux" in (fake_flux / "pysqa.err").read_text()


# ================================================================= job ids
def test_ids_are_f58_with_the_hook_under_utf8_and_plain_f_under_lang_c(fake_flux):
    """FACTS.md: ids are printed as F58 `ƒfGNTsD` under a UTF-8 locale and
    `fGNTsD` under LANG=C."""
    work = fake_flux / "ids"
    utf8 = batch(work, "true", "-n1")
    assert re.fullmatch(r"\u0192[1-9A-HJ-NP-Za-km-z]+", utf8)
    plain = {"LANG=C": env_with(LANG="C"), "LC_ALL=C": env_with(LC_ALL="C"),
             "FORCE_ASCII": env_with(FLUX_F58_FORCE_ASCII="1"),
             "no locale": env_with(LANG=None)}
    for label, env in plain.items():
        jid = batch(work, "true", "-n1", env=env)
        assert re.fullmatch(r"f[1-9A-HJ-NP-Za-km-z]+", jid), label
        assert field(jid, "{id}", env=env) == jid, label
        assert field(jid, "{id}") == "\u0192" + jid[1:], label  # same job, UTF-8 caller
    # the stand-in bindings (tests/fakes/pyflux) print ids the same way
    code = "from flux.job import JobID; import sys; print(JobID(sys.argv[1]).f58)"
    pyflux = env_with(PYTHONPATH=str(FAKES / "pyflux"))
    for lang, prefix in (("C.UTF-8", "\u0192"), ("C", "f")):
        res = subprocess.run([sys.executable, "-c", code, utf8], capture_output=True,
                             text=True, env={**pyflux, "LANG": lang}, check=True)
        assert res.stdout.strip() == prefix + utf8[1:], lang


def test_every_command_accepts_decimal_ids(fake_flux):
    """FACTS.md: every command also accepts the decimal id (`flux cancel 12345`,
    `flux jobs 12345`, `afterok:12345`)."""
    work = fake_flux / "dec"
    first = batch(work, "echo first >> order.txt", "-n1")
    dec = to_dec(first)
    assert dec.isdigit() and field(dec, "{id.dec} {id.f58}") == f"{dec} {first}"
    second = batch(work, "echo second >> order.txt", "-n1", f"--dependency=afterok:{dec}")
    wait_state(second, {"CD", "F"})
    assert (work / "order.txt").read_text().split() == ["first", "second"]
    sleeper = batch(work, "sleep 60", "-n1")
    wait_state(sleeper, {"R"})
    assert flux("cancel", to_dec(sleeper)).returncode == 0
    assert wait_state(sleeper, {"CA"})[-1] == "CA"


def test_default_output_file_uses_the_hook_even_under_lang_c(fake_flux):
    """FACTS.md: the default output file is `flux-{{id}}.out` in the submission
    directory, F58 form, with the `ƒ` character even under LANG=C (plain `f` only
    with FLUX_F58_FORCE_ASCII=1 in the job's environment)."""
    work = fake_flux / "outname"
    jid = batch(work, "echo hi", "-n1", env=env_with(LANG="C"))
    assert jid.startswith("f")
    wait_state(jid, {"CD"})
    assert (work / f"flux-\u0192{jid[1:]}.out").read_text() == "hi\n"
    assert not (work / f"flux-{jid}.out").exists()
    ascii_id = batch(work, "echo ascii", "-n1", env=env_with(FLUX_F58_FORCE_ASCII="1"))
    wait_state(ascii_id, {"CD"})
    assert (work / f"flux-{ascii_id}.out").read_text() == "ascii\n"


def test_stdout_and_stderr_are_merged_unless_output_or_error(fake_flux):
    """FACTS.md: stdout and stderr are merged, unordered, unless --output/--error
    are given."""
    work = fake_flux / "merge"
    body = "echo out; echo err >&2"
    merged = batch(work, body, "-n1")
    only_out = batch(work, body, "-n1", "--output=o1.txt")
    both = batch(work, body, "-n1", "--output=o2.txt", "--error=e2.txt")
    for jid in (merged, only_out, both):
        wait_state(jid, {"CD"})
    assert sorted((work / f"flux-{merged}.out").read_text().split()) == ["err", "out"]
    assert sorted((work / "o1.txt").read_text().split()) == ["err", "out"]
    assert (work / "o2.txt").read_text() == "out\n" and (work / "e2.txt").read_text() == "err\n"


def test_output_in_a_missing_directory_fails_the_job(fake_flux):
    """FACTS.md: the directory of an --output path must exist, or the job fails."""
    work = fake_flux / "nodir"
    jid = batch(work, "echo ran > ran.txt", "-n1", "--output=missing/out.txt")
    assert wait_state(jid, {"F", "CD"})[-1] == "F"
    assert field(jid, "{exception.type}") == "exec"
    assert not (work / "ran.txt").exists()


# ================================================================= states and transitions
def test_states_depend_sched_run_cleanup_completed(fake_flux, monkeypatch):
    """FACTS.md: `flux jobs` abbreviations D depend, S sched, R run, C cleanup,
    then CD completed (F, CA, TO in the tests below)."""
    monkeypatch.setenv("FAKE_FLUX_CLEANUP", "1.5")  # make the brief C easy to see
    work = fake_flux / "states"
    hog = batch(work, "sleep 2", "-n4")  # all 4 cores
    wait_state(hog, {"R"})
    queued = batch(work, "true", "-n1")
    dep = batch(work, "true", "-n1", f"--dependency=afterok:{queued}")
    assert field(queued, "{status_abbrev}") == "S"
    assert field(dep, "{status_abbrev} {status}") == "D DEPEND"
    seen = wait_state(dep, {"CD", "F"}, timeout=40)
    assert seen[0] == "D" and seen[-1] == "CD" and "C" in seen, seen


def test_batch_job_stays_running_about_a_second_after_its_script_ends(fake_flux):
    """FACTS.md: a batch job stays R for about 1 s after its script has written its
    last file (FAKE_FLUX_EXIT_LINGER, default 1.0)."""
    work = fake_flux / "linger"
    jid = batch(work, "sleep 0.5; echo done > last.txt", "-n1")
    wait_for(lambda: (work / "last.txt").exists(), what="the last file")
    written = (work / "last.txt").stat().st_mtime
    assert field(jid, "{status_abbrev}") == "R"
    wait_state(jid, {"CD"})
    t = times(jid)
    assert 0.95 <= t["t_cleanup"] - written < 2.5, t["t_cleanup"] - written


def test_exit_linger_knob(fake_flux, monkeypatch):
    """The knob lengthens/shortens the R time after the script (FAKE_FLUX_EXIT_LINGER)."""
    monkeypatch.setenv("FAKE_FLUX_EXIT_LINGER", "3")
    work = fake_flux / "linger3"
    jid = batch(work, "echo done > last.txt", "-n1")
    wait_state(jid, {"CD"})
    assert 3.0 <= times(jid)["t_cleanup"] - (work / "last.txt").stat().st_mtime < 5.0


def test_cancel_shows_cleanup_then_canceled(fake_flux):
    """FACTS.md: `flux cancel ID`: exit 0, eventlog `exception type="cancel"`, state
    CA; a cancelled job shows C (cleanup) for 0.3-1 s before CA."""
    work = fake_flux / "cancel"
    jid = batch(work, "sleep 60", "-n1")
    wait_state(jid, {"R"})
    res = flux("cancel", jid)
    assert res.returncode == 0 and res.stderr == ""
    seen = wait_state(jid, {"CA"})
    assert seen[-1] == "CA"
    assert field(jid, "{status} {exception.type} {returncode}") == "CANCELED cancel 143"
    t = times(jid)
    assert 0.45 <= t["t_inactive"] - t["t_cleanup"] <= 1.5, t
    eventlog = flux("job", "eventlog", jid).stdout
    assert re.search(r'^\d+\.\d+ exception type="cancel" severity=0', eventlog, re.M), eventlog


def test_cancel_of_inactive_or_unknown_job_is_an_error(fake_flux):
    """FACTS.md: cancel of an inactive job or unknown id: exit 1,
    `flux-cancel: ERROR: ƒ...: job is inactive` / `...: unknown job id`."""
    work = fake_flux / "cancel-bad"
    jid = batch(work, "true", "-n1")
    wait_state(jid, {"CD"})
    res = flux("cancel", jid)
    assert (res.returncode, res.stderr) == (1, f"flux-cancel: ERROR: {jid}: job is inactive\n")
    res = flux("cancel", "12345")
    unknown = flux("job", "id", "--to=f58", "12345").stdout.strip()
    assert (res.returncode, res.stderr) == (1, f"flux-cancel: ERROR: {unknown}: unknown job id\n")


def test_cancel_of_a_pending_job(fake_flux):
    """A job cancelled in D never runs and ends CA (exception cancel)."""
    work = fake_flux / "cancel-pending"
    blocker = batch(work, "sleep 30", "-n1")
    dependent = batch(work, "echo never > ran.txt", "-n1", f"--dependency=afterok:{blocker}")
    assert field(dependent, "{status_abbrev}") == "D"
    assert flux("cancel", dependent).returncode == 0
    wait_state(dependent, {"CA"})
    assert field(dependent, "{status_abbrev} {returncode} {exception.type}") == "CA -128 cancel"
    assert not (work / "ran.txt").exists()


def test_time_limit_kills_at_two_to_three_seconds_as_timeout(fake_flux):
    """FACTS.md: time limit `-t 2s`: killed at 2-3 s, state TO (`exception timeout
    "resource allocation expired"`, return code 142); C for 0.3-1 s before TO."""
    work = fake_flux / "tl"
    jid = batch(work, "sleep 60", "-n1", "-t", "2s")
    wait_state(jid, {"TO"}, timeout=20)
    assert field(jid, "{status}|{returncode}|{exception.type}|{exception.note}") == \
        "TIMEOUT|142|timeout|resource allocation expired"
    t = times(jid)
    assert 2.0 <= t["t_cleanup"] - t["t_run"] < 3.0, t
    assert 0.45 <= t["t_inactive"] - t["t_cleanup"] <= 1.5, t


def test_time_limit_kills_a_job_that_ignores_the_signal(fake_flux):
    """The time-limit signal ignored: SIGKILL after the kill timeout, still TO."""
    work = fake_flux / "tl-trap"
    jid = batch(work, "trap '' ALRM TERM; sleep 60", "-n1", "-t", "1s")
    wait_state(jid, {"TO"}, timeout=20)
    t = times(jid)
    assert 2.0 <= t["t_cleanup"] - t["t_run"] < 4.0, t  # 1 s limit + 1 s kill timeout


def test_impossible_request_is_accepted_then_fails_with_an_alloc_exception(fake_flux):
    """FACTS.md: an impossible request (`-n 64` on 2 cores, `-g 1` without GPUs) is
    accepted with a job id and then fails at once: state F, `exception type=alloc
    "unsatisfiable request: need 64 slot(s) ... only 2 ..."`."""
    work = fake_flux / "impossible"
    env = env_with(FAKE_FLUX_CORES="2")
    cores = batch(work, "echo ran > ran.txt", "-n64", env=env)
    gpus = batch(work, "echo ran > ran.txt", "-n1", "-g1", env=env)
    nodes = batch(work, "echo ran > ran.txt", "-N2", "-n2", env=env)
    for jid in (cores, gpus, nodes):
        assert wait_state(jid, {"F", "CD"}, timeout=10)[-1] == "F"
        assert field(jid, "{exception.type}") == "alloc"
    note = field(cores, "{exception.note}")
    assert re.fullmatch(r"unsatisfiable request: need 64 slot\(s\) .* only 2 .*", note), note
    assert field(gpus, "{exception.note}").startswith("unsatisfiable request: need 1 slot(s)")
    assert not (work / "ran.txt").exists()
    t = times(cores)
    assert t["t_run"] == 0 and t["t_inactive"] - t["t_submit"] < 3.0


def test_feasibility_validator_knob_refuses_at_submission(fake_flux, monkeypatch):
    """FACTS.md: only sites that enable the feasibility validator refuse it at
    submission (`flux batch` exits 1): FAKE_FLUX_FEASIBILITY=1."""
    monkeypatch.setenv("FAKE_FLUX_FEASIBILITY", "1")
    work = fake_flux / "feasibility"
    work.mkdir()
    (work / "job.sh").write_text("#!/bin/bash\ntrue\n")
    res = flux("batch", "-n64", "job.sh", cwd=work)
    assert res.returncode == 1 and res.stdout == ""
    assert "flux-batch: ERROR: unsatisfiable request: need 64 slot(s)" in res.stderr
    assert flux("batch", "-n1", "job.sh", cwd=work).returncode == 0


def test_afterok_dependent_waits_in_D_and_fails_when_the_upstream_fails(fake_flux):
    """FACTS.md: the dependent sits in D while the upstream runs; if the upstream
    later fails, the dependent gets `exception type=dependency "... can never be
    satisfied"`, ends F and never runs."""
    work = fake_flux / "depfail"
    up = batch(work, "sleep 1; exit 1", "-n1")
    wait_state(up, {"R"})
    down = batch(work, "echo ran > ran.txt", "-n1", f"--dependency=afterok:{to_dec(up)}")
    assert field(down, "{status_abbrev}") == "D"
    assert wait_state(down, {"F", "CD"}, timeout=20)[-1] == "F"
    assert field(up, "{status_abbrev} {returncode}") == "F 1"
    out = field(down, "{exception.type}|{exception.note}|{returncode}|{t_run}")
    kind, note, rc, t_run = out.split("|")
    assert kind == "dependency" and note.endswith("can never be satisfied"), note
    assert rc == "" and float(t_run) == 0.0
    assert not (work / "ran.txt").exists()


def test_afterok_on_a_failed_cancelled_or_unknown_job_is_refused(fake_flux):
    """FACTS.md: if the upstream has already failed or been cancelled at submission
    time, or the id is unknown, the submission itself is refused (`dependency:
    afterok: job ƒ... failed or was canceled` / `id N: job not found`)."""
    work = fake_flux / "deprefused"
    failed = batch(work, "exit 1", "-n1")
    cancelled = batch(work, "sleep 60", "-n1")
    flux("cancel", cancelled)
    wait_state(failed, {"F"})
    wait_state(cancelled, {"CA"})
    (work / "dep.sh").write_text("#!/bin/bash\ntrue\n")
    for upstream, f58 in ((failed, failed), (to_dec(cancelled), cancelled)):
        res = flux("batch", "-n1", f"--dependency=afterok:{upstream}", "dep.sh", cwd=work)
        assert res.returncode == 1 and res.stdout == ""
        assert f"dependency: afterok: job {f58} failed or was canceled" in res.stderr
    res = flux("batch", "-n1", "--dependency=afterok:424242", "dep.sh", cwd=work)
    assert res.returncode == 1 and "id 424242: job not found" in res.stderr


def test_flux_jobs_with_an_unknown_id_lists_the_known_ones(fake_flux):
    """FACTS.md: `flux jobs ID1 ID2` with one unknown (purged) id: the known rows on
    stdout, `JobID <id as given> unknown` on stderr, exit 0; exit 1 only if none
    is known."""
    work = fake_flux / "unknown"
    keep, gone = batch(work, "true", "-n1"), batch(work, "true", "-n1")
    wait_state(keep, {"CD"})
    wait_state(gone, {"CD"})
    res = flux("job", "purge", "--force", gone)
    assert res.returncode == 0 and res.stdout.strip() == "purged 1 inactive jobs"
    res = flux("jobs", "-n", "-o", "{id} {status_abbrev}", keep, gone)
    assert res.returncode == 0
    assert res.stdout == f"{keep} CD\n" and res.stderr == f"JobID {gone} unknown\n"
    res = flux("jobs", "-n", "12345", gone)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == f"JobID 12345 unknown\nJobID {gone} unknown\n"
    # a purged id is unknown to cancel and to afterok as well
    assert "unknown job id" in flux("cancel", gone).stderr


def test_purge_knobs_forget_old_inactive_jobs(fake_flux, monkeypatch):
    """Real flux purges inactive jobs by age/number (job-manager.inactive-age-limit,
    inactive-num-limit): FAKE_FLUX_PURGE_NUM / FAKE_FLUX_PURGE_AGE."""
    work = fake_flux / "purge"
    first, second = batch(work, "true", "-n1"), batch(work, "true", "-n1")
    wait_state(first, {"CD"})
    wait_state(second, {"CD"})
    newest = max((first, second), key=lambda j: times(j)["t_inactive"])
    monkeypatch.setenv("FAKE_FLUX_PURGE_NUM", "1")
    res = flux("jobs", "-n", "-o", "{id}", first, second)
    assert res.stdout.split() == [newest] and "unknown" in res.stderr
    monkeypatch.delenv("FAKE_FLUX_PURGE_NUM")
    monkeypatch.setenv("FAKE_FLUX_PURGE_AGE", "0.1s")
    time.sleep(0.2)
    assert flux("jobs", "-n", newest).returncode == 1


def test_unknown_queue_is_refused(fake_flux, monkeypatch):
    """FACTS.md: a queue that does not exist: `flux batch` refuses (`'debug' is not
    a valid queue`, or `Invalid queue 'x' specified` when queues are configured)."""
    work = fake_flux / "queues"
    work.mkdir()
    (work / "job.sh").write_text("#!/bin/bash\ntrue\n")
    res = flux("batch", "-n1", "--queue=debug", "job.sh", cwd=work)
    assert (res.returncode, res.stderr) == (1, "flux-batch: ERROR: 'debug' is not a valid queue\n")
    monkeypatch.setenv("FAKE_FLUX_QUEUES", "batch,debug")
    res = flux("batch", "-n1", "--queue=x", "job.sh", cwd=work)
    assert (res.returncode, res.stderr) == (1, "flux-batch: ERROR: Invalid queue 'x' specified\n")
    jid = flux("batch", "-n1", "--queue=debug", "job.sh", cwd=work).stdout.strip()
    dflt = flux("batch", "-n1", "job.sh", cwd=work).stdout.strip()
    assert field(jid, "{queue}") == "debug" and field(dflt, "{queue}") == "batch"


def test_named_queues_add_a_queue_column_to_the_default_listing(fake_flux, monkeypatch):
    """FACTS.md: with named queues configured, `flux jobs` prints an extra QUEUE
    column; an explicit `-o` format works."""
    work = fake_flux / "qcol"
    plain = batch(work, "sleep 30", "-n1", "--job-name=plain")
    listing = flux("jobs").stdout.splitlines()
    assert listing[0].split() == ["JOBID", "USER", "NAME", "ST", "NTASKS", "NNODES", "TIME",
                                  "INFO"]
    flux("cancel", plain)
    monkeypatch.setenv("FAKE_FLUX_QUEUES", "batch,debug")
    jid = batch(work, "sleep 30", "-n1", "--queue=debug", "--job-name=queued")
    wait_state(jid, {"R"})
    listing = flux("jobs").stdout.splitlines()
    assert listing[0].split() == ["JOBID", "QUEUE", "USER", "NAME", "ST", "NTASKS", "NNODES",
                                  "TIME", "INFO"]
    user = pwd.getpwuid(os.getuid()).pw_name
    assert listing[1].split()[:5] == [jid, "debug", user, "queued", "R"]
    assert field(jid, "{id.f58} {queue} {name} {status_abbrev}") == f"{jid} debug queued R"


def test_more_nodes_than_tasks_is_refused(fake_flux):
    """FACTS.md: `-N 2` with `-n 1` is refused: `node count must not be greater than
    task count`."""
    work = fake_flux / "nodes"
    work.mkdir()
    (work / "job.sh").write_text("#!/bin/bash\ntrue\n")
    res = flux("batch", "-N2", "-n1", "job.sh", cwd=work)
    assert res.returncode == 1
    assert res.stderr == "flux-batch: ERROR: node count must not be greater than task count\n"
    res = flux("run", "-N2", "-n1", "true")
    assert res.returncode == 1 and "node count must not be greater than task count" in res.stderr


# ================================================================= batch job environment
def test_batch_environment(fake_flux, monkeypatch):
    """FACTS.md: the submitter's whole environment is copied (PATH, PYTHONPATH,
    VIRTUAL_ENV); FLUX_URI is the job's own sub-instance, FLUX_ENCLOSING_ID (F58),
    CUDA_VISIBLE_DEVICES=-1 when no GPU was requested; FLUX_JOB_ID is not set in a
    batch script; cwd is the submission directory."""
    monkeypatch.setenv("MY_SETTING", "from-submitter")
    monkeypatch.setenv("VIRTUAL_ENV", str(VENV_BIN.parent))
    monkeypatch.setenv("FLUX_JOB_ID", "\u0192fromatask")  # submitted from a task: not inherited
    monkeypatch.setenv("FAKE_FLUX_GPUS", "2")
    work = fake_flux / "env"
    body = ('echo "$MY_SETTING|$PATH|$VIRTUAL_ENV|$FLUX_URI|$FLUX_ENCLOSING_ID|'
            '${FLUX_JOB_ID-unset}|$CUDA_VISIBLE_DEVICES|$PWD"; command -v python3 mpiexec')
    jobs = [batch(work, body, "-n1", "--output=a.txt"), batch(work, body, "-n1", "--output=b.txt"),
            batch(work, body, "-n1", "-g1", "--output=g.txt")]
    for jid in jobs:
        wait_state(jid, {"CD"})
    rows = {}
    for jid, name in zip(jobs, ("a", "b", "g"), strict=True):
        first, *found = (work / f"{name}.txt").read_text().splitlines()
        rows[name] = first.split("|")
        assert found == [str(VENV_BIN / "python3"), str(VENV_BIN / "mpiexec")]
        setting, path, venv, uri, enclosing, job_id, cuda, cwd = rows[name]
        assert (setting, path, venv) == ("from-submitter", os.environ["PATH"],
                                        str(VENV_BIN.parent))
        assert uri.startswith("local://") and enclosing == jid and job_id == "unset"
        assert cwd == str(work)
    assert rows["a"][6] == rows["b"][6] == "-1" and rows["g"][6] == "0"
    assert len({rows[n][3] for n in rows}) == 3  # one sub-instance per job


def test_a_batch_job_is_its_own_instance(fake_flux):
    """FACTS.md: FLUX_URI is the job's own sub-instance: anything submitted from
    inside goes there (it does not list the outer jobs; its jobs run inside the
    outer job's allocation); `flux getattr jobid` prints the enclosing job's id."""
    work = fake_flux / "sub"
    outer_other = batch(work, "sleep 30", "-n1", "--job-name=other")
    body = """
flux getattr jobid > getattr.txt
flux jobs -a -n -o '{name}' > before.txt
flux resource list > resources.txt
inner=$(flux submit -n 1 sh -c 'echo $$ > inner.pid; sleep 300')
flux jobs -a -n -o '{name} {ntasks}' > after.txt
flux --parent jobs -a -n -o '{name}' > parent.txt
while [ ! -s inner.pid ]; do sleep 0.05; done
touch ready
sleep 3
"""
    jid = batch(work, body, "-n2", "--job-name=outer")
    wait_for(lambda: (work / "ready").exists(), what="the batch script")
    assert (work / "getattr.txt").read_text().strip() == jid
    assert (work / "before.txt").read_text() == ""  # the outer jobs are not listed
    assert (work / "after.txt").read_text().split() == ["sh", "1"]
    assert sorted((work / "parent.txt").read_text().split()) == ["other", "outer"]
    inner_res = (work / "resources.txt").read_text().splitlines()[1].split()
    assert inner_res[:4] == ["free", "1", "2", "0"]  # the job's 2 cores, not the node's 4
    # the inner job uses the outer job's cores: outside, only the 2 + 1 allocated show
    outer_res = flux("resource", "list").stdout.splitlines()[2].split()
    assert outer_res[:3] == ["allocated", "1", "3"]
    names = flux("jobs", "-a", "-n", "-o", "{name}").stdout.split()
    assert sorted(names) == ["other", "outer"]
    inner_pid = int((work / "inner.pid").read_text())
    assert _alive(inner_pid)
    wait_state(jid, {"CD"})
    wait_for(lambda: not _alive(inner_pid), 10, "the inner job to end with its instance")
    flux("cancel", outer_other)


def test_tasks_of_run_and_submit_get_flux_job_id_task_rank_size_and_pmi(fake_flux):
    """FACTS.md: tasks of `flux run`/`flux submit` get FLUX_JOB_ID, with
    FLUX_TASK_RANK, FLUX_JOB_SIZE, PMI_*."""
    show = 'echo "$FLUX_TASK_RANK $FLUX_JOB_SIZE $FLUX_JOB_ID $PMI_RANK $PMI_SIZE ${PMI_FD:+fd}"'
    res = flux("run", "-n", "2", "sh", "-c", show)
    assert res.returncode == 0, res.stderr
    rows = sorted(line.split() for line in res.stdout.splitlines())
    job = rows[0][2]
    assert job.startswith("\u0192")
    assert rows == [["0", "2", job, "0", "2", "fd"], ["1", "2", job, "1", "2", "fd"]]
    assert field(job, "{name} {status_abbrev} {ntasks}") == "sh CD 2"
    sub = flux("submit", "-n", "1", "sh", "-c", show).stdout.strip()
    res = flux("job", "attach", sub)
    assert res.returncode == 0 and res.stdout.split() == ["0", "1", sub, "0", "1", "fd"]
    res = flux("run", "sh", "-c", "exit 5")
    assert res.returncode == 5


def test_mpi_ranks_through_flux_run_also_inside_a_batch_job(fake_flux):
    """FACTS.md: `flux run -n2 python -c "from mpi4py import MPI; ..."` gives ranks 0
    and 1 of 2 with the mpich wheel, no extra options, also inside a batch job."""
    assert (VENV_BIN / "mpiexec").exists(), "install the mpich wheel into the venv"
    import mpi4py  # noqa: F401  (a hard requirement here: never skipped)

    # one file per rank: the ranks' stdout is merged unordered ("1 20 2\n\n")
    code = ("from mpi4py import MPI; c = MPI.COMM_WORLD; "
            "open(f'rank{c.Get_rank()}.txt', 'w').write(f'{c.Get_rank()} {c.Get_size()}')")
    direct = fake_flux / "mpi-direct"
    direct.mkdir()
    res = flux("run", "-n2", "python", "-c", code, cwd=direct)
    assert res.returncode == 0, res.stderr
    assert [(direct / f"rank{r}.txt").read_text() for r in (0, 1)] == ["0 2", "1 2"]
    work = fake_flux / "mpi"
    jid = batch(work, f'flux run -n2 python -c "{code}"', "-n2")
    wait_state(jid, {"CD", "F"}, timeout=60)
    assert field(jid, "{status_abbrev}") == "CD", (work / f"flux-{jid}.out").read_text()
    assert [(work / f"rank{r}.txt").read_text() for r in (0, 1)] == ["0 2", "1 2"]


def test_pmi_pmix_option_is_accepted_and_reaches_flux_run(fake_flux):
    """FACTS/brief: `-o pmi=pmix` is accepted by flux run and flux batch; the fake
    records shell options in the jobspec (`flux job info ID jobspec`)."""
    work = fake_flux / "pmix"
    body = """
flux run -o pmi=pmix -n1 true
flux job info $(flux jobs -a -n -o '{id}') jobspec > inner-jobspec.json
"""
    jid = batch(work, body, "-n1", "-o", "pmi=pmix")
    wait_state(jid, {"CD", "F"})
    outer = json.loads(flux("job", "info", jid, "jobspec").stdout)
    inner = json.loads((work / "inner-jobspec.json").read_text())
    assert outer["attributes"]["system"]["shell"]["options"] == {"pmi": "pmix"}
    assert inner["attributes"]["system"]["shell"]["options"] == {"pmi": "pmix"}
    assert inner["tasks"][0]["command"] == ["true"]


# ================================================================= pysqa 1.1.1 flux mode
def test_pysqa_submit_and_status_through_the_project_template(qa, fake_flux):
    """pysqa reads `flux batch`'s id and maps R/S/D/CD; output/error files."""
    work = fake_flux / "w1"
    jobid = submit(qa, work, "echo out; echo oops >&2", cores=2, stdout_path="out.txt",
                   stderr_path="err.txt")
    assert isinstance(jobid, int) and jobid > 0
    assert wait_status(qa, jobid, {"finished"})[-1] == "finished"
    assert (work / "out.txt").read_text() == "out\n"
    assert (work / "err.txt").read_text() == "oops\n"
    df = qa.get_queue_status()
    assert list(df["jobid"]) == [jobid] and list(df["status"]) == ["finished"]


def test_pysqa_misreads_the_listing_when_queues_are_configured(qa, fake_flux, monkeypatch):
    """FACTS.md: with named queues configured, pysqa's status parser reads the job
    name as the status: it never reports running or finished."""
    monkeypatch.setenv("FAKE_FLUX_QUEUES", "batch,debug")
    work = fake_flux / "pysqa-queues"
    jobid = submit(qa, work, "sleep 2", job_name="myname")
    assert jobid is not None
    from flux.job import JobID

    wait_state(JobID(jobid).f58, {"R"})
    assert qa.get_status_of_jobs(process_id_lst=[jobid]) == ["myname"]  # running
    df = qa.get_queue_status()
    assert list(df["user"]) == ["batch"]  # the QUEUE column where pysqa expects USER
    assert list(df["jobname"]) == [pwd.getpwuid(os.getuid()).pw_name]
    wait_state(JobID(jobid).f58, {"CD"})
    assert qa.get_status_of_jobs(process_id_lst=[jobid]) == ["myname"]  # finished


def test_pysqa_maps_cleanup_to_error_and_leaves_failed_and_timeout_raw(qa, fake_flux,
                                                                        monkeypatch):
    """FACTS.md: pysqa maps the brief cleanup state C to `error`, the same as
    cancelled: not final.  Failed and timed-out jobs come back as the raw F and TO."""
    monkeypatch.setenv("FAKE_FLUX_KILL_CLEANUP", "3")  # C long enough to be seen
    work = fake_flux / "pysqa-states"
    from flux.job import JobID

    cancelled = submit(qa, work, "sleep 60")
    wait_status(qa, cancelled, {"running"})
    qa.delete_job(process_id=cancelled)
    wait_state(JobID(cancelled).f58, {"C"})
    assert qa.get_status_of_jobs(process_id_lst=[cancelled]) == ["error"]  # C: not over yet
    wait_state(JobID(cancelled).f58, {"CA"})
    assert qa.get_status_of_jobs(process_id_lst=[cancelled]) == ["error"]  # CA
    failed = submit(qa, work, "exit 3")
    timed_out = submit(qa, work, "sleep 60", run_time_max=1)
    assert wait_status(qa, failed, {"F", "finished"})[-1] == "F"
    assert wait_status(qa, timed_out, {"TO", "finished"}, timeout=20)[-1] == "TO"


def test_pysqa_submission_failures_return_none_and_write_pysqa_err(qa, fake_flux, monkeypatch):
    """FACTS.md: submission failures return None and write pysqa.err into the
    working directory (a bad queue, afterok on an unknown or failed job, more
    nodes than tasks); a failed delete_job writes pysqa.err into the driver's cwd."""
    work = fake_flux / "pysqa-err"
    failed = submit(qa, work, "exit 1")
    wait_status(qa, failed, {"F"})
    cases = {"queue": dict(partition="debug"), "unknown": dict(dependency_list=[424242]),
             "failed": dict(dependency_list=[failed]), "nodes": dict(cores=1, num_nodes=2)}
    expected = {"queue": "'debug' is not a valid queue", "unknown": "job not found",
                "failed": "failed or was canceled",
                "nodes": "node count must not be greater than task count"}
    for label, kwargs in cases.items():
        sub = work / label
        assert submit(qa, sub, "true", **kwargs) is None, label
        assert expected[label] in (sub / "pysqa.err").read_text(), label
    driver = fake_flux / "driver"
    driver.mkdir()
    monkeypatch.chdir(driver)
    assert qa.delete_job(process_id=failed) is None
    assert "job is inactive" in (driver / "pysqa.err").read_text()


def test_pysqa_relative_working_directory_returns_none(qa, fake_flux, monkeypatch):
    """FACTS.md: a relative working directory makes submit_job return None."""
    monkeypatch.chdir(fake_flux)
    assert qa.submit_job(working_directory="rel", command="true", cores=1, job_name="r") is None
    assert "No such file or directory" in (fake_flux / "rel" / "pysqa.err").read_text()


def test_pysqa_cuts_names_and_reports_other_instances_jobs_as_finished(qa, fake_flux):
    """FACTS.md: pysqa's listing cuts job names to 10 characters; ids from another
    instance show as `finished` (flux's default listing: {name:<10.10+}, at most
    1000 jobs)."""
    work = fake_flux / "pysqa-names"
    jobid = submit(qa, work, "sleep 30", job_name="averyveryverylongname")
    wait_status(qa, jobid, {"running"})
    df = qa.get_queue_status()
    assert list(df["jobname"]) == ["averyvery+"]
    # a job of another instance: pysqa cannot see it and calls it finished
    other = subprocess.run(
        ["flux", "start", "--test-size=1", "flux", "submit", "sleep", "1"],
        capture_output=True, text=True, env=env_with(FAKE_FLUX_START_DELAY="0.1",
                                                     FAKE_FLUX_SHUTDOWN_DELAY="0.1"))
    from flux.job import JobID

    other_id = int(JobID(other.stdout.strip()))
    assert other_id != jobid
    assert qa.get_status_of_jobs(process_id_lst=[other_id]) == ["finished"]


# ================================================================= kept from the first fake
def test_cancel_kills_the_process_group(qa, fake_flux):
    work = fake_flux / "cancel-pg"
    pidfile = work / "child.pid"
    jobid = submit(qa, work, f"sleep 300 & echo $! > {pidfile}; wait")
    wait_status(qa, jobid, {"running"})
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the child")
    child = int(pidfile.read_text())
    qa.delete_job(process_id=jobid)
    assert wait_status(qa, jobid, {"error"}, timeout=10)[-1] == "error"
    wait_for(lambda: not _alive(child), 5, "the canceled job's child to die")


def test_leftover_processes_are_killed_when_the_script_ends(qa, fake_flux):
    work = fake_flux / "leftover"
    pidfile = work / "bg.pid"
    jobid = submit(qa, work, f"sleep 300 & echo $! > {pidfile}")
    wait_status(qa, jobid, {"finished"})
    child = int(pidfile.read_text())
    wait_for(lambda: not _alive(child), 5, "the leftover to die")


def test_directives_and_command_line_override(fake_flux):
    work = fake_flux / "directives"
    work.mkdir()
    script = work / "job.sh"
    script.write_text("#!/bin/bash\n# flux: -n 2\n# flux: --job-name=from-directive\necho hi\n")
    jid = flux("batch", "-n", "1", script, cwd=work).stdout.strip()
    wait_state(jid, {"CD"})
    assert field(jid, "{name} {ntasks}") == "from-directive 1"  # the command line wins
    assert (work / f"flux-{jid}.out").read_text() == "hi\n"


def test_dependency_afterok_runs_in_order(qa, fake_flux):
    work = fake_flux / "dep"
    first = submit(qa, work, "sleep 1; echo first >> order.txt")
    second = submit(qa, work, "echo second >> order.txt", dependency_list=[first])
    third = submit(qa, work, "echo third >> order.txt", dependency_list=[first, second])
    wait_status(qa, third, {"finished"}, timeout=30)
    assert (work / "order.txt").read_text().split() == ["first", "second", "third"]


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
