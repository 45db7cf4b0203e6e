"""Fault 8: bad input at the API (what tests/test_executor.py does not cover
already).  Every mistake is a clear error at construction or ``submit()``,
names what is wrong, and leaves the executor usable.  Plus two failures that
must not hang: an argument that pickles but cannot be unpickled by the worker,
and a crash of the executor's own poller thread.
"""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from executorlib_cache import SingleNodeExecutor


def add(a, b=0):
    return a + b


class Unloadable:
    """Pickles fine; unpickling raises (e.g. a class missing on the worker)."""

    def __reduce__(self):
        return (_refuse, ("no such module on the worker",))


def _refuse(msg):
    raise ImportError(msg)


BAD_RESOURCES = [
    ([("cores", 2)], TypeError, "resource_dict must be a dict"),
    ({"cores": 1.5}, ValueError, "cores"),
    ({"cores": "2"}, ValueError, "cores"),
    ({"cores": True}, ValueError, "cores"),
    ({"threads_per_core": 0}, ValueError, "threads_per_core"),
    ({"gpus_per_core": -1}, ValueError, "gpus_per_core"),
    ({"num_nodes": 0}, ValueError, "num_nodes"),
    ({"run_time_max": 0}, ValueError, "run_time_max"),
    ({"memory_max": -1}, ValueError, "memory_max"),
    ({"memory_max": "4GB"}, ValueError, "memory_max"),
    ({"partition": 3}, ValueError, "partition"),
    ({"cwd": 5}, ValueError, "cwd"),
    ({"exclusive": "yes"}, ValueError, "exclusive"),
    ({"slurm_cmd_args": "--qos=high"}, ValueError, "slurm_cmd_args"),
    ({"slurm_cmd_args": [1]}, ValueError, "slurm_cmd_args"),
    # each becomes a line of the job script: a line break would add a shell command
    ({"slurm_cmd_args": ["--nice=5\ntouch INJECTED"]}, ValueError, "no line breaks"),
    ({"partition": "debug\ntouch INJECTED"}, ValueError, "partition or queue name"),
    ({"partition": "a b"}, ValueError, "no spaces"),
    ({"queue": "q;rm"}, ValueError, "partition or queue name"),
    ({"cwd": "/tmp/a\nb"}, ValueError, "line break"),
    ({"cwd": "/nonexistent/dir"}, ValueError, "existing directory"),  # local: checked now
    ({"cwd": "/etc/passwd"}, ValueError, "existing directory"),
    ({"cache_key": 123}, TypeError, "cache_key must be a str"),
    ({"cache_key": "x" * 201}, ValueError, "invalid cache_key"),
    ({"cache_key": "-lead"}, ValueError, "invalid cache_key"),
    ({"cache_key": "a b"}, ValueError, "invalid cache_key"),
    ({"cache_key": "caf\u00e9"}, ValueError, "invalid cache_key"),
    ({"cache_key": "a\\b"}, ValueError, "invalid cache_key"),
    ({"Cores": 1}, ValueError, "unknown resource_dict key.*valid keys are"),
]


@pytest.mark.timeout(60)
def test_bad_submit_arguments_are_clear_errors_and_the_executor_stays_usable(tmp_path,
                                                                             counts):
    with SingleNodeExecutor(cache_directory=tmp_path / "cache", max_workers=1) as exe:
        for res, exc, match in BAD_RESOURCES:
            with pytest.raises(exc, match=match):
                exe.submit(add, 1, resource_dict=res)
        for fn in (None, "add", 3.5, object()):
            with pytest.raises(TypeError, match="callable"):
                exe.submit(fn, 1)
        lock = threading.Lock()
        with pytest.raises(TypeError, match="the function"):
            exe.submit(lambda: lock.locked())
        with pytest.raises(TypeError, match="only futures returned by an executorlib_cache"):
            exe.submit(add, concurrent.futures.Future())
        with pytest.raises(TypeError, match="only futures returned by an executorlib_cache"):
            exe.submit(add, 1, b={"nested": [concurrent.futures.Future()]})
        # pickles here, cannot be unpickled by the worker: the future fails, clearly
        fut = exe.submit(add, Unloadable())
        with pytest.raises(ImportError, match="no such module on the worker"):
            fut.result(timeout=30)
        assert exe.submit(add, 2, 3).result(timeout=30) == 5  # still usable
    counts.add("8. bad input at the API", scenarios=len(BAD_RESOURCES) + 8)


@pytest.mark.timeout(30)
def test_bad_executor_arguments(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    cases = [
        ({"cache_directory": a_file / "sub"}, OSError, "cannot be created|Not a directory"),
        # the cause named, not mkdir's "No such file or directory" in /proc
        ({"cache_directory": "/proc/xcache-test/c"}, PermissionError,
         r"/proc is on a proc file system, the kernel's own state"),
        ({"cache_directory": dangling}, PermissionError,
         r"is a symbolic link to '.*nowhere', which does not resolve"),
        ({"cache_directory": str(tmp_path / "nul\0byte")}, ValueError, "null"),
        ({"max_workers": True}, ValueError, "max_workers"),
        ({"max_workers": -1}, ValueError, "max_workers"),
        ({"max_workers": 1.5}, ValueError, "max_workers"),
        ({"max_workers": "2"}, ValueError, "max_workers"),
        ({"resource_dict": {"core": 2}}, ValueError, "unknown resource_dict key"),
        ({"resource_dict": {"cache_key": "k"}}, ValueError, "cache_key is per call"),
        ({"resource_dict": {"cores": 0}}, ValueError, "cores"),
        ({"secret": 5}, TypeError, "secret must be a str or bytes"),
        ({"secret": b""}, ValueError, "secret must not be empty"),
        ({"recompute": "yes"}, TypeError, "recompute must be True or False"),
        ({"cache_directory": ""}, ValueError, "cache_directory must be a non-empty path"),
        ({"resource_dict": {"cache_directory": tmp_path / "other"}}, ValueError,
         "differ: give one"),
    ]
    for kwargs, exc, match in cases:
        kwargs.setdefault("cache_directory", tmp_path / "cache")
        with pytest.raises(exc, match=match):
            SingleNodeExecutor(**kwargs)
    assert not (tmp_path / "cache").exists() or (tmp_path / "cache").is_dir()


@pytest.mark.timeout(30)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_poller_crash_fails_futures_and_later_submits_never_hang(tmp_path, monkeypatch,
                                                                 counts):
    """A bug inside the executor's poller thread (injected) fails every future,
    including those submitted after the crash, instead of leaving them pending."""
    from executorlib_cache.backends.local import LocalBackend

    def broken_check(self, tasks):
        raise RuntimeError("injected poller bug")

    monkeypatch.setattr(LocalBackend, "check", broken_check)
    exe = SingleNodeExecutor(cache_directory=tmp_path / "cache", max_workers=1)
    first = exe.submit(add, 1, 1)
    with pytest.raises(RuntimeError, match="poller crashed.*injected poller bug"):
        first.result(timeout=10)
    later = exe.submit(add, 2, 2)
    with pytest.raises(RuntimeError, match="poller crashed"):
        later.result(timeout=5)
    with pytest.raises(RuntimeError, match="poller failed"):
        exe.shutdown()
    # the crashed executor gave its claims back: a new executor in this same (live)
    # process runs the calls instead of waiting on claims nobody serves
    monkeypatch.undo()
    with SingleNodeExecutor(cache_directory=tmp_path / "cache", max_workers=1) as again:
        assert again.submit(add, 1, 1).result(timeout=10) == 2
        assert again.submit(add, 2, 2).result(timeout=10) == 4
    counts.add("8. bad input at the API", scenarios=1, calls=2)
