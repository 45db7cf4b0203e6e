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
from collections.abc import Iterator
from typing import Any

from ..deps import resolve_refs
from ..errors import UpstreamFailedError
from ..resources import Resources
from ..schedulers import NAMES, dialect
from ..serialization import dumps, dumps_exception, loads
from ..store import STARTED_JSON, Store

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


@contextlib.contextmanager
def task_environment(resources: dict[str, Any]) -> Iterator[None]:
    """Apply ``cwd`` and ``threads_per_core`` for the duration of one call."""
    saved_env = {v: os.environ.get(v) for v in THREAD_VARS}
    saved_cwd = os.getcwd()
    try:
        threads = resources.get("threads_per_core")
        if threads:
            for v in THREAD_VARS:
                os.environ[v] = str(threads)
        if resources.get("cwd"):
            os.chdir(resources["cwd"])
        yield
    finally:
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
    """The value of a finished upstream entry, or UpstreamFailedError."""
    outcome = store.read_outcome(key)
    deadline = time.monotonic() + UPSTREAM_WAIT
    while outcome is None and time.monotonic() < deadline:
        time.sleep(0.2)
        store.names(key)  # listing the directory revalidates NFS's cached view of it
        outcome = store.read_outcome(key)
    if outcome is None:
        raise UpstreamFailedError(f"upstream task {key} has no result in {store.root}", key)
    if outcome.status != "done":
        m = outcome.meta
        raise UpstreamFailedError(
            f"upstream task {key} failed: {m.get('error_type')}: {m.get('error_message')}", key
        )
    return loads(outcome.payload)


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


def _call(store: Store, payload: bytes, resources: dict[str, Any]) -> Any:
    fn, args, kwargs = loads(payload)
    memo: dict[str, Any] = {}

    def load(k: str) -> Any:
        if k not in memo:
            memo[k] = load_upstream(store, k)
        return memo[k]

    args = resolve_refs(args, load)
    kwargs = resolve_refs(kwargs, load)
    with task_environment(resources):
        return fn(*args, **kwargs)


def failure(exc: BaseException) -> tuple[bytes, dict[str, Any]]:
    """Payload and metadata of an exception raised while running a call
    (``reason``: ``upstream`` for an :class:`UpstreamFailedError`, else ``raised``).
    """
    payload, meta = dumps_exception(exc)
    meta["reason"] = "upstream" if isinstance(exc, UpstreamFailedError) else "raised"
    return payload, meta


def run_entry(
    store: Store,
    key: str,
    payload: bytes | None = None,
    resources: dict[str, Any] | None = None,
    backend: str = "local",
) -> tuple[str, bytes, dict[str, Any]]:
    """Run the entry in this process; return and persist (status, payload, meta)."""
    started = time.time()
    job_id = job_id_here(backend)
    info = {"host": socket.gethostname(), "pid": os.getpid(), "job_id": job_id,
            "backend": backend}
    store.write_json(key, STARTED_JSON, {**info, "started": started})
    try:
        if payload is None or resources is None:
            payload, task_meta = store.read_task(key)
            resources = Resources.stored(task_meta.get("resource_dict"))
        value = _call(store, payload, resources)
        extra: dict[str, Any] = {}
        status, out = "done", dumps(value)
    except Exception as exc:  # the function raised: that is data, not a crash
        status = "failed"
        out, extra = failure(exc)
    finished = time.time()
    meta = {**info, **extra, "started": started, "finished": finished,
            "runtime": finished - started}
    try:
        store.write_outcome(key, status, out, meta)
    except Exception as exc:  # e.g. the return value was written but the disk is full
        status = "failed"
        out, extra = failure(exc)
        meta.update(extra)
        store.write_outcome(key, status, out, meta)
    return status, out, meta


def run_entry_mpi(store: Store, key: str, backend: str) -> str:
    """Every rank runs the function; rank 0 writes the list of all ranks' results."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    started = time.time()
    info = {"host": socket.gethostname(), "pid": os.getpid(), "job_id": job_id_here(backend),
            "backend": backend, "ranks": comm.Get_size()}
    if rank == 0:
        store.write_json(key, STARTED_JSON, {**info, "started": started})
    try:
        payload, task_meta = store.read_task(key)
        value = _call(store, payload, task_meta.get("resource_dict", {}))
        values = comm.gather(value, root=0)
    except Exception as exc:
        out, extra = failure(exc)
        finished = time.time()
        store.write_outcome(key, "failed", out, {**info, **extra, "rank": rank,
                                                 "started": started, "finished": finished,
                                                 "runtime": finished - started})
        sys.stdout.flush()
        sys.stderr.flush()
        comm.Abort(1)  # other ranks may wait in a collective forever otherwise
        return "failed"
    if rank == 0:
        finished = time.time()
        meta = {**info, "started": started, "finished": finished,
                "runtime": finished - started}
        try:
            store.write_outcome(key, "done", dumps(values), meta)
        except Exception as exc:
            out, extra = failure(exc)
            store.write_outcome(key, "failed", out, {**meta, **extra})
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
