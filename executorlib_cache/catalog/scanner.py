"""Reading entries for a listing: one directory listing and at most three small JSON
files per entry (plain string paths: this runs 100,000 times), split over forked
processes for large caches.  In-flight entries nobody can finish are marked
``lost`` through the claim protocol (``claims.lost_reasons``)."""

from __future__ import annotations

import dataclasses
import gc
import math
import operator
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .. import claims
from ..errors import CorruptEntryError, TamperedEntryError
from ..fileio import read_json_file
from ..store import (
    ERROR,
    JOB_JSON,
    OUTCOME_JSON,
    RESULT,
    STARTED_JSON,
    TASK,
    TASK_JSON,
    Store,
)
from .select import FINISHED, IN_FLIGHT, open_store

#: the fields of every dict returned by :func:`get_cache_data`, in this order
FIELDS = (
    "key",
    "function",
    "module",
    "status",
    "submitted",
    "started",
    "finished",
    "runtime",
    "host",
    "job_id",
    "backend",
    "size",
    "dependencies",
    "error_type",
    "error_message",
    "reason",
    "problem",
)
_SIGNED = (TASK, RESULT, ERROR)


# ---------------------------------------------------------------- scanning
@dataclass(slots=True)
class Entry:
    """What a listing knows about one entry (public part: :meth:`row`)."""

    key: str
    status: str = "corrupt"
    function: str | None = None
    module: str | None = None
    submitted: float | None = None
    started: float | None = None
    finished: float | None = None
    runtime: float | None = None
    host: str | None = None
    job_id: str | None = None
    backend: str | None = None
    size: int | None = None  #: pickled bytes: task payload + result/error payload
    dependencies: list[str] | None = None
    error_type: str | None = None
    error_message: str | None = None
    reason: str | None = None
    problem: str | None = None
    # not in row(): bytes on disk and LRU time (``disk=True``), liveness, cancelling
    disk_size: int | None = None
    mtime: float | None = None  #: mtime of result.h5/error.h5 (bumped on a cache hit)
    owner: dict[str, Any] | None = None
    runner_host: str | None = None
    runner_pid: int | None = None

    def row(self) -> dict[str, Any]:
        """The public fields (:data:`FIELDS`, in that order) as a new dict."""
        return {  # spelled out: this runs 100,000 times for one listing
            "key": self.key, "function": self.function, "module": self.module,
            "status": self.status, "submitted": self.submitted, "started": self.started,
            "finished": self.finished, "runtime": self.runtime, "host": self.host,
            "job_id": self.job_id, "backend": self.backend, "size": self.size,
            "dependencies": self.dependencies, "error_type": self.error_type,
            "error_message": self.error_message, "reason": self.reason,
            "problem": self.problem,
        }

    @property
    def last_used(self) -> float:
        """LRU time: the later of ``finished`` and the mtime of result/error.h5."""
        used = max(self.finished or 0.0, self.mtime or 0.0)
        return used or self.submitted or 0.0

    def mark(self, status: str, problem: str) -> None:
        """Set ``status`` (``lost``, ``corrupt``, ``tampered``) and the ``problem`` text."""
        self.status = status
        self.problem = problem


_ENTRY_FIELDS = tuple(f.name for f in dataclasses.fields(Entry))
_ALL_VALUES = operator.attrgetter(*_ENTRY_FIELDS)


def _num(x: Any) -> float | None:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x) if math.isfinite(x) else None
    return None


def _text(x: Any) -> str | None:
    if x is None:
        return None
    return x if isinstance(x, str) else str(x)


_KEY_NAME = re.compile(r"(.+)-v\d+-[0-9a-f]{16,}")


class _Scanner:
    """Reads entries of one store: a directory listing and at most three small
    JSON files per entry (plain string paths: this runs 100,000 times)."""

    def __init__(self, store: Store, *, verify: bool = False, disk: bool = False) -> None:
        self.store = store
        self.root = str(store.root) + os.sep
        self.verify = verify
        self.disk = disk

    def entries(self, keys: Iterable[str]) -> list[Entry]:
        out = []
        for key in keys:
            try:
                e = self.entry(key)
            except Exception as err:  # never let one entry break a listing
                e = Entry(key)
                e.mark("corrupt", f"cannot be read: {type(err).__name__}: {err}")
            if e is not None:
                out.append(e)
        return out

    def _listing(self, e: Entry, base: str) -> set[str]:
        if not self.disk:
            return set(os.listdir(base))
        names = set()
        e.disk_size = 0
        with os.scandir(base) as it:
            for d in it:
                names.add(d.name)
                try:
                    st = d.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                e.disk_size += st.st_size
                if d.name in _SIGNED:
                    if st.st_size == 0:
                        e.problem = f"{d.name} is empty"
                    elif d.name != TASK:
                        e.mtime = st.st_mtime
        return names

    def entry(self, key: str) -> Entry | None:
        """One entry, or None if it is not there (gone, or an empty directory)."""
        e = Entry(key)
        base = self.root + key
        try:
            names = self._listing(e, base)
        except (FileNotFoundError, NotADirectoryError):
            return None  # removed while we looked
        except OSError as err:
            e.mark("corrupt", f"entry directory unreadable: {err.strerror or err}")
            return e
        if not names:
            return None  # an interrupted creation: the store reads it as absent
        status = self.store.file_status(key, names)
        if status is None and all(n.startswith(".") for n in names):
            return None  # only a killed writer's temp file: the store reads it as absent
        base += os.sep
        task = read_json_file(base + TASK_JSON) if TASK_JSON in names else None
        if task is not None:
            e.function = _text(task.get("function"))
            e.module = _text(task.get("module"))
            e.submitted = _num(task.get("submitted"))
            e.size = _int(task.get("payload_size"))
            deps = task.get("dependencies")
            if isinstance(deps, list):
                e.dependencies = [str(d) for d in deps]
        else:
            m = _KEY_NAME.fullmatch(key)  # the executor's keys start with the name
            e.function = m.group(1) if m else None

        if status in FINISHED:
            e.status = status
            out = read_json_file(base + OUTCOME_JSON) if OUTCOME_JSON in names else None
            if out is None:  # a crash between writing the .h5 and its summary: ask the .h5
                out = _outcome_meta(self.store, e)
            if out is not None:
                _take_outcome(e, out)
        elif status in IN_FLIGHT:
            e.status = status
            job = read_json_file(base + JOB_JSON) if JOB_JSON in names else None
            if job is not None:
                e.backend = _text(job.get("backend"))
                e.job_id = _text(job.get("job_id"))
                e.submitted = e.submitted or _num(job.get("submitted"))
                if task is None:  # a local worker writes task.json later: the claim has these
                    e.function = _text(job.get("function")) or e.function
                    deps = job.get("upstream_keys")
                    if isinstance(deps, list):
                        e.dependencies = [str(d) for d in deps]
                owner = job.get("owner")
                e.owner = owner if isinstance(owner, dict) else None
            run = read_json_file(base + STARTED_JSON) if STARTED_JSON in names else None
            if run is not None:
                e.started = _num(run.get("started"))
                e.runner_host = e.host = _text(run.get("host"))
                pid = run.get("pid")
                e.runner_pid = pid if isinstance(pid, int) and pid > 0 else None
                e.job_id = e.job_id or _text(run.get("job_id"))
        elif status == "pending":
            e.status = status

        problem = self._problem(e, status, names, task)
        if problem is not None:
            e.mark("corrupt", problem)
        elif self.verify:
            _verify(self.store, e)
        return e

    def _problem(self, e: Entry, status: str | None, names: set[str],
                 task: dict[str, Any] | None) -> str | None:
        """Why an entry is corrupt, from its listing (None: it is not)."""
        if e.status == "corrupt" and e.problem:  # the .h5 outcome could not be read
            return e.problem
        if status is None:
            some = sorted(names)
            more = f" and {len(some) - 3} more" if len(some) > 3 else ""
            return f"no task, claim or outcome files (has {', '.join(some[:3])}{more})"
        if TASK_JSON in names and task is None:
            return "task.json is unreadable"
        # a local worker writes task.h5/task.json only when it takes a queued entry,
        # and a failure to write them is recorded as failed: those may lack them
        if status in ("pending", "running", "done"):
            if TASK not in names:
                return "task.h5 is missing"
            if TASK_JSON not in names:
                return "task.json is missing"
        if e.problem is not None:  # an empty .h5 (seen with disk=True)
            return e.problem
        return None


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) and x >= 0 else None


def _take_outcome(e: Entry, out: dict[str, Any]) -> None:
    e.started = _num(out.get("started")) or e.started
    e.finished = _num(out.get("finished"))
    e.runtime = _num(out.get("runtime"))
    e.host = _text(out.get("host")) or e.host
    e.job_id = _text(out.get("job_id")) or e.job_id
    e.backend = _text(out.get("backend")) or e.backend
    size = _int(out.get("size"))
    if size is not None:
        e.size = (e.size or 0) + size
    if e.status == "failed":
        e.error_type = _text(out.get("error_type"))
        e.error_message = _text(out.get("error_message"))
        e.reason = _text(out.get("reason"))


def _outcome_meta(store: Store, e: Entry) -> dict[str, Any] | None:
    try:
        outcome = store.read_outcome(e.key)
    except TamperedEntryError as err:
        e.mark("tampered", str(err))
        return None
    except CorruptEntryError as err:
        e.mark("corrupt", str(err))
        return None
    except OSError as err:
        e.mark("corrupt", f"cannot read the outcome: {err}")
        return None
    return outcome.meta if outcome is not None else None


def _verify(store: Store, e: Entry) -> None:
    """Read the .h5 files through the Store: unreadable -> corrupt, bad HMAC -> tampered."""
    try:
        if e.status != "queued" or os.path.exists(store.path(e.key, TASK)):
            store.read_task(e.key)
        if e.status in FINISHED:
            store.read_outcome(e.key)
    except TamperedEntryError as err:
        e.mark("tampered", str(err))
    except CorruptEntryError as err:
        e.mark("corrupt", str(err))
    except FileNotFoundError as err:
        if e.status != "failed":  # a failed task.h5 write is recorded as failed
            e.mark("corrupt", f"{os.path.basename(str(err))} is missing")
    except OSError as err:
        e.mark("corrupt", f"unreadable: {err}")


# a forked worker's scanner (set before the fork, inherited by the children)
_FORK_SCANNER: _Scanner | None = None


def _forked_scan(keys: list[str]) -> list[tuple[Any, ...]]:
    assert _FORK_SCANNER is not None
    # plain tuples pickle ~3x faster than slotted dataclasses
    return [_ALL_VALUES(e) for e in _FORK_SCANNER.entries(keys)]


def _scan_parallel(scanner: _Scanner, keys: list[str], workers: int) -> list[Entry]:
    """Split a large listing over forked processes (it is bound by system calls).

    This process scans one share itself while the children scan the others.
    """
    import multiprocessing

    global _FORK_SCANNER
    _FORK_SCANNER = scanner
    try:
        ctx = multiprocessing.get_context("fork")
        shares = [keys[i::workers] for i in range(workers)]
        with ctx.Pool(workers - 1) as pool:
            pending = pool.map_async(_forked_scan, shares[1:], chunksize=1)
            mine = scanner.entries(shares[0])
            theirs = pending.get()
    finally:
        _FORK_SCANNER = None
    return mine + [Entry(*t) for part in theirs for t in part]


#: listings with at least this many entries are split over processes
PARALLEL_THRESHOLD = 20_000


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: building 100,000 (acyclic) entries
    otherwise triggers full collections that cost more than the scan itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def scan(
    cache_directory: str | os.PathLike[str] | Store,
    *,
    keys: Iterable[str] | None = None,
    verify: bool = False,
    disk: bool = False,
    check_liveness: bool = True,
    check_scheduler: bool = True,
) -> list[Entry]:
    """Every entry (or the given keys) of a cache directory, in directory order.

    ``verify`` also reads the ``.h5`` files (finds ``corrupt`` payloads and
    ``tampered`` signatures; ~0.1 ms per file).  ``disk`` stats every file
    (``disk_size``, ``mtime``, empty ``.h5`` files are corrupt).
    ``check_liveness`` turns dead in-flight entries into ``lost``
    (``check_scheduler``: asking slurm/flux once per backend).
    """
    store = open_store(cache_directory)
    scanner = _Scanner(store, verify=verify, disk=disk)
    with gc_paused():
        key_list = list(store.keys()) if keys is None else list(keys)
        workers = _scan_workers()
        if len(key_list) >= PARALLEL_THRESHOLD and workers > 1 and _can_fork():
            entries = _scan_parallel(scanner, key_list, workers)
        else:
            entries = scanner.entries(key_list)
        if check_liveness:
            _mark_lost(scanner, entries, check_scheduler)
    return entries


def _scan_workers() -> int:
    """Processes for a large listing: env ``XCACHE_SCAN_WORKERS``, else up to 4 CPUs."""
    try:
        return max(1, int(os.environ["XCACHE_SCAN_WORKERS"]))
    except (KeyError, ValueError):
        return min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1, 4)


def _can_fork() -> bool:
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()



# ---------------------------------------------------------------- lost entries
def _view(e: Entry) -> claims.ClaimView:
    return claims.ClaimView(e.key, e.backend or "local", e.job_id, e.owner, e.runner_host,
                            e.runner_pid)


def _mark_lost(scanner: _Scanner, entries: list[Entry], check_scheduler: bool) -> None:
    """In-flight entries nobody can finish become ``lost`` (``claims.lost_reasons``)."""
    by_key = {e.key: e for e in entries if e.status in IN_FLIGHT}
    if not by_key:
        return
    lost = claims.lost_reasons(scanner.store, [_view(e) for e in by_key.values()],
                               check_scheduler)
    for key, why in lost.items():
        e = by_key[key]
        # the job may have written its result while we were asking: look again
        fresh = scanner.entry(key)
        if fresh is None or fresh.status not in IN_FLIGHT:
            if fresh is not None:
                for f in _ENTRY_FIELDS:
                    setattr(e, f, getattr(fresh, f))
            continue
        e.mark("lost", why)
