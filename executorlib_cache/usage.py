"""When each entry was last used: batched logs, for ``xcache prune``'s LRU order.

An executor appends ``"<time> <enc>"`` lines for its cache hits to
``<cache>/.used/<host>-<pid>.log`` once, at shutdown (format 1 touched the result
file on every hit: one metadata operation per hit on the file system a re-run
is meant to spare).  ``xcache prune`` merges the logs (:func:`last_used`) and
compacts them after a removal.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from .fileio import HOST, _unlink, atomic_write
from .naming import decode_key, encode_key


def record_use(root: str, keys: list[str], mode: int = 0o600) -> None:
    """Append "time key" lines for cache hits to this process's log (one write);
    a read-only cache is silently not logged."""
    if not keys:
        return
    now = f"{time.time():.0f}"
    text = "".join(f"{now} {encode_key(k)}\n" for k in keys).encode()
    try:
        fd = os.open(f"{root}/.used/{HOST}-{os.getpid()}.log",
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
    except OSError:
        return
    try:
        os.write(fd, text)
    except OSError:
        pass
    finally:
        os.close(fd)


def last_used(root: str) -> dict[str, float]:
    """{key: last hit time (epoch seconds)} from every log in ``.used/``."""
    used: dict[str, float] = {}
    try:
        names = os.listdir(f"{root}/.used")
    except OSError:
        return used
    for name in names:
        try:
            with open(f"{root}/.used/{name}", "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            t, _, enc = line.partition(" ")
            try:
                when = float(t)
            except ValueError:
                continue
            key = decode_key(enc)
            if when > used.get(key, 0.0):
                used[key] = when
    return used


def compact(root: str, exists: Callable[[str], bool], mode: int = 0o600) -> None:
    """Merge the logs into ``compacted.log``, keeping keys for which ``exists``."""
    used = {k: t for k, t in last_used(root).items() if exists(k)}
    try:
        old = os.listdir(f"{root}/.used")
    except OSError:
        return
    text = "".join(f"{t:.0f} {encode_key(k)}\n" for k, t in sorted(used.items()))
    atomic_write(f"{root}/.used/compacted.log", text.encode(), mode)
    for name in old:
        if name != "compacted.log":
            _unlink(f"{root}/.used/{name}")
