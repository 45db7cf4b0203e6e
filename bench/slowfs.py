"""A slow-metadata file system for benchmarks: a FUSE passthrough of a backing
directory that sleeps ``--delay-ms`` (default 1 ms) in every metadata operation and
counts every operation it serves.

On Lustre, GPFS and NFS every create, rename, mkdir, unlink, lookup/stat and open is
a round trip to a metadata server (0.2-2 ms); a local disk answers them from memory
in microseconds.  Mounting a cache directory through this passthrough makes a
benchmark feel that cost, and the daemon's counters give the exact number of
operations the file system saw, per operation type.

    python bench/slowfs.py mount BACKING MOUNTPOINT [--delay-ms 1] [--data-delay-ms 0]
    python bench/slowfs.py stats MOUNTPOINT [--reset]   # JSON counters of the daemon
    python bench/slowfs.py umount MOUNTPOINT

    from slowfs import slow_mount
    with slow_mount(delay_ms=1) as m:       # m is os.PathLike (the mount point)
        ...                                 # m.stats(), m.reset(), m.backing

Library: ``mfusepy`` (maintained fork of fusepy: ctypes bindings of libfuse's
high-level, path-based API, libfuse 3 on Linux); the Debian package ``fuse3``
provides ``libfuse3.so.3`` and ``fusermount3``.  See bench/README.md for the choice
and for what the mount options do.

Semantics:

* Metadata operations (sleep ``delay``): getattr (every kernel LOOKUP and GETATTR
  arrives here: libfuse's high-level API answers both with getattr), access, create,
  mknod, mkdir, unlink, rmdir, rename, link, symlink, readlink, open, opendir,
  readdir, utimens, chmod, chown, truncate, statfs.
* Data operations (sleep ``data_delay``, default 0): read, write, fsync, fsyncdir,
  flush, release, releasedir are counted but not delayed unless asked.
* flock and POSIX (fcntl) locks are not implemented by the daemon, so the kernel
  FUSE module handles them locally (it does so when the file system does not
  announce lock support): they work between processes on this machine and are not
  counted or delayed.
* Kernel caches are off by default (``entry_timeout=0,attr_timeout=0,
  negative_timeout=0``): every path component of every system call is looked up
  again by the daemon, i.e. a client without any metadata cache.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import socket
import socketserver
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

#: operations that sleep ``delay`` (metadata) and those that sleep ``data_delay``
META_OPS = ("getattr", "access", "create", "mknod", "mkdir", "unlink", "rmdir", "rename",
            "link", "symlink", "readlink", "open", "opendir", "readdir", "utimens", "chmod",
            "chown", "truncate", "statfs")
DATA_OPS = ("read", "write", "fsync", "fsyncdir", "flush", "release", "releasedir")
#: what counts as a namespace change / a lookup in the summary of ``stats``
NAMESPACE_OPS = ("create", "mknod", "mkdir", "unlink", "rmdir", "rename", "link", "symlink")
LOOKUP_OPS = ("getattr", "access", "readlink", "open", "opendir", "utimens", "chmod",
              "chown", "truncate", "statfs")

MOUNT_TIMEOUT = 20.0


def control_path(mountpoint: str | os.PathLike) -> Path:
    """The daemon's control socket for ``mountpoint`` (derived from its real path)."""
    real = os.path.realpath(mountpoint)
    digest = hashlib.sha1(real.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"slowfs-{digest}.sock"


# ---------------------------------------------------------------------------- daemon


def proc_chain(pid: int) -> list[list]:
    """``[[pid, comm], [parent, comm], ...]`` up to pid 1, from ``/proc`` (``pid`` may
    be a thread id: the chain starts at its thread group).  Empty if ``pid`` is gone."""
    chain: list[list] = []
    seen = set()
    while pid > 0 and pid not in seen and len(chain) < 64:
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(ln.split(":", 1) for ln in f.read().splitlines() if ":" in ln)
        except OSError:
            break
        tgid = int(fields.get("Tgid", pid))
        if tgid != pid and not chain:  # a thread: start at its process
            pid = tgid
            continue
        chain.append([pid, fields.get("Name", "?").strip()])
        pid = int(fields.get("PPid", "0"))
    return chain


def _make_operations(root: str, delay_s: float, data_delay_s: float,
                     by_process: bool = False):
    import mfusepy  # only the daemon needs the FUSE library

    libc = ctypes.CDLL(None, use_errno=True)
    AT_FDCWD = -100

    class SlowPassthrough(mfusepy.Operations):
        """Passthrough of ``root``; every callback counts itself, metadata ones sleep."""

        use_ns = True  # utimens gets nanoseconds, getattr returns them

        def __init__(self) -> None:
            self.root = os.path.realpath(root)
            self.counts: Counter[str] = Counter()
            self.errors: Counter[str] = Counter()
            self._lock = threading.Lock()
            self.started = time.time()
            # --by-process: requester pid (a thread id) -> its process and ancestry
            self.by_process = by_process
            self.proc_counts: dict[int, Counter[str]] = {}
            self.proc_chain: dict[int, list[list]] = {}
            self._tid_proc: dict[int, int] = {}

        # -- bookkeeping
        def _requester(self) -> int:
            """The process (thread group) that made the current request: its chain is
            read from /proc the first time a thread id is seen (0: the kernel itself,
            e.g. a release after the process exited, or a process already gone)."""
            tid = mfusepy.fuse_get_context()[2]
            proc = self._tid_proc.get(tid)
            if proc is None:
                chain = proc_chain(tid) if tid > 0 else []
                proc = chain[0][0] if chain else 0
                with self._lock:
                    self._tid_proc[tid] = proc
                    self.proc_chain.setdefault(proc, chain)
            return proc

        def _op(self, name: str, delay: float) -> None:
            proc = self._requester() if self.by_process else None
            with self._lock:
                self.counts[name] += 1
                if proc is not None:
                    self.proc_counts.setdefault(proc, Counter())[name] += 1
            if delay > 0:
                time.sleep(delay)

        def _meta(self, name: str) -> None:
            self._op(name, delay_s)

        def _data(self, name: str) -> None:
            self._op(name, data_delay_s)

        def _full(self, path: str) -> str:
            return os.path.join(self.root, path.lstrip("/"))

        def snapshot(self, reset: bool = False) -> dict:
            with self._lock:
                counts, errors = dict(self.counts), dict(self.errors)
                procs = {str(p): {"counts": dict(c), "chain": self.proc_chain.get(p, [])}
                         for p, c in self.proc_counts.items()}
                if reset:
                    self.counts.clear()
                    self.errors.clear()
                    self.proc_counts.clear()
                    self._tid_proc.clear()  # pids are reused: look them up again
            extra = {"by_process": procs} if self.by_process else {}
            return extra | {
                "counts": counts,
                "errors": errors,
                "metadata_ops": sum(v for k, v in counts.items() if k in META_OPS),
                "namespace_ops": sum(v for k, v in counts.items() if k in NAMESPACE_OPS),
                "lookup_ops": sum(v for k, v in counts.items() if k in LOOKUP_OPS),
                "listing_ops": counts.get("readdir", 0),
                "data_ops": sum(v for k, v in counts.items() if k in DATA_OPS),
                "delay_ms": delay_s * 1e3,
                "data_delay_ms": data_delay_s * 1e3,
                "backing": self.root,
                "pid": os.getpid(),
            }

        def _fail(self, name: str, e: OSError):
            with self._lock:
                self.errors[name] += 1
            raise mfusepy.FuseOSError(e.errno or errno.EIO) from None

        # -- metadata
        def getattr(self, path, fh=None):
            self._meta("getattr")
            try:
                st = os.fstat(fh) if fh is not None else os.lstat(self._full(path))
            except OSError as e:
                self._fail("getattr", e)
            return {
                "st_mode": st.st_mode, "st_ino": st.st_ino, "st_nlink": st.st_nlink,
                "st_uid": st.st_uid, "st_gid": st.st_gid, "st_size": st.st_size,
                "st_blocks": st.st_blocks, "st_blksize": st.st_blksize, "st_rdev": st.st_rdev,
                "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns,
                "st_ctime": st.st_ctime_ns,
            }

        def access(self, path, amode):
            self._meta("access")
            if not os.access(self._full(path), amode):
                self._fail("access", OSError(errno.EACCES, "access"))
            return 0

        def readlink(self, path):
            self._meta("readlink")
            try:
                return os.readlink(self._full(path))
            except OSError as e:
                self._fail("readlink", e)

        def mknod(self, path, mode, dev):
            self._meta("mknod")
            try:
                os.mknod(self._full(path), mode, dev)
            except OSError as e:
                self._fail("mknod", e)
            return 0

        def mkdir(self, path, mode):
            self._meta("mkdir")
            try:
                os.mkdir(self._full(path), mode)
            except OSError as e:
                self._fail("mkdir", e)
            return 0

        def unlink(self, path):
            self._meta("unlink")
            try:
                os.unlink(self._full(path))
            except OSError as e:
                self._fail("unlink", e)
            return 0

        def rmdir(self, path):
            self._meta("rmdir")
            try:
                os.rmdir(self._full(path))
            except OSError as e:
                self._fail("rmdir", e)
            return 0

        def rename(self, old, new, flags=0):
            self._meta("rename")
            try:
                if flags:  # RENAME_NOREPLACE / RENAME_EXCHANGE: keep their meaning
                    r = libc.renameat2(AT_FDCWD, self._full(old).encode(), AT_FDCWD,
                                       self._full(new).encode(), ctypes.c_uint(flags))
                    if r != 0:
                        raise OSError(ctypes.get_errno(), "renameat2")
                else:
                    os.rename(self._full(old), self._full(new))
            except OSError as e:
                self._fail("rename", e)
            return 0

        def link(self, target, source):  # ln source target
            self._meta("link")
            try:
                os.link(self._full(source), self._full(target))
            except OSError as e:
                self._fail("link", e)
            return 0

        def symlink(self, target, source):  # ln -s source target
            self._meta("symlink")
            try:
                os.symlink(source, self._full(target))
            except OSError as e:
                self._fail("symlink", e)
            return 0

        def chmod(self, path, mode):
            self._meta("chmod")
            try:
                os.chmod(self._full(path), mode)
            except OSError as e:
                self._fail("chmod", e)
            return 0

        def chown(self, path, uid, gid):
            self._meta("chown")
            try:
                os.lchown(self._full(path), uid, gid)
            except OSError as e:
                self._fail("chown", e)
            return 0

        def truncate(self, path, length, fh=None):
            self._meta("truncate")
            try:
                if fh is not None:
                    os.ftruncate(fh, length)
                else:
                    os.truncate(self._full(path), length)
            except OSError as e:
                self._fail("truncate", e)
            return 0

        def utimens(self, path, times=None):
            self._meta("utimens")
            try:
                if times is None:
                    os.utime(self._full(path), follow_symlinks=False)
                else:
                    os.utime(self._full(path), ns=tuple(times), follow_symlinks=False)
            except OSError as e:
                self._fail("utimens", e)
            return 0

        def statfs(self, path):
            self._meta("statfs")
            sv = os.statvfs(self._full(path))
            return {k: getattr(sv, k) for k in (
                "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                "f_ffree", "f_favail", "f_flag", "f_namemax")}

        def open(self, path, flags):
            self._meta("open")
            try:
                return os.open(self._full(path), flags)
            except OSError as e:
                self._fail("open", e)

        def create(self, path, mode, flags):
            # the kernel passes the caller's flags (O_EXCL included): a racing
            # creator gets EEXIST from the backing file system, as it should
            self._meta("create")
            try:
                return os.open(self._full(path), flags | os.O_CREAT, mode)
            except OSError as e:
                self._fail("create", e)

        def opendir(self, path):
            self._meta("opendir")
            if not os.path.isdir(self._full(path)):
                self._fail("opendir", OSError(errno.ENOTDIR, "opendir"))
            return 0

        def readdir(self, path, fh):
            self._meta("readdir")
            # with use_ino every entry needs its inode number (glibc skips d_ino == 0);
            # scandir has it and the type from getdents, without a stat
            full = self._full(path)
            try:
                here = os.lstat(full)
                items = [(".", {"st_mode": here.st_mode, "st_ino": here.st_ino}, 0),
                         ("..", {"st_mode": stat.S_IFDIR, "st_ino": 1}, 0)]
                with os.scandir(full) as it:
                    for e in it:
                        kind = (stat.S_IFLNK if e.is_symlink() else
                                stat.S_IFDIR if e.is_dir(follow_symlinks=False) else
                                stat.S_IFREG)
                        items.append((e.name, {"st_mode": kind, "st_ino": e.inode()}, 0))
                return items
            except OSError as e:
                self._fail("readdir", e)

        # -- data (not delayed unless --data-delay-ms)
        def read(self, path, size, offset, fh):
            self._data("read")
            return os.pread(fh, size, offset)

        def write(self, path, data, offset, fh):
            self._data("write")
            return os.pwrite(fh, data, offset)

        def flush(self, path, fh):
            self._data("flush")
            return 0

        def release(self, path, fh):
            self._data("release")
            os.close(fh)
            return 0

        def releasedir(self, path, fh):
            self._data("releasedir")
            return 0

        def fsync(self, path, datasync, fh):
            self._data("fsync")
            if datasync:
                os.fdatasync(fh)
            else:
                os.fsync(fh)
            return 0

        def fsyncdir(self, path, datasync, fh):
            self._data("fsyncdir")
            return 0

    class _FUSE(mfusepy.FUSE):
        # mfusepy 3.1 drops rename's flags (RENAME_NOREPLACE would silently replace)
        def rename_fuse_3(self, old, new, flags):
            return self.operations.rename(old.decode(self.encoding, self.errors),
                                          new.decode(self.encoding, self.errors), flags)

    return SlowPassthrough(), _FUSE


class _Control(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(backing: str, mountpoint: str, delay_ms: float, data_delay_ms: float,
          entry_timeout: float, attr_timeout: float, negative_timeout: float,
          stats_file: str | None, debug: bool, by_process: bool = False) -> int:
    """Mount in the foreground (multithreaded libfuse loop) until unmounted."""
    ops, fuse_cls = _make_operations(backing, delay_ms / 1e3, data_delay_ms / 1e3,
                                     by_process)
    sock = control_path(mountpoint)
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            cmd = self.rfile.readline().decode().strip()
            out = ops.snapshot(reset=(cmd == "reset"))
            self.wfile.write((json.dumps(out) + "\n").encode())

    server = _Control(str(sock), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="slowfs-control").start()
    try:
        fuse_cls(ops, mountpoint, foreground=True, nothreads=False, debug=debug,
                 fsname=f"slowfs:{os.path.realpath(backing)}", subtype="slowfs",
                 entry_timeout=entry_timeout, attr_timeout=attr_timeout,
                 negative_timeout=negative_timeout, use_ino=True, hard_remove=True)
    finally:
        server.shutdown()
        server.server_close()
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        if stats_file:
            Path(stats_file).write_text(json.dumps(ops.snapshot()) + "\n")
    return 0


# ---------------------------------------------------------------------------- client


def is_mounted(mountpoint: str | os.PathLike) -> bool:
    """Whether ``mountpoint`` is a slowfs FUSE mount (per /proc/self/mountinfo)."""
    real = os.path.realpath(mountpoint)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) > 4 and fields[4] == real and right.startswith("fuse.slowfs "):
                return True
    return False


def query(mountpoint: str | os.PathLike, command: str = "stats", timeout: float = 10,
          sock: str | os.PathLike | None = None) -> dict:
    """Ask the daemon of ``mountpoint`` for its counters (``reset``: and zero them).
    ``sock``: its control socket, if known (finding it resolves ``mountpoint``, which
    is itself a lookup the daemon counts)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock or control_path(mountpoint)))
        s.sendall(command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def unmount(mountpoint: str | os.PathLike, timeout: float = 20) -> None:
    """Unmount (``fusermount3 -u``, else ``umount``); lazily if it stays busy."""
    mp = os.path.realpath(mountpoint)
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    cmds = [[tool, "-u", mp]] if tool else []
    if os.geteuid() == 0 and shutil.which("umount"):
        cmds.append(["umount", mp])
    deadline = time.monotonic() + timeout
    while is_mounted(mp):
        for cmd in cmds:
            if subprocess.run(cmd, capture_output=True).returncode == 0:
                break
        if not is_mounted(mp):
            break
        if time.monotonic() > deadline:  # busy: detach now, the kernel finishes later
            lazy = [tool, "-uz", mp] if tool else ["umount", "-l", mp]
            subprocess.run(lazy, capture_output=True)
            break
        time.sleep(0.2)


def _serve_cmd(backing, mountpoint, delay_ms, data_delay_ms, timeouts, stats_file,
               python, by_process=False) -> list[str]:
    cmd = [python or sys.executable, str(Path(__file__).resolve()), "serve",
           str(backing), str(mountpoint), "--delay-ms", str(delay_ms),
           "--data-delay-ms", str(data_delay_ms),
           "--entry-timeout", str(timeouts[0]), "--attr-timeout", str(timeouts[1]),
           "--negative-timeout", str(timeouts[2])]
    if stats_file:
        cmd += ["--stats-file", str(stats_file)]
    if by_process:
        cmd.append("--by-process")
    return cmd


def start_daemon(backing, mountpoint, delay_ms=1.0, data_delay_ms=0.0,
                 timeouts=(0.0, 0.0, 0.0), stats_file=None, python=None,
                 log=None, by_process=False) -> subprocess.Popen:
    """Start ``slowfs.py serve`` in its own session; return once the mount answers."""
    Path(backing).mkdir(parents=True, exist_ok=True)
    Path(mountpoint).mkdir(parents=True, exist_ok=True)
    if is_mounted(mountpoint):
        raise RuntimeError(f"{mountpoint} is already a slowfs mount")
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(_serve_cmd(backing, mountpoint, delay_ms, data_delay_ms,
                                       timeouts, stats_file, python, by_process),
                            stdout=out, stderr=out if log else subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            raise RuntimeError(f"slowfs daemon exited {proc.returncode} before mounting "
                               f"{mountpoint}: {err or '(see ' + str(log) + ')'}")
        if is_mounted(mountpoint):
            try:
                query(mountpoint, timeout=2)
                break
            except OSError:
                pass
        if time.monotonic() > deadline:
            proc.kill()
            unmount(mountpoint)
            raise RuntimeError(f"slowfs did not mount {mountpoint} within {MOUNT_TIMEOUT} s")
        time.sleep(0.05)
    if proc.stderr is not None:  # keep the pipe drained: the daemon may log warnings
        threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc


class SlowMount(os.PathLike):
    """A mounted slowfs: ``os.fspath(m)`` is the mount point."""

    def __init__(self, path: Path, backing: Path, proc: subprocess.Popen | None) -> None:
        self.path, self.backing, self.proc = path, backing, proc
        # resolved once: resolving the mount point is a getattr the daemon would count
        self.sock = control_path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, other) -> Path:
        return self.path / other

    def __repr__(self) -> str:
        return f"SlowMount({str(self.path)!r}, backing={str(self.backing)!r})"

    def stats(self) -> dict:
        """The daemon's counters (asking does not touch the mount)."""
        return query(self.path, sock=self.sock)

    def reset(self) -> dict:
        """Zero the counters; return what they were."""
        return query(self.path, "reset", sock=self.sock)


@contextlib.contextmanager
def slow_mount(delay_ms: float = 1.0, backing: str | os.PathLike | None = None,
               mountpoint: str | os.PathLike | None = None, data_delay_ms: float = 0.0,
               timeouts: tuple[float, float, float] = (0.0, 0.0, 0.0),
               python: str | None = None, log: str | os.PathLike | None = None,
               by_process: bool = False):
    """Mount a slowfs for the ``with`` block (temporary backing/mount dirs by default),
    unmount it and stop the daemon afterwards, also on errors.  ``python``: the
    interpreter that runs the daemon (needs mfusepy; default this one).
    ``timeouts``: the kernel's (entry, attr, negative) cache timeouts in seconds.
    ``by_process``: the counters also per requesting process, with its ancestry
    (``stats()["by_process"]``)."""
    tmp = None
    if backing is None or mountpoint is None:
        tmp = Path(tempfile.mkdtemp(prefix="slowfs-"))
    b = Path(backing) if backing is not None else tmp / "backing"
    mp = Path(mountpoint) if mountpoint is not None else tmp / "mnt"
    proc = start_daemon(b, mp, delay_ms, data_delay_ms, timeouts, python=python, log=log,
                        by_process=by_process)
    try:
        yield SlowMount(mp, b, proc)
    finally:
        try:
            unmount(mp)
        finally:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("mount", "serve"):
        p = sub.add_parser(name, help="mount in the background" if name == "mount"
                           else "mount in the foreground (the daemon itself)")
        p.add_argument("backing")
        p.add_argument("mountpoint")
        p.add_argument("--delay-ms", type=float, default=1.0,
                       help="sleep in every metadata operation (1)")
        p.add_argument("--data-delay-ms", type=float, default=0.0,
                       help="sleep in read/write/fsync/flush/release (0)")
        p.add_argument("--entry-timeout", type=float, default=0.0,
                       help="kernel dentry cache timeout, s (0: every lookup reaches us)")
        p.add_argument("--attr-timeout", type=float, default=0.0,
                       help="kernel attribute cache timeout, s (0)")
        p.add_argument("--negative-timeout", type=float, default=0.0,
                       help="kernel negative lookup cache timeout, s (0)")
        p.add_argument("--stats-file", help="write the counters (JSON) here at unmount")
        p.add_argument("--by-process", action="store_true",
                       help="also count per requesting process, with its ancestry "
                       "(pid, name) up to pid 1: tells a driver from SLURM job steps")
        if name == "mount":
            p.add_argument("--log", help="daemon output (default: discarded)")
        else:
            p.add_argument("--debug", action="store_true", help="libfuse debug output")
    p = sub.add_parser("umount", help="unmount (the daemon then exits)")
    p.add_argument("mountpoint")
    p = sub.add_parser("stats", help="print the daemon's counters as JSON")
    p.add_argument("mountpoint")
    p.add_argument("--reset", action="store_true", help="and zero them")
    a = ap.parse_args(argv)

    if a.cmd == "serve":
        return serve(a.backing, a.mountpoint, a.delay_ms, a.data_delay_ms, a.entry_timeout,
                     a.attr_timeout, a.negative_timeout, a.stats_file, a.debug,
                     a.by_process)
    if a.cmd == "mount":
        proc = start_daemon(a.backing, a.mountpoint, a.delay_ms, a.data_delay_ms,
                            (a.entry_timeout, a.attr_timeout, a.negative_timeout),
                            a.stats_file, log=a.log or os.devnull, by_process=a.by_process)
        print(f"mounted {a.backing} on {a.mountpoint} (delay {a.delay_ms} ms, "
              f"daemon pid {proc.pid})")
        return 0
    if a.cmd == "umount":
        unmount(a.mountpoint)
        return 0 if not is_mounted(a.mountpoint) else 1
    print(json.dumps(query(a.mountpoint, "reset" if a.reset else "stats"), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
