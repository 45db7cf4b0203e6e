"""Submitting batch jobs through pysqa: templates, the scheduler's own errors, a throttle.

One :class:`Submitter` per cluster executor, shared by its per-call jobs and its
pool worker jobs, so both draw from one token bucket:

* **Templates.**  pysqa renders our ``scheduler_templates/`` (or the user's
  ``pysqa_config_directory``) and runs ``sbatch``/``flux batch``.
* **The scheduler's own words.**  pysqa hides a failing submission (it writes
  ``pysqa.err`` and returns None), so pysqa is given our ``execute_command``
  (:class:`_Execute`): a refused job raises :class:`SubmissionError` with
  sbatch's text, and the id is read by the dialect's parser, which knows every
  form sbatch prints.  An id that cannot be read is looked up by the job's
  unique name before anything is concluded: a queued job is never left untracked.
* **A call's own template.**  ``resource_dict["submission_template"]`` (jinja2, as in
  executorlib) replaces the job script of that call; it gets the same variables as
  ours (``job_name``, ``working_directory``, ``cores``, ``command``, ``dependency_list``,
  ``run_time_max`` in seconds, ``memory_max``, ``partition``...).
* **Kind to the scheduler.**  A token bucket throttles submissions: default 10/s
  with bursts of 10 (``XCACHE_SUBMIT_RATE`` / ``XCACHE_SUBMIT_BURST``).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import SchedulerError, SubmissionError
from ..resources import Resources
from ..schedulers import commands as cmds
from ..store import Store

JOB_NAME_KEY_CHARS = 80
#: the batch script pysqa writes into a job's working directory
JOB_SCRIPT = "run_queue.sh"


def env_float(name: str, default: float) -> float:
    """A float from the environment; the default if unset or not a number."""
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def job_name(key: str, token: str) -> str:
    """``<key>.<token>``: a person maps an squeue line to the entry; the token makes
    every submission attempt's name unique, so a lost id can be looked up."""
    return f"{key[:JOB_NAME_KEY_CHARS]}.{token}"


def tail(path: str | os.PathLike[str] | None, max_bytes: int = 2000, lines: int = 15) -> str:
    """The last ``lines`` lines (at most ``max_bytes``) of a job's log; "" if missing."""
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


def mode_args(store: Store) -> list[str]:
    """``--dir-mode/--file-mode`` of the executor, for every process a job starts."""
    return ["--dir-mode", oct(store.dir_mode)[2:], "--file-mode", oct(store.file_mode)[2:]]


def runner_argv(sched: ModuleType, python: str, store: Store, key: str,
                resources: dict[str, Any]) -> list[str]:
    """The command of a one-call job: the runner (under srun / flux run for MPI ranks
    when cores > 1), with the executor's permissions."""
    mpi = ["--mpi"] if Resources.stored(resources).mpi else []
    return [*sched.launcher(resources), python, "-m", "executorlib_cache.compute.runner",
            *mpi, "--backend", sched.NAME, *mode_args(store), str(store.root), key]


def job_script(argv: list[str], cwd: str, pythonpath: str,
               env: dict[str, str] | None = None) -> str:
    """Shell lines that cd to the driver's directory, set its import path and the
    scheduler's job variables (``env``), and exec ``argv`` (a runner, or a pool
    worker)."""
    warn = shlex.quote(f"executorlib_cache: cannot cd to {cwd}; running in")
    lines = [f"cd {shlex.quote(cwd)} || echo {warn} \"$PWD\" >&2"]
    if pythonpath:
        lines.append(f"export PYTHONPATH={shlex.quote(pythonpath)}")
    for name, value in (env or {}).items():
        lines.append(f"export {name}={shlex.quote(value)}")
    lines.append("exec " + shlex.join(argv))
    return "\n".join(lines)


def _fresh_file(path: str, mode: int) -> None:
    """An empty file at ``path`` with ``mode`` (a stale one of an earlier attempt goes)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))


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
    """pysqa's ``execute_command``: raise with the scheduler's text, keep the output;
    the job script pysqa just wrote gets the executor's file mode first."""

    def __init__(self, env: Any, file_mode: int = 0o600) -> None:
        self._env = env
        self.file_mode = file_mode
        self.output: str | None = None

    def __call__(self, commands: str | list[str], working_directory: str | None = None,
                 split_output: bool = True, shell: bool = False,
                 error_filename: str = "pysqa.err") -> str | list[str]:
        cmd = commands if isinstance(commands, list) else shlex.split(commands)
        self.output = None
        if working_directory:
            script = os.path.join(working_directory, JOB_SCRIPT)
            try:  # pysqa writes it with the umask's mode (often 0644)
                os.chmod(script, self.file_mode)
            except FileNotFoundError:
                pass
        try:
            proc = cmds.run_command(cmd, cwd=working_directory, env=self._env())
        except SchedulerError as e:
            raise SubmissionError(str(e)) from e
        if proc.returncode != 0:
            raise SubmissionError(f"{shlex.join(cmd[:2])} failed (exit {proc.returncode}): "
                                  f"{cmds.error_text(proc)}")
        self.output = proc.stdout
        return proc.stdout.split("\n") if split_output else proc.stdout


def load_adapter(sched: ModuleType, config_directory: str | os.PathLike[str] | None,
                 execute: Any) -> Any:
    """A pysqa adapter for ``sched`` from our templates or the user's directory.

    Raises ``ImportError`` (pysqa or flux's bindings missing), ``FileNotFoundError``
    (no configuration file) or ``ValueError`` (a configuration of another scheduler).
    """
    try:
        from pysqa.base.config import read_config
        from pysqa.queueadapter import set_queue_adapter
    except ImportError as e:
        raise ImportError("the slurm/flux executors submit through pysqa: "
                          "pip install 'executorlib_cache[submission]'") from e
    directory = os.fspath(config_directory) if config_directory else template_directory()
    for name in sched.CONFIG_FILES:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            break
    else:
        raise FileNotFoundError(f"pysqa_config_directory {directory} has no "
                                f"{' or '.join(sched.CONFIG_FILES)}")
    config = read_config(file_name=path)
    if str(config.get("queue_type", "")).upper() != sched.QUEUE_TYPE:
        raise ValueError(f"{path} has queue_type {config.get('queue_type')!r}; the "
                         f"{sched.NAME} executor needs queue_type: {sched.QUEUE_TYPE}")
    try:
        return set_queue_adapter(config=config, directory=directory, execute_command=execute)
    except ImportError as e:  # pysqa's FLUX mode imports flux.job at this point
        raise ImportError(f"pysqa's {sched.QUEUE_TYPE} mode cannot start here: {e} "
                          "(flux needs flux-core's Python bindings, `import flux.job`)") from e


class Submitter:
    """Submits jobs of one scheduler for one executor (see the module docstring).

    ``calls`` counts scheduler calls by kind (``submit``, ``lookup``...), shared
    with the backend's other counters.  Raises at construction what
    :func:`load_adapter` raises, and ``ValueError`` for a cache path pysqa refuses.
    """

    def __init__(self, sched: ModuleType, store: Store,
                 pysqa_config_directory: str | os.PathLike[str] | None,
                 calls: dict[str, int]) -> None:
        if any(c.isspace() for c in str(store.root)):
            raise ValueError(f"cache directory {str(store.root)!r} contains whitespace, which "
                             "pysqa refuses in a job's working directory; choose another path")
        self.sched = sched
        self.store = store
        self.calls = calls
        self._execute = _Execute(self.env, store.file_mode)
        self._qa = load_adapter(sched, pysqa_config_directory, self._execute)
        self._qa_template: Any = None  # for calls with their own submission_template
        self.queue_config: dict[str, Any] = dict((self._qa.config or {}).get("queues") or {})
        self.primary = (self._qa.config or {}).get("queue_primary")
        self.cwd = os.getcwd()
        self.pythonpath = python_path_for_jobs()
        self.rate = env_float("XCACHE_SUBMIT_RATE", 10.0)
        self.burst = max(1.0, env_float("XCACHE_SUBMIT_BURST", 10.0))
        self.tokens = self.burst
        self._tokens_at = time.monotonic()
        self.throttled = False

    # ------------------------------------------------------------- environment
    def env(self) -> dict[bytes, bytes] | None:
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

    def queue_for(self, resources: dict[str, Any]) -> str | None:
        """A ``partition``/``queue`` that names a pysqa queue selects it; else None
        (pysqa's primary queue; the name still reaches the job script)."""
        part = resources.get("queue") or resources.get("partition")
        if part and part in self.queue_config:
            return str(part)
        return None

    def validate(self, resources: dict[str, Any]) -> None:
        """Raise at ``submit()`` what this scheduler cannot honour: ``ValueError`` for
        keys it does not support, a request it would run otherwise than asked
        (``not_as_asked``: SLURM's ``num_nodes`` > ``cores``) or values above the
        pysqa queue's limits (pysqa would silently clamp them), ``ImportError`` for
        MPI without mpi4py."""
        bad = self.sched.unsupported(resources)
        if bad:
            why = getattr(self.sched, "WHY_UNSUPPORTED", {})
            detail = "; ".join(f"{k}: {why.get(k, 'not supported')}" for k in bad)
            raise ValueError(f"resource_dict key(s) {bad} cannot be honoured by the "
                             f"{self.sched.NAME} backend ({detail})")
        why_not = self.sched.not_as_asked(resources)
        if why_not:
            raise ValueError(why_not)
        res = Resources.stored(resources)
        if res.mpi and importlib.util.find_spec("mpi4py") is None:
            raise ImportError(f"resource_dict cores={res.cores} runs the function "
                              "under MPI and needs mpi4py: pip install 'executorlib_cache[mpi]'")
        queue = self.queue_for(resources) or self.primary
        limits = self.queue_config.get(queue or "", {})
        for key in ("cores", "run_time_max", "memory_max"):
            high = limits.get(key + "_max" if key == "cores" else key)
            value = resources.get(key)
            if isinstance(high, (int, float)) and isinstance(value, (int, float)) \
                    and value > high:
                raise ValueError(f"resource_dict[{key!r}]={value} exceeds the maximum {high} "
                                 f"of pysqa queue {queue!r} (pysqa would silently clamp it)")

    # ------------------------------------------------------------- throttle
    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self._tokens_at) * self.rate)
        self._tokens_at = now

    def may_submit(self) -> bool:
        """A token is available (does not take it); sets :attr:`throttled`."""
        self._refill()
        self.throttled = self.tokens < 1.0
        return not self.throttled

    def take_token(self) -> None:
        """Use one token (a submission is about to be made)."""
        self.tokens -= 1.0

    def next_token_at(self) -> float:
        """``time.monotonic()`` when the next token is due (now if one is there)."""
        return self._tokens_at + max(0.0, 1.0 - self.tokens) / max(self.rate, 1e-3)

    # ------------------------------------------------------------- submit
    def submit(self, *, name: str, working_directory: str, command: str,
               resources: dict[str, Any], stdout: str, stderr: str,
               dependency_list: list[str] | None = None, what: str = "the job") -> str:
        """ONE ``sbatch`` / ``flux batch`` through pysqa; the job id (the dialect's
        recorded form).  Raises :class:`SubmissionError` with the scheduler's own
        text; when the job was accepted but its id cannot be read, it is looked up
        by ``name`` (which must be unique) first."""
        self.calls["submit"] = self.calls.get("submit", 0) + 1
        self._execute.output = None
        for log in {stdout, stderr}:  # fresh, with the executor's mode: the scheduler
            _fresh_file(log, self.store.file_mode)  # truncates it and keeps the mode
        template = resources.get("submission_template")
        try:
            if template:
                self._template_adapter().submit_job(
                    queue=None, submission_template=template, job_name=name,
                    working_directory=working_directory,
                    dependency_list=dependency_list or None, command=command,
                    stdout_path=stdout, stderr_path=stderr,
                    **self.sched.template_vars(resources))
            else:
                self._qa.submit_job(
                    queue=self.queue_for(resources), job_name=name,
                    working_directory=working_directory,
                    dependency_list=dependency_list or None, command=command,
                    stdout_path=stdout, stderr_path=stderr,
                    **self.sched.template_vars(resources))
        except SubmissionError:
            raise
        except Exception as e:  # pysqa could not render, or could not read the id
            if self._execute.output is None:
                raise SubmissionError(f"pysqa could not submit {what}: {e!r}") from e
        output = self._execute.output or ""
        try:
            return self.sched.parse_job_id(output)
        except ValueError as e:
            try:  # accepted, but the id is unreadable: never leave the job untracked
                found = self.lookup(name)
            except SchedulerError as e2:
                raise SubmissionError(f"{e}; looking the job up by name failed too: {e2}"
                                      ) from e
            if found is None:
                raise SubmissionError(f"{e}; no job named {name} is queued") from e
            return found

    def _template_adapter(self) -> Any:
        """A pysqa adapter without a configuration directory: the only kind that renders
        a per-call ``submission_template`` (one with a ``queue.yaml`` always uses the
        queue's own template).  Same command runner, so the scheduler's errors and the
        job id are read as for every other job."""
        if self._qa_template is None:
            from pysqa.base.core import QueueAdapterCore

            self._qa_template = QueueAdapterCore(queue_type=self.sched.QUEUE_TYPE,
                                                 execute_command=self._execute)
        return self._qa_template

    def lookup(self, name: str) -> str | None:
        """The id of the newest job named ``name``, or None; ONE scheduler call.
        Raises :class:`SchedulerError` when the scheduler cannot be asked."""
        self.calls["lookup"] = self.calls.get("lookup", 0) + 1
        found = cmds.lookup_names(self.sched, [name]).get(name)
        return str(found[0]) if found else None


__all__ = ["Submitter", "env_float", "job_name", "job_script", "load_adapter", "mode_args",
           "python_path_for_jobs", "runner_argv", "tail", "template_directory"]
