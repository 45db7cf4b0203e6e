"""Fault 5: the cache's file system says no.  A full disk (a small tmpfs filled
up), a file system turning read-only (a read-only bind mount over the tmpfs:
see ``Tmpfs.read_only``), and permission denied (a driver run as ``nobody`` via
``setpriv``: as root, permission bits are not enforced; a shard of its cache is
another user's).

Each gives a clear error (at construction, at ``submit()`` or on the future,
naming the cause), nothing hangs, the executor stays usable, and no partial
entry is left behind: no temp file, no half file under a final name.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from pathlib import Path

import pytest
from conftest import skip_unless_ci

from executorlib_cache import SingleNodeExecutor
from executorlib_cache.store import Store
from faults.faultlib import (
    check_no_false_files,
    entry_files,
    env_with,
    executions,
    wait_for,
    work,
    work_big,
)


def fill_then_return(path: str, leave: int, size: int) -> bytes:
    """Eat the free space (leaving ``leave`` bytes), then return ``size`` bytes."""
    eaten = os.path.join(path, "eaten")
    if os.path.exists(eaten):
        os.unlink(eaten)
    st = os.statvfs(path)
    with open(eaten, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return b"r" * size


def no_debris(cache: Path) -> None:
    """No temp file anywhere; every file under a final name is a valid one."""
    tmp = [p for p in cache.rglob(".*.tmp")]
    assert not tmp, tmp
    for key in Store(cache, create=None).keys():
        check_no_false_files(cache, key)


@pytest.mark.timeout(60)
def test_disk_full_at_submit_is_a_clear_error_and_recovers(tmpfs, tmp_path, counts):
    fs = tmpfs("2m")
    cache, counter = fs.path / "cache", str(tmp_path / "count")
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        assert exe.submit(work, counter, 1).result(timeout=30) == 1
        filler = fs.fill(leave=0)
        with pytest.raises(OSError) as info:
            exe.submit(work, counter, 2)
        assert info.value.errno == errno.ENOSPC, info.value
        assert exe.submit(work, counter, 1).result(timeout=5) == 1  # hits still work
        no_debris(cache)
        filler.unlink()
        assert exe.submit(work, counter, 2).result(timeout=30) == 4  # and it recovers
    no_debris(cache)
    assert sorted(executions(counter)) == [1, 2]
    counts.add("5. disk full / read-only / permission denied", calls=3)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [300_000, 1_500_000], ids=["image-write", "hdf5-write"])
def test_disk_full_while_writing_the_result_fails_the_future(size, tmpfs, tmp_path, counts):
    """The worker cannot write the result (nor, for the last case, even the error):
    the future fails with ENOSPC, not a hang or a vague 'worker died'."""
    fs = tmpfs("4m")
    cache = fs.path / "cache"
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        # leave room for an error file, not for the result
        fut = exe.submit(fill_then_return, str(fs.path), 100_000, size)
        with pytest.raises(OSError, match="No space left on device"):
            fut.result(timeout=30)
        # leave no room at all: even the error cannot be recorded
        fut = exe.submit(fill_then_return, str(fs.path), 0, size)
        with pytest.raises(OSError, match="No space left on device"):
            fut.result(timeout=30)
        (fs.path / "eaten").unlink()
        # nothing recorded it, and no claim is left to make a later run wait: it is
        # simply absent (a re-run runs it again)
        assert entry_files(cache, fut.key) == {}, entry_files(cache, fut.key)
        assert exe.submit(work, str(tmp_path / "c"), 3).result(timeout=30) == 9  # usable
    no_debris(cache)
    counts.add("5. disk full / read-only / permission denied", calls=3)


@pytest.mark.timeout(60)
def test_big_result_on_a_full_disk_leaves_no_half_file(tmpfs, tmp_path, counts):
    fs = tmpfs("2m")
    cache, counter = fs.path / "cache", str(tmp_path / "count")
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        exe.submit(work, counter, 0).result(timeout=30)  # worker up, cache set up
        fs.fill(leave=600_000)
        fut = exe.submit(work_big, counter, 1)  # 1 MB: does not fit
        with pytest.raises(OSError, match="No space left on device"):
            fut.result(timeout=30)
    assert "done" not in entry_files(cache, fut.key)
    no_debris(cache)
    counts.add("5. disk full / read-only / permission denied", calls=1)


@pytest.mark.timeout(60)
def test_read_only_cache(tmpfs, tmp_path, counts):
    fs = tmpfs("4m")
    cache, counter = fs.path / "cache", str(tmp_path / "count")
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        assert exe.submit(work, counter, 1).result(timeout=30) == 1
        fs.read_only()
        try:
            # already cached: served from the read-only cache
            assert exe.submit(work, counter, 1).result(timeout=5) == 1
            with pytest.raises(OSError, match="Read-only file system"):
                exe.submit(work, counter, 2)
        finally:
            fs.writable()
        assert exe.submit(work, counter, 2).result(timeout=30) == 4
    fs.read_only()
    try:
        with pytest.raises(PermissionError, match="not writable"):
            SingleNodeExecutor(cache_directory=cache)
        with pytest.raises(PermissionError, match="on a file system mounted read-only"):
            SingleNodeExecutor(cache_directory=fs.path / "new" / "cache")
    finally:
        fs.writable()
    no_debris(cache)
    assert sorted(executions(counter)) == [1, 2]
    counts.add("5. disk full / read-only / permission denied", calls=3)


@pytest.mark.timeout(60)
def test_cache_turning_read_only_while_a_task_runs(tmpfs, tmp_path, counts):
    fs = tmpfs("4m")
    cache = fs.path / "cache"
    flag, running = tmp_path / "go", tmp_path / "running"

    def wait_for_flag(x):
        import time

        open(running, "w").close()
        while not os.path.exists(flag):
            time.sleep(0.01)
        return x

    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        fut = exe.submit(wait_for_flag, 5)
        wait_for(running.exists, 30, "the task to start")
        fs.read_only()
        try:
            flag.touch()
            with pytest.raises(OSError, match="Read-only file system"):
                fut.result(timeout=30)
        finally:
            fs.writable()
        assert exe.submit(wait_for_flag, 6).result(timeout=30) == 6
    no_debris(cache)
    counts.add("5. disk full / read-only / permission denied", calls=2)


@pytest.fixture
def shared_tmp():
    """A directory ``nobody`` can reach (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="xcache-faults-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


AS_NOBODY = """
import os, sys
from executorlib_cache import SingleNodeExecutor

def add(a, b):
    return a + b

cache = sys.argv[1]
try:
    SingleNodeExecutor(cache_directory=os.path.join(cache, "root-only", "c"))
except PermissionError as e:
    print("CONSTRUCT", e)
with SingleNodeExecutor(cache_directory=os.path.join(cache, "mine"), max_workers=1) as exe:
    try:
        exe.submit(add, 1, 1, resource_dict={"cache_key": "locked_1"})
    except PermissionError as e:
        print("SUBMIT", e)
    print("RESULT", exe.submit(add, 2, 2).result(timeout=30))
"""


AS_NOBODY_CMD = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def interpreter_for_nobody(cwd: Path) -> tuple[str, dict[str, str]] | None:
    """An interpreter ``nobody`` can run, which can also start itself again (the
    driver spawns workers with sys.executable), with our packages importable."""
    purelib = sysconfig.get_paths()["purelib"]
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for exe in dict.fromkeys([sys.executable, f"/usr/bin/{ver}", f"/usr/local/bin/{ver}"]):
        if not os.path.exists(exe):
            continue
        env = env_with(HOME=str(cwd))
        env["PYTHONPATH"] += os.pathsep + purelib
        probe = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
                 "'import h5py, zmq, cloudpickle, executorlib_cache'], check=True)")
        ok = subprocess.run([*AS_NOBODY_CMD, exe, "-c", probe], env=env, cwd=cwd,
                            capture_output=True, timeout=60).returncode == 0
        if ok:
            return exe, env
    return None


@pytest.mark.timeout(60)
def test_permission_denied_as_another_user(shared_tmp, counts):
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        skip_unless_ci("needs root and setpriv to run a driver as nobody")
    found = interpreter_for_nobody(shared_tmp)
    if found is None:
        skip_unless_ci("no Python interpreter that user nobody can run with these packages")
    python, env = found
    (shared_tmp / "root-only").mkdir(mode=0o700)
    mine = shared_tmp / "mine"
    mine.mkdir()
    os.chown(mine, 65534, 65534)
    script = shared_tmp / "driver.py"
    script.write_text(textwrap.dedent(AS_NOBODY))
    # the cache is the driver's, but the shard of locked_1 is another user's (0700): an
    # entry there may not be written
    store = Store(mine)
    for p in [mine, *mine.rglob("*")]:
        os.chown(p, 65534, 65534)
    locked = Path(store.shard_of("locked_1"))  # (not the shard of the script's add(2, 2))
    os.chown(locked, 0, 0)
    locked.chmod(0o700)
    proc = subprocess.run([*AS_NOBODY_CMD, python, str(script), str(shared_tmp)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=shared_tmp)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "CONSTRUCT" in out and "root-only" in out, out
    assert "SUBMIT" in out and "Permission denied" in out, out
    assert "RESULT 4" in out, out
    assert not list(shared_tmp.rglob(".*.tmp"))
    counts.add("5. disk full / read-only / permission denied", calls=3)
