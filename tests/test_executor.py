"""The executor API on the local backend: results, errors, dependencies, lifecycle."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import pickle
import threading
import time

import numpy as np
import pytest
from conftest import entry_path

from executorlib_cache import CacheFuture, SingleNodeExecutor
from executorlib_cache.errors import RemoteTraceback, UpstreamFailedError


def add(a, b=0):
    return a + b


def fail(msg):
    raise KeyError(msg)


def slow(x, seconds=0.5):
    time.sleep(seconds)
    return x


@dataclasses.dataclass
class Point:
    x: float
    y: float

    def norm2(self):
        return self.x**2 + self.y**2


def norm2(p: Point) -> float:
    return p.norm2()


def test_results_for_plain_lambda_closure_and_rich_arguments(cache_dir):
    offset = 10

    def closure(x):
        return x + offset

    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        f1 = exe.submit(add, 1, b=2)
        f2 = exe.submit(lambda x: x * 3, 4)
        f3 = exe.submit(closure, 5)
        f4 = exe.submit(np.sum, np.arange(10))
        f5 = exe.submit(sorted, {"b", "a", "c"})
        f6 = exe.submit(norm2, Point(3.0, 4.0))
        f7 = exe.submit(dict, {"k": [1, 2]}, z=frozenset({1}))
        assert isinstance(f1, CacheFuture) and isinstance(f1, concurrent.futures.Future)
        assert f1.result(timeout=30) == 3
        assert f2.result(timeout=30) == 12
        assert f3.result(timeout=30) == 15
        assert f4.result(timeout=30) == 45
        assert f5.result(timeout=30) == ["a", "b", "c"]
        assert f6.result(timeout=30) == 25.0
        assert f7.result(timeout=30) == {"k": [1, 2], "z": frozenset({1})}
        assert f1.key.startswith("add-") and entry_path(cache_dir, f1.key).exists()


def test_map_preserves_order(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir, max_workers=2) as exe:
        assert list(exe.map(add, range(20), range(20))) == [2 * i for i in range(20)]


def test_function_exception_is_reraised_with_remote_traceback(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        fut = exe.submit(fail, "no such thing")
        with pytest.raises(KeyError, match="no such thing") as info:
            fut.result(timeout=30)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in fail" in cause.tb and "raise KeyError(msg)" in cause.tb
    assert entry_path(cache_dir, fut.key, "failed").exists()


def test_unpicklable_exception_still_reported(cache_dir):
    def raise_unpicklable():
        class Local(Exception):  # a local class cannot be unpickled elsewhere
            def __reduce__(self):
                raise TypeError("nope")

        raise Local("weird failure")

    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        fut = exe.submit(raise_unpicklable)
        with pytest.raises(Exception, match="weird failure"):
            fut.result(timeout=30)


def test_dependencies_positional_keyword_and_nested(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        a = exe.submit(slow, 1, 0.3)
        b = exe.submit(add, 2)
        c = exe.submit(add, a, b=b)
        d = exe.submit(sum, [a, b, c])
        e = exe.submit(dict, x={"inner": (a, [c])})
        assert c.result(timeout=30) == 3
        assert d.result(timeout=30) == 6
        assert e.result(timeout=30) == {"x": {"inner": (1, [3])}}


def test_upstream_failure_fails_dependents_promptly_naming_it(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        bad = exe.submit(fail, "upstream broke")
        dep = exe.submit(add, bad, 1)
        dep2 = exe.submit(add, dep, 1)
        t0 = time.monotonic()
        with pytest.raises(UpstreamFailedError) as info:
            dep2.result(timeout=30)
        assert time.monotonic() - t0 < 5
        with pytest.raises(UpstreamFailedError) as info1:
            dep.result(timeout=30)
    assert bad.key in str(info1.value) and info1.value.upstream_key == bad.key
    assert dep.key in str(info.value)


def test_unpicklable_argument_fails_at_submit_naming_it(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        with pytest.raises(TypeError, match="keyword argument 'lock'"):
            exe.submit(add, 1, lock=threading.Lock())
        with pytest.raises(TypeError, match="positional argument 1"):
            exe.submit(add, 1, threading.Lock())
        assert exe.submit(add, 1, 1).result(timeout=30) == 2  # still usable


def test_bad_input_is_rejected_at_submit(cache_dir, tmp_path):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        with pytest.raises(ValueError, match="unknown resource_dict key.*valid keys are: cores"):
            exe.submit(add, 1, resource_dict={"core": 2})
        with pytest.raises(ValueError, match="cores"):
            exe.submit(add, 1, resource_dict={"cores": 0})
        with pytest.raises(ValueError, match="cores"):
            exe.submit(add, 1, resource_dict={"cores": -2})
        with pytest.raises(TypeError, match="callable"):
            exe.submit(42)
        for bad in ("../escape", "a/../b", "..", ".hidden", "", "a//b", "/abs"):
            with pytest.raises(ValueError, match="invalid cache_key"):
                exe.submit(add, 1, resource_dict={"cache_key": bad})
        assert exe.submit(add, 2, 2).result(timeout=30) == 4
    assert not (tmp_path / "escape").exists()
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        SingleNodeExecutor(cache_directory=a_file)
    with pytest.raises(ValueError, match="max_workers"):
        SingleNodeExecutor(cache_directory=cache_dir, max_workers=0)


def test_cache_key_override(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        fut = exe.submit(add, 1, 2, resource_dict={"cache_key": "my-sum_1"})
        assert fut.key == "my-sum_1" and fut.result(timeout=30) == 3
        again = exe.submit(add, 100, 200, resource_dict={"cache_key": "my-sum_1"})
        assert again.done() and again.result() == 3  # the key, not the arguments, decides


def test_cache_directory_defaults_to_env(tmp_path, monkeypatch):
    monkeypatch.setenv("XCACHE_DIR", str(tmp_path / "from-env"))
    with SingleNodeExecutor() as exe:
        assert exe.submit(add, 1).result(timeout=30) == 1
    assert (tmp_path / "from-env").is_dir()
    assert (tmp_path / "from-env").stat().st_mode & 0o777 == 0o700
    monkeypatch.delenv("XCACHE_DIR")
    monkeypatch.chdir(tmp_path)
    with SingleNodeExecutor() as exe:
        assert exe.cache_directory == str(tmp_path / ".xcache")


def test_files_are_private_by_default(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        key = exe.submit(add, 1).key
        exe.submit(add, 1).result(timeout=30)
    assert cache_dir.stat().st_mode & 0o777 == 0o700
    done = entry_path(cache_dir, key)
    assert done.parent.stat().st_mode & 0o777 == 0o700  # its shard
    assert done.stat().st_mode & 0o777 == 0o600
    for f in cache_dir.rglob("*"):  # shards, lock file, usage log: nothing more open
        assert f.stat().st_mode & 0o077 == 0, f


def test_threads_per_core_and_cwd(cache_dir, tmp_path):
    def env_and_cwd():
        return os.environ.get("OMP_NUM_THREADS"), os.getcwd()

    work = tmp_path / "work"
    work.mkdir()
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        fut = exe.submit(env_and_cwd, resource_dict={"threads_per_core": 3, "cwd": str(work)})
        assert fut.result(timeout=30) == ("3", str(work))


def test_worker_death_fails_only_that_task_and_pool_recovers(cache_dir):
    def die(how):
        import signal

        if how == "exit":
            os._exit(3)
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        import ctypes

        ctypes.string_at(0)  # segfault

    with SingleNodeExecutor(cache_directory=cache_dir, max_workers=2) as exe:
        ok = [exe.submit(slow, i, 0.2) for i in range(4)]
        for how, text in (("exit", "exited with code 3"), ("kill", "SIGKILL"),
                          ("segv", "SIGSEGV")):
            fut = exe.submit(die, how)
            t0 = time.monotonic()
            with pytest.raises(Exception, match="worker process") as info:
                fut.result(timeout=30)
            assert time.monotonic() - t0 < 10
            assert text in str(info.value) and type(info.value).__name__ == "TaskDiedError"
        assert [f.result(timeout=30) for f in ok] == [0, 1, 2, 3]
        assert exe.submit(add, 5, 5).result(timeout=30) == 10


def test_shutdown_wait_cancel_and_running_state(cache_dir):
    exe = SingleNodeExecutor(cache_directory=cache_dir, max_workers=1)
    first = exe.submit(slow, "first", 1.0)
    queued = exe.submit(slow, "queued", 0.1)
    deadline = time.monotonic() + 20
    while not first.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first.running() and not queued.running()
    assert queued.cancel() and queued.cancelled()
    exe.shutdown(wait=True)
    assert first.done() and first.result() == "first"
    with pytest.raises(RuntimeError, match="after shutdown"):
        exe.submit(add, 1)

    exe = SingleNodeExecutor(cache_directory=cache_dir, max_workers=1)
    running = exe.submit(slow, "r", 1.0)
    pending = [exe.submit(slow, i, 0.5) for i in range(5)]
    while not running.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    exe.shutdown(wait=True, cancel_futures=True)
    assert running.result() == "r"
    assert all(f.cancelled() for f in pending)


def test_same_call_twice_in_flight_runs_once(cache_dir, tmp_path):
    marker = tmp_path / "count"

    def count(x):
        with open(marker, "a") as fh:
            fh.write("x")
        time.sleep(0.3)
        return x

    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        a = exe.submit(count, 7)
        b = exe.submit(count, 7)
        assert a.key == b.key
        assert a.result(timeout=30) == b.result(timeout=30) == 7
    assert marker.read_text() == "x"


def test_mpi_task_returns_every_rank(cache_dir):
    def ranks():
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        return comm.Get_rank(), comm.Get_size(), comm.allreduce(comm.Get_rank())

    with SingleNodeExecutor(cache_directory=cache_dir, max_workers=2) as exe:
        fut = exe.submit(ranks, resource_dict={"cores": 2})
        assert fut.result(timeout=90) == [(0, 2, 1), (1, 2, 1)]


def test_mpi_task_exception_on_one_rank_does_not_hang(cache_dir):
    def one_rank_fails():
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        if comm.Get_rank() == 1:
            raise ValueError("rank 1 failed")
        comm.barrier()  # rank 0 would wait here forever without the abort
        return 0

    with SingleNodeExecutor(cache_directory=cache_dir, max_workers=2) as exe:
        with pytest.raises(ValueError, match="rank 1 failed"):
            exe.submit(one_rank_fails, resource_dict={"cores": 2}).result(timeout=90)


def test_result_that_cannot_be_pickled_is_a_clear_failure(cache_dir):
    def returns_lock():
        return threading.Lock()

    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        with pytest.raises(Exception, match="pickle"):
            exe.submit(returns_lock).result(timeout=30)


def test_large_numpy_roundtrip(cache_dir):
    arr = np.random.default_rng(0).random(2_000_000)  # 16 MB
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        out = exe.submit(np.multiply, arr, 2).result(timeout=60)
    np.testing.assert_array_equal(out, arr * 2)


def test_pickle_of_future_key_is_plain_string(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        fut = exe.submit(add, 1)
    assert pickle.loads(pickle.dumps(fut.key)) == fut.key
    assert entry_path(cache_dir, fut.key).is_file()


def test_cancelled_task_queued_in_a_busy_worker_never_runs(cache_dir, tmp_path):
    marker = tmp_path / "ran"

    def touch(path):
        open(path, "w").close()

    with SingleNodeExecutor(cache_directory=cache_dir, max_workers=1) as exe:
        first = exe.submit(slow, "first", 1.0)
        queued = exe.submit(touch, str(marker))  # handed to the busy worker's queue
        deadline = time.monotonic() + 20
        while not first.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not queued.running()
        assert queued.cancel()
        assert first.result(timeout=30) == "first"
    assert not marker.exists()


def test_task_queued_behind_a_dying_task_is_run_by_the_replacement(cache_dir):
    def die():
        os._exit(7)

    with SingleNodeExecutor(cache_directory=cache_dir, max_workers=1) as exe:
        doomed = exe.submit(die)
        behind = exe.submit(add, 20, 22)
        with pytest.raises(Exception, match="exited with code 7"):
            doomed.result(timeout=30)
        assert behind.result(timeout=30) == 42
