"""The Python side of ``xcache``: list, describe, remove and prune cache entries.

Four modules, one job each: ``select`` (parsing what the user asks for, choosing
and ordering entries), ``scan`` (reading entries), ``report`` (rows, ``describe``,
stats, the task graph), ``maintain`` (removing, pruning, cancelling jobs).

Everything here reads entries through :class:`~executorlib_cache.store.Store` and
never unpickles anything unless asked to (``load=True``).  A listing reads only
the shard directories, each finished file's summary (its HDF5 user block, JSON) and
the claims (``@claim``, JSON) of calls in flight, so it works when the user's
modules are not importable and stays fast for 100,000 entries.

Statuses (``store.STATUSES``):

``pending`` / ``queued`` / ``running`` / ``done`` / ``failed``
    from which files exist (:meth:`Store.file_status`).
``lost``
    queued or running but nobody can finish it: a ``local`` entry whose owner
    (in its claim) is dead and whose runner (the claim's ``runner``) is not alive, or a
    ``slurm``/``flux`` entry whose job the scheduler no longer knows (or reports as
    ended) while no result was written.  The scheduler is asked once per backend.
``corrupt``
    an empty or unreadable entry file (``<enc>.h5``, ``@failed.h5``, ``@task.h5``;
    damage inside the HDF5 part is seen when the files are read: ``verify=True``,
    ``load=True``, :func:`describe`), or a garbage claim.
``tampered``
    an ``.h5`` file whose signature does not match ``XCACHE_SECRET`` (only seen
    when the ``.h5`` files are read).

No entry can make a listing fail: every problem is caught and shown as a status
plus a ``problem`` text.
"""

from __future__ import annotations

from ..errors import CatalogError
from .importer import executorlib_files, import_executorlib
from .maintain import (
    RemovalPlan,
    execute_removal,
    plan_prune,
    plan_removal,
    prune,
    remove_entries,
    terminate_task_in_cache,
    terminate_tasks_in_cache,
)
from .migrate import migrate, migrate_one
from .report import cache_stats, describe, get_cache_data, graph_from_cache, list_cache
from .scanner import FIELDS, Entry, gc_paused, scan
from .select import (
    ACTIVE,
    FINISHED,
    IN_FLIGHT,
    SORT_FIELDS,
    filter_entries,
    needs_verify,
    open_store,
    parse_duration,
    parse_size,
    parse_statuses,
    resolve_key,
    sort_entries,
    valid_name,
)

__all__ = [
    "executorlib_files",
    "import_executorlib",
    "migrate",
    "migrate_one",
    "ACTIVE", "FIELDS", "FINISHED", "IN_FLIGHT", "SORT_FIELDS", "CatalogError", "Entry",
    "RemovalPlan", "cache_stats", "describe", "execute_removal", "filter_entries",
    "gc_paused", "get_cache_data", "graph_from_cache", "list_cache", "needs_verify",
    "open_store",
    "parse_duration", "parse_size", "parse_statuses", "plan_prune", "plan_removal", "prune",
    "remove_entries", "resolve_key", "scan", "sort_entries", "terminate_task_in_cache",
    "terminate_tasks_in_cache",
    "valid_name",
]
