"""What the catalog reports: ``get_cache_data`` rows, ``describe`` of one entry,
``cache_stats``, and the task graph of a cache directory."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import CatalogError
from ..graph import TaskGraph, graph_from_rows
from ..serialization import load_outcome, loads
from ..store import CLAIM, DONE, FAILED, STATUSES, TASK, Store
from .scanner import Entry, gc_paused, scan
from .select import FINISHED, filter_entries, open_store, resolve_key

# ---------------------------------------------------------------- Python API
#: the fields executorlib's get_cache_data gives (1.11), added to this package's rows
EXECUTORLIB_FIELDS = ("function", "input_args", "input_kwargs", "resource_dict", "output",
                      "error", "runtime", "queue_id", "error_log_file", "filename")


def list_cache(
    cache_directory: str | os.PathLike[str],
    *,
    load: bool = False,
    verify: bool = False,
    check_scheduler: bool = True,
) -> list[dict[str, Any]]:
    """The fast listing: one dict per entry with the fields of :data:`FIELDS`
    (``function`` is the name), read from each entry's summary -- nothing is
    unpickled, no user module is needed (``xcache ls``; 100,000 entries in a few
    seconds).  Times are epoch seconds, ``size`` is pickled bytes.  ``load=True``
    also gives ``result`` (the return value) or ``error`` (the exception), and
    ``load_error`` when that failed (missing module, corrupt or tampered file).
    A cache directory that does not exist (yet) has no entries: ``[]``.
    """
    if not isinstance(cache_directory, Store) and not os.path.exists(cache_directory):
        return []
    store = open_store(cache_directory)
    entries = scan(store, verify=verify or load, check_scheduler=check_scheduler)
    with gc_paused():
        rows = [e.row() for e in entries]
    if load:
        for e, row in zip(entries, rows, strict=True):
            row.update(_loaded(store, e))
            if row["load_error"] and e.status not in FINISHED + ("corrupt", "tampered"):
                row["load_error"] = None  # in flight: nothing to load yet, not a problem
    return rows


def get_cache_data(
    cache_directory: str | os.PathLike[str],
    *,
    load: bool = True,
    verify: bool = False,
    check_scheduler: bool = True,
) -> list[dict[str, Any]]:
    """executorlib's ``get_cache_data``: one dict per entry, made for
    ``pandas.DataFrame(get_cache_data(d))``.

    Each dict has executorlib's fields -- ``function`` (the callable),
    ``input_args`` (list; an argument that was a future is a ``DependencyRef`` to its
    entry), ``input_kwargs``, ``resource_dict``, ``output`` (the return value) or
    ``error`` (the exception), ``runtime`` (s), ``queue_id`` (the scheduler job id,
    an int where it is one), ``error_log_file``, ``filename`` (the entry's file) --
    plus this package's metadata (:func:`list_cache`'s fields, with the function's
    name as ``function_name``) and ``load_error`` when something could not be
    unpickled here.  Unpickling needs the modules of the calls; for a listing
    without them, or of a large cache, use :func:`list_cache` (``load=False`` here
    gives the same).  A cache directory that does not exist (yet) gives ``[]``.
    """
    if not load:
        return list_cache(cache_directory, verify=verify, check_scheduler=check_scheduler)
    if not isinstance(cache_directory, Store) and not os.path.exists(cache_directory):
        return []
    store = open_store(cache_directory)
    # every file is read anyway: verified (corrupt/tampered) as it is
    entries = scan(store, verify=True, check_scheduler=check_scheduler)
    rows = []
    for e in entries:
        row = e.row()
        row["function_name"] = row.pop("function")
        row.update(_executorlib_fields(store, e))
        rows.append(row)
    return rows


def _executorlib_fields(store: Store, e: Entry) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(EXECUTORLIB_FIELDS)
    out["load_error"] = None
    out["runtime"] = e.runtime
    jid = e.job_id
    out["queue_id"] = int(jid) if isinstance(jid, str) and jid.isdigit() else jid
    files = [store.path_of(e.key, k) for k in (DONE, FAILED, TASK, CLAIM)
             if store.has(e.key, k)]
    out["filename"] = files[0] if files else None
    problems = []
    try:
        payload, meta = store.read_task(e.key)
        out["resource_dict"] = meta.get("resource_dict")
        out["error_log_file"] = (meta.get("resource_dict") or {}).get("error_log_file")
        fn, args, kwargs = loads(payload)
        out.update(function=fn, input_args=list(args), input_kwargs=dict(kwargs))
    except FileNotFoundError:
        pass  # a local call in flight: its call is in the worker's hands
    except Exception as err:  # a module missing here, a damaged or tampered file
        problems.append(f"call: {type(err).__name__}: {err}")
    if e.status in FINISHED:
        value, why = _load_outcome(store, e)
        out["output" if e.status == "done" else "error"] = value
        if why:
            problems.append(f"{'result' if e.status == 'done' else 'error'}: {why}")
    out["load_error"] = "; ".join(problems) or None
    return out


def _loaded(store: Store, e: Entry) -> dict[str, Any]:
    """``result``/``error``/``load_error`` of an entry, as ``load=True`` gives them."""
    out: dict[str, Any] = {"result": None, "error": None, "load_error": None}
    if e.status in FINISHED:
        name = "result" if e.status == "done" else "error"
        out[name], out["load_error"] = _load_outcome(store, e)
    elif e.status in ("corrupt", "tampered"):
        out["load_error"] = e.problem
    else:
        out["load_error"] = f"entry is {e.status}: nothing to load"
    return out


def _load_outcome(store: Store, e: Entry) -> tuple[Any, str | None]:
    """Unpickle an entry's result or exception: (value, None) or (None, why not)."""
    try:
        outcome = store.read_outcome(e.key)
        if outcome is None:
            return None, "no result or error file"
        value, exc = load_outcome(outcome.status, outcome.payload, outcome.meta)
    except Exception as err:  # anything a foreign pickle can raise
        return None, f"{type(err).__name__}: {err}"
    if outcome.status == "failed":  # as a future raises it: remote traceback as cause
        return exc, None
    if exc is not None:
        return None, f"{type(exc).__name__}: {exc}"
    return value, None


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
    Log files (named in the claim, or kept in ``.jobs/<key>/``) are given with
    their last ``tail`` lines.
    """
    store = open_store(cache_directory)
    key = resolve_key(store, key)
    found = scan(store, keys=[key], verify=True, disk=True, check_scheduler=check_scheduler)
    if not found:
        raise CatalogError(f"entry {key} is empty (its creation was interrupted) or was "
                           "just removed")
    e = found[0]
    info: dict[str, Any] = e.row()
    try:
        task = store.read_task(key)[1]
    except Exception:  # missing (a local call in flight) or unreadable (see problem)
        task = {}
    job = store.read_claim(key) or {}
    outcome: dict[str, Any] | None = None
    if e.status in FINISHED or e.status in ("corrupt", "tampered"):
        try:
            found_outcome = store.read_outcome(key)
            outcome = found_outcome.meta if found_outcome is not None else None
        except Exception:
            outcome = None
    outcome_meta = {k: v for k, v in (outcome or {}).items() if k != "task"}
    files = [store.path_of(key, k) for k in (DONE, FAILED, CLAIM, TASK)
             if store.has(key, k)]
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
        result_size=outcome_meta.get("size"),
        traceback=outcome_meta.get("traceback"),
        job=job,
        task=task,
        started_info=job.get("runner"),
        outcome=outcome_meta or None,
        path=files[0] if files else store.path_of(key, DONE),
        files=files,
        disk_size=e.disk_size,
        logs={},
    )
    workdir = job.get("working_directory") or outcome_meta.get("working_directory") \
        or store.job_dir(key)
    for stream, name in (("stdout", "job.out"), ("stderr", "job.err")):
        p = job.get(stream) or outcome_meta.get(stream)
        path = Path(str(p)) if p else Path(store.job_dir(key)) / name
        if not path.is_absolute() and workdir:
            path = Path(str(workdir)) / path
        if p or path.exists():
            info["logs"][stream] = {"path": str(path), "tail": _tail(path, tail)}
    if load:
        info.update(_loaded(store, e))
    return info



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




def graph_from_cache(
    cache_directory: str | os.PathLike[str],
    *,
    status: Iterable[str] | None = None,
    function: str | None = None,
    check_scheduler: bool = True,
) -> TaskGraph:
    """The task graph of a cache directory (optionally only some statuses/functions).

    Filtering keeps an edge only when both ends are shown, so a filtered graph
    never invents ``missing`` nodes for entries that merely were filtered out.
    """
    store = open_store(cache_directory)
    entries = scan(store, check_scheduler=check_scheduler)
    shown = filter_entries(entries, status=set(status) if status else None, function=function)
    keep = {e.key for e in shown}
    rows = [e.row() for e in shown]
    if status or function:
        for row in rows:
            row["dependencies"] = [d for d in row.get("dependencies") or () if d in keep]
    return graph_from_rows(rows)
