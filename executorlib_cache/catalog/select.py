"""Parsing what a user asks the catalog for: durations, sizes, statuses, keys; and
selecting and ordering entries.  Every problem is a one-line :class:`CatalogError`."""

from __future__ import annotations

import fnmatch
import math
import os
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import CatalogError
from ..store import STATUSES, Store

if TYPE_CHECKING:
    from .scanner import Entry

#: statuses that someone may still act on: never pruned, removed only with force
ACTIVE = ("pending", "queued", "running")
#: statuses with a result or error file
FINISHED = ("done", "failed")
IN_FLIGHT = ("queued", "running")
#: the fields of every dict returned by :func:`get_cache_data`, in this order
#: fields ``xcache ls --sort`` accepts
SORT_FIELDS = ("submitted", "finished", "runtime", "size", "function", "status", "key")
#: scheduler states (lower case) after which a job without a result is lost

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
    # every store makes these (format 1: .locks and .trash): without them this is
    # some other directory, whose files `rm --all` must never take for entries
    if not (store.root / ".format").is_file() and not (store.root / ".trash").is_dir():
        xl = [n for n in os.listdir(store.root) if n.endswith(("_o.h5", "_i.h5"))]
        if xl:
            raise CatalogError(
                f"{store.root} is an executorlib cache ({len(xl)} *_o.h5/*_i.h5 files), not "
                "an executorlib_cache one: import its finished entries with `xcache "
                f"--cache-dir NEW import {store.root}` (or re-run the script with "
                "executorlib_cache)")
        raise CatalogError(f"{store.root} is not an executorlib_cache cache directory "
                           "(it has no .format or .trash)")
    store.check_shards()  # never read or remove through a symlinked shard
    return store


def valid_name(text: str) -> bool:
    """True for an entry name or key prefix: parts joined by ``/`` (hierarchical keys),
    none empty, hidden or ``..`` (a name never points outside the cache: the store
    encodes ``/`` in file names, and only listed keys are ever resolved)."""
    if not text or "\0" in text or (os.altsep is not None and os.altsep in text):
        return False
    return all(part and not part.startswith(".") for part in text.split("/"))


def resolve_key(store: Store, prefix: str) -> str:
    """The one key equal to, or starting with, ``prefix``.

    Only names listed in the cache directory can be returned, so a ``prefix``
    such as ``../x`` can never point outside it.  Raises :class:`CatalogError`
    when nothing or more than one entry matches.
    """
    if not valid_name(prefix):
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


