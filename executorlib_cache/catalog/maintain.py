"""Changing a cache: removing entries (with their jobs), pruning least recently used
ones, cancelling every job of a cache (``terminate_tasks_in_cache``)."""

from __future__ import annotations

import os
import signal
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from .. import claims, liveness, pool_queue
from ..errors import CatalogError
from ..fileio import HOST
from ..schedulers import NAMES, commands
from ..store import FAILED, Store, status_of
from .scanner import Entry, _view, scan
from .select import (
    FINISHED,
    IN_FLIGHT,
    filter_entries,
    needs_verify,
    open_store,
    parse_duration,
    parse_size,
    parse_statuses,
    resolve_key,
    sort_entries,
)


# ---------------------------------------------------------------- removing
@dataclass
class RemovalPlan:
    """What a removal would do: ``remove`` goes, ``refused`` stays (in flight)."""

    remove: list[Entry]
    refused: list[Entry]
    store: Store


def plan_removal(
    cache_directory: str | os.PathLike[str] | Store,
    keys: Iterable[str] | None = None,
    *,
    status: Iterable[str] | str | None = None,
    function: str | None = None,
    older_than: float | str | None = None,
    all_entries: bool = False,
    force: bool = False,
    check_scheduler: bool = True,
) -> RemovalPlan:
    """Select entries (keys are unique prefixes; filters narrow them down).

    Without ``keys`` a filter or ``all_entries=True`` is required.  Queued and
    running entries are ``refused`` unless ``force`` (lost ones are removable).
    """
    store = open_store(cache_directory)
    key_list = None if keys is None else list(keys)
    no_filter = status is None and function is None and older_than is None
    if not key_list and no_filter and not all_entries:
        raise CatalogError("nothing selected: give keys, a filter (status, function, "
                           "older_than) or all entries")
    if key_list and all_entries:
        raise CatalogError("give keys or all entries, not both")
    # validate the filters before the (possibly long) scan
    parse_statuses(status)
    if older_than is not None:
        parse_duration(older_than)
    resolved = None
    if key_list:
        resolved = list(dict.fromkeys(resolve_key(store, k) for k in key_list))
    entries = scan(store, keys=resolved, disk=True, verify=needs_verify(status),
                   check_scheduler=check_scheduler)
    chosen = filter_entries(entries, status=status, function=function, older_than=older_than)
    refused = [] if force else [e for e in chosen if e.status in IN_FLIGHT]
    remove = [e for e in chosen if force or e.status not in IN_FLIGHT]
    return RemovalPlan(sort_entries(remove, "key"), sort_entries(refused, "key"), store)


def _cancel(store: Store, entries: list[Entry]) -> list[str]:
    """Stop the jobs of in-flight entries; returns notes about what could not be."""
    notes: list[str] = []
    by_backend: dict[str, list[str]] = {}
    killed: list[int] = []
    for e in entries:
        if e.status not in IN_FLIGHT and e.status != "lost":
            continue
        backend = e.backend or "local"
        if backend != "local":
            if e.job_id and e.status != "lost":
                by_backend.setdefault(backend, []).append(e.job_id)
            continue
        if e.runner_pid is None and e.owner and e.owner.get("host") == HOST:
            # a local call: the worker running it says so in the driver's workers dir
            workers = (store.read_claim(e.key) or {}).get("workers")
            pid = liveness.local_runner(workers, e.key)
            if pid is not None:
                e.runner_pid, e.runner_host = pid, HOST
        if _view(e).runner_alive():
            assert e.runner_pid is not None
            try:
                # its process group: a local worker's MPI ranks go too
                if e.backend in (None, "local") and os.getpgid(e.runner_pid) == e.runner_pid:
                    os.killpg(e.runner_pid, signal.SIGTERM)
                else:
                    os.kill(e.runner_pid, signal.SIGTERM)
                killed.append(e.runner_pid)
            except ProcessLookupError:
                pass
            except OSError as err:
                notes.append(f"cannot stop runner pid {e.runner_pid} of {e.key}: {err}")
        elif e.runner_pid is not None and e.runner_host not in (None, HOST):
            notes.append(f"runner of {e.key} is on {e.runner_host} (pid {e.runner_pid}); "
                         "not stopped from here")
    for backend, ids in by_backend.items():
        try:
            commands.cancel_jobs(backend, sorted(set(ids)))
        except Exception as err:
            notes.append(f"cancelling {backend} job(s) {', '.join(ids)} failed: {err}")
    deadline = time.monotonic() + 5.0
    while killed and time.monotonic() < deadline:  # let runners exit before removing
        killed = [p for p in killed if liveness.pid_alive(p)]
        if killed:
            time.sleep(0.05)
    return notes


def execute_removal(plan: RemovalPlan, *, force: bool = False, only_finished: bool = False,
                    lock_timeout: float = 5.0) -> tuple[list[str], list[str]]:
    """Remove the planned entries: ``(removed keys, notes)``.

    ``force`` first cancels the jobs of in-flight entries.  Each entry is removed
    under its claim lock after looking at its files again, so an entry that a
    driver just handed to a backend is not removed without ``force`` (and with
    ``only_finished``, one that was reset for a retry is kept).
    """
    store = plan.store
    notes = _cancel(store, plan.remove) if force else []
    removed = []
    for e in plan.remove:
        try:
            with store.claim(e.key, timeout=lock_timeout):
                now = store.file_status(e.key)
                if now is None and not store.exists(e.key):
                    continue  # already gone
                if only_finished and now not in FINISHED:
                    notes.append(f"{e.key} became {now} meanwhile; kept")
                    continue
                if not force and now in IN_FLIGHT and e.status not in ("lost", "corrupt"):
                    notes.append(f"{e.key} became {now} meanwhile; kept (use force)")
                    continue
                if store.remove(e.key):
                    removed.append(e.key)
                elif store.exists(e.key):
                    notes.append(f"cannot remove {e.key}: could not move it into "
                                 f"{store.root / '.trash'}")
        except OSError as err:
            notes.append(f"cannot remove {e.key}: {err}")
        except Exception as err:  # ClaimTimeoutError
            notes.append(f"cannot remove {e.key}: {type(err).__name__} {err}".rstrip())
    _empty_trash(store)
    _sweep(store)
    return removed, notes


def _empty_trash(store: Store, min_age: float = 3600.0) -> None:
    """Finish removals that were interrupted (left in ``.trash`` for over an hour)."""
    import shutil

    trash = store.root / ".trash"
    now = time.time()
    try:
        with os.scandir(trash) as it:
            old = [d.path for d in it if now - d.stat(follow_symlinks=False).st_mtime > min_age]
    except OSError:
        return
    for p in old:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                os.unlink(p)
            except OSError:
                pass


#: temp files older than this are a killed writer's (seconds)
STALE_TEMP = 86400.0


def _sweep(store: Store) -> None:
    """Housekeeping after a removal: a killed writer's temp files in the shards
    (older than a day), job directories of entries that are gone, and the usage
    logs compacted into one."""
    now = time.time()
    root = str(store.root)
    for shard in (f"{i:02x}" for i in range(256)):
        try:
            with os.scandir(f"{root}/{shard}") as it:
                stale = [d.path for d in it if d.name.startswith(".")
                         and now - d.stat(follow_symlinks=False).st_mtime > STALE_TEMP]
        except OSError:
            continue
        for path in stale:
            try:
                os.unlink(path)
            except OSError:
                pass
    try:
        with os.scandir(f"{root}/.jobs") as it:
            jobs = [d.name for d in it]
    except OSError:
        jobs = []
    import shutil

    from ..store import decode_key
    for name in jobs:
        if not store.exists(decode_key(name)):
            shutil.rmtree(f"{root}/.jobs/{name}", ignore_errors=True)
    _sweep_heartbeats(root, now)
    pool_queue.sweep_pools(root)  # queues of dead drivers with nothing left to do
    store.compact_usage()


def _sweep_heartbeats(root: str, now: float) -> None:
    """Heartbeat files (``.drivers/<host>-<pid>``) of drivers that are gone: on this
    host when the pid is dead, elsewhere when not touched for a day (a live driver
    touches its file every 5 s)."""
    try:
        with os.scandir(f"{root}/.drivers") as it:
            beats = [(d.path, d.name, d.stat(follow_symlinks=False).st_mtime) for d in it]
    except OSError:
        return
    for path, name, mtime in beats:
        host, _, pid = name.rpartition("-")
        here_and_dead = host == HOST and pid.isdigit() and not liveness.pid_alive(int(pid))
        if here_and_dead or now - mtime > STALE_TEMP:
            try:
                os.unlink(path)
            except OSError:
                pass


def remove_entries(
    cache_directory: str | os.PathLike[str],
    keys: Iterable[str] | None = None,
    *,
    status: Iterable[str] | str | None = None,
    function: str | None = None,
    older_than: float | str | None = None,
    force: bool = False,
    all_entries: bool = False,
    dry_run: bool = False,
) -> list[str]:
    """Remove entries; returns the keys removed (or that would be, with ``dry_run``).

    ``keys`` are keys or unique prefixes; ``status``/``function``/``older_than``
    select (and narrow ``keys`` down).  Queued/running entries are kept (with a
    warning) unless ``force``, which cancels their jobs first.
    """
    plan = plan_removal(cache_directory, keys, status=status, function=function,
                        older_than=older_than, all_entries=all_entries, force=force)
    for e in plan.refused:
        warnings.warn(f"{e.key} is {e.status}: not removed (use force=True)", stacklevel=2)
    if dry_run:
        return [e.key for e in plan.remove]
    removed, notes = execute_removal(plan, force=force)
    for n in notes:
        warnings.warn(n, stacklevel=2)
    return removed



def plan_prune(
    cache_directory: str | os.PathLike[str] | Store,
    max_size: int | str | None = None,
    max_age: float | str | None = None,
    *,
    now: float | None = None,
) -> tuple[RemovalPlan, int]:
    """Finished entries to remove, least recently used first: ``(plan, size after)``.

    Only ``done``/``failed`` entries are candidates.  First every one not used
    for ``max_age``, then more, oldest use first, until the cache (all entries,
    also in-flight ones) is at most ``max_size`` bytes.  "Used" is
    :attr:`Entry.last_used`: the later of the finish time and the mtime of
    last cache hit, from the usage logs executors append to ``.used/`` at shutdown
    (atime is not used: it is often off on HPC file systems and any reader,
    including a backup, would refresh it).
    """
    if max_size is None and max_age is None:
        raise CatalogError("give a maximum size, a maximum age, or both")
    size_limit = parse_size(max_size) if max_size is not None else None
    age_limit = parse_duration(max_age) if max_age is not None else None
    store = open_store(cache_directory)
    entries = scan(store, disk=True, check_scheduler=False)
    now = time.time() if now is None else now
    candidates = sorted((e for e in entries if e.status in FINISHED),
                        key=lambda e: (e.last_used, e.key))
    total = sum(e.disk_size or 0 for e in entries)
    chosen: list[Entry] = []
    for e in candidates:
        too_old = age_limit is not None and now - e.last_used > age_limit
        too_big = size_limit is not None and total > size_limit
        if not (too_old or too_big):
            continue
        chosen.append(e)
        total -= e.disk_size or 0
    return RemovalPlan(chosen, [], store), total


def prune(
    cache_directory: str | os.PathLike[str],
    max_size: int | str | None = None,
    max_age: float | str | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Remove least recently used finished entries (see :func:`plan_prune`).

    Never touches pending, queued or running entries.  Returns the keys removed
    (with ``dry_run``: that would be removed).
    """
    plan, _ = plan_prune(cache_directory, max_size, max_age)
    if dry_run:
        return [e.key for e in plan.remove]
    removed, notes = execute_removal(plan, only_finished=True)
    for n in notes:
        warnings.warn(n, stacklevel=2)
    return removed



def terminate_tasks_in_cache(cache_directory: str | os.PathLike[str],
                             pysqa_config_directory: str | os.PathLike[str] | None = None,
                             backend: str | None = None) -> list[str]:
    """Cancel every job of this cache that is still queued or running.

    ``pysqa_config_directory`` is accepted for executorlib's signature and not
    needed: jobs are cancelled with the scheduler's own command (``scancel``,
    ``flux cancel``), whatever pysqa configuration submitted them.

    Reads the claims (``@claim``) of the entries without a result (in flight, or failed: a
    future failed because the scheduler stopped answering leaves its job running)
    and cancels their job ids with ONE scheduler call per backend (``backend``:
    ``"slurm"``, ``"flux"``, or None for both); cancelling a job that already
    ended is harmless.  The worker jobs of ``max_workers`` pools (``.queue/*/pool.json``)
    are cancelled in the same call, and told to stop.  Returns the job ids it
    asked to cancel.  Raises ``ValueError`` for another backend name,
    ``FileNotFoundError`` for a missing cache, ``SchedulerError`` when a cancel fails.
    """
    del pysqa_config_directory
    if backend is not None and backend not in NAMES:
        raise ValueError(f"backend must be one of {sorted(NAMES)} or None, got {backend!r}")
    store = Store(cache_directory, create=False)
    by_backend: dict[str, list[str]] = {}
    for key, files in store.scan():
        status = status_of(files, None)
        if status == "failed":  # a future failed while its job may still run
            job = store.summary(key, FAILED) or {}
        elif status in ("queued", "running"):
            job = claims.read_claim(store, key) or {}
        else:
            continue
        name = job.get("backend")
        if name not in NAMES or (backend is not None and name != backend):
            continue
        if job.get("job_id"):
            by_backend.setdefault(str(name), []).append(str(job["job_id"]))
    for name, ids in pool_queue.pool_worker_ids(store.root, backend).items():
        by_backend.setdefault(name, []).extend(ids)
    pool_queue.stop_pools(store.root, backend)
    cancelled: list[str] = []
    for name, ids in by_backend.items():
        commands.cancel_jobs(name, ids)
        cancelled.extend(sorted(set(ids)))
    return cancelled


def terminate_task_in_cache(cache_directory: str | os.PathLike[str], cache_key: str,
                            pysqa_config_directory: str | os.PathLike[str] | None = None,
                            backend: str | None = None) -> list[str]:
    """Stop the one entry ``cache_key`` if it is queued or running, and remove it.

    As executorlib's: its job is cancelled (``scancel``/``flux cancel``; a local
    runner gets SIGTERM) and the entry is removed, so the next submission of the call
    runs it again.  A finished entry (done or failed) is left as it is: there is
    nothing to stop, and a result is never deleted here (``xcache rm`` does that).
    ``pysqa_config_directory`` and ``backend`` are accepted for executorlib's
    signature (the entry's claim names its backend).  Returns the keys removed
    (``[cache_key]`` or ``[]``).  Raises ``FileNotFoundError`` for a missing cache or
    entry, ``ValueError`` for an invalid key or backend name.
    """
    from ..resources import validate_cache_key

    del pysqa_config_directory
    if backend is not None and backend not in NAMES:
        raise ValueError(f"backend must be one of {sorted(NAMES)} or None, got {backend!r}")
    validate_cache_key(cache_key)
    store = Store(cache_directory, create=False)
    if not store.exists(cache_key):
        raise FileNotFoundError(f"no entry {cache_key} in cache directory {store.root}")
    if store.file_status(cache_key) in FINISHED:
        return []
    plan = plan_removal(store, [cache_key], force=True)
    plan.remove = [e for e in plan.remove if e.key == cache_key]
    removed, notes = execute_removal(plan, force=True)
    for n in notes:
        warnings.warn(n, stacklevel=2)
    return removed
