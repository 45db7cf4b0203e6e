"""Where an entry file's bytes lie: the user block's span table, so that a cache hit
takes its result out of the bytes it read without parsing HDF5.

Parsing a small entry file in memory with HDF5 costs 0.2-0.35 ms (measured: over
half of a warm cache hit, bench/run.py ``warm``); slicing the bytes out costs a few
microseconds.  When an entry file is built in memory (``fileio.write_entry``,
payloads up to 1 MiB), the writer looks up where HDF5 put the ``meta`` and ``hmac``
attributes and each dataset -- raw ``uint8`` data and fixed-length strings are
stored verbatim, so a byte string found exactly once in the image is where it
lies -- and records it in the user block, as one JSON line after the summary
(so that ``xcache ls``, which reads only the summary, does not pay for it)::

    {"base": <where the HDF5 part starts>,
     "spans": {"@meta": [offset, length], "@hmac": [...], "result": [...]},
     "blake2b": "<hex BLAKE2b-128 of the whole HDF5 part>"}

Offsets count from the start of the file.  The digest covers the table itself
(``[base, spans]`` as canonical JSON) and every byte after the user block, so the
table holds only for the exact file it was written with: a reader
(:func:`read_located`) uses it when the digest matches, ``base`` is where the HDF5
signature is and every span lies inside the HDF5 part; anything else -- no table,
a damaged user block or table, a file truncated, flipped or changed in place with
h5py -- falls back to HDF5, which decides whether the file is valid, exactly as
without the table.  Hashing a 3 KB
file costs about 4 us.  The table is an optional field of format 2
(``docs/format.md``): readers that do not know it ignore it; the signature
(``entryfile``) covers the same bytes either way.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: names of the attributes in the table (datasets go by their own names)
META, HMAC = "@meta", "@hmac"
#: how a format-2 user block starts, and HDF5's own signature (where ``base`` points);
#: ``fileio`` writes and reads the user block with these
SUMMARY_MAGIC = b"#xcache-entry 2 "
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _digest(base: int, spans: dict[str, list[int]], hdf5: bytes | memoryview) -> str:
    h = hashlib.blake2b(json.dumps([base, spans], sort_keys=True,
                                   separators=(",", ":")).encode(), digest_size=16)
    h.update(b"\0")
    h.update(hdf5)
    return h.hexdigest()


def locate(image: bytes, base: int, parts: dict[str, bytes]) -> dict[str, Any] | None:
    """The span table of ``parts`` (name -> bytes) in an HDF5 ``image`` that will sit
    ``base`` bytes into its file (after the user block), or None when a part's bytes
    are not found exactly once (a tiny payload may also occur in HDF5's own
    structures: that entry is then read through HDF5)."""
    spans: dict[str, list[int]] = {}
    for name, piece in parts.items():
        if not piece:
            spans[name] = [base, 0]
            continue
        at = image.find(piece)
        if at < 0 or image.find(piece, at + 1) >= 0:
            return None
        spans[name] = [base + at, len(piece)]
    return {"base": base, "spans": spans, "blake2b": _digest(base, spans, image)}


def read_located(data: bytes, names: tuple[bytes, ...], with_signature: bool
                 ) -> tuple[str, dict[bytes, bytes], str | None] | None:
    """``(meta_json, {dataset: bytes}, hmac or None)`` of a whole entry file in
    ``data`` by its span table (the answer ``fileio.read_entry`` would give), or
    None when the file has no usable table and HDF5 must read it."""
    if not data.startswith(SUMMARY_MAGIC):
        return None
    nl = data.find(b"\n", 0, 64)
    try:
        start = nl + 1 + int(data[len(SUMMARY_MAGIC):nl]) + 1  # after the summary's line
        end = data.find(b"\n", start, start + 4096)
        if end < 0 or data[start:start + 1] != b"{":
            return None
        table = json.loads(data[start:end])
        base, spans = table["base"], table["spans"]
        if type(base) is not int or not start < base < len(data) \
                or data[base:base + 8] != HDF5_SIGNATURE or type(spans) is not dict \
                or _digest(base, spans, memoryview(data)[base:]) != table["blake2b"]:
            return None
        pieces: dict[str, bytes] = {}
        for name, (start, size) in spans.items():
            if type(start) is not int or type(size) is not int or start < base \
                    or size < 0 or start + size > len(data):
                return None
            pieces[name] = data[start:start + size]
        meta_json = pieces[META].decode()
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    out = {n: pieces[n.decode()] for n in names if n.decode() in pieces}
    sig = pieces[HMAC].decode() if with_signature and HMAC in pieces else None
    return meta_json, out, sig
