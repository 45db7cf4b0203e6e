"""Names in a format-2 cache: which file of which entry, in which shard.

A key maps to ``<cache>/<hh>/<enc><suffix>``: ``<hh>`` is the first byte of
``blake2s(key)`` in hex (256 shards), the stripe of its claim lock the next two
bytes (:mod:`.locks`), ``<enc>`` the key percent-encoded for a file name
(:func:`encode_key`) and the suffix names the kind of file (:data:`SUFFIX`).
Pure functions: no file system access here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .resources import is_entry_key

DONE, FAILED, CLAIM, TASK = "done", "failed", "claim", "task"
#: file name suffix of each kind of file of an entry
SUFFIX = {DONE: ".h5", FAILED: "@failed.h5", CLAIM: "@claim", TASK: "@task.h5"}
#: crash-point names of the writes (``XCACHE_CRASH_AT``, tests/faults): the
#: format-1 file names, so a fault test names a step, not a format
CRASH_LABEL = {DONE: "result.h5", FAILED: "error.h5", CLAIM: "job.json", TASK: "task.h5"}
#: every status an entry can have, as shown by ``xcache ls``
STATUSES = ("pending", "queued", "running", "done", "failed", "lost", "corrupt", "tampered")
#: the fields of an entry file's user block (what a listing shows without HDF5)
SUMMARY_FIELDS = ("key", "status", "function", "module", "submitted", "started",
                  "finished", "runtime", "host", "job_id", "backend", "size",
                  "dependencies", "error_type", "error_message", "reason")
HIDDEN = (".format", ".lock", ".jobs", ".drivers", ".used", ".trash", ".corrupt", ".queue")


def encode_key(key: str) -> str:
    """The file-name form of a key: ``%``, ``/`` and ``@`` percent-encoded, and a
    leading ``.`` (a file name starting with ``.`` is a temp file)."""
    enc = key.replace("%", "%25").replace("/", "%2F").replace("@", "%40")
    return "%2E" + enc[1:] if enc.startswith(".") else enc


def decode_key(name: str) -> str:
    """Inverse of :func:`encode_key`."""
    if "%" not in name:
        return name
    return name.replace("%2E", ".").replace("%2F", "/").replace("%40", "@") \
        .replace("%25", "%")


def digest(key: str) -> bytes:
    """4 bytes of blake2s(key): byte 0 names the shard, bytes 1-2 the lock stripe."""
    return hashlib.blake2s(key.encode(), digest_size=4).digest()


def split_name(name: str) -> tuple[str, str] | None:
    """``(key, kind)`` of a file name in a shard, or None (temp files, strangers:
    a name that :func:`encode_key` cannot have produced, such as ``%ZZ.h5`` or
    ``a@b.h5``, or that decodes to no valid key, such as ``a b.h5``, is nobody's
    entry)."""
    if name.startswith("."):
        return None
    for kind in (FAILED, TASK, CLAIM, DONE):
        if name.endswith(SUFFIX[kind]):
            enc = name[:-len(SUFFIX[kind])]
            break
    else:
        return None
    key = decode_key(enc) if "%" in enc else enc
    return (key, kind) if is_entry_key(key) and encode_key(key) == enc else None


def shard_of(key: str) -> str:
    """The shard directory name (``"00"``..``"ff"``) a key's files live in."""
    return f"{digest(key)[0]:02x}"



SHARDS = tuple(f"{i:02x}" for i in range(256))


def summary_of(key: str, status: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The listing fields (:data:`SUMMARY_FIELDS`) of an entry file, from its meta."""
    task: dict[str, Any] = meta["task"] if isinstance(meta.get("task"), dict) else meta
    out: dict[str, Any] = {"key": key, "status": status}
    for f in ("function", "module", "submitted"):
        out[f] = task.get(f)
    out["dependencies"] = list(task.get("dependencies") or [])
    out["size"] = int(task.get("payload_size") or 0) + int(meta.get("size") or 0)
    for f in ("started", "finished", "runtime", "host", "job_id", "backend",
              "error_type", "reason"):
        out[f] = meta.get(f)
    msg = meta.get("error_message")
    out["error_message"] = msg[:500] if isinstance(msg, str) else msg
    return out


def status_of(kinds: set[str] | dict[str, Any], claim: dict[str, Any] | None) -> str | None:
    """Status from the kinds of files present (and the claim record, if read)."""
    if DONE in kinds:
        return DONE
    if FAILED in kinds:
        return FAILED
    if CLAIM in kinds:
        return "running" if claim and claim.get("started") else "queued"
    if TASK in kinds:
        return "pending"
    return None


@dataclass
class Outcome:
    """A finished entry: ``status`` is ``"done"`` or ``"failed"``; ``payload`` the
    pickled value or exception; ``meta`` its metadata (``meta["task"]``: the call's)."""

    status: str
    payload: bytes
    meta: dict[str, Any]
