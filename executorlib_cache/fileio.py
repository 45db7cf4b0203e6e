"""Storage primitives: atomic writes, small HDF5 files, fast JSON reads, crash points.

Policy (what an entry is, which files it has, signatures) lives in ``store.py``;
these functions only move bytes safely (joblib's split of ``_store_backends``).

* :func:`atomic_write` / :func:`write_h5`: a temp name beside the target (host,
  pid and random bits in it), then ``os.replace``: a reader sees the old file or
  the new one, never half; ``kill -9`` at any instant leaves no half-written file.
* HDF5 through h5py's low-level API: opening a small file with ``h5py.File``
  costs ~320 us, these calls ~80 us, which is what makes re-running 10,000 cached
  calls take about a second.  Files are written once and opened without HDF5 file
  locking (NFS/Lustre).
* Fault injection for ``tests/faults``: ``XCACHE_CRASH_AT=<file>:<when>`` stops
  this process dead at a named point of a write.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import random
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from h5py import h5a, h5d, h5f, h5p, h5s, h5t

from . import spans
from .errors import CorruptEntryError

HOST = socket.gethostname()
#: the format attribute written into every HDF5 file
FORMAT_ATTR = b"format"


# ---------------------------------------------------------------------- fault injection
# ``XCACHE_CRASH_AT=<file>:<when>`` stops this process dead at a named point of a write
# (tests/faults: a crash anywhere must leave the old state or the new, never half).
# <file> is a label (``naming.CRASH_LABEL``, kept from format 1 so the fault suite's
# names stay: result.h5 = the done file, error.h5 = @failed.h5, job.json = @claim,
# task.h5 = @task.h5), <when> is mid_write (half the bytes are in the temp file),
# before_replace or after_replace; ``claim:held`` is inside an entry's claim lock.
# ``XCACHE_CRASH_ACTION``: kill (default: SIGKILL), hang (sleep, locks held, to be
# killed from outside) or divert (at before_replace: the finished file is renamed to
# ``.<file>.diverted`` instead, as a slow shared file system shows a new file late).
# ``XCACHE_CRASH_SKIP=N`` lets the first N hits pass.  Read once, at import: unset,
# the cost is one test of a module global per write.
_CRASH_AT = os.environ.get("XCACHE_CRASH_AT") or None
_CRASH_ACTION = os.environ.get("XCACHE_CRASH_ACTION") or "kill"
_crash_skip = int(os.environ.get("XCACHE_CRASH_SKIP") or 0)


def _crash_point(path: Path | str, when: str, label: str | None = None) -> bool:
    """Act if ``XCACHE_CRASH_AT`` names this point (``label``, default the file's
    name); True: the caller must divert."""
    global _crash_skip
    point = f"{label or os.path.basename(path)}:{when}"
    if point != _CRASH_AT:
        return False
    if _crash_skip > 0:
        _crash_skip -= 1
        return False
    sys.stderr.write(f"xcache: crash point {point} reached in pid {os.getpid()} "
                     f"({_CRASH_ACTION})\n")
    sys.stderr.flush()
    if _CRASH_ACTION == "divert":
        return True
    if _CRASH_ACTION == "hang":
        while True:
            time.sleep(3600)
    os.kill(os.getpid(), signal.SIGKILL)
    return False


def _diverted(path: Path | str) -> str:
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.diverted")


def _tmp_name(path: Path, stable: bool = False) -> Path:
    if stable:  # one writer at a time (under a lock): a killed one's file is reused
        return path.with_name(f".{path.name[:250]}.tmp")
    return _unique_tmp_name(path)


def _unique_tmp_name(path: Path) -> Path:
    # host, pid and 40 random bits: writers on several nodes never collide; the name
    # part is cut so the whole stays within NAME_MAX (255) for long keys and hosts
    tail = f".{HOST[:40]}-{os.getpid()}-{random.getrandbits(40):010x}.tmp"
    return path.with_name(f".{path.name[:250 - len(tail)]}{tail}")


def atomic_write(path: Path | str, data: bytes, mode: int = 0o600,
                 label: str | None = None, stable: bool = False) -> None:
    """Write ``data`` to a temp name beside ``path``, then ``os.replace`` it there.

    A reader sees the old file or the new one, never half of it, and ``kill -9`` at
    any instant leaves no half-written file under ``path`` (DESIGN.md, "atomic
    visibility").  ``mode`` is applied at creation (minus the umask).  The temp
    name carries host, pid and 40 random bits, so writers on several nodes of a
    shared file system never collide.  ``stable=True`` (a writer holding the file's
    lock: no other can write it now) uses ``.<name>.tmp`` instead and truncates it,
    so a killed writer's temp file is taken over by the next, never left behind.
    ``label`` names the crash points (default: the file's name).  Raises ``OSError``
    (the temp file is gone).
    """
    path = Path(path)
    tmp = _tmp_name(path, stable)
    try:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if stable else os.O_EXCL)
        fd = os.open(tmp, flags, mode)
        try:
            view = memoryview(data)
            if _CRASH_AT is not None:
                view = view[os.write(fd, view[: len(view) // 2]):]
                _crash_point(path, "mid_write", label)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        finally:
            os.close(fd)
        _publish(tmp, path, label)
    except BaseException:
        _unlink(tmp)
        raise


# ---------------------------------------------------------------------- HDF5 details
# The low-level h5py API is used on purpose: opening a small file with h5py.File
# costs ~320 us, the calls below ~80 us, which is what makes re-running 10,000
# cached calls take about a second.
_IMAGE_LIMIT = 1 << 20
_image_counter = itertools.count()


@functools.lru_cache(maxsize=2)
def _fapl(core: bool = False) -> h5p.PropFAID:
    """File-access properties (cached: a property list is immutable once built)."""
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5f.CLOSE_STRONG)
    fapl.set_file_locking(False, True)  # NFS/Lustre: files are written once, never shared rw
    # meta_block_size=0, v108+ format and fixed-length byte attributes keep a trivial
    # entry under 1 KB (variable-length strings would cost a 4 KB global heap)
    fapl.set_meta_block_size(0)
    fapl.set_libver_bounds(h5f.LIBVER_V18, h5f.LIBVER_LATEST)
    if core:
        fapl.set_fapl_core(block_size=64 * 1024, backing_store=False)
    return fapl


def _write_attr(fid: Any, name: bytes, value: Any) -> None:
    arr = np.asarray(value)
    aid = h5a.create(fid, name, h5t.py_create(arr.dtype), h5s.create(h5s.SCALAR))
    aid.write(arr)


def _read_attr(fid: Any, name: bytes) -> bytes:
    aid = h5a.open(fid, name)
    arr = np.empty((), dtype=aid.get_type().dtype)
    aid.read(arr)
    value = arr[()]
    if not isinstance(value, bytes):
        raise TypeError(f"attribute {name.decode()} is {type(value).__name__}, not bytes")
    return value


def _publish(tmp: Path, path: Path, label: str | None = None) -> None:
    """Make a fully written temp file visible under its final name, atomically
    (with the ``before_replace``/``after_replace`` crash points for tests/faults)."""
    if _CRASH_AT is not None and _crash_point(path, "before_replace", label):
        os.replace(tmp, _diverted(path))
        return
    os.replace(tmp, path)
    if _CRASH_AT is not None:
        _crash_point(path, "after_replace", label)


def _unlink(path: Path | str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:  # a directory under an entry file's name (put there by
        # hand): moved into the cache's .corrupt/ (two levels up from a shard file)
        path = str(path)
        aside = os.path.join(os.path.dirname(os.path.dirname(path)), ".corrupt")
        if not os.path.isdir(aside):
            raise
        os.rename(path, f"{aside}/{os.path.basename(path)}.{os.getpid()}-"
                        f"{random.getrandbits(24):06x}")


def write_h5(path: Path | str, meta_json: str, payload: bytes, sig: str | None,
             mode: int, format_version: int) -> None:
    """Write a format-1 entry file (one ``payload`` dataset): kept for ``xcache
    migrate``'s tests and the compatibility tests only; see :func:`write_entry`."""
    write_entry(path, [(b"payload", payload)], meta_json, sig, mode, format_version, None)



def read_h5(path: Path | str, with_signature: bool) -> tuple[str, bytes, str | None]:
    """``(meta_json, payload, hmac or None)`` of a format-1 entry file (one ``payload``
    dataset, read from disk by HDF5).  Raises ``FileNotFoundError``, or
    :class:`CorruptEntryError` for anything that is not a complete entry file."""
    try:
        fid = h5f.open(os.fsencode(path), h5f.ACC_RDONLY, fapl=_fapl())
    except FileNotFoundError:
        raise
    except Exception as e:  # zero bytes, truncated, random bytes: not HDF5
        if not os.path.exists(path):
            raise FileNotFoundError(str(path)) from e
        raise CorruptEntryError(f"{path}: not a readable HDF5 file ({e})") from e
    try:
        meta_json, datasets, sig = _read_open(fid, (b"payload",), with_signature)
        return meta_json, datasets[b"payload"], sig
    except Exception as e:  # missing fields, wrong types
        raise CorruptEntryError(f"{path}: incomplete entry file ({e})") from e
    finally:
        fid.close()


# ---------------------------------------------------------------------- format 2
#: a format-2 file starts with a user block HDF5 ignores: a header line, then the
#: listing summary as JSON -- xcache ls reads it with one small read, no HDF5
SUMMARY_MAGIC = spans.SUMMARY_MAGIC
USERBLOCK_MIN = 512


def summary_block(summary: dict[str, Any] | None,
                  table: dict[str, Any] | None = None) -> bytes:
    """The user block: ``#xcache-entry 2 <json bytes>\n<json>\n``, then with a
    ``table`` its JSON line (:mod:`.spans`; a listing never reads it), padded with
    spaces to a power of two >= 512 (HDF5's rule for user blocks)."""
    body = json.dumps(summary or {}, default=str, separators=(",", ":")).encode()
    head = SUMMARY_MAGIC + str(len(body)).encode() + b"\n"
    tail = b"" if table is None else json.dumps(table, separators=(",", ":")).encode() \
        + b"\n"
    size = USERBLOCK_MIN
    while size < len(head) + len(body) + 1 + len(tail):
        size *= 2
    return (head + body + b"\n" + tail).ljust(size, b" ")


@functools.lru_cache(maxsize=8)
def _fcpl(userblock: int) -> h5p.PropFCID:
    fcpl = h5p.create(h5p.FILE_CREATE)
    fcpl.set_userblock(userblock)
    return fcpl


#: datasets up to this size are stored in their object header (HDF5's compact layout,
#: limit 64 KiB): a contiguous dataset takes its space from HDF5's 2 KiB small-data
#: block, which made a trivial entry 4.2 KB (two 4 KB blocks) instead of 2.6 KB (one)
COMPACT_MAX = 16 * 1024


@functools.lru_cache(maxsize=1)
def _compact_dcpl() -> h5p.PropDCID:
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_layout(h5d.COMPACT)
    dcpl.set_obj_track_times(False)
    return dcpl


def _fill(fid: Any, datasets: list[tuple[bytes, bytes]], meta_json: str, sig: str | None,
          format_version: int) -> None:
    _write_attr(fid, FORMAT_ATTR, np.int64(format_version))
    _write_attr(fid, b"meta", np.bytes_(meta_json.encode()))
    if sig is not None:
        _write_attr(fid, b"hmac", np.bytes_(sig.encode()))
    for name, payload in datasets:
        data = np.frombuffer(payload, dtype=np.uint8)
        dcpl = _compact_dcpl() if 0 < data.size <= COMPACT_MAX else None
        did = h5d.create(fid, name, h5t.NATIVE_UINT8, h5s.create_simple((data.size,)),
                         dcpl=dcpl)
        if data.size:
            did.write(h5s.ALL, h5s.ALL, data)
        did.close()


def write_entry(path: Path | str, datasets: list[tuple[bytes, bytes]], meta_json: str,
                sig: str | None, mode: int, format_version: int,
                summary: dict[str, Any] | None, label: str | None = None,
                stable: bool = False) -> None:
    """Write an entry file atomically: ``datasets`` (name, bytes) as uint8 datasets,
    attributes ``format``, ``meta`` (JSON text), optional ``hmac``; with a
    ``summary``, a user block holding it (format 2).  Up to 1 MiB of payload the
    file is built in memory and written with one system call (~30% faster than
    HDF5's many small writes); larger ones are written by HDF5 into the temp file.
    ``label`` names the crash points (default: the file's name); ``stable`` as in
    :func:`atomic_write`."""
    path = Path(path)
    block = summary_block(summary) if summary is not None else b""
    if sum(len(p) for _, p in datasets) <= _IMAGE_LIMIT:
        image = _image(datasets, meta_json, sig, format_version, len(block))
        if summary is not None:  # with the span table: a hit then skips HDF5
            block, image = _with_spans(block, image, summary, datasets, meta_json, sig,
                                       format_version)
        atomic_write(path, block + image, mode, label, stable)
        return
    tmp = _tmp_name(path, stable)
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT
                         | (os.O_TRUNC if stable else os.O_EXCL), mode))
        fcpl = _fcpl(len(block)) if block else h5p.create(h5p.FILE_CREATE)
        fid = h5f.create(os.fsencode(tmp), h5f.ACC_TRUNC, fcpl=fcpl, fapl=_fapl())
        try:
            if _CRASH_AT is not None:
                h5f.flush(fid)
                _crash_point(path, "mid_write", label)
            _fill(fid, datasets, meta_json, sig, format_version)
        finally:
            fid.close()
        if block:
            fd = os.open(tmp, os.O_WRONLY)
            try:
                os.pwrite(fd, block, 0)
            finally:
                os.close(fd)
        _publish(tmp, path, label)
    except BaseException:
        _unlink(tmp)
        raise


def _with_spans(block: bytes, image: bytes, summary: dict[str, Any],
                datasets: list[tuple[bytes, bytes]], meta_json: str, sig: str | None,
                format_version: int) -> tuple[bytes, bytes]:
    """The user block with :mod:`.spans`' table added, and the image to go with it
    (rebuilt when the table made the block grow); the block without a table when
    the parts cannot be located."""
    parts = {spans.META: meta_json.encode(), **{n.decode(): p for n, p in datasets}}
    if sig is not None:
        parts[spans.HMAC] = sig.encode()
    plain = block, image  # (the caller built the image for this block's size)
    for _ in range(3):  # the block's size settles at once but for a power of two
        table = spans.locate(image, len(block), parts)
        if table is None:
            break
        located = summary_block(summary, table)
        if len(located) == len(block):
            return located, image
        block = located
        image = _image(datasets, meta_json, sig, format_version, len(block))
    return plain


def _image(datasets: list[tuple[bytes, bytes]], meta_json: str, sig: str | None,
           format_version: int, userblock: int) -> bytes:
    """The HDF5 file in memory (without the user block: HDF5 leaves it out of the
    image, and its addresses count from the end of it)."""
    name = f"xcache-mem-{os.getpid()}-{next(_image_counter)}".encode()
    fcpl = _fcpl(userblock) if userblock else h5p.create(h5p.FILE_CREATE)
    fid = h5f.create(name, h5f.ACC_TRUNC, fcpl=fcpl, fapl=_fapl(core=True))
    try:
        _fill(fid, datasets, meta_json, sig, format_version)
        h5f.flush(fid)
        return bytes(fid.get_file_image())
    finally:
        fid.close()


#: entry files up to this size are read whole and parsed in memory (one open)
READ_WHOLE = 4 << 20
#: opening for reading never blocks: a FIFO under an entry's name reads as empty (a
#: damaged entry) instead of hanging ``xcache ls`` or a cache hit; no effect on files
_READ = os.O_RDONLY | os.O_NONBLOCK


def read_bytes(path: str, limit: int | None = None) -> bytes | None:
    """The whole file, with one ``open`` and no ``stat`` (one metadata operation on a
    metadata server); ``FileNotFoundError`` if it is not there.  With ``limit``:
    None when the file is larger (the caller lets HDF5 read only what it needs)."""
    fd = os.open(path, _READ)
    try:
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if limit is not None and total > limit:
                return None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_entry_file(path: str, names: tuple[bytes, ...], with_signature: bool
                    ) -> tuple[str, dict[bytes, bytes], str | None]:
    """:func:`read_entry` of a file: read whole and parsed in memory up to
    :data:`READ_WHOLE` (one open), larger files through HDF5 on disk, which reads
    only the datasets asked for (a hit does not read a big call's arguments)."""
    try:
        data = read_bytes(path, READ_WHOLE)
    except IsADirectoryError as e:  # a directory under an entry file's name
        raise CorruptEntryError(f"{path}: a directory, not an entry file") from e
    except BlockingIOError as e:  # a FIFO with a writer (_READ)
        raise CorruptEntryError(f"{path}: a pipe, not an entry file") from e
    if data is not None:
        return read_entry(data, names, with_signature, path)
    try:
        fid = h5f.open(os.fsencode(path), h5f.ACC_RDONLY, fapl=_fapl())
    except FileNotFoundError:
        raise
    except Exception as e:
        if not os.path.exists(path):
            raise FileNotFoundError(path) from e
        raise CorruptEntryError(f"{path}: not a readable HDF5 file ({e})") from e
    try:
        return _read_open(fid, names, with_signature)
    except Exception as e:
        raise CorruptEntryError(f"{path}: incomplete entry file ({e})") from e
    finally:
        fid.close()


def userblock_size(data: bytes) -> int:
    """Where the HDF5 part of a file starts: 0, or after a format-2 user block."""
    if not data.startswith(SUMMARY_MAGIC):
        return 0
    size = USERBLOCK_MIN
    while size < len(data) and data[size:size + 8] != _HDF5_SIGNATURE:
        size *= 2
    return size


_HDF5_SIGNATURE = spans.HDF5_SIGNATURE


def read_entry(data: bytes, names: tuple[bytes, ...], with_signature: bool, where: str
               ) -> tuple[str, dict[bytes, bytes], str | None]:
    """``(meta_json, {dataset: bytes}, hmac or None)`` of an entry file held in
    memory (:func:`read_bytes`), through HDF5's in-memory driver: no further
    metadata operation on the file system.  Datasets of ``names`` that the file
    lacks are left out.  :class:`CorruptEntryError` (naming ``where``) for anything
    that is not a complete entry file."""
    located = spans.read_located(data, names, with_signature)
    if located is not None:
        return located
    skip = userblock_size(data)
    if len(data) <= skip + 8 or data[skip:skip + 8] != _HDF5_SIGNATURE:
        raise CorruptEntryError(f"{where}: not a readable HDF5 file "
                                f"({len(data)} bytes, no HDF5 signature)")
    fapl = _fapl(core=True).copy()
    fapl.set_file_image(data[skip:])
    # a name of its own per read: HDF5 identifies an in-memory file by its name, so two
    # threads opening images under one name (a submit() reading a hit while the poller
    # reads a result) got the *same* open file -- one entry's bytes read as another's
    name = f"/dev/null/xcache-image-{os.getpid()}-{next(_image_counter)}".encode()
    try:
        fid = h5f.open(name, h5f.ACC_RDONLY, fapl=fapl)
    except Exception as e:
        raise CorruptEntryError(f"{where}: not a readable HDF5 file ({e})") from e
    try:
        return _read_open(fid, names, with_signature)
    except Exception as e:  # missing fields, wrong types
        raise CorruptEntryError(f"{where}: incomplete entry file ({e})") from e
    finally:
        fid.close()


def _read_open(fid: Any, names: tuple[bytes, ...], with_signature: bool
               ) -> tuple[str, dict[bytes, bytes], str | None]:
    meta_json = _read_attr(fid, b"meta").decode()
    sig = None
    if with_signature and h5a.exists(fid, b"hmac"):
        sig = _read_attr(fid, b"hmac").decode()
    out: dict[bytes, bytes] = {}
    for name in names:
        try:
            did = h5d.open(fid, name)
        except KeyError:
            continue
        buf = np.empty(did.shape[0], dtype=np.uint8)
        if buf.size:
            did.read(h5s.ALL, h5s.ALL, buf)
        out[name] = buf.tobytes()
    return meta_json, out, sig


def read_summary(path: str, dir_fd: int | None = None) -> dict[str, Any] | None:
    """The listing summary in a format-2 file's user block (one open, one read):
    None when the file is missing, not format 2, or the summary is unreadable.
    (``xcache ls`` calls this once per entry: no file object, no ``json.loads``.)
    With ``dir_fd`` (an open shard directory), ``path`` is a name in it: the open
    resolves one path component instead of three, which on a file system that
    does not cache names (measured with bench/slowfs.py) is two round trips less."""
    try:
        fd = os.open(path, _READ, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        head = os.read(fd, 4096)
        if not head.startswith(SUMMARY_MAGIC):
            return None
        nl = head.find(b"\n")
        length = int(head[len(SUMMARY_MAGIC):nl])
        body = head[nl + 1:nl + 1 + length]
        while len(body) < length:
            more = os.read(fd, length - len(body))
            if not more:
                return None
            body += more
        data = _JSON_DECODER.raw_decode(body.decode())[0]
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return data if isinstance(data, dict) else None


def secret_from_env() -> bytes | None:
    """The signing secret from env ``XCACHE_SECRET`` (any bytes) or the file named
    by ``XCACHE_SECRET_FILE``; None when neither is set."""
    if os.supports_bytes_environ:  # any bytes (a worker gets a binary secret= this way)
        b = os.environb.get(b"XCACHE_SECRET")
    else:
        b = os.environ.get("XCACHE_SECRET", "").encode()
    if b:
        return b
    f = os.environ.get("XCACHE_SECRET_FILE")
    if f:
        return Path(f).read_bytes().strip()
    return None


# ---------------------------------------------------------------------- fast listing
def read_json_file(path: str) -> dict[str, Any] | None:
    """:meth:`Store.read_json` for a plain string path, for listing many entries.

    Same answer (None when missing, unreadable or not a JSON object) without
    pathlib and buffered file objects, about 3x cheaper: ``xcache ls`` reads two
    of these per entry for 100,000 entries.  (Added for ``catalog``/``xcache``.)
    """
    try:
        fd = os.open(path, _READ)
    except OSError:
        return None
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            chunks.append(chunk)
            if len(chunk) < 1 << 16:  # a short read of a regular file is its end
                break
        text = b"".join(chunks).decode().lstrip()
        data, end = _JSON_DECODER.raw_decode(text)  # json.loads minus its overhead
        if end != len(text) and text[end:].strip():
            return None
    except (OSError, ValueError):  # also UnicodeDecodeError, JSONDecodeError
        return None
    finally:
        os.close(fd)
    return data if isinstance(data, dict) else None


_JSON_DECODER = json.JSONDecoder()

