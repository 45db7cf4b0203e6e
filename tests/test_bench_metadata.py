"""The metadata benchmark tools in bench/: the strace parser of bench_metadata.py
(on a real transcript committed in bench/testdata/), a tiny bench_metadata.py run
for ours, and the slow FUSE file system bench/slowfs.py (counts, delay, rename,
O_EXCL, flock through filelock, clean unmount)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import require, skip_unless_ci

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import bench_metadata as bm  # noqa: E402

SAMPLE = BENCH / "testdata" / "strace-sample.txt"


# ---------------------------------------------------------------- strace parser


@pytest.mark.timeout(30)
def test_parser_classifies_real_transcript():
    """bench/testdata/strace-sample.txt: ``strace -f -y`` of a script (cwd /tmp/fx,
    cache /tmp/fx/cache holding old/existing) that creates cache/.k1.tmp O_EXCL,
    flocks, writes, fsyncs it, mkdirs cache/k1 and renames the file into it by
    RELATIVE paths (non-*at calls), loses an O_EXCL create, opens an existing file
    with O_CREAT, stats (hit, miss, dirfd-relative), access, utime, lists cache/,
    runs two threads doing mkdir/stat/rmdir (interleaved <unfinished ...>/resumed
    lines) and forks a child that chdirs into cache/k1 and creates and unlinks
    'child' by relative name."""
    with SAMPLE.open() as f:
        t = bm.parse_trace(f, "/tmp/fx/cache",
                           {"/tmp/fx/cache/old", "/tmp/fx/cache/old/existing"}, "/tmp/fx")
    assert dict(t.kinds) == {
        "create": 3,  # .k1.tmp, the lost O_EXCL create, the child's file
        "open": 3,  # old/existing (O_CREAT, existed), cache/k1 and cache (O_DIRECTORY)
        "mkdir": 7, "rmdir": 6, "rename": 1, "unlink": 1,
        "stat": 9, "access": 1, "utime": 1, "chdir": 1,
        "fstat": 2, "close": 5, "lock": 2, "fsync": 1, "write": 1, "getdents": 2,
    }
    assert dict(t.failed) == {"create": 1, "stat": 1}
    s = t.summary()
    assert (s["namespace"], s["lookups"], s["listings"], s["listing_entries"]) == (18, 15, 1, 4)
    assert s["opens"] == 6 and s["bytes_written"] == 3
    assert t.parse["unparsed"] == 0 and t.parse["orphan_resumed"] == 0
    assert len(t.pids) == 4  # main, two threads, the forked child


@pytest.mark.timeout(30)
def test_parser_pieces():
    args = bm.split_args('AT_FDCWD</a, b>, "x,\\"y", {st_mode=S_IFREG|0644, st_size=3, ...}, 0')
    assert args == ['AT_FDCWD</a, b>', '"x,\\"y"', "{st_mode=S_IFREG|0644, st_size=3, ...}", "0"]
    assert bm.unquote(args[1]) == 'x,"y'
    assert bm.fd_path("3</c/d (deleted)>") == ("3", "/c/d")
    lines = [
        '7 openat(AT_FDCWD</w>, "c/f", O_RDONLY <unfinished ...>',
        '8 rename("/w/c/a", "/w/c/b" <unfinished ...>',
        '7 <... openat resumed>) = -1 ENOENT (No such file or directory)',
        '8 <... rename resumed>) = 0',
        '8 +++ exited with 0 +++',
    ]
    calls = list(bm.iter_calls(lines))
    assert [(c.pid, c.name, c.ok, c.errno_name) for c in calls] == [
        (7, "openat", False, "ENOENT"), (8, "rename", True, None)]
    t = bm.classify(calls, "/w/c", cwd="/w")
    assert dict(t.kinds) == {"open": 1, "rename": 1} and dict(t.failed) == {"open": 1}


# ---------------------------------------------------------------- bench_metadata.py


@pytest.mark.timeout(300)
def test_bench_metadata_ours_tiny(tmp_path):
    if not shutil.which("strace"):
        skip_unless_ci("needs strace (Debian package strace)")
    out = tmp_path / "meta.jsonl"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_metadata.py"), "--n", "4", "--sides", "ours",
         "--ours-python", sys.executable, "--ours-pythonpath", str(ROOT),
         "--workdir", str(tmp_path / "work"), "--json", str(out), "--timeout", "240"],
        capture_output=True, text=True, timeout=280, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    recs = {r["phase"]: r for r in map(json.loads, out.read_text().splitlines())}
    cold, warm = recs["cold"], recs["warm"]
    for r in (cold, warm):
        assert r["side"] == "ours" and r["n"] == 4
        assert r["per_call"]["lookups"] > 0 and r["per_call"]["opens"] > 0
        assert r["processes"] >= 1 and not r["parse_problems"].get("unparsed")
    # a cold call creates and publishes files; a warm call (a hit) creates fewer
    assert cold["kinds"]["create"] >= 4 and cold["kinds"]["rename"] >= 4
    assert cold["per_call"]["namespace"] > warm["per_call"]["namespace"]
    assert cold["inodes_per_entry"] >= 1 and cold["du_bytes_per_entry"] > 0
    assert "metadata operations per call" in proc.stdout


# ---------------------------------------------------------------- slowfs.py


@pytest.fixture
def slowfs_mod():
    if not os.path.exists("/dev/fuse"):
        skip_unless_ci("needs /dev/fuse")
    try:
        import mfusepy  # noqa: F401  (also loads libfuse)
    except (ImportError, OSError, AttributeError) as e:
        skip_unless_ci(f"needs mfusepy and libfuse3 (Debian package fuse3): {e}")
    if os.geteuid() != 0 and not shutil.which("fusermount3"):
        skip_unless_ci("needs root or fusermount3 to mount FUSE")
    import slowfs

    return slowfs


@pytest.mark.timeout(120)
def test_slowfs_counts_delays_and_semantics(slowfs_mod, tmp_path):
    slowfs = slowfs_mod
    require("filelock")
    mp = tmp_path / "mnt"
    with slowfs.slow_mount(delay_ms=1, backing=tmp_path / "backing", mountpoint=mp,
                           log=tmp_path / "daemon.log") as m:
        assert slowfs.is_mounted(mp)
        (mp / "f").write_text("x")
        before = m.reset()
        assert before["counts"]["create"] >= 1 and before["delay_ms"] == 1.0
        for _ in range(5):
            os.stat(mp / "f")
        after = m.stats()
        # kernel caches are off: every stat reaches the daemon (a count, not a time)
        assert after["counts"]["getattr"] >= 5, after
        assert after["metadata_ops"] >= 5 and after["namespace_ops"] == 0

        # rename over an existing name, O_EXCL, fsync, utime, listing
        (mp / "d").mkdir()
        (mp / "d" / "tmp").write_text("new")
        (mp / "d" / "dst").write_text("old")
        os.replace(mp / "d" / "tmp", mp / "d" / "dst")
        assert (mp / "d" / "dst").read_text() == "new"
        assert not (tmp_path / "backing" / "d" / "tmp").exists()
        fd = os.open(mp / "d" / "x", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.write(fd, b"abc")
        os.fsync(fd)
        os.close(fd)
        with pytest.raises(FileExistsError):
            os.open(mp / "d" / "x", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.utime(mp / "d" / "x", ns=(10**9, 2 * 10**9))
        assert os.stat(mp / "d" / "x").st_mtime_ns == 2 * 10**9
        assert sorted(os.listdir(mp / "d")) == ["dst", "x"]
        c = m.stats()["counts"]
        assert c["rename"] >= 1 and c["mkdir"] == 1 and c["readdir"] >= 1 and c["fsync"] >= 1

        # flock through filelock: another process cannot take a lock this one holds
        lock_path = mp / "d" / "entry.lock"
        probe = textwrap.dedent(f"""
            import filelock, sys
            try:
                filelock.FileLock({str(lock_path)!r}, timeout=0.3).acquire()
            except filelock.Timeout:
                sys.exit(3)
            sys.exit(0)
        """)
        import filelock

        with filelock.FileLock(str(lock_path), timeout=5):
            r = subprocess.run([sys.executable, "-c", probe], timeout=60)
            assert r.returncode == 3, "a second process got a flock held by this one"
        r = subprocess.run([sys.executable, "-c", probe], timeout=60)
        assert r.returncode == 0, "the lock was not released"
    assert not slowfs.is_mounted(mp)


@pytest.mark.timeout(60)
def test_slowfs_unmounts_on_error(slowfs_mod, tmp_path):
    slowfs = slowfs_mod
    mp = tmp_path / "mnt"
    holder = {}
    with pytest.raises(RuntimeError, match="boom"):
        with slowfs.slow_mount(delay_ms=0, backing=tmp_path / "b", mountpoint=mp) as m:
            holder["proc"] = m.proc
            (mp / "a").write_text("kept")
            raise RuntimeError("boom")
    assert not slowfs.is_mounted(mp)
    assert holder["proc"].poll() is not None, "the daemon is still running"
    assert (tmp_path / "b" / "a").read_text() == "kept"
