"""Batch schedulers (SLURM, flux) behind the Backend interface, through pysqa.

One job per cache entry.  Why it is built the way it is:

* **The cache is the truth, the scheduler is only asked who died.**  Every
  tick first stats the in-flight entries' files (a result file = finished, no
  scheduler call); then ONE status call for all our job ids (``squeue -j
  a,b,c -t all``) tells which of the rest died.  A job that ended or vanished
  without a result file gets a bounded grace period (NFS attribute caches can
  hide a just-written file) before its future fails with the scheduler's state
  and the tail of the job's stderr.
* **Submission through pysqa**, with our templates (``scheduler_templates``) or
  the user's ``pysqa_config_directory``.  pysqa hides a failing ``sbatch`` (it
  writes ``pysqa.err`` and returns None), so pysqa is given our own
  ``execute_command``: a failing submit raises :class:`SubmissionError` with the
  scheduler's own text, and the job id is read by our parser (which also
  understands ``123;cluster`` and flux's F58 ids).
* **Exactly once across driver deaths.**  ``job.json`` gets a unique job name
  *before* sbatch and the job id right after.  A driver that finds a claim whose
  owner died adopts it (:meth:`ClusterBackend.adopt`): with an id it just tracks
  the job in its own batched status call; with only a name it looks the name up
  (one call) before submitting anything.  An adopted job that turns out to have
  died unwatched is retried, as any recorded failure is on a re-run.
* **Dependencies are queued at once** (``dispatch_after = "queued"``) with
  ``afterok`` + ``--kill-on-invalid-dep=yes``; ``shutdown(wait=False)`` leaves
  the whole graph in the queue (``detach_on_shutdown``).
* **Kind to the scheduler**: a token bucket throttles submissions (default 10/s,
  bursts of 10; ``XCACHE_SUBMIT_RATE`` / ``XCACHE_SUBMIT_BURST``), status calls
  are adaptive (0.5 s while jobs are young or changing, up to 2 s), cancels are
  batched into one ``scancel`` per poller turn.  Transient status failures are
  tolerated; after ``MAX_STATUS_FAILURES`` in a row the futures fail with the
  scheduler's error text.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import SubmissionError
from ..liveness import identity, owner_alive
from ..store import ERROR, JOB_JSON, RESULT, STARTED_JSON, Store
from . import flux, slurm
from .base import Backend, Died, Event, Finished, Started, SubmitFailed, Task

SCHEDULERS: dict[str, ModuleType] = {"slurm": slurm, "flux": flux}

COMMAND_TIMEOUT = 30.0  # seconds for one sbatch/squeue/scancel call
STATUS_MIN, STATUS_MAX = 0.5, 2.0  # seconds between status calls (adaptive)
STAT_MIN, STAT_MAX = 0.1, 0.5  # seconds between stats of the result files
YOUNG = 10.0  # a job tracked for less than this keeps the status tick short
MAX_STATUS_FAILURES = 5  # consecutive failed status calls before futures fail
GRACE_KILLED = 0.5  # cancelled / time limit / OOM: no result can be coming
SUBMIT_SETTLE = 3.0  # a claim this fresh may still have an sbatch in flight
#: a transient submission error (socket timeout, controller busy) is retried after
#: these delays (from the poller's checks, never blocking it); then the future fails
SUBMIT_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)
JOB_NAME_KEY_CHARS = 80


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def result_grace() -> float:
    """Seconds a finished job's result file may take to show up (NFS)."""
    return _env_float("XCACHE_RESULT_GRACE", 5.0)


class SchedulerError(RuntimeError):
    """A scheduler command could not be run or failed (text of its stderr)."""


# ---------------------------------------------------------------------- commands
def run_command(cmd: list[str], cwd: str | None = None, env: Any = None,
                timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run a scheduler command; SchedulerError if it cannot run or times out."""
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, encoding="utf-8",
                              errors="replace", timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise SchedulerError(f"{shlex.join(cmd[:3])} ... did not answer within {timeout:g} s"
                             ) from e
    except OSError as e:
        raise SchedulerError(f"cannot run {cmd[0]!r}: {e.strerror or e}") from e


def _error_text(proc: subprocess.CompletedProcess[str]) -> str:
    return (proc.stderr.strip() + "\n" + proc.stdout.strip()).strip() or "(no output)"


def query_states(sched: ModuleType, job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """{id: (STATE, reason)} for those of ``job_ids`` the scheduler still knows.

    One call (flux: a second one if an id was purged, as ``flux jobs ID...``
    then fails as a whole).  SchedulerError on a real failure.
    """
    if not job_ids:
        return {}
    proc = run_command(sched.status_command(job_ids))
    if proc.returncode != 0:
        how = sched.status_error(proc.returncode, proc.stderr)
        if how == "empty":
            return {}
        if how == "mine":
            proc = run_command(sched.status_command(job_ids, mine=True))
        if proc.returncode != 0:
            raise SchedulerError(f"{shlex.join(proc.args[:2])} failed "
                                 f"(exit {proc.returncode}): {_error_text(proc)}")
    states = sched.parse_status(proc.stdout)
    wanted = set(job_ids)
    return {k: v for k, v in states.items() if k in wanted}


def query_job_states(backend: str, job_ids: list[str]) -> dict[str, str]:
    """Scheduler state per job id (one scheduler call); unknown ids are absent."""
    sched = SCHEDULERS[backend]
    ids = [str(i) for i in job_ids]
    return {k: state for k, (state, _reason) in query_states(sched, ids).items()}


def cancel_jobs(backend: str, job_ids: list[str]) -> None:
    """Cancel jobs with ONE scheduler call.  Jobs that already ended are fine;
    any other failure raises SchedulerError with the scheduler's text."""
    ids = sorted({str(i) for i in job_ids})
    if not ids:
        return
    sched = SCHEDULERS[backend]
    proc = run_command(sched.cancel_command(ids))
    text = _error_text(proc)
    if proc.returncode != 0 and not sched.cancel_error_is_benign(text):
        raise SchedulerError(f"{shlex.join(proc.args[:2])} failed (exit {proc.returncode}): "
                             f"{text}")


def backend_class(name: str) -> type[Backend]:
    return {"slurm": SlurmBackend, "flux": FluxBackend}.get(name, Backend)


# ---------------------------------------------------------------------- pure helpers
def job_name(key: str, token: str) -> str:
    """``<key>.<token>``: a person maps an squeue line to the entry; the token makes
    every submission attempt's name unique, so a lost id can be looked up."""
    return f"{key[:JOB_NAME_KEY_CHARS]}.{token}"


def tail(path: str | os.PathLike[str] | None, max_bytes: int = 2000, lines: int = 15) -> str:
    """The last lines of a job's stderr (empty if missing)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def python_path_for_jobs() -> str:
    """The driver's import path minus the interpreter's own directories, so a job
    running the same interpreter imports what the driver imported by path."""
    own = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    out: list[str] = []
    for p in sys.path:
        p = os.path.abspath(p or os.getcwd())
        real = os.path.realpath(p)
        if any(real == o or real.startswith(o + os.sep) for o in own):
            continue
        if p not in out and os.path.exists(p):
            out.append(p)
    return os.pathsep.join(out)


def runner_script(scheduler: ModuleType, python: str, cache: str, key: str,
                  resources: dict[str, Any], cwd: str, pythonpath: str,
                  modes: tuple[int, int] | None = None) -> str:
    """The shell lines of the batch job: cd to the driver's directory, then exec the
    runner (through srun / flux run for MPI ranks when cores > 1).  ``modes`` are the
    executor's (dir_mode, file_mode), so files the job writes get the same permissions."""
    mpi = ["--mpi"] if int(resources.get("cores", 1)) > 1 else []
    mode_args = ["--dir-mode", oct(modes[0])[2:], "--file-mode", oct(modes[1])[2:]] \
        if modes else []
    argv = [*scheduler.launcher(resources), python, "-m", "executorlib_cache.runner", *mpi,
            "--backend", scheduler.NAME, *mode_args, cache, key]
    return job_script(argv, cwd, pythonpath)


def job_script(argv: list[str], cwd: str, pythonpath: str) -> str:
    """Shell lines that cd to the driver's directory, set its import path and exec
    ``argv`` (a runner, or a pool worker: ``backends/pool.py``)."""
    warn = shlex.quote(f"executorlib_cache: cannot cd to {cwd}; running in")
    lines = [f"cd {shlex.quote(cwd)} || echo {warn} \"$PWD\" >&2"]
    if pythonpath:
        lines.append(f"export PYTHONPATH={shlex.quote(pythonpath)}")
    lines.append("exec " + shlex.join(argv))
    return "\n".join(lines)


def template_directory() -> str:
    """The shipped pysqa templates (package data; the repo folder in a checkout)."""
    try:
        from importlib.resources import files

        path = files("executorlib_cache.scheduler_templates")
        if isinstance(path, Path) and path.is_dir():
            return str(path)
    except ModuleNotFoundError:
        pass
    here = Path(__file__).resolve().parents[2] / "scheduler_templates"
    if here.is_dir():
        return str(here)
    raise FileNotFoundError("executorlib_cache.scheduler_templates is not installed")


class _Execute:
    """pysqa's ``execute_command``: raise with the scheduler's text, keep the output."""

    def __init__(self, env: Any) -> None:
        self._env = env
        self.output: str | None = None

    def __call__(self, commands: str | list[str], working_directory: str | None = None,
                 split_output: bool = True, shell: bool = False,
                 error_filename: str = "pysqa.err") -> str | list[str]:
        cmd = commands if isinstance(commands, list) else shlex.split(commands)
        self.output = None
        try:
            proc = run_command(cmd, cwd=working_directory, env=self._env())
        except SchedulerError as e:
            raise SubmissionError(str(e)) from e
        if proc.returncode != 0:
            raise SubmissionError(f"{shlex.join(cmd[:2])} failed (exit {proc.returncode}): "
                                  f"{_error_text(proc)}")
        self.output = proc.stdout
        return proc.stdout.split("\n") if split_output else proc.stdout


def load_adapter(scheduler: ModuleType, config_directory: str | os.PathLike[str] | None,
                 execute: Any) -> Any:
    """A pysqa adapter for ``scheduler`` from our templates or the user's directory."""
    try:
        from pysqa.base.config import read_config
        from pysqa.queueadapter import set_queue_adapter
    except ImportError as e:
        raise ImportError("the slurm/flux executors submit through pysqa: "
                          "pip install 'executorlib_cache[submission]'") from e
    directory = os.fspath(config_directory) if config_directory else template_directory()
    for name in scheduler.CONFIG_FILES:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            break
    else:
        raise FileNotFoundError(f"pysqa_config_directory {directory} has no "
                                f"{' or '.join(scheduler.CONFIG_FILES)}")
    config = read_config(file_name=path)
    if str(config.get("queue_type", "")).upper() != scheduler.QUEUE_TYPE:
        raise ValueError(f"{path} has queue_type {config.get('queue_type')!r}; the "
                         f"{scheduler.NAME} executor needs queue_type: {scheduler.QUEUE_TYPE}")
    try:
        return set_queue_adapter(config=config, directory=directory, execute_command=execute)
    except ImportError as e:  # pysqa's FLUX mode imports flux.job at this point
        raise ImportError(f"pysqa's {scheduler.QUEUE_TYPE} mode cannot start here: {e} "
                          "(flux needs flux-core's Python bindings, `import flux.job`)") from e


# ---------------------------------------------------------------------- the backend
class ClusterBackend(Backend):
    """One batch job per entry; see the module docstring."""

    name = "cluster"
    scheduler: ModuleType = slurm
    dispatch_after = "queued"
    detach_on_shutdown = True
    running_on_dispatch = False
    worker_writes_task = False

    def __init__(self, store: Store, max_workers: int | None = None,
                 pysqa_config_directory: str | os.PathLike[str] | None = None) -> None:
        if max_workers is not None:
            raise ValueError("max_workers (packing calls into a few worker jobs) is not "
                             f"available for the {self.name} backend yet: every call is one "
                             "job; leave max_workers=None")
        super().__init__(store, None)
        if any(c.isspace() for c in str(store.root)):
            raise ValueError(f"cache directory {str(store.root)!r} contains whitespace, which "
                             "pysqa refuses in a job's working directory; choose another path")
        self._execute = _Execute(self._env)
        self._qa = load_adapter(self.scheduler, pysqa_config_directory, self._execute)
        self._queue_config: dict[str, Any] = dict((self._qa.config or {}).get("queues") or {})
        self._primary = (self._qa.config or {}).get("queue_primary")
        self._cwd = os.getcwd()
        self._pythonpath = python_path_for_jobs()
        self.submit_rate = _env_float("XCACHE_SUBMIT_RATE", 10.0)
        self.submit_burst = max(1.0, _env_float("XCACHE_SUBMIT_BURST", 10.0))
        self._tokens = self.submit_burst
        self._tokens_at = time.monotonic()
        self._throttled = False
        self._adopted: dict[str, dict[str, Any]] = {}  # key -> job.json taken over
        self._to_cancel: list[str] = []
        self._next_stat = self._next_status = 0.0
        self._next_retry = float("inf")
        self._stat_interval, self._status_interval = STAT_MIN, STATUS_MIN
        self._status_failures = 0
        #: scheduler calls made (tests and benchmarks read these)
        self.calls = {"submit": 0, "status": 0, "cancel": 0, "lookup": 0}

    # ------------------------------------------------------------- submit side
    def _env(self) -> dict[bytes, bytes] | None:
        """Environment for scheduler commands (jobs inherit it): the store's secret
        (``secret=`` or XCACHE_SECRET[_FILE]) goes on as XCACHE_SECRET, as bytes,
        so the runner checks and signs entries with the same key."""
        secret = self.store.secret
        if secret is None:
            return None
        env = dict(os.environb)
        env.pop(b"XCACHE_SECRET_FILE", None)
        env[b"XCACHE_SECRET"] = secret
        return env

    def _queue_for(self, resources: dict[str, Any]) -> str | None:
        """A ``partition`` that names a pysqa queue selects it; else the primary."""
        part = resources.get("partition")
        if part and part in self._queue_config:
            return str(part)
        return None

    def validate(self, resources: dict[str, Any]) -> None:
        bad = self.scheduler.unsupported(resources)
        if bad:
            why = getattr(self.scheduler, "WHY_UNSUPPORTED", {})
            detail = "; ".join(f"{k}: {why.get(k, 'not supported')}" for k in bad)
            raise ValueError(f"resource_dict key(s) {bad} cannot be honoured by the "
                             f"{self.name} backend ({detail})")
        if resources.get("cores", 1) > 1 and importlib.util.find_spec("mpi4py") is None:
            raise ImportError(f"resource_dict cores={resources['cores']} runs the function "
                              "under MPI and needs mpi4py: pip install 'executorlib_cache[mpi]'")
        queue = self._queue_for(resources) or self._primary
        limits = self._queue_config.get(queue or "", {})
        for key in ("cores", "run_time_max", "memory_max"):
            high = limits.get(key + "_max" if key == "cores" else key)
            value = resources.get(key)
            if isinstance(high, (int, float)) and isinstance(value, (int, float)) \
                    and value > high:
                raise ValueError(f"resource_dict[{key!r}]={value} exceeds the maximum {high} "
                                 f"of pysqa queue {queue!r} (pysqa would silently clamp it)")

    @staticmethod
    def claim_is_live(store: Store, key: str, job: dict[str, Any] | None) -> bool:
        """The owning driver is alive.  A dead owner's job is adopted, not "live":
        asking the scheduler here would cost one call per entry."""
        return job is not None and owner_alive(job.get("owner"), store.root)

    def adopt(self, key: str, job: dict[str, Any] | None) -> bool:
        if not job or job.get("backend") != self.name or not job.get("job_name"):
            return False  # never reached the scheduler: submit it afresh
        new = {**job, "owner": identity(), "adopted_from": job.get("owner"),
               "adopted": time.time()}
        self.store.write_json(key, JOB_JSON, new)
        self._adopted[key] = new
        return True

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.submit_burst,
                           self._tokens + (now - self._tokens_at) * self.submit_rate)
        self._tokens_at = now

    def can_dispatch(self, task: Task) -> bool:
        if task.key in self._adopted:
            return True
        self._refill()
        self._throttled = self._tokens < 1.0
        return not self._throttled

    def dispatch(self, task: Task, upstream_job_ids: list[str]) -> None:
        upstream = [str(j) for j in upstream_job_ids]
        job = self._adopted.pop(task.key, None)
        if job is not None:
            jid = job.get("job_id")
            if not jid:
                try:
                    jid = self._lookup_by_name(task.key, job)
                except SubmissionError as e:
                    if not self.scheduler.submit_error_is_transient(str(e)):
                        raise
                    self._defer(task, upstream, 1)  # the retry looks the name up first
                    return
            if jid:
                self._track(task, job, str(jid), adopted=True)
                return
        self._tokens -= 1.0
        self._submit_or_defer(task, upstream)

    def _submit_or_defer(self, task: Task, upstream_job_ids: list[str]) -> None:
        """Submit; on a transient error keep the task and retry later (check()).

        A retry first looks the failed attempt's job name up: a submission whose
        answer was lost (socket timeout) may have been accepted after all.
        Raises SubmissionError for a permanent error or when retries ran out.
        """
        attempt = int(task.info.get("submit_attempts", 0))
        try:
            if attempt:
                job = self.store.read_json(task.key, JOB_JSON) or {}
                jid = (self._lookup_by_name(task.key, job, settle=False)
                       if job.get("job_name") else None)
                if jid:
                    self._track(task, job, jid)
                    return
            self._submit(task, upstream_job_ids)
        except SubmissionError as e:
            if attempt >= len(SUBMIT_RETRY_DELAYS) or \
                    not self.scheduler.submit_error_is_transient(str(e)):
                if attempt:
                    raise SubmissionError(f"{e} (gave up after {attempt + 1} attempts)") from e
                raise
            self._defer(task, upstream_job_ids, attempt + 1)

    def _defer(self, task: Task, upstream_job_ids: list[str], attempt: int) -> None:
        retry_at = time.monotonic() + SUBMIT_RETRY_DELAYS[attempt - 1]
        task.job_id = None
        task.info.update(submit_attempts=attempt, retry_at=retry_at,
                         retry_upstream=upstream_job_ids)
        self._next_retry = min(self._next_retry, retry_at)

    def _lookup_by_name(self, key: str, job: dict[str, Any], settle: bool = True
                        ) -> str | None:
        """The name was written but not the id: was the job submitted after all?"""
        name = str(job["job_name"])
        age = time.time() - float(job.get("submitted") or 0)
        if settle and 0 <= age < SUBMIT_SETTLE:  # its sbatch may still be on its way
            time.sleep(SUBMIT_SETTLE - age)
        self.calls["lookup"] += 1
        try:
            proc = run_command(self.scheduler.lookup_command([name]))
        except SchedulerError as e:
            raise SubmissionError(f"cannot check whether {key} was already submitted: {e}"
                                  ) from e
        if proc.returncode != 0:
            raise SubmissionError(f"cannot check whether {key} was already submitted "
                                  f"(job name {name}): {_error_text(proc)}")
        found = self.scheduler.parse_lookup(proc.stdout, [name]).get(name)
        if found is None:
            return None
        job["job_id"] = found[0]
        self.store.write_json(key, JOB_JSON, job)
        return str(found[0])

    def _submit(self, task: Task, upstream_job_ids: list[str]) -> None:
        """Name in job.json, submit through pysqa, id in job.json (each atomic)."""
        key = task.key
        entry = str(self.store.entry_dir(key))
        out, err = os.path.join(entry, "job.out"), os.path.join(entry, "job.err")
        for stale in (out, err):  # from an earlier attempt: never show its tail
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        name = job_name(key, secrets.token_hex(4))
        claim = {k: v for k, v in (self.store.read_json(key, JOB_JSON) or {}).items()
                 if k not in ("queued", "job_id_f58", "adopted", "adopted_from")}
        job: dict[str, Any] = {  # keep what the claim recorded (function, upstream_keys)
            "function": task.meta.get("function"), "upstream_keys": list(task.deps), **claim,
            "backend": self.name, "job_id": None, "owner": identity(),
            "submitted": time.time(), "job_name": name, "stdout": out, "stderr": err,
            "working_directory": entry, "dependencies": upstream_job_ids,
        }
        self.store.write_json(key, JOB_JSON, job)
        resources = task.resources
        command = runner_script(self.scheduler, sys.executable, str(self.store.root), key,
                                resources, self._cwd, self._pythonpath,
                                modes=(self.store.dir_mode, self.store.file_mode))
        jid = self.submit_job(name=name, working_directory=entry, command=command,
                              resources=resources, stdout=out, stderr=err,
                              dependency_list=upstream_job_ids, what=key)
        job.update(job_id=jid, queued=time.time())
        if self.scheduler is flux:
            job["job_id_f58"] = flux.f58_encode(int(jid))
        self.store.write_json(key, JOB_JSON, job)
        self._track(task, job, jid)

    def submit_job(self, *, name: str, working_directory: str, command: str,
                   resources: dict[str, Any], stdout: str, stderr: str,
                   dependency_list: list[str] | None = None, what: str = "the job") -> str:
        """ONE sbatch / flux batch through pysqa (our template, our execute_command):
        the job id, or SubmissionError with the scheduler's own text.  Also used
        for the worker jobs of ``backends/pool.py``."""
        self.calls["submit"] += 1
        self._execute.output = None
        try:
            self._qa.submit_job(
                queue=self._queue_for(resources), job_name=name,
                working_directory=working_directory, dependency_list=dependency_list or None,
                command=command, stdout_path=stdout, stderr_path=stderr,
                **self.scheduler.template_vars(resources))
        except SubmissionError:
            raise
        except Exception as e:  # pysqa could not render, or could not read the id
            if self._execute.output is None:
                raise SubmissionError(f"pysqa could not submit {what}: {e!r}") from e
        try:
            return self.scheduler.parse_job_id(self._execute.output or "")
        except ValueError as e:
            raise SubmissionError(str(e)) from e

    def _track(self, task: Task, job: dict[str, Any], jid: str, adopted: bool = False) -> None:
        now = time.monotonic()
        task.job_id = jid
        task.info.update(job=job, adopted=adopted, retry_at=None, seen_alive=False, started=False,
                         gone_since=None, grace=0.0, state=None, reason="", tracked_at=now)
        self._status_interval = STATUS_MIN
        self._next_status = min(self._next_status, now if adopted else now + STATUS_MIN)
        self._stat_interval = STAT_MIN
        self._next_stat = min(self._next_stat, now + STAT_MIN)

    # ------------------------------------------------------------- poller side
    @property
    def check_interval(self) -> float:  # type: ignore[override]
        nxt = min(self._next_stat, self._next_status, self._next_retry)
        if self._throttled:
            nxt = min(nxt, self._tokens_at + (1.0 - self._tokens) / max(self.submit_rate, 1e-3))
        return max(0.02, nxt - time.monotonic())

    def collect(self, ready: set[Any]) -> list[Event]:
        self._flush_cancels()
        return []

    def cancel(self, task: Task) -> None:
        """scancel (batched: flushed in the next poller turn) and give the claim
        back, so the entry reads "pending" again, as an unsubmitted cancel does."""
        if task.job_id:
            self._to_cancel.append(task.job_id)
            try:
                self.store.path(task.key, JOB_JSON).unlink()
            except FileNotFoundError:
                pass

    def _flush_cancels(self) -> None:
        if not self._to_cancel:
            return
        ids, self._to_cancel = self._to_cancel, []
        self.calls["cancel"] += 1
        try:
            cancel_jobs(self.name, ids)
        except SchedulerError as e:
            warnings.warn(f"{self.name}: cancelling job(s) {', '.join(ids)}: {e}",
                          stacklevel=2)

    def shutdown(self, wait: bool = True) -> None:
        self._flush_cancels()

    def check(self, tasks: dict[str, Task]) -> list[Event]:
        now = time.monotonic()
        events: list[Event] = []
        finished: set[str] = set()
        if now >= self._next_stat:
            events += self._stat_pass(tasks, now, finished)
        if now >= self._next_status:
            events += self._status_pass(tasks, now, finished)
        if now >= self._next_retry:
            events += self._retry_pass(tasks, now, finished)
        return events

    def _retry_pass(self, tasks: dict[str, Task], now: float, finished: set[str]
                    ) -> list[Event]:
        """Submissions that failed transiently and are due for another attempt."""
        events: list[Event] = []
        self._next_retry = float("inf")
        for key, task in tasks.items():
            at = task.info.get("retry_at")
            if at is None or task.job_id or key in finished:
                continue
            if now >= at:
                try:
                    self._submit_or_defer(task, task.info.get("retry_upstream") or [])
                except SubmissionError as e:
                    events.append(SubmitFailed(key, str(e)))
                    continue
            if task.info.get("retry_at") is not None:
                self._next_retry = min(self._next_retry, task.info["retry_at"])
        return events

    def _stat_pass(self, tasks: dict[str, Task], now: float, finished: set[str]) -> list[Event]:
        """Result files first: no scheduler call for a job that wrote its result."""
        events: list[Event] = []
        changed = waiting = False
        for key, task in tasks.items():
            names = self.store.names(key) or set()
            if RESULT in names or ERROR in names:
                events.append(Finished(key, "done" if RESULT in names else "failed"))
                finished.add(key)
                changed = True
            elif task.info.get("gone_since") is not None:
                if now - task.info["gone_since"] >= task.info["grace"]:
                    events.append(Died(key, self._death_message(task),
                                       state=task.info.get("state") or "GONE"))
                    finished.add(key)
                    changed = True
                else:
                    waiting = True
            elif STARTED_JSON in names and not task.info.get("started"):
                task.info["started"] = True
                events.append(Started(key))
                changed = True
        fast = changed or waiting
        self._stat_interval = STAT_MIN if fast else min(STAT_MAX, self._stat_interval * 1.5)
        self._next_stat = now + self._stat_interval
        return events

    def _status_pass(self, tasks: dict[str, Task], now: float, finished: set[str]
                     ) -> list[Event]:
        """ONE status call for every tracked job without a result."""
        events: list[Event] = []
        watched = {k: t for k, t in tasks.items() if k not in finished and t.job_id}
        if not watched:
            self._next_status = now + self._status_interval
            return events
        ids = sorted({str(t.job_id) for t in watched.values()})
        self.calls["status"] += 1
        try:
            states = query_states(self.scheduler, ids)
        except SchedulerError as e:
            self._status_failures += 1
            if self._status_failures >= MAX_STATUS_FAILURES:
                self._status_failures = 0
                for key in watched:
                    events.append(Died(key, f"cannot ask {self.name} about job "
                                            f"{tasks[key].job_id} ({MAX_STATUS_FAILURES} "
                                            f"failures in a row): {e}", state="UNKNOWN"))
            self._status_interval = min(STATUS_MAX, self._status_interval * 2)
            self._next_status = time.monotonic() + self._status_interval
            return events
        self._status_failures = 0
        changed = False
        for key, task in watched.items():
            info = task.info
            state, reason = states.get(str(task.job_id), (None, ""))
            if state != info.get("state") or reason != info.get("reason"):
                changed = True
            info["state"], info["reason"] = state, reason
            sched = self.scheduler
            if state is not None and sched.dependency_never_satisfied(state, reason):
                ev = self._upstream_broken(task)
            elif state is not None and sched.is_active(state):
                info["seen_alive"] = True
                info["gone_since"] = None  # e.g. requeued after a node failure
                ev = None
                if sched.is_running(state) and not info["started"]:
                    info["started"] = True
                    ev = Started(key)
            elif info["adopted"] and not info["seen_alive"]:
                # died while no driver watched it: a re-run retries it, as any failure
                ev = self._resubmit(task)
            else:  # ended or purged without a result (yet): grace, then died
                if info["gone_since"] is None:
                    info["gone_since"] = now
                    info["grace"] = (result_grace() if state is None or state in
                                     sched.MAY_HAVE_RESULT else GRACE_KILLED)
                    self._next_stat = min(self._next_stat, now + min(info["grace"], STAT_MIN))
                ev = None
            if ev is not None:
                events.append(ev)
        young = any(now - t.info.get("tracked_at", 0.0) < YOUNG for t in watched.values())
        if changed or young:
            self._status_interval = STATUS_MIN
        else:
            self._status_interval = min(STATUS_MAX, self._status_interval * 1.5)
        self._next_status = time.monotonic() + self._status_interval
        return events

    def _upstream_broken(self, task: Task) -> Event | None:
        """The scheduler says an afterok upstream of this job ended badly.

        If an upstream future failed, the poller fails this task with
        UpstreamFailedError (it is told as soon as that future fails): wait.  If
        every upstream succeeded, the dependency was on a stale job of an earlier
        attempt: submit again (no afterok needed any more).
        """
        deps = list(task.deps.values())
        if deps and all(f.done() and not f.cancelled() and f.exception() is None
                        for f in deps):
            return self._resubmit(task)
        return None

    def _resubmit(self, task: Task) -> Event | None:
        upstream = []
        for up_key, fut in task.deps.items():
            if not fut.done():
                up = self.store.read_json(up_key, JOB_JSON) or {}
                if up.get("job_id"):
                    upstream.append(str(up["job_id"]))
        self._tokens -= 1.0
        task.info["submit_attempts"] = 0
        try:
            self._submit_or_defer(task, upstream)
        except SubmissionError as e:
            return SubmitFailed(task.key, str(e))
        return None

    def _death_message(self, task: Task) -> str:
        info = task.info
        job = info.get("job") or {}
        state, reason = info.get("state"), info.get("reason")
        who = f"{self.name} job {task.job_id} ({job.get('job_name', '?')}) of task {task.key}"
        if state is None:
            what = (f"{who} is no longer known to {self.name} (ended and purged) and wrote "
                    "no result")
        else:
            what = f"{who} ended {state}{f' ({reason})' if reason else ''} without a result"
        err = job.get("stderr")
        text = tail(err)
        if text:
            return f"{what}\n--- last lines of {err} ---\n{text}"
        return f"{what} (nothing on stderr{f': {err}' if err else ''})"


class SlurmBackend(ClusterBackend):
    name = "slurm"
    scheduler = slurm


class FluxBackend(ClusterBackend):
    name = "flux"
    scheduler = flux
