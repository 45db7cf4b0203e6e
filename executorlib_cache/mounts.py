"""Which file system a path is on, and why a directory cannot be made there: the
cause a user can act on (a kernel file system such as ``/proc``, a read-only mount,
a file in the way, no write permission) instead of ``mkdir``'s bare errno text.
Read from ``/proc/self/mounts`` (Linux); elsewhere only the errno text is given.
"""

from __future__ import annotations

import os
from pathlib import Path

#: file systems of the kernel's own state: no directory a user makes can live there
VIRTUAL_FS = frozenset({"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2",
                        "debugfs", "tracefs", "securityfs", "configfs", "bpf", "pstore",
                        "efivarfs", "mqueue", "fusectl", "binfmt_misc", "autofs"})


def mount_of(path: str) -> tuple[str, str, set[str]]:
    """``(mount point, file system type, mount options)`` holding an existing
    ``path``: the longest matching mount point of ``/proc/self/mounts`` (``("",
    "", set())`` when that cannot be read)."""
    best: tuple[str, str, set[str]] = ("", "", set())
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return best
    real = os.path.realpath(path)
    for line in lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        mnt = fields[1].encode().decode("unicode_escape")  # \040 is a space
        inside = real == mnt or real.startswith(mnt.rstrip("/") + "/")
        if inside and len(mnt) >= len(best[0]):
            best = (mnt, fields[2], set(fields[3].split(",")))
    return best


def obstacle(path: str) -> str | None:
    """What keeps an existing ``path`` from holding a cache directory, or None: a
    kernel file system such as ``/proc``, a read-only mount, a dangling symbolic
    link, a file in the way, no write permission."""
    mnt, fstype, opts = mount_of(path)
    place = path if path == mnt else f"{path} (mounted at {mnt})"
    if fstype in VIRTUAL_FS:
        return (f"{place} is on a {fstype} file system, the kernel's own state, which "
                "holds no user files")
    if "ro" in opts:
        return f"{place} is on a file system mounted read-only"
    if os.path.islink(path) and not os.path.exists(path):
        return f"{path} is a symbolic link to {os.readlink(path)!r}, which does not resolve"
    if not os.path.isdir(path):
        return f"{path} is a file, not a directory"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{path} is not writable by this user (uid {os.getuid()})"
    return None


def cannot_create_reason(path: str | Path, err: OSError) -> str:
    """Why the directory ``path`` could not be made, for an error message: the
    nearest existing ancestor and its :func:`obstacle`, then the system's own words
    (``err.strerror``)."""
    words = err.strerror or str(err)
    base = os.path.abspath(path)
    while not os.path.lexists(base) and base != os.path.dirname(base):
        base = os.path.dirname(base)
    why = obstacle(base)
    if why is None:
        return words
    return f"{why} ({words}); give a directory on a writable file system"
