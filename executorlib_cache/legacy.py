"""Format-1 caches: read their finished entries as hits (``catalog/migrate.py``
converts them to format 2).

A format-1 entry is a directory ``<cache>/<key>/`` holding ``task.h5``,
``task.json``, ``job.json``, ``started.json``, ``result.h5`` or ``error.h5`` and
``outcome.json`` (``docs/format.md``, "Format 1").  A cache that has them is
marked ``"v1_entries": true`` in ``.format``; until :func:`migrate` converts
them, the store falls back to them on a miss (one more lookup per miss):

* a format-1 ``result.h5`` is a hit and an ``error.h5`` a recorded failure, never
  silently recomputed;
* a format-1 entry that never finished (its driver was an older version) is not
  honoured: a format-2 driver claims the key afresh.  Stop old drivers before
  upgrading a cache they use.

These functions take the cache root (and the secret), not a ``Store``: the store
calls them on a miss.
"""

from __future__ import annotations

import hashlib
import hmac as hmac_mod
import os
import random
import time
import warnings
from typing import Any

from .entryfile import parse_meta
from .errors import CorruptEntryError, TamperedEntryError
from .fileio import read_h5, read_json_file

V1_FILES = ("task.h5", "task.json", "job.json", "started.json", "result.h5", "error.h5",
            "outcome.json")
_warned: set[str] = set()
_warned_format: set[str] = set()


def _is_shard(name: str) -> bool:
    return len(name) == 2 and all(c in "0123456789abcdef" for c in name)


def read_format(root: str, version: int) -> dict[str, Any] | None:
    """``<root>/.format`` as ``{"format": int, "v1_entries": bool}``, or None: a new
    directory or a format-1 cache (no file), or a damaged file (not such an object,
    or a format below ``version``: format-1 caches have no ``.format``) -- warned
    about once; an executor opening the cache then rewrites it (the shards and
    entries are what they were; only ``v1_entries`` is worked out again).  Raises
    :class:`CorruptEntryError` for a cache of a newer format than ``version``."""
    path = f"{root}/.format"
    info = read_json_file(path)
    number = None if info is None else info.get("format")
    if type(number) is int and number > version:
        raise CorruptEntryError(f"{root} is a cache of format {number}; this "
                                f"version of executorlib_cache reads <= {version} "
                                "(upgrade it)")
    if info is not None and number == version and type(number) is int \
            and type(info.get("v1_entries", False)) is bool:
        return info
    if os.path.lexists(path) and root not in _warned_format:
        _warned_format.add(root)
        warnings.warn(f"{path} is damaged (want a JSON object such as "
                      f'{{"format": {version}, "v1_entries": false}}): the cache is read '
                      "as it is, and the next executor to open it rewrites the file",
                      stacklevel=4)
    return None


def v1_entry_names(root: str) -> list[str]:
    """Keys of the format-1 entry directories in ``root``: directories not starting
    with ``.`` and not shards, plus ``.v1-<key>`` (a format-1 entry whose name is a
    shard's, moved aside while the shards were made)."""
    has_format = os.path.exists(f"{root}/.format")
    out: list[str] = []
    try:
        it = os.scandir(root)
    except (FileNotFoundError, NotADirectoryError):
        return out
    with it:
        for d in it:
            if not d.is_dir(follow_symlinks=False):
                continue
            if d.name.startswith(".v1-"):
                out.append(d.name[4:])
            elif d.name.startswith("."):
                continue
            elif (not has_format or not _is_shard(d.name)) and _looks_v1(d.path):
                out.append(d.name)
    return out


def _looks_v1(path: str) -> bool:
    # every format-1 entry has its claim or its task summary (an executorlib job's
    # working directory, or anything else, has neither)
    return any(os.path.exists(f"{path}/{n}") for n in ("job.json", "task.json", "result.h5"))


def executorlib_names(root: str) -> list[str]:
    """The executorlib entry files (``*_o.h5``, ``*_i.h5``) at the top of ``root``."""
    try:
        return [n for n in os.listdir(root) if n.endswith(("_o.h5", "_i.h5"))]
    except OSError:
        return []


def entry_dir(root: str, key: str) -> str | None:
    """The format-1 directory of ``key`` in the cache ``root``, or None."""
    for name in (key, f".v1-{key}"):
        if _is_shard(name) and os.path.exists(f"{root}/.format"):
            continue
        path = f"{root}/{name}"
        if "/" not in key and os.path.isdir(path) and not os.path.islink(path):
            return path
    return None


def warn_once(root: str) -> None:
    """One warning per cache and process: format-1 entries are read, not converted."""
    if root in _warned:
        return
    _warned.add(root)
    warnings.warn(
        f"cache directory {root} holds format-1 entries: they are read as cache "
        f"hits, but each miss costs one more lookup; convert them with "
        f"`xcache --cache-dir {root} migrate` (safe to interrupt and re-run)",
        stacklevel=4)


def _sign(secret: bytes, kind: str, meta_json: str, payload: bytes) -> str:
    h = hmac_mod.new(secret, digestmod=hashlib.sha256)
    for part in (kind.encode(), b"\0", meta_json.encode(), b"\0", payload):
        h.update(part)
    return h.hexdigest()


def _read(secret: bytes | None, path: str, kind: str, key: str
          ) -> tuple[bytes, dict[str, Any]]:
    meta_json, payload, sig = read_h5(path, with_signature=secret is not None)
    meta = parse_meta(path, meta_json)
    if meta.get("kind") != kind or meta.get("format") != 1:
        raise CorruptEntryError(f"{path}: not a format-1 {kind} file")
    if secret is not None and (
            sig is None or not hmac_mod.compare_digest(
                sig, _sign(secret, kind, meta_json, payload))):
        raise TamperedEntryError(
            f"{path}: signature does not match XCACHE_SECRET; refusing to load it")
    if meta.get("key", key) != key:
        raise CorruptEntryError(f"{path}: belongs to entry {meta.get('key')!r}, not {key!r}")
    return payload, meta


def read_outcome(root: str, secret: bytes | None, key: str
                 ) -> tuple[str, bytes, dict[str, Any]] | None:
    """``(status, payload, meta)`` of a finished format-1 entry (``result.h5`` /
    ``error.h5``; ``meta["task"]`` from its ``task.json``), or None."""
    base = entry_dir(root, key)
    if base is None:
        return None
    for name, status in (("result.h5", "done"), ("error.h5", "failed")):
        try:
            payload, meta = _read(secret, f"{base}/{name}", status, key)
        except FileNotFoundError:
            continue
        task = read_json_file(f"{base}/task.json")
        return status, payload, {**meta, "task": task or {}, "format_read": 1}
    return None


def read_task(root: str, secret: bytes | None, key: str) -> tuple[bytes, dict[str, Any]]:
    """``(payload, meta)`` of a format-1 ``task.h5``; ``FileNotFoundError`` if none."""
    base = entry_dir(root, key)
    if base is None:
        raise FileNotFoundError(f"entry {key} has no task")
    return _read(secret, f"{base}/task.h5", "task", key)


def read_claim(root: str, key: str) -> dict[str, Any] | None:
    """The format-1 ``job.json`` of an entry, or None."""
    base = entry_dir(root, key)
    return read_json_file(f"{base}/job.json") if base is not None else None


def file_status(root: str, key: str) -> str | None:
    """``done`` / ``failed`` of a finished format-1 entry, else None (unfinished
    format-1 entries are not honoured; see the module docstring)."""
    base = entry_dir(root, key)
    if base is None:
        return None
    if os.path.exists(f"{base}/result.h5"):
        return "done"
    if os.path.exists(f"{base}/error.h5"):
        return "failed"
    return None


def kinds(root: str, key: str) -> set[str]:
    """The format-2 kinds a format-1 entry stands for (``done`` or ``failed``)."""
    st = file_status(root, key)
    return {st} if st else set()


def quarantine(root: str, key: str, reason: str) -> str | None:
    """Move a damaged format-1 entry directory into ``.corrupt/``."""
    base = entry_dir(root, key)
    if base is None:
        return None
    dst = f"{root}/.corrupt/{key}.{int(time.time())}-{random.getrandbits(24):06x}"
    try:
        os.rename(base, dst)
    except FileNotFoundError:
        return None
    warnings.warn(f"cache entry {key} is unreadable ({reason}); moved to {dst} and it "
                  "will be recomputed", stacklevel=4)
    return dst


def move_shard_named(root: str) -> None:
    """Before the shards of a new format-2 layout are made: a format-1 entry whose
    name is a shard's (two hex digits) moves to ``.v1-<key>``, where it is read."""
    for name in v1_entry_names(root):
        if _is_shard(name):
            os.rename(f"{root}/{name}", f"{root}/.v1-{name}")


