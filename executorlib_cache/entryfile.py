"""What makes an entry file valid: its metadata, its version, its kind, its key, its
signature.  Pure functions on what ``fileio.read_entry_file`` returned; the store
(``store.py``) decides what to read and what a failure means.

The signature (only with a secret): hex HMAC-SHA256 of ``xcache-2``, the kind and the
meta JSON as stored, then for each signed dataset its name, length and bytes.  A
task file signs its call; a finished file signs its result or error, and covers its
call through ``task_sha256`` in the signed meta (a cache hit need not read the
call's bytes).  See docs/format.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from .errors import CorruptEntryError, TamperedEntryError
from .naming import TASK

FORMAT_VERSION = 2


def signed(kind: str, datasets: list[tuple[bytes, bytes]] | dict[bytes, bytes]
           ) -> list[tuple[bytes, bytes]]:
    """The datasets an HMAC covers: a task file's call; a finished file's result or
    error."""
    items = list(datasets.items()) if isinstance(datasets, dict) else datasets
    if kind == TASK:
        return [(n, p) for n, p in items if n == b"task"]
    return [(n, p) for n, p in items if n != b"task"]


def sign(secret: bytes, kind: str, meta_json: str,
         datasets: list[tuple[bytes, bytes]] | dict[bytes, bytes]) -> str:
    """The hex HMAC-SHA256 of an entry file (its :func:`signed` datasets)."""
    h = hmac.new(secret, digestmod=hashlib.sha256)
    h.update(b"xcache-2\0" + kind.encode() + b"\0" + meta_json.encode())
    for name, payload in signed(kind, datasets):
        h.update(b"\0" + name + b"\0" + str(len(payload)).encode() + b"\0")
        h.update(payload)
    return h.hexdigest()


def parse_meta(path: str, meta_json: str) -> dict[str, Any]:
    """An entry file's ``meta`` attribute as a dict; :class:`CorruptEntryError`
    (naming ``path``) when it is not a JSON object (formats 1 and 2)."""
    try:
        meta = json.loads(meta_json)
        if not isinstance(meta, dict):
            raise ValueError("meta is not a JSON object")
    except ValueError as e:
        raise CorruptEntryError(f"{path}: incomplete entry file ({e})") from e
    return meta


def check(path: str, read: tuple[str, dict[bytes, bytes], str | None], kind: str, key: str,
          secret: bytes | None) -> tuple[dict[bytes, bytes], dict[str, Any]]:
    """``(datasets, meta)`` of a file read as ``kind`` of entry ``key``.  Raises
    :class:`CorruptEntryError` (no JSON object, another format version or kind, another
    entry's file without a secret) or :class:`TamperedEntryError` (the signature does
    not match ``secret``, or another entry's file with one: a replay)."""
    meta_json, datasets, sig = read
    meta = parse_meta(path, meta_json)
    fmt = meta.get("format")
    if not isinstance(fmt, int) or fmt != FORMAT_VERSION:
        raise CorruptEntryError(f"{path}: written by format version {fmt!r}; this "
                                f"version reads {FORMAT_VERSION} here")
    if meta.get("kind") != kind:
        raise CorruptEntryError(f"{path}: kind {meta.get('kind')!r}, expected {kind!r}")
    if secret is not None and (sig is None or not hmac.compare_digest(
            sig, sign(secret, kind, meta_json, datasets))):
        raise TamperedEntryError(
            f"{path}: signature does not match XCACHE_SECRET; refusing to load it")
    if meta.get("key", key) != key:
        # a valid file of another entry copied here: with a secret that is a replay
        # (the signature covers the key), without one a mix-up; never this key's
        cls = TamperedEntryError if secret is not None else CorruptEntryError
        raise cls(f"{path}: belongs to entry {meta.get('key')!r}, not {key!r}")
    return datasets, meta
