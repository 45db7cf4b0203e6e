"""Count the file-system metadata operations per call, for this project and executorlib.

    python bench/bench_metadata.py [--n 300] [--sides ours executorlib] [--workdir DIR]
                                   [--case trivial] [--workers 2] [--json FILE]

For each side, N trivial calls ``inc(i)`` run cold (empty cache) and then warm (the
same calls again: all hits), each phase in a fresh interpreter (``_meta_run.py``)
under ``strace -f``; only system calls on paths under the cache directory are
counted, classified as

* namespace changes: create (an ``open``/``creat`` with O_CREAT that created the
  file, or an O_EXCL create that failed), mkdir, rename, unlink, rmdir, link,
  symlink, mknod;
* lookups: stat family on a path (stat/lstat/newfstatat/statx), access/faccessat,
  open without O_CREAT (or with O_CREAT of an existing file), utime/utimensat on a
  path, readlink, chmod/chown/truncate on a path, xattr, statfs;
* listings: getdents on a directory under the cache (one listing = the getdents
  calls of one open directory; the entries read are reported too);
* fd operations (no name resolution): fstat, close, fsync/fdatasync, flock/fcntl
  locks, ftruncate/fchmod/futimens; data: read/write calls and bytes.

Also reported after the cold run: inodes per entry (files + directories under the
cache, hidden ones and lock files included, divided by N) and ``du`` bytes per
entry.  One JSON line per (side, phase) on stdout, then a table; see bench/README.md.
Needs ``strace`` (Debian package ``strace``).  Runs with any python >= 3.10 (standard
library only); the sides run in ``bench/.venvs/`` (``envs.py``).
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RUNNER = BENCH / "_meta_run.py"
SIDES = ("ours", "executorlib")

#: what strace traces: every path-taking call, plus the fd calls we classify and the
#: process-creating calls (a child inherits its parent's cwd)
TRACE = ",".join([
    "%file", "getdents", "getdents64", "read", "pread64", "readv", "preadv", "preadv2",
    "write", "pwrite64", "writev", "pwritev", "pwritev2", "sendfile", "copy_file_range",
    "close", "fstat", "fstatfs", "fsync", "fdatasync", "flock", "fcntl", "ftruncate",
    "fchmod", "fchown", "fallocate", "fchdir", "clone", "clone3", "fork", "vfork",
])
STRACE_OPTS = ["-f", "-qq", "-y", "-s", "0", "--seccomp-bpf", "-e", "signal=none",
               "-e", f"trace={TRACE}"]

# ------------------------------------------------------------------ classification

NAMESPACE = ("create", "mkdir", "rename", "unlink", "rmdir", "link", "symlink", "mknod")
LOOKUP = ("stat", "access", "open", "utime", "readlink", "setattr", "xattr", "statfs",
          "chdir")
FD_META = ("fstat", "close", "fsync", "lock", "fd_setattr")
DATA = ("read", "write")

#: path-taking calls: name -> (kind, index of the path argument); *at calls have the
#: directory fd at index - 1
PATH_CALLS = {
    "stat": ("stat", 0), "lstat": ("stat", 0), "stat64": ("stat", 0),
    "lstat64": ("stat", 0), "newfstatat": ("stat", 1), "fstatat64": ("stat", 1),
    "statx": ("stat", 1),
    "access": ("access", 0), "faccessat": ("access", 1), "faccessat2": ("access", 1),
    "readlink": ("readlink", 0), "readlinkat": ("readlink", 1),
    "utime": ("utime", 0), "utimes": ("utime", 0), "utimensat": ("utime", 1),
    "futimesat": ("utime", 1),
    "chmod": ("setattr", 0), "fchmodat": ("setattr", 1), "fchmodat2": ("setattr", 1),
    "chown": ("setattr", 0), "lchown": ("setattr", 0), "fchownat": ("setattr", 1),
    "truncate": ("setattr", 0), "truncate64": ("setattr", 0),
    "getxattr": ("xattr", 0), "lgetxattr": ("xattr", 0), "setxattr": ("xattr", 0),
    "lsetxattr": ("xattr", 0), "listxattr": ("xattr", 0), "llistxattr": ("xattr", 0),
    "removexattr": ("xattr", 0), "lremovexattr": ("xattr", 0),
    "statfs": ("statfs", 0), "statfs64": ("statfs", 0),
    "chdir": ("chdir", 0),
    "mkdir": ("mkdir", 0), "mkdirat": ("mkdir", 1),
    "rmdir": ("rmdir", 0),
    "unlink": ("unlink", 0), "unlinkat": ("unlink", 1),
    "mknod": ("mknod", 0), "mknodat": ("mknod", 1),
    "open": ("open", 0), "openat": ("open", 1), "openat2": ("open", 1),
    "creat": ("open", 0),
}
AT_CALLS = {"newfstatat", "fstatat64", "statx", "faccessat", "faccessat2", "readlinkat",
            "utimensat", "futimesat", "fchmodat", "fchmodat2", "fchownat", "mkdirat",
            "unlinkat", "mknodat", "openat", "openat2"}
#: two-name calls: name -> (kind, (dirfd, path) of the old name, (dirfd, path) of the new)
TWO_PATH_CALLS = {
    "rename": ("rename", (None, 0), (None, 1)),
    "renameat": ("rename", (0, 1), (2, 3)),
    "renameat2": ("rename", (0, 1), (2, 3)),
    "link": ("link", (None, 0), (None, 1)),
    "linkat": ("link", (0, 1), (2, 3)),
    "symlink": ("symlink", None, (None, 1)),
    "symlinkat": ("symlink", None, (1, 2)),
}
FD_CALLS = {
    "getdents": "getdents", "getdents64": "getdents",
    "read": "read", "pread64": "read", "readv": "read", "preadv": "read",
    "preadv2": "read", "write": "write", "pwrite64": "write", "writev": "write",
    "pwritev": "write", "pwritev2": "write",
    "close": "close", "fstat": "fstat", "fstatfs": "fstat",
    "fsync": "fsync", "fdatasync": "fsync", "flock": "lock", "fcntl": "lock",
    "ftruncate": "fd_setattr", "fchmod": "fd_setattr", "fchown": "fd_setattr",
    "fallocate": "fd_setattr", "fchdir": "chdir",
}
LOCK_FCNTL = re.compile(r"^F_(OFD_)?(SETLKW?|GETLK)")
NEW_PROCESS = {"clone", "clone3", "fork", "vfork"}

_LINE = re.compile(r"^(\d+)\s+(.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(.*)$", re.S)
_RET = re.compile(r"^(-?\d+|0x[0-9a-fA-F]+|\?)(?:<(.*)>)?(?:\s+([A-Z][A-Z0-9_]*))?")
_FD = re.compile(r"^(-?\d+|AT_FDCWD)<(.*)>$", re.S)
_ENTRIES = re.compile(r"/\* (\d+) entries \*/")


@dataclass
class Call:
    """One completed system call of a strace -f -y transcript."""

    pid: int
    name: str
    args: list[str]
    ret: str  # the text after " = "

    @property
    def value(self) -> int | None:
        m = _RET.match(self.ret)
        if not m or m[1] == "?":
            return None
        return int(m[1], 0)

    @property
    def ok(self) -> bool:
        v = self.value
        return v is not None and v >= 0

    @property
    def errno_name(self) -> str | None:
        m = _RET.match(self.ret)
        return m[3] if m and m[1] == "-1" else None

    @property
    def ret_path(self) -> str | None:
        m = _RET.match(self.ret)
        return _clean_fd_path(m[2]) if m and m[2] else None


def _clean_fd_path(p: str) -> str:
    return p[: -len(" (deleted)")] if p.endswith(" (deleted)") else p


def split_args(s: str) -> list[str]:
    """Split strace's argument text at top-level commas (quotes, ``<fd paths>``,
    ``{}``/``[]``/``()`` nesting respected)."""
    args: list[str] = []
    cur: list[str] = []
    depth = i = 0
    n = len(s)
    while i < n:
        ch = s[i]
        if ch == '"':
            j = i + 1
            while j < n and s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            cur.append(s[i : j + 1])
            i = j + 1
            continue
        if ch == "<" and depth == 0:
            text = "".join(cur).strip()
            if text and (text[-1].isdigit() or text.endswith("AT_FDCWD")):
                j = s.find(">", i)
                # a path may itself contain '>': take the last '>' before the next comma
                k = s.find(",", j) if j >= 0 else -1
                if j >= 0 and k >= 0 and s.rfind(">", j, k) > j:
                    j = s.rfind(">", j, k)
                j = n - 1 if j < 0 else j
                cur.append(s[i : j + 1])
                i = j + 1
                continue
        if ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    rest = "".join(cur).strip()
    if rest or args:
        args.append(rest)
    return args


def unquote(tok: str) -> str | None:
    """``"a\\x62c"...`` -> ``abc``; ``NULL`` or a non-string -> None."""
    tok = tok.strip()
    if not tok.startswith('"'):
        return None
    end = tok.rfind('"')
    body = tok[1:end] if end > 0 else tok[1:]
    return codecs.escape_decode(body.encode("utf-8", "surrogateescape"))[0].decode(
        "utf-8", "surrogateescape")


def fd_path(tok: str) -> tuple[str | None, str | None]:
    """``3</a/b>`` -> ("3", "/a/b"); ``AT_FDCWD</x>`` -> ("AT_FDCWD", "/x")."""
    m = _FD.match(tok.strip())
    if not m:
        return tok.strip(), None
    return m[1], _clean_fd_path(m[2])


def iter_calls(lines: Iterable[str], stats: Counter | None = None) -> Iterator[Call]:
    """Completed calls of a ``strace -f -y`` transcript, in completion order
    (``<unfinished ...>`` and ``<... resumed>`` halves joined per pid)."""
    pending: dict[int, str] = {}
    for raw in lines:
        line = raw.rstrip("\n")
        m = _LINE.match(line)
        if not m:
            if stats is not None and line.strip():
                stats["unparsed"] += 1
            continue
        pid, rest = int(m[1]), m[2]
        if rest.startswith(("+++", "---")):
            continue
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest[: -len("<unfinished ...>")].rstrip()
            continue
        r = _RESUMED.match(rest)
        if r:
            head = pending.pop(pid, None)
            if head is None:
                if stats is not None:
                    stats["orphan_resumed"] += 1
                continue
            rest = head + " " + r[2]
        c = _CALL.match(rest)
        if not c:
            if stats is not None:
                stats["unparsed"] += 1
            continue
        yield Call(pid, c[1], split_args(c[2]), c[3].strip())
    if stats is not None:
        stats["unfinished_at_end"] += len(pending)


@dataclass
class Tally:
    """What one traced phase did under the cache directory."""

    kinds: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    syscalls: Counter = field(default_factory=Counter)
    listings: int = 0
    listing_entries: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    pids: set = field(default_factory=set)
    parse: Counter = field(default_factory=Counter)

    def count(self, kind: str, call: Call, ok: bool | None = None) -> None:
        self.kinds[kind] += 1
        self.syscalls[call.name] += 1
        self.pids.add(call.pid)
        if not (call.ok if ok is None else ok):
            self.failed[kind] += 1

    def summary(self) -> dict:
        k = self.kinds
        return {
            "namespace": sum(k[x] for x in NAMESPACE),
            "lookups": sum(k[x] for x in LOOKUP),
            "listings": self.listings,
            "getdents": k["getdents"],
            "listing_entries": self.listing_entries,
            "opens": k["open"] + k["create"],
            "fd_ops": sum(k[x] for x in FD_META),
            "data_ops": k["read"] + k["write"],
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
        }


def classify(calls: Iterable[Call], cache_dir: str, existing: Iterable[str] = (),
             cwd: str = "/") -> Tally:
    """Count the calls on paths under ``cache_dir`` (see the module docstring).

    ``existing``: paths under the cache before the trace started (so an O_CREAT open
    of an existing file counts as an open, not a create); ``cwd``: the traced
    process's working directory (for relative paths of non-*at calls)."""
    root = os.path.normpath(cache_dir)
    prefix = root + os.sep
    known = set(existing)
    cwds: dict[int, str] = {}
    open_dirs: dict[tuple[int, str], bool] = {}  # (pid, fd) -> listed already
    t = Tally()

    def under(p: str | None) -> bool:
        return p is not None and (p == root or p.startswith(prefix))

    def resolve(pid: int, dirfd_tok: str | None, path: str | None) -> str | None:
        if path is None:
            return None
        if os.path.isabs(path):
            return os.path.normpath(path)
        base = None
        if dirfd_tok is not None:
            _fd, base = fd_path(dirfd_tok)
        if base is None:
            base = cwds.get(pid, cwd)
        return os.path.normpath(os.path.join(base, path))

    def forget(p: str) -> None:
        known.discard(p)
        pre = p + os.sep
        for q in [q for q in known if q.startswith(pre)]:
            known.discard(q)

    def move(a: str, b: str) -> None:
        pre = a + os.sep
        moved = [q for q in known if q == a or q.startswith(pre)]
        forget(b)
        for q in moved:
            known.discard(q)
            known.add(b + q[len(a):])

    for c in calls:
        name, args = c.name, c.args
        # every AT_FDCWD</path> tells us the process's cwd
        for a in args[:1] + args[2:3]:
            if a.startswith("AT_FDCWD<"):
                cwds[c.pid] = fd_path(a)[1] or cwds.get(c.pid, cwd)
        if name in NEW_PROCESS:
            child = c.value
            if child and child > 0:
                cwds[child] = cwds.get(c.pid, cwd)
            continue
        if name in FD_CALLS:
            if not args:
                continue
            fd, p = fd_path(args[0])
            kind = FD_CALLS[name]
            if kind == "chdir":
                if c.ok and p:
                    cwds[c.pid] = p
                if not under(p):
                    continue
            if name == "fcntl":
                if len(args) < 2 or not LOCK_FCNTL.match(args[1]):
                    continue
            if not under(p):
                if kind == "close":
                    open_dirs.pop((c.pid, fd or ""), None)
                continue
            if kind == "getdents":
                key = (c.pid, fd or "")
                if not open_dirs.get(key, False):
                    t.listings += 1
                    open_dirs[key] = True
                m = _ENTRIES.search(args[1]) if len(args) > 1 else None
                if m:
                    t.listing_entries += int(m[1])
            elif kind == "close":
                open_dirs.pop((c.pid, fd or ""), None)
            elif kind == "read" and c.ok:
                t.bytes_read += c.value or 0
            elif kind == "write" and c.ok:
                t.bytes_written += c.value or 0
            t.count(kind, c)
            continue
        if name in TWO_PATH_CALLS:
            kind, old, new = TWO_PATH_CALLS[name]

            def arg_path(spec, c=c, args=args):
                dfd, pi = spec
                if pi >= len(args):
                    return None
                return resolve(c.pid, args[dfd] if dfd is not None else None,
                               unquote(args[pi]))

            a = arg_path(old) if old else None
            b = arg_path(new)
            if not (under(a) or under(b)):
                continue
            t.count(kind, c)
            if c.ok and b:
                if kind == "rename" and a:
                    move(a, b)
                else:
                    known.add(b)
            continue
        if name not in PATH_CALLS:
            continue
        kind, pi = PATH_CALLS[name]
        if pi >= len(args):
            continue
        raw = unquote(args[pi])
        dirfd = args[pi - 1] if name in AT_CALLS else None
        if name in ("newfstatat", "fstatat64", "statx", "utimensat") and not raw:
            # fstat(fd) / futimens(fd) spelt as *at(fd, "" or NULL, ..., AT_EMPTY_PATH)
            _fd, p = fd_path(args[0])
            if under(p):
                t.count("fstat" if kind == "stat" else "fd_setattr", c)
            continue
        p = resolve(c.pid, dirfd, raw)
        if kind == "chdir" and c.ok and p:
            cwds[c.pid] = p
        if not under(p):
            continue
        assert p is not None
        if kind == "open":
            if name == "creat":
                flags = "O_CREAT|O_WRONLY|O_TRUNC"
            elif name == "openat2":
                m = re.search(r"flags=([A-Z0-9_|]+)", args[pi + 1] if len(args) > pi + 1 else "")
                flags = m[1] if m else ""
            else:
                flags = args[pi + 1] if len(args) > pi + 1 else ""
            fl = set(flags.split("|"))
            if "O_CREAT" in fl:
                if c.ok and p not in known:
                    t.count("create", c)
                elif not c.ok and "O_EXCL" in fl and c.errno_name == "EEXIST":
                    t.count("create", c)  # a create attempt that lost
                else:
                    t.count("open", c)
            else:
                t.count("open", c)
            if c.ok:
                known.add(p)
                fd = str(c.value)
                open_dirs.pop((c.pid, fd), None)
                if "O_DIRECTORY" in fl:
                    open_dirs[(c.pid, fd)] = False
            continue
        if kind == "unlink" and len(args) > 2 and "AT_REMOVEDIR" in args[2]:
            kind = "rmdir"
        t.count(kind, c)
        if c.ok:
            if kind in ("unlink", "rmdir"):
                forget(p)
            elif kind in ("mkdir", "mknod", "stat", "access", "readlink", "utime"):
                known.add(p)
    return t


def parse_trace(lines: Iterable[str], cache_dir: str, existing: Iterable[str] = (),
                cwd: str = "/") -> Tally:
    parse: Counter = Counter()
    t = classify(iter_calls(lines, parse), cache_dir, existing, cwd)
    t.parse = parse
    return t


# ------------------------------------------------------------------ running


def log(msg: str) -> None:
    print(f"[bench_metadata {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tree(path: Path) -> set[str]:
    """Every file and directory under ``path`` (not ``path`` itself)."""
    out = set()
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            out.add(os.path.join(root, n))
    return out


def du_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sB1", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def pythons(sides: list[str], ours_python: str | None) -> dict[str, str]:
    sys.path.insert(0, str(BENCH))
    import envs

    out = {}
    for side in sides:
        if side == "ours":
            out[side] = ours_python or str(envs.ours_python(log))
        else:
            out[side] = str(envs.anchor_python(log))
    return out


def run_phase(side: str, phase: str, python: str, cache: Path, args, trace: Path) -> dict:
    existing = tree(cache)
    cwd = str(cache.parent)
    cmd = ["strace", *STRACE_OPTS, "-o", str(trace), python, str(RUNNER), side,
           "--case", args.case, "--n", str(args.n), "--dir", str(cache),
           "--workers", str(args.workers)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if args.ours_pythonpath and side == "ours":
        env["PYTHONPATH"] = args.ours_pythonpath
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env,
                       timeout=args.timeout)
    wall = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{side} {phase} exited {p.returncode}: {p.stderr[-2000:]}")
    res = json.loads(lines[-1])
    with open(trace, errors="surrogateescape") as f:
        t = parse_trace(f, str(cache), existing, cwd)
    n = args.n
    summ = t.summary()
    rec = {
        "bench": "metadata", "case": args.case, "side": side, "phase": phase, "n": n,
        "seconds_traced": res["seconds"], "wall_traced_s": round(wall, 2),
        "per_call": {k: round(v / n, 3) for k, v in summ.items()},
        "kinds_per_call": {k: round(v / n, 3) for k, v in sorted(t.kinds.items())},
        "totals": summ,
        "kinds": dict(sorted(t.kinds.items())),
        "failed": dict(sorted(t.failed.items())),
        "syscalls": dict(sorted(t.syscalls.items())),
        "processes": len(t.pids),
        "trace_lines": sum(1 for _ in open(trace, errors="replace")),
        "parse_problems": dict(t.parse),
    }
    if phase == "cold":
        inodes = len(tree(cache))
        rec["inodes"] = inodes
        rec["inodes_per_entry"] = round(inodes / n, 3)
        rec["du_bytes_per_entry"] = round(du_bytes(cache) / n)
        top = Counter()
        for q in tree(cache):
            rel = os.path.relpath(q, cache).split(os.sep)[0]
            top["(hidden) " + rel if rel.startswith(".") else "(entries)"] += 1
        rec["inodes_by_top"] = dict(top)
    return rec


def table(recs: list[dict]) -> str:
    cols = [("side", "side"), ("phase", "phase"), ("ns", "namespace"), ("lookups", "lookups"),
            ("opens", "opens"), ("lists", "listings"), ("entries", "listing_entries"),
            ("fd", "fd_ops"), ("data", "data_ops")]
    kinds = ["create", "mkdir", "rename", "unlink", "stat", "access", "utime", "fstat",
             "close", "fsync", "lock"]
    head = [c[0] for c in cols] + kinds + ["inodes/entry", "du B/entry"]
    rows = [head]
    for r in recs:
        row = [r["side"], r["phase"]]
        row += [f"{r['per_call'][c[1]]:.2f}" for c in cols[2:]]
        row += [f"{r['kinds_per_call'].get(k, 0):.2f}" for k in kinds]
        row += [f"{r['inodes_per_entry']:.2f}" if "inodes_per_entry" in r else "",
                str(r.get("du_bytes_per_entry", ""))]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(x.rjust(w) for x, w in zip(row, widths, strict=True)) for row in rows]
    n = recs[0]["n"] if recs else 0
    return (f"metadata operations per call (N={n}, case {recs[0]['case'] if recs else ''}; "
            "strace, paths under the cache only)\n" + "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="calls per phase (300)")
    ap.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    ap.add_argument("--case", default="trivial", help="case of _meta_run.py (trivial)")
    ap.add_argument("--workers", type=int, default=2, help="ours: max_workers (2)")
    ap.add_argument("--workdir", help="where caches and traces go (default: a temp dir, "
                    "removed afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the workdir (traces, caches)")
    ap.add_argument("--json", help="also write the JSON lines to this file")
    ap.add_argument("--timeout", type=float, default=1800, help="per phase, seconds")
    ap.add_argument("--ours-python", help="interpreter for ours (default: bench/.venvs/xcache)")
    ap.add_argument("--ours-pythonpath", help="PYTHONPATH for ours (e.g. a checkout)")
    args = ap.parse_args(argv)
    if not shutil.which("strace"):
        log("strace not found (Debian: apt-get install strace)")
        return 2
    py = pythons(args.sides, args.ours_python)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="xcache-meta-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    recs = []
    try:
        for side in args.sides:
            cache = work / f"{side}-{args.case}-{args.n}" / "cache"
            if cache.exists():
                shutil.rmtree(cache)
            cache.mkdir(parents=True)
            for phase in ("cold", "warm"):
                log(f"{side} {phase} N={args.n} under strace")
                rec = run_phase(side, phase, py[side], cache, args,
                                work / f"{side}-{args.case}-{phase}.strace")
                print(json.dumps(rec), flush=True)
                recs.append(rec)
        if args.json:
            Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in recs))
        print(table(recs))
    finally:
        if not (args.workdir or args.keep):
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
