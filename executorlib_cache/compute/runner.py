"""Execute one cache entry and write its outcome next to it.

Used three ways, always through :func:`run_entry`:

* inside a persistent local worker (``worker.py``), payload handed over by zmq;
* as ``python -m executorlib_cache.compute.runner CACHE KEY`` in a SLURM/flux job;
* as ``mpiexec -n N python -m executorlib_cache.compute.runner --mpi CACHE KEY`` (or
  ``srun``) when ``cores > 1``: every rank runs the function, rank 0 gathers
  the results in rank order and writes them; a rank that raises writes the
  error and aborts the communicator so no rank hangs in a collective.

Exit status: 0 result written, 1 the function raised (error written; SLURM's
``afterok`` then holds dependents back), 2 the runner itself failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

from .. import claims
from ..deps import resolve_refs
from ..errors import SerializationError, UpstreamFailedError
from ..resources import Resources
from ..schedulers import NAMES, dialect
from ..serialization import dumps, dumps_exception, loads, loads_call
from ..store import Store

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


@contextlib.contextmanager
def task_environment(resources: dict[str, Any], argv: list[str] | None = None
                     ) -> Iterator[None]:
    """Apply ``cwd`` and ``threads_per_core`` for the duration of one call, and give
    it the driver's ``sys.argv`` (a call reading ``sys.argv`` sees the script's
    command line, not the worker's)."""
    saved_env = {v: os.environ.get(v) for v in THREAD_VARS}
    saved_cwd = os.getcwd()
    saved_argv = sys.argv
    try:
        if argv is not None:
            sys.argv = list(argv)
        threads = resources.get("threads_per_core")
        if threads:
            for v in THREAD_VARS:
                os.environ[v] = str(threads)
        if resources.get("cwd"):
            os.chdir(resources["cwd"])
        yield
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        for v, old in saved_env.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old


#: seconds a runner waits for an upstream's result to become visible: on NFS a
#: job on another node may start (afterok) before the attribute cache shows it
UPSTREAM_WAIT = float(os.environ.get("XCACHE_UPSTREAM_WAIT", "10"))


def load_upstream(store: Store, key: str) -> Any:
    """The value of a finished upstream entry.  Raises UpstreamFailedError (naming
    the upstream and the root cause of its failure, bounded along any chain) or
    SerializationError (its value cannot be unpickled here)."""
    outcome = store.read_outcome(key)
    deadline = time.monotonic() + UPSTREAM_WAIT
    while outcome is None and time.monotonic() < deadline:
        time.sleep(0.2)
        store.revalidate(key)  # NFS may cache "no such file" for a while
        outcome = store.read_outcome(key)
    if outcome is None:
        raise UpstreamFailedError(f"upstream task {key} has no result in {store.root}", key)
    if outcome.status != "done":
        m = outcome.meta
        return _raise(UpstreamFailedError.from_root(
            key, str(m.get("root_key") or key), m.get("root_type") or m.get("error_type"),
            m.get("root_message") or m.get("error_message")))
    try:
        return loads(outcome.payload)
    except Exception as e:
        raise SerializationError(f"the result of upstream task {key} cannot be unpickled "
                                 f"here ({type(e).__name__}: {e})") from e


def _raise(exc: BaseException) -> Any:
    raise exc


def job_id_here(backend: str) -> str | None:
    """The scheduler job this process runs in, in the form the claim records
    (SLURM: ``SLURM_JOB_ID``; flux: decimal, from ``FLUX_JOB_ID`` or, in a batch
    script, ``FLUX_ENCLOSING_ID``).  A local runner inside an allocation reports
    the allocation's job."""
    names = [backend] if backend in NAMES else list(NAMES)
    for name in names:
        jid = dialect(name).current_job_id(os.environ)
        if jid:
            return str(jid)
    return None


class _NotRun(Exception):
    """The call could not even start here (``cause`` says why); not its own error."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _call(store: Store, payload: bytes, meta: dict[str, Any]) -> tuple[Any, Any]:
    """``(fn, fn(*args, **kwargs))`` with upstream values loaded from the cache."""
    try:
        fn, args, kwargs = loads_call(payload)
    except Exception as e:  # e.g. its module is not importable on this node: keep its
        # type (code may catch ImportError), say where and why in a note
        if hasattr(e, "add_note"):
            e.add_note(f"(executorlib_cache: the call cannot be unpickled on "
                       f"{socket.gethostname()}; is the module that defines it importable "
                       "there?)")
        raise _NotRun(e) from None
    memo: dict[str, Any] = {}

    def load(k: str) -> Any:
        if k not in memo:
            memo[k] = load_upstream(store, k)
        return memo[k]

    try:
        args = resolve_refs(args, load)
        kwargs = resolve_refs(kwargs, load)
    except (UpstreamFailedError, SerializationError) as e:
        raise _NotRun(e) from None
    resources = Resources.stored(meta.get("resource_dict"))
    with task_environment(resources, meta.get("argv")):
        try:
            return fn, fn(*args, **kwargs)
        except (Exception, SystemExit, GeneratorExit) as exc:
            if resources.get("error_log_file"):
                append_error_log(resources["error_log_file"], fn, args, kwargs, exc)
            raise


def append_error_log(path: str, fn: Any, args: Any, kwargs: Any, exc: BaseException) -> None:
    """``resource_dict["error_log_file"]``: append what executorlib writes when the
    function raises -- ``function: ...``, ``args: ...``, ``kwargs: ...`` lines and the
    traceback -- in one write (ranks of an MPI call that raise each append theirs).
    A file that cannot be written only costs a line on stderr: the failure itself is
    recorded in the cache either way."""
    text = (f"function: {fn}\nargs: {list(args)}\nkwargs: {kwargs}\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    try:
        with open(path, "a") as f:
            f.write(text)
    except OSError as e:
        print(f"executorlib_cache: cannot append to error_log_file {path}: {e}",
              file=sys.stderr)


def pickle_result(fn: Any, value: Any) -> bytes:
    """The pickled return value; SerializationError naming the function and the
    value's type when it cannot be pickled (a generator, an open file...)."""
    try:
        return dumps(value)
    except Exception as e:
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
        raise SerializationError(f"the return value of {name!r} cannot be pickled "
                                 f"({type(value).__name__}): {e}") from e


#: ``reason`` of a failure, by what went wrong (``xcache show`` prints it)
def reason_of(exc: BaseException, not_run: bool = False) -> str:
    """``upstream`` (an upstream failed), ``unpicklable`` (a value could not cross
    the process boundary, or the call could not be loaded: ``not_run``) or
    ``raised`` (the function raised)."""
    if isinstance(exc, UpstreamFailedError):
        return "upstream"
    if isinstance(exc, SerializationError) or not_run:
        return "unpicklable"
    return "raised"


def failure(exc: BaseException, not_run: bool = False) -> tuple[bytes, dict[str, Any]]:
    """Payload and metadata of an exception raised while running a call, with its
    ``reason`` (:func:`reason_of`)."""
    payload, meta = dumps_exception(exc)
    meta["reason"] = reason_of(exc, not_run)
    return payload, meta


def run_entry(
    store: Store,
    key: str,
    payload: bytes | None = None,
    task_meta: dict[str, Any] | None = None,
    backend: str = "local",
    task_file: bool | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> tuple[str, bytes, dict[str, Any]]:
    """Run the entry in this process; return and persist ``(status, payload, meta)``.

    ``payload``/``task_meta`` as handed over by a local worker (else read from
    ``@task.h5``, and the start is recorded in the claim: the entry reads
    ``running``).  A failure is recorded with its reason: the function raised, an
    upstream failed, or a value could not be pickled or unpickled here.  The
    outcome file holds the call too, and the claim goes, and so does the task
    file if ``task_file`` (default: when the call was read from it).
    ``extra_meta`` joins the outcome's metadata (a pool worker's log files).
    """
    started = time.time()
    job_id = job_id_here(backend)
    info = {"host": socket.gethostname(), "pid": os.getpid(), "job_id": job_id,
            "backend": backend, **(extra_meta or {})}
    task = (payload, task_meta) if payload is not None and task_meta is not None else None
    if task_file is None:
        task_file = task is None
    try:
        if task is None:  # a batch runner: the claim says it began, and is kept
            info["claim"] = claims.mark_started(store, key, dict(info), started)
            task = store.read_task(key)
        payload, task_meta = task
        fn, value = _call(store, payload, task_meta)
        extra: dict[str, Any] = {}
        status, out = "done", pickle_result(fn, value)
    except _NotRun as exc:
        status = "failed"
        out, extra = failure(exc.cause, not_run=True)
    except (Exception, SystemExit, GeneratorExit) as exc:  # the function raised: data,
        status = "failed"  # not a crash (sys.exit() in a function is its own failure;
        out, extra = failure(exc)  # KeyboardInterrupt stays a signal: Ctrl-C stops all)
    finished = time.time()
    meta = {**info, **extra, "started": started, "finished": finished,
            "runtime": finished - started}
    lock = backend != "local" or task_file  # see Store.write_outcome
    try:
        store.write_outcome(key, status, out, meta, task=task, task_file=task_file,
                            lock=lock)
    except Exception as exc:  # e.g. the return value was written but the disk is full
        status = "failed"
        out, extra = failure(exc)
        meta.update(extra)
        store.write_outcome(key, status, out, meta, task=task, task_file=task_file,
                            lock=lock)
    return status, out, meta


def run_entry_mpi(store: Store, key: str, backend: str) -> str:
    """Every rank runs the function; rank 0 writes the list of all ranks' results."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    started = time.time()
    info = {"host": socket.gethostname(), "pid": os.getpid(), "job_id": job_id_here(backend),
            "backend": backend, "ranks": comm.Get_size()}
    if rank == 0 and backend != "local":
        info["claim"] = claims.mark_started(store, key, dict(info), started)
    task: tuple[bytes, dict[str, Any]] | None = None
    try:
        payload, task_meta = task = store.read_task(key)
        fn, value = _call(store, payload, task_meta)
        # gathered as cloudpickle bytes: the same rules as a one-rank call (mpi4py's
        # own pickle could not send a lambda), and a failure names the rank
        mine = pickle_result(fn, value)
        values = comm.gather(mine, root=0)
    except Exception as exc:
        if isinstance(exc, _NotRun):
            out, extra = failure(exc.cause, not_run=True)
        else:
            out, extra = failure(exc)
        finished = time.time()
        store.write_outcome(key, "failed", out, {**info, **extra, "rank": rank,
                                                 "started": started, "finished": finished,
                                                 "runtime": finished - started},
                            task=task, task_file=True)
        sys.stdout.flush()
        sys.stderr.flush()
        comm.Abort(1)  # other ranks may wait in a collective forever otherwise
        return "failed"
    if rank == 0:
        finished = time.time()
        meta = {**info, "started": started, "finished": finished,
                "runtime": finished - started}
        try:
            store.write_outcome(key, "done", dumps([loads(v) for v in values or []]), meta,
                                task=task, task_file=True)
        except Exception as exc:
            out, extra = failure(exc)
            store.write_outcome(key, "failed", out, {**meta, **extra}, task=task,
                                task_file=True)
            return "failed"
    return "done"


def main(argv: list[str] | None = None) -> int:
    """Command line of the runner; exit 0 result written, 1 the function raised,
    2 the runner itself failed (message on stderr).
    """
    parser = argparse.ArgumentParser(prog="python -m executorlib_cache.compute.runner")
    parser.add_argument("cache_directory")
    parser.add_argument("key")
    parser.add_argument("--mpi", action="store_true", help="run under mpi4py (cores > 1)")
    parser.add_argument("--backend", default="local")
    parser.add_argument("--dir-mode", type=lambda v: int(v, 8), default=None,
                        help="octal permissions of directories the task creates")
    parser.add_argument("--file-mode", type=lambda v: int(v, 8), default=None,
                        help="octal permissions of files the task writes")
    ns = parser.parse_args(argv)
    try:
        store = Store(ns.cache_directory, create=False, dir_mode=ns.dir_mode,
                      file_mode=ns.file_mode)
        if ns.mpi:
            status = run_entry_mpi(store, ns.key, ns.backend)
        else:
            status = run_entry(store, ns.key, backend=ns.backend)[0]
    except Exception as exc:
        print(f"executorlib_cache runner: cannot run {ns.key}: {exc!r}", file=sys.stderr)
        return 2
    return 0 if status == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
