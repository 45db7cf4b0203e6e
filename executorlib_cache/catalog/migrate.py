"""``xcache migrate``: convert a cache's format-1 entries to format 2, in place.

:func:`migrate_one` converts one entry under its claim lock: the format-2 file is
written first (atomically, ``Store.write_outcome``), then the old directory goes
(renamed into ``.trash``, then deleted).  A kill at any point leaves the entry
readable -- as format 1, or as format 2 with a leftover directory the next run
drops -- so the migration is resumable: run it again.
"""

from __future__ import annotations

import os
import random
import shutil
import warnings

from .. import legacy
from ..errors import CorruptEntryError, TamperedEntryError
from ..fileio import read_json_file
from ..liveness import owner_alive
from ..store import CLAIM, DONE, FAILED, Store


def _drop(store: Store, base: str, key: str) -> None:
    """Remove a format-1 directory (and its format-1 lock file)."""
    dst = f"{store._root}/.trash/{os.path.basename(base)}.v1-{os.getpid()}-" \
          f"{random.getrandbits(40):010x}"
    try:
        os.rename(base, dst)
    except FileNotFoundError:
        return
    shutil.rmtree(dst, ignore_errors=True)
    try:
        os.unlink(f"{store._root}/.locks/{key}.lock")
    except OSError:
        pass


def migrate_one(store: Store, key: str) -> str:
    """Convert one format-1 entry; returns what happened: ``"migrated"`` (its
    outcome is now one format-2 file), ``"present"`` (a format-2 file was already
    there: the old directory was dropped), ``"dropped"`` (unfinished and its owner
    is gone: it would be computed afresh anyway), ``"in-flight"`` (unfinished, its
    owner lives: left alone) or ``"corrupt"`` (moved to ``.corrupt/``).
    """
    root = str(store.root)
    base = legacy.entry_dir(root, key)
    if base is None:
        return "present"
    with store.claim(key):
        if os.path.exists(store.path_of(key, DONE)) or \
                os.path.exists(store.path_of(key, FAILED)) or \
                os.path.exists(store.path_of(key, CLAIM)):
            _drop(store, base, key)
            return "present"
        try:
            outcome = legacy.read_outcome(root, store.secret, key)
        except (CorruptEntryError, TamperedEntryError) as e:
            legacy.quarantine(root, key, str(e))
            return "corrupt"
        if outcome is None:
            job = read_json_file(f"{base}/job.json")
            if job is not None and owner_alive(job.get("owner"), store.root):
                return "in-flight"
            _drop(store, base, key)
            return "dropped"
        try:
            task_payload, task_meta = legacy.read_task(root, store.secret, key)
        except FileNotFoundError:
            task_payload, task_meta = b"", {"note": "format-1 entry without task.h5"}
        except (CorruptEntryError, TamperedEntryError) as e:
            legacy.quarantine(root, key, str(e))
            return "corrupt"
        status, payload, old = outcome
        meta = {k: v for k, v in old.items()
                if k not in ("kind", "status", "format", "key", "size", "task",
                             "format_read")}
        meta["migrated_from"] = 1
        store.write_outcome(key, status, payload, meta, task=(task_payload, task_meta))
        _drop(store, base, key)
    return "migrated"


def migrate(store: Store) -> dict[str, int]:
    """Convert every format-1 entry of ``store`` (:func:`migrate_one`); when none is
    left, ``.format`` says so and the format-1 leftovers (``.locks/``, ``.tmp/``) go.
    Returns counts by outcome.  Safe to interrupt and to run again."""
    counts: dict[str, int] = {}
    if store.format_info() is None:  # a format-1 cache: the format-2 layout first
        with warnings.catch_warnings():  # (.format saying v1_entries, shards; a
            warnings.simplefilter("ignore")  # shard-named entry aside) -- no "migrate!"
            store.prepare()
    for key in legacy.v1_entry_names(str(store.root)):
        what = migrate_one(store, key)
        counts[what] = counts.get(what, 0) + 1
    if not legacy.v1_entry_names(str(store.root)):
        store.set_v1_entries(False)
        for sub in (".locks", ".tmp"):
            shutil.rmtree(f"{store._root}/{sub}", ignore_errors=True)
    # what a killed migration left in .trash (renamed there, not yet deleted)
    try:
        left = os.listdir(f"{store._root}/.trash")
    except OSError:
        left = []
    for name in left:
        if ".v1-" in name:
            shutil.rmtree(f"{store._root}/.trash/{name}", ignore_errors=True)
    return counts
