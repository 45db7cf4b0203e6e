"""The Python side of ``xcache``: list, describe, remove and prune cache entries.

Everything here reads entries through :class:`~executorlib_cache.store.Store` and
never unpickles anything unless asked to (``load=True``).  A listing reads only
directory listings and the small JSON files (``task.json``, ``job.json``,
``started.json``, ``outcome.json``), so it works when the user's modules are not
importable and stays fast for 100,000 entries.

Statuses (``store.STATUSES``):

``pending`` / ``queued`` / ``running`` / ``done`` / ``failed``
    from which files exist (:meth:`Store.file_status`).
``lost``
    queued or running but nobody can finish it: a ``local`` entry whose owner
    (``job.json``) is dead and whose runner (``started.json``) is not alive, or a
    ``slurm``/``flux`` entry whose job the scheduler no longer knows (or reports as
    ended) while no result was written.  The scheduler is asked once per backend.
``corrupt``
    no readable ``task.json``/``task.h5``, an empty ``.h5`` file, or (when the
    ``.h5`` files are read: ``verify=True``, ``load=True``, :func:`describe`) an
    unreadable ``task.h5``/``result.h5``/``error.h5``.
``tampered``
    an ``.h5`` file whose signature does not match ``XCACHE_SECRET`` (only seen
    when the ``.h5`` files are read).

No entry can make a listing fail: every problem is caught and shown as a status
plus a ``problem`` text.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import gc
import math
import operator
import os
import re
import signal
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import liveness
from .store import (
    ERROR,
    HOST,
    JOB_JSON,
    OUTCOME_JSON,
    RESULT,
    STARTED_JSON,
    STATUSES,
    TASK,
    TASK_JSON,
    CorruptEntryError,
    Store,
    TamperedEntryError,
    read_json_file,
)

__all__ = [
    "ACTIVE",
    "FIELDS",
    "FINISHED",
    "CatalogError",
    "Entry",
    "RemovalPlan",
    "cache_stats",
    "describe",
    "execute_removal",
    "filter_entries",
    "gc_paused",
    "get_cache_data",
    "needs_verify",
    "open_store",
    "parse_duration",
    "parse_size",
    "parse_statuses",
    "plan_removal",
    "prune",
    "remove_entries",
    "resolve_key",
    "scan",
    "sort_entries",
]

#: statuses that someone may still act on: never pruned, removed only with force
ACTIVE = ("pending", "queued", "running")
#: statuses with a result or error file
FINISHED = ("done", "failed")
IN_FLIGHT = ("queued", "running")
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
#: fields ``xcache ls --sort`` accepts
SORT_FIELDS = ("submitted", "finished", "runtime", "size", "function", "status", "key")
#: scheduler states (lower case) after which a job without a result is lost
ENDED_JOB_STATES = frozenset(
    {
        "completed", "complete", "failed", "cancelled", "canceled", "timeout",
        "out_of_memory", "node_fail", "boot_fail", "deadline", "preempted",
        "revoked", "inactive",
    }
)
_SIGNED = (TASK, RESULT, ERROR)


class CatalogError(ValueError):
    """A problem with what the user asked for (unknown key, bad duration, ...).

    The message is one line, meant to be shown as is.
    """


# ---------------------------------------------------------------- parsing helpers
_DURATION_UNITS = {
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})\s*([a-z]+)")
_DURATION_RE = re.compile(rf"(?:\s*{_NUMBER}\s*[a-z]+)+\s*")
_SIZE_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_SIZE_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(?:i?b)?")


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``"30s"``, ``"90m"``, ``"2h"``, ``"7d"``, ``"1w"``, ``"1h30m"`` or ``"45"``.

    A bare number is seconds.  Raises :class:`CatalogError` on anything else.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0 or not math.isfinite(text):
            raise CatalogError(f"invalid duration {text!r}: must be a finite number >= 0")
        return float(text)
    s = str(text).strip().lower()
    if re.fullmatch(_NUMBER, s):
        return float(s)
    if _DURATION_RE.fullmatch(s):
        parts = _DURATION_PART.findall(s)
        if all(unit in _DURATION_UNITS for _, unit in parts):
            return sum(float(n) * _DURATION_UNITS[unit] for n, unit in parts)
    raise CatalogError(
        f"invalid duration {text!r}: use a number with a unit s, m, h, d or w "
        "(e.g. 30s, 2h, 7d, 1w, 1h30m)"
    )


def parse_size(text: str | int) -> int:
    """Bytes in ``"500"``, ``"10k"``, ``"1.5M"``, ``"10G"``, ``"2TiB"``, ``"10GB"``.

    Units are binary (1K = 1024, like ``du -h``); a trailing ``B``/``iB`` is
    optional.  Raises :class:`CatalogError` on anything else.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise CatalogError(f"invalid size {text!r}: must be >= 0")
        return text
    m = _SIZE_RE.fullmatch(str(text).strip().lower())
    if not m:
        raise CatalogError(
            f"invalid size {text!r}: use a number with an optional unit K, M, G, T "
            "(powers of 1024; e.g. 500M, 10G)"
        )
    return int(float(m.group(1)) * 1024 ** _SIZE_UNITS[m.group(2)])


def parse_statuses(values: Iterable[str] | str | None) -> set[str] | None:
    """``["done,failed", "lost"]`` -> ``{"done", "failed", "lost"}``; None if empty."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    wanted = {s.strip().lower() for v in values for s in v.split(",") if s.strip()}
    bad = sorted(wanted - set(STATUSES))
    if bad:
        raise CatalogError(
            f"unknown status {', '.join(bad)}: choose from {', '.join(STATUSES)}"
        )
    return wanted or None


# ---------------------------------------------------------------- the store
def open_store(cache_directory: str | os.PathLike[str] | Store) -> Store:
    """A :class:`Store` on an existing cache directory (never creates one)."""
    if isinstance(cache_directory, Store):
        return cache_directory
    try:
        store = Store(cache_directory, create=False)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise CatalogError(str(e)) from None
    except OSError as e:  # e.g. XCACHE_SECRET_FILE unreadable
        raise CatalogError(f"cannot open cache directory {cache_directory}: {e}") from None
    # every store makes these: without them this is some other directory, whose
    # subdirectories `rm --all` must never take for (corrupt) entries
    if not (store.root / ".locks").is_dir() and not (store.root / ".trash").is_dir():
        raise CatalogError(f"{store.root} is not an executorlib_cache cache directory "
                           "(it has no .locks or .trash)")
    return store


def _valid_name(text: str) -> bool:
    """A plain entry name: no path separator, not hidden, not ``.``/``..``."""
    return bool(text) and "/" not in text and "\0" not in text and not text.startswith(".") \
        and (os.sep == "/" or os.sep not in text) and (os.altsep is None or os.altsep not in text)


def resolve_key(store: Store, prefix: str) -> str:
    """The one key equal to, or starting with, ``prefix``.

    Only names listed in the cache directory can be returned, so a ``prefix``
    such as ``../x`` can never point outside it.  Raises :class:`CatalogError`
    when nothing or more than one entry matches.
    """
    if not _valid_name(prefix):
        raise CatalogError(f"not a valid cache key: {prefix!r}")
    keys = sorted(k for k in store.keys() if k.startswith(prefix))
    if prefix in keys:
        return prefix
    if not keys:
        raise CatalogError(f"no entry matches {prefix!r} in {store.root}")
    if len(keys) > 1:
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        raise CatalogError(f"key prefix {prefix!r} is ambiguous: {shown}")
    return keys[0]


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
def _backends_function(name: str) -> Callable[..., Any] | None:
    """``executorlib_cache.backends.<name>`` if that exists (it is optional here)."""
    try:
        from . import backends
    except ImportError:
        return None
    try:
        fn = getattr(backends, name)
    except AttributeError:
        return None
    return fn if callable(fn) else None


def _runner_alive(e: Entry) -> bool:
    return e.runner_pid is not None and e.runner_host == HOST and liveness.pid_alive(e.runner_pid)


def _ask_scheduler(by_backend: dict[str, list[Entry]]) -> list[tuple[Entry, str]]:
    """One ``query_job_states`` call per backend; entries whose job is gone or ended."""
    query = _backends_function("query_job_states")
    if query is None:
        return []
    gone: list[tuple[Entry, str]] = []
    for backend, group in by_backend.items():
        ids = sorted({str(e.job_id) for e in group})
        try:
            states = {str(k): str(v) for k, v in dict(query(backend, ids) or {}).items()}
        except Exception as err:  # scheduler down, command missing ...
            warnings.warn(f"could not ask {backend} for job states: {err}", stacklevel=4)
            continue
        for e in group:
            state = states.get(str(e.job_id))
            if state is None:
                gone.append((e, f"{backend} job {e.job_id} is unknown to the scheduler"))
            elif state.strip().lower() in ENDED_JOB_STATES:
                gone.append((e, f"{backend} job {e.job_id} ended ({state}) without a result"))
    return gone


def _mark_lost(scanner: _Scanner, entries: list[Entry], check_scheduler: bool) -> None:
    store = scanner.store
    owners: dict[tuple[Any, ...], bool] = {}
    by_backend: dict[str, list[Entry]] = {}
    maybe_lost: list[tuple[Entry, str]] = []
    for e in entries:
        if e.status not in IN_FLIGHT:
            continue
        backend = e.backend or "local"
        if backend in ("slurm", "flux") and e.job_id:
            by_backend.setdefault(backend, []).append(e)
            continue
        # local, or a cluster claim without a job id yet: only its driver can go on
        o = e.owner or {}
        ident = (o.get("host"), o.get("pid"), o.get("start"))
        if ident not in owners:
            owners[ident] = liveness.owner_alive(e.owner, store.root)
        if owners[ident] or _runner_alive(e):
            continue
        who = f"{o.get('host')}:{o.get('pid')}" if e.owner else "unknown"
        runner = f"; runner {e.runner_host}:{e.runner_pid} is gone" if e.runner_pid else ""
        maybe_lost.append((e, f"owner process {who} is gone{runner}"))

    if check_scheduler and by_backend:
        maybe_lost.extend(_ask_scheduler(by_backend))

    for e, why in maybe_lost:
        # the job may have written its result while we were asking: look again
        fresh = scanner.entry(e.key)
        if fresh is None or fresh.status not in IN_FLIGHT:
            if fresh is not None:
                for f in _ENTRY_FIELDS:
                    setattr(e, f, getattr(fresh, f))
            continue
        e.mark("lost", why)


# ---------------------------------------------------------------- selection
def needs_verify(status: Iterable[str] | str | None) -> bool:
    """Selecting ``corrupt`` or ``tampered`` entries means reading every ``.h5``."""
    return bool((parse_statuses(status) or set()) & {"corrupt", "tampered"})


def filter_entries(
    entries: Iterable[Entry],
    *,
    status: Iterable[str] | str | None = None,
    function: str | None = None,
    since: float | str | None = None,
    older_than: float | str | None = None,
    now: float | None = None,
) -> list[Entry]:
    """Entries matching all given filters.

    ``function`` is a glob matched against the short name and ``module.name``;
    ``since``/``older_than`` are durations compared with the submit time.
    """
    statuses = parse_statuses(status)
    now = time.time() if now is None else now
    newer = now - parse_duration(since) if since is not None else None
    older = now - parse_duration(older_than) if older_than is not None else None
    out = []
    for e in entries:
        if statuses is not None and e.status not in statuses:
            continue
        if function is not None:
            name = e.function or ""
            full = f"{e.module}.{name}" if e.module else name
            if not (fnmatch.fnmatchcase(name, function) or fnmatch.fnmatchcase(full, function)):
                continue
        if newer is not None and (e.submitted is None or e.submitted < newer):
            continue
        if older is not None and (e.submitted is None or e.submitted > older):
            continue
        out.append(e)
    return out


def sort_entries(entries: Iterable[Entry], by: str = "submitted",
                 reverse: bool = False) -> list[Entry]:
    """Sorted by one of :data:`SORT_FIELDS`, ties by submit time; entries without a
    value go last.  ``status`` sorts in life-cycle order (pending ... done, failed ...).
    """
    if by not in SORT_FIELDS:
        raise CatalogError(f"cannot sort by {by!r}: choose from {', '.join(SORT_FIELDS)}")
    have: list[Entry] = []
    missing: list[Entry] = []
    for e in entries:
        (missing if getattr(e, by) is None else have).append(e)
    order = {s: i for i, s in enumerate(STATUSES)}

    def value(e: Entry) -> Any:
        return order.get(e.status, len(order)) if by == "status" else getattr(e, by)

    have.sort(key=lambda e: (value(e), e.submitted or 0.0, e.key), reverse=reverse)
    missing.sort(key=lambda e: (e.submitted or 0.0, e.key))
    return have + missing


# ---------------------------------------------------------------- Python API
def get_cache_data(
    cache_directory: str | os.PathLike[str],
    *,
    load: bool = False,
    verify: bool = False,
    check_scheduler: bool = True,
) -> list[dict[str, Any]]:
    """One dict per entry with the fields of :data:`FIELDS`.

    Made for ``pandas.DataFrame(get_cache_data(d))``; times are epoch seconds
    (``pd.to_datetime(df.submitted, unit="s")``), ``size`` is bytes on disk.
    Nothing is unpickled unless ``load=True``: then finished entries also get
    ``result`` (the return value) or ``error`` (the exception), and
    ``load_error`` when that failed (missing module, corrupt or tampered file).
    """
    store = open_store(cache_directory)
    entries = scan(store, verify=verify or load, check_scheduler=check_scheduler)
    with gc_paused():
        rows = [e.row() for e in entries]
    if load:
        for e, row in zip(entries, rows, strict=True):
            row["result"] = row["error"] = row["load_error"] = None
            if e.status in FINISHED:
                name = "result" if e.status == "done" else "error"
                row[name], row["load_error"] = _load_outcome(store, e)
            elif e.status in ("corrupt", "tampered"):
                row["load_error"] = e.problem
    return rows


def _load_outcome(store: Store, e: Entry) -> tuple[Any, str | None]:
    """Unpickle an entry's result or exception: (value, None) or (None, why not)."""
    try:
        outcome = store.read_outcome(e.key)
        if outcome is None:
            return None, "no result or error file"
        from .serialization import load_exception, loads

        if outcome.status == "failed":  # as a future raises it: remote traceback as cause
            return load_exception(outcome.payload, outcome.meta), None
        return loads(outcome.payload), None
    except Exception as err:  # anything a foreign pickle can raise
        return None, f"{type(err).__name__}: {err}"


def _tail(path: Path, lines: int) -> list[str] | None:
    """The last ``lines`` lines of a text file (None if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return None
    text = data.decode("utf-8", errors="replace")
    return text.splitlines()[-lines:] if lines > 0 else []


def describe(
    cache_directory: str | os.PathLike[str] | Store,
    key: str,
    *,
    load: bool = False,
    tail: int = 20,
    check_scheduler: bool = True,
) -> dict[str, Any]:
    """Everything known about one entry (``key`` may be a unique prefix).

    The ``.h5`` files are read (so ``corrupt``/``tampered`` are found) but not
    unpickled unless ``load=True`` (``result``/``error``, or ``load_error``).
    Log files named in ``job.json`` are given with their last ``tail`` lines.
    """
    store = open_store(cache_directory)
    key = resolve_key(store, key)
    found = scan(store, keys=[key], verify=True, disk=True, check_scheduler=check_scheduler)
    if not found:
        raise CatalogError(f"entry {key} is empty (its creation was interrupted) or was "
                           "just removed")
    e = found[0]
    info: dict[str, Any] = e.row()
    task = store.read_json(key, TASK_JSON) or {}
    job = store.read_json(key, JOB_JSON) or {}
    outcome = store.read_json(key, OUTCOME_JSON)
    if outcome is None and e.status in FINISHED:
        outcome = _outcome_meta(store, e) or {}
    info.update(
        qualname=task.get("qualname"),
        args=task.get("args"),
        kwargs=task.get("kwargs"),
        resource_dict=task.get("resource_dict"),
        submit_host=task.get("host"),
        user=task.get("user"),
        python=task.get("python"),
        version=task.get("version"),
        cloudpickle=task.get("cloudpickle"),
        payload_size=task.get("payload_size"),
        result_size=(outcome or {}).get("size"),
        traceback=(outcome or {}).get("traceback"),
        job=job,
        task=task,
        started_info=store.read_json(key, STARTED_JSON),
        outcome=outcome,
        path=str(store.entry_dir(key)),
        disk_size=e.disk_size,
        logs={},
    )
    workdir = job.get("working_directory")
    for stream in ("stdout", "stderr"):
        p = job.get(stream)
        if not p:
            continue
        path = Path(str(p))
        if not path.is_absolute() and workdir:
            path = Path(str(workdir)) / path
        info["logs"][stream] = {"path": str(path), "tail": _tail(path, tail)}
    if load:
        info["result"] = info["error"] = info["load_error"] = None
        if e.status in FINISHED:
            name = "result" if e.status == "done" else "error"
            info[name], info["load_error"] = _load_outcome(store, e)
        elif e.status in ("corrupt", "tampered"):
            info["load_error"] = e.problem
        else:
            info["load_error"] = f"entry is {e.status}: nothing to load"
    return info


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
        if _runner_alive(e):
            assert e.runner_pid is not None
            try:
                os.kill(e.runner_pid, signal.SIGTERM)
                killed.append(e.runner_pid)
            except ProcessLookupError:
                pass
            except OSError as err:
                notes.append(f"cannot stop runner pid {e.runner_pid} of {e.key}: {err}")
        elif e.runner_pid is not None and e.runner_host not in (None, HOST):
            notes.append(f"runner of {e.key} is on {e.runner_host} (pid {e.runner_pid}); "
                         "not stopped from here")
    cancel = _backends_function("cancel_jobs") if by_backend else None
    for backend, ids in by_backend.items():
        if cancel is None:
            notes.append(f"cannot cancel {backend} job(s) {', '.join(ids)}: backend support "
                         "is not available")
            continue
        try:
            cancel(backend, sorted(set(ids)))
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
                names = store.names(e.key)
                if names is None:
                    continue  # already gone
                now = store.file_status(e.key, names)
                if only_finished and now not in FINISHED:
                    notes.append(f"{e.key} became {now} meanwhile; kept")
                    continue
                if not force and now in IN_FLIGHT and e.status != "lost":
                    notes.append(f"{e.key} became {now} meanwhile; kept (use force)")
                    continue
                if store.remove(e.key):
                    removed.append(e.key)
                elif store.names(e.key) is not None:
                    notes.append(f"cannot remove {e.key}: could not move it into "
                                 f"{store.root / '.trash'}")
        except OSError as err:
            notes.append(f"cannot remove {e.key}: {err}")
        except Exception as err:  # filelock.Timeout
            notes.append(f"cannot remove {e.key}: {type(err).__name__} {err}".rstrip())
    _empty_trash(store)
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
        shutil.rmtree(p, ignore_errors=True)


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


# ---------------------------------------------------------------- stats and prune
def cache_stats(cache_directory: str | os.PathLike[str] | Store, *,
                check_scheduler: bool = True) -> dict[str, Any]:
    """Counts per status and function, oldest and newest entry, sizes.

    ``size`` (also per function) is bytes on disk; ``payload_size`` the pickled
    bytes of tasks and results.
    """
    store = open_store(cache_directory)
    entries = scan(store, disk=True, check_scheduler=check_scheduler)
    by_function: dict[str, dict[str, int]] = {}
    for e in entries:
        f = by_function.setdefault(e.function or "?", {"entries": 0, "size": 0})
        f["entries"] += 1
        f["size"] += e.disk_size or 0
    dated = [e for e in entries if e.submitted is not None]
    oldest = min(dated, key=lambda e: e.submitted or 0.0, default=None)
    newest = max(dated, key=lambda e: e.submitted or 0.0, default=None)
    status_counts = Counter(e.status for e in entries)
    return {
        "directory": str(store.root),
        "entries": len(entries),
        "size": sum(e.disk_size or 0 for e in entries),
        "payload_size": sum(e.size or 0 for e in entries),
        "by_status": {s: status_counts[s] for s in STATUSES if status_counts[s]},
        "by_function": dict(sorted(by_function.items(), key=lambda kv: -kv[1]["entries"])),
        "oldest": oldest.submitted if oldest else None,
        "oldest_key": oldest.key if oldest else None,
        "newest": newest.submitted if newest else None,
        "newest_key": newest.key if newest else None,
    }


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
    ``result.h5``/``error.h5`` (an executor may bump it with ``os.utime`` on a
    cache hit; atime is not used: it is often off on HPC file systems and any
    reader, including a backup, would refresh it).
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
