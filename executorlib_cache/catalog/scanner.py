"""Reading entries for a listing: one listing per shard and one small read per entry
(the user block of its finished file, or its claim), split over forked processes
for large caches.  In-flight entries nobody can finish are marked ``lost`` through
the claim protocol (``claims.lost_reasons``)."""

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

from .. import claims, legacy
from ..errors import CorruptEntryError, TamperedEntryError
from ..fileio import read_json_file, read_summary
from ..store import CLAIM, DONE, FAILED, TASK, Store, status_of
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
    mtime: float | None = None  #: last cache hit (usage logs in .used/; ``disk=True``)
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
        """LRU time: the later of ``finished`` and the last cache hit."""
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


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) and x >= 0 else None


def _deps(x: Any) -> list[str] | None:
    return [str(d) for d in x] if isinstance(x, list) else None


_KEY_NAME = re.compile(r"(.+)-v\d+-[0-9a-f]{16,}")
#: the files of an entry, as :meth:`Store.scan` gives them
Files = dict[str, os.DirEntry[str]]


class _Scanner:
    """Reads entries of one store: at most two small reads per entry (plain string
    paths: this runs 100,000 times)."""

    def __init__(self, store: Store, *, verify: bool = False, disk: bool = False) -> None:
        self.store = store
        self.root = str(store.root)
        self.verify = verify
        self.disk = disk
        self.used = store.last_used() if disk else {}
        self._dirs: dict[str, int] = {}  # shard path -> open descriptor (names resolved in it)

    def summary(self, path: str) -> dict[str, Any] | None:
        """:func:`read_summary` of an entry file, opened relative to its shard."""
        shard, _, name = path.rpartition("/")
        fd = self._dirs.get(shard)
        if fd is None:
            try:
                fd = self._dirs[shard] = os.open(shard, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                return read_summary(path)
        return read_summary(name, fd)

    def close(self) -> None:
        """Close the shard descriptors."""
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    def entries(self, items: Iterable[tuple[str, Files | None]]) -> list[Entry]:
        out = []
        for key, files in items:
            try:
                e = self.entry(key, files)
            except Exception as err:  # never let one entry break a listing
                e = Entry(key)
                e.mark("corrupt", f"cannot be read: {type(err).__name__}: {err}")
            if e is not None:
                out.append(e)
        return out

    def files_of(self, key: str) -> Files | None:
        """The entry's files, found by name (for a listing of given keys); None for
        a format-1 entry."""
        found: Files = {}
        for kind in (DONE, FAILED, CLAIM, TASK):
            path = self.store.path_of(key, kind)
            if os.path.exists(path):
                found[kind] = _Found(os.path.basename(path), path)  # type: ignore[assignment]
        if not found and self.store.has_v1_entries and \
                legacy.entry_dir(self.root, key) is not None:
            return None
        return found

    def entry(self, key: str, files: Files | None = None) -> Entry | None:
        """One entry, or None if it is not there (``files``: from :meth:`Store.scan`;
        None: a format-1 entry directory)."""
        if files is None and self.store.has_v1_entries and \
                legacy.entry_dir(self.root, key) is not None:
            return self._v1_entry(key)
        if files is None:
            files = self.files_of(key)
            if files is None:
                return self._v1_entry(key)
        if not files:
            return None
        e = Entry(key)
        if self.disk:
            e.disk_size = 0
            for kind, d in files.items():
                try:
                    st = d.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                e.disk_size += st.st_size
                if st.st_size == 0 and kind != CLAIM:
                    e.problem = f"{d.name} is empty"
            e.mtime = self.used.get(key)
        claim = None
        if DONE not in files and FAILED not in files and CLAIM in files:
            claim = read_json_file(files[CLAIM].path)
            if claim is None and os.path.exists(files[CLAIM].path):
                e.mark("corrupt", "its claim file is unreadable")
                return e
        status = status_of(files, claim)
        if status is None:
            return None
        e.status = status
        if status in FINISHED:
            summary = self.summary(files[status].path)
            if summary is None:  # no user block: ask the HDF5 file itself
                summary = self._outcome_meta(e)
            if summary is not None:
                other = summary.get("key")
                if type(other) is str and other != key:  # a copy of another entry:
                    # what reading it says (entryfile.check), without reading it
                    e.mark("corrupt" if self.store.secret is None else "tampered",
                           f"its file is entry {other}'s")
                    return e
                _take_summary(e, summary)
        else:
            if TASK in files:
                summary = self.summary(files[TASK].path)
                if summary is not None:
                    _take_summary(e, summary)
            if claim is not None:
                _take_claim(e, claim)
        if e.function is None:
            m = _KEY_NAME.fullmatch(key)  # the executor's keys start with the name
            e.function = m.group(1) if m else None
        if e.problem is not None and e.status not in ("corrupt", "tampered"):
            e.mark("corrupt", e.problem)
        elif self.verify and e.status not in ("corrupt", "tampered"):
            _verify(self.store, e, files)
        return e

    def _outcome_meta(self, e: Entry) -> dict[str, Any] | None:
        try:
            outcome = self.store.read_outcome(e.key)
        except TamperedEntryError as err:
            e.mark("tampered", str(err))
            return None
        except CorruptEntryError as err:
            e.mark("corrupt", str(err))
            return None
        except OSError as err:
            e.mark("corrupt", f"cannot read the outcome: {err}")
            return None
        if outcome is None:
            return None
        from ..store import summary_of
        return summary_of(e.key, outcome.status, outcome.meta)

    def _v1_entry(self, key: str) -> Entry | None:
        """A format-1 entry: its ``task.json`` and ``outcome.json`` (finished ones
        only count: an unfinished format-1 entry is computed afresh)."""
        base = legacy.entry_dir(self.root, key)
        if base is None:
            return None
        e = Entry(key)
        status = legacy.file_status(self.root, key)
        if status is None:
            return None
        e.status = status
        task = read_json_file(f"{base}/task.json") or {}
        out = read_json_file(f"{base}/outcome.json") or {}
        _take_summary(e, {**task, **out, "function": task.get("function"),
                          "size": (_int(task.get("payload_size")) or 0)
                          + (_int(out.get("size")) or 0)})
        if self.disk:
            e.disk_size = sum(os.path.getsize(f"{base}/{n}") for n in os.listdir(base))
            e.mtime = self.used.get(key)
        if self.verify:
            try:
                legacy.read_outcome(self.root, self.store.secret, key)
            except TamperedEntryError as err:
                e.mark("tampered", str(err))
            except CorruptEntryError as err:
                e.mark("corrupt", str(err))
        return e


_NUMBER = (float, int)


def _take_summary(e: Entry, s: dict[str, Any]) -> None:
    # inline type checks: this runs once per entry of a listing (100,000 times); a
    # value of the wrong type (a hand-edited file) is left out, never trusted
    g = s.get
    x = g("function")
    if type(x) is str:
        e.function = x
    x = g("module")
    if type(x) is str:
        e.module = x
    x = g("submitted")
    if type(x) in _NUMBER:
        e.submitted = x
    x = g("dependencies")
    if type(x) is list and x:
        e.dependencies = [d if type(d) is str else str(d) for d in x]
    x = g("size")
    if type(x) is int and x >= 0:
        e.size = x
    x = g("started")
    if type(x) in _NUMBER:
        e.started = x
    x = g("finished")
    e.finished = x if type(x) in _NUMBER else None
    x = g("runtime")
    e.runtime = x if type(x) in _NUMBER else None
    x = g("host")
    if x is not None:
        e.host = _text(x)
    x = g("job_id")
    if x is not None:
        e.job_id = _text(x)
    x = g("backend")
    if x is not None:
        e.backend = _text(x)
    if e.status == "failed":
        e.error_type = _text(g("error_type"))
        e.error_message = _text(g("error_message"))
        e.reason = _text(g("reason"))


def _take_claim(e: Entry, job: dict[str, Any]) -> None:
    e.backend = _text(job.get("backend"))
    e.job_id = _text(job.get("job_id"))
    e.submitted = e.submitted or _num(job.get("submitted"))
    e.function = e.function or _text(job.get("function"))
    e.dependencies = e.dependencies or _deps(job.get("upstream_keys"))
    owner = job.get("owner")
    e.owner = owner if isinstance(owner, dict) else None
    e.started = _num(job.get("started"))
    run = job.get("runner")
    if isinstance(run, dict):
        e.runner_host = e.host = _text(run.get("host"))
        pid = run.get("pid")
        e.runner_pid = pid if isinstance(pid, int) and pid > 0 else None
        e.job_id = e.job_id or _text(run.get("job_id"))


def _verify(store: Store, e: Entry, files: Files) -> None:
    """Read the .h5 files through the Store: unreadable -> corrupt, bad HMAC -> tampered."""
    try:
        if TASK in files or e.status in FINISHED:
            store.read_task(e.key)
        if e.status in FINISHED:
            store.read_outcome(e.key)
    except TamperedEntryError as err:
        e.mark("tampered", str(err))
    except CorruptEntryError as err:
        e.mark("corrupt", str(err))
    except FileNotFoundError:
        pass  # finished or removed meanwhile
    except OSError as err:
        e.mark("corrupt", f"unreadable: {err}")


# a forked worker's scanner (set before the fork, inherited by the children)
_FORK_SCANNER: _Scanner | None = None


def _forked_scan(share: list[tuple[str, Files | None]]) -> list[tuple[Any, ...]]:
    assert _FORK_SCANNER is not None
    # plain tuples pickle ~3x faster than slotted dataclasses
    return [_ALL_VALUES(e) for e in _FORK_SCANNER.entries(share)]


def _scan_parallel(scanner: _Scanner, keys: list[tuple[str, Files | None]], workers: int
                   ) -> list[Entry]:
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
        key_list: list[tuple[str, Files | None]]
        if keys is None:  # one listing per shard; DirEntry objects do not pickle
            key_list = [(k, _plain(f)) for k, f in store.scan()]
        else:
            key_list = [(k, scanner.files_of(k)) for k in keys]
        workers = _scan_workers()
        try:
            if len(key_list) >= PARALLEL_THRESHOLD and workers > 1 and _can_fork():
                entries = _scan_parallel(scanner, key_list, workers)
            else:
                entries = scanner.entries(key_list)
        finally:
            scanner.close()
        if check_liveness:
            _mark_lost(scanner, entries, check_scheduler)
    return entries


class _Found:
    """A picklable stand-in for ``os.DirEntry`` (name, path, stat)."""

    __slots__ = ("name", "path")

    def __init__(self, name: str, path: str) -> None:
        self.name, self.path = name, path

    def stat(self, follow_symlinks: bool = True) -> os.stat_result:
        return os.stat(self.path, follow_symlinks=follow_symlinks)


def _plain(files: dict[str, Any]) -> Any:
    return {k: _Found(d.name, d.path) for k, d in files.items()} if files else None


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
        fresh = scanner.entry(key, scanner.files_of(key))
        if fresh is None or fresh.status not in IN_FLIGHT:
            if fresh is not None:
                for f in _ENTRY_FIELDS:
                    setattr(e, f, getattr(fresh, f))
            continue
        e.mark("lost", why)
