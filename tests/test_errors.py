"""Error reports a user reads (issue 12, items 5-8): bounded messages along chains,
exceptions that survive pickling, unpicklable values named as such, a hint on SIGKILL."""

from __future__ import annotations

import inspect
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from conftest import SLURM_WANTED, require

from executorlib_cache import SingleNodeExecutor, errors, get_future_from_cache, list_cache
from executorlib_cache.catalog import describe
from executorlib_cache.errors import (
    SerializationError,
    TaskDiedError,
    UpstreamFailedError,
)

pytestmark = pytest.mark.timeout(120)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def boom(x: Any) -> Any:
    raise ValueError(f"boom {x!r} " + "x" * 3000)


def step(x: Any) -> Any:
    return x


def gen() -> Any:
    return (i for i in range(3))


def rank_gen() -> Any:
    from mpi4py import MPI

    return (MPI.COMM_WORLD.Get_rank() for _ in range(2))


def suicide() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def argv() -> list[str]:
    return list(sys.argv)


# ---------------------------------------------------------------- 6. pickling
def _all_error_classes() -> list[type[BaseException]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass)
            if issubclass(c, BaseException) and c.__module__ == errors.__name__]


def _example(cls: type[BaseException]) -> BaseException:
    if cls is UpstreamFailedError:
        return UpstreamFailedError.because("up-v1-1", ValueError("root"))
    if cls is errors.RemoteTraceback:
        return cls("Traceback (most recent call last):\n  ...")
    return cls(f"a {cls.__name__}")


@pytest.mark.parametrize("cls", _all_error_classes(), ids=lambda c: c.__name__)
def test_every_exception_of_the_package_survives_pickling(cls: type[BaseException]) -> None:
    """A runner raises them in another process: type, message and attributes come
    back (UpstreamFailedError(message, upstream_key) used to fail to unpickle)."""
    exc = _example(cls)
    exc.extra = 42  # type: ignore[attr-defined]
    for dumps in (pickle.dumps, cloudpickle.dumps):
        back = pickle.loads(dumps(exc))
        assert type(back) is cls and str(back) == str(exc) and back.args == exc.args
        assert vars(back) == vars(exc)
    assert issubclass(cls, errors.XCacheError)


def test_upstream_failed_error_keeps_its_attributes_across_a_runner(tmp_path: Path) -> None:
    """Raised inside a call (the runner pickles it): the driver gets the real class
    with ``upstream_key`` and the root cause, not a RemoteError."""
    def reraise() -> None:
        raise UpstreamFailedError.because("up-v1-0", KeyError("k"))

    with SingleNodeExecutor(cache_directory=tmp_path / "c", max_workers=1) as exe:
        exc = exe.submit(reraise).exception(timeout=30)
    assert type(exc) is UpstreamFailedError and exc.upstream_key == "up-v1-0"
    assert exc.root_type == "KeyError"


# ---------------------------------------------------------------- 5. chains
def test_a_failing_chain_gives_bounded_messages_naming_the_root(tmp_path: Path) -> None:
    """30 dependent links after a failing first one: every message names the
    immediate upstream and the root cause once, and stays small (it used to double
    per link: 0.5 GB at 30)."""
    with SingleNodeExecutor(cache_directory=tmp_path / "c", max_workers=2) as exe:
        first = exe.submit(boom, 0)
        futs = [first]
        for _ in range(30):
            futs.append(exe.submit(step, futs[-1]))
        excs = [f.exception(timeout=60) for f in futs[1:]]
    for prev, exc in zip(futs, excs, strict=False):
        assert isinstance(exc, UpstreamFailedError), repr(exc)
        assert exc.upstream_key == prev.key and exc.root_key == first.key
        assert exc.root_type == "ValueError" and len(str(exc)) < 1500, len(str(exc))
    assert first.key in str(excs[-1]) and "ValueError" in str(excs[-1])
    size = sum(p.stat().st_size for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert size < 2_000_000, size


@pytest.mark.skipif(not SLURM_WANTED, reason="SLURM tests are off")
@pytest.mark.timeout(180)
def test_a_failing_afterok_chain_on_slurm_gives_bounded_messages(tmp_path: Path) -> None:
    from executorlib_cache import SlurmClusterExecutor

    with SlurmClusterExecutor(cache_directory=tmp_path / "c") as exe:
        first = exe.submit(boom, 1)
        futs = [first]
        for _ in range(8):
            futs.append(exe.submit(step, futs[-1]))
        excs = [f.exception(timeout=120) for f in futs[1:]]
    for exc in excs:
        assert isinstance(exc, UpstreamFailedError) and exc.root_key == first.key, repr(exc)
        assert len(str(exc)) < 1500


# ---------------------------------------------------------------- 7. unpicklable values
def test_an_unpicklable_return_value_is_named_as_such(tmp_path: Path) -> None:
    """``return (i for i in ...)``: the error says the *return value* of the function
    (a generator) cannot be pickled; ``xcache show`` gives the reason."""
    with SingleNodeExecutor(cache_directory=tmp_path / "c", max_workers=1) as exe:
        fut = exe.submit(gen)
        exc = fut.exception(timeout=30)
    assert isinstance(exc, SerializationError) and isinstance(exc, TypeError)
    assert "return value of 'gen'" in str(exc) and "generator" in str(exc), str(exc)
    info = describe(tmp_path / "c", fut.key)
    assert info["reason"] == "unpicklable" and info["error_type"] == "SerializationError"
    shown = subprocess.run([sys.executable, "-m", "executorlib_cache", "--cache-dir",
                            str(tmp_path / "c"), "show", fut.key], capture_output=True,
                           text=True, timeout=60)
    assert "unpicklable" in shown.stdout and "return value" in shown.stdout, shown.stdout


def test_an_unpicklable_argument_is_named_at_submit(tmp_path: Path) -> None:
    import threading

    with SingleNodeExecutor(cache_directory=tmp_path / "c") as exe:
        with pytest.raises(SerializationError, match="positional argument 0 of 'step'"):
            exe.submit(step, threading.Lock())


def test_an_unpicklable_mpi_return_value_is_named_too(tmp_path: Path) -> None:
    require("mpi4py")
    with SingleNodeExecutor(cache_directory=tmp_path / "c", max_workers=2) as exe:
        exc = exe.submit(rank_gen, resource_dict={"cores": 2}).exception(timeout=60)
    assert isinstance(exc, SerializationError) and "return value of 'rank_gen'" in str(exc)


# ---------------------------------------------------------------- 8. SIGKILL
def test_a_worker_killed_by_sigkill_hints_at_memory(tmp_path: Path) -> None:
    with SingleNodeExecutor(cache_directory=tmp_path / "c", max_workers=1) as exe:
        exc = exe.submit(suicide).exception(timeout=30)
    assert isinstance(exc, TaskDiedError) and "SIGKILL" in str(exc)
    assert "out-of-memory" in str(exc) and "dmesg" in str(exc), str(exc)


# ---------------------------------------------------------------- 17. sys.argv
def test_a_call_sees_the_drivers_argv(tmp_path: Path) -> None:
    """A call that reads ``sys.argv`` sees the script's command line, not the
    worker's (which would be ``-m executorlib_cache.compute.worker ...``)."""
    script = tmp_path / "drv.py"
    script.write_text(
        "import sys\nfrom executorlib_cache import SingleNodeExecutor\n"
        "def argv():\n    return list(sys.argv)\n"
        "with SingleNodeExecutor(cache_directory='c') as exe:\n"
        "    print(exe.submit(argv).result())\n")
    out = subprocess.run([sys.executable, str(script), "--alpha", "3"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str([str(script), "--alpha", "3"]), out.stderr


def test_a_result_this_process_cannot_unpickle_is_named_and_kept(tmp_path: Path) -> None:
    """A stored value whose class is not importable in the reading process (the
    module was on the worker's path only): SerializationError naming the entry,
    the import error as its cause; the entry is kept and served once importable."""
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    (mod_dir / "only_here_mod.py").write_text(
        "class Point:\n    def __init__(self, x):\n        self.x = x\n\n"
        "def make(x):\n    return Point(x)\n")
    script = (f"import sys; sys.path.insert(0, {str(mod_dir)!r})\n"
              "import only_here_mod\n"
              "from executorlib_cache import SingleNodeExecutor\n"
              f"with SingleNodeExecutor(cache_directory={str(tmp_path / 'c')!r}) as exe:\n"
              "    f = exe.submit(only_here_mod.make, 3)\n"
              "    assert f.result(timeout=60).x == 3\n"
              "    print(f.key)\n")
    env = {**os.environ, "PYTHONPATH": str(mod_dir)}  # the worker imports it too
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    key = out.stdout.split()[-1]
    fut = get_future_from_cache(tmp_path / "c", key)
    exc = fut.exception(timeout=10)
    assert isinstance(exc, SerializationError), repr(exc)
    assert key in str(exc) and "only_here_mod" in str(exc) and "intact" in str(exc)
    assert isinstance(exc.__cause__, ModuleNotFoundError)
    assert [e["status"] for e in list_cache(tmp_path / "c")] == ["done"]  # kept


def test_a_self_referencing_argument_is_a_clear_error(tmp_path: Path) -> None:
    """Regression: ``l = []; l.append(l)`` as an argument gave a RecursionError with a
    thousand-frame traceback; now a SerializationError at submit(), and the executor
    stays usable."""
    loop: list[Any] = []
    loop.append(loop)
    ring: dict[str, Any] = {}
    ring["self"] = ring
    with SingleNodeExecutor(cache_directory=tmp_path / "c") as exe:
        for arg in (loop, ring):
            with pytest.raises(SerializationError, match="contains itself"):
                exe.submit(len, arg)
        assert exe.submit(len, [1, 2]).result(timeout=30) == 2


def test_an_executor_made_while_a_worker_imports_a_call_is_refused(tmp_path: Path) -> None:
    """Regression: a module whose top-level code runs an executor, imported by a
    script: the worker imports the module to unpickle the call, makes a second
    executor there, and waited on the very call it was loading -- forever, its
    worker outliving the killed driver.  Now the call fails at once saying why."""
    (tmp_path / "topmod.py").write_text(
        "from executorlib_cache import SingleNodeExecutor\n"
        "def sq(x):\n    return x * x\n"
        f"with SingleNodeExecutor(max_workers=1, cache_directory={str(tmp_path / 'c')!r})"
        " as exe:\n    print(exe.submit(sq, 3).result(timeout=30))\n")
    (tmp_path / "drv.py").write_text("import topmod\n")
    r = subprocess.run([sys.executable, "drv.py"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=90,
                       env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert r.returncode != 0, r.stdout
    assert "RuntimeError" in r.stderr and '__name__ == "__main__"' in r.stderr, r.stderr


def _exits(code: int) -> None:
    sys.exit(code)


def _generator_exit() -> None:
    raise GeneratorExit("raised on purpose")


def test_sys_exit_in_a_function_is_its_own_failure_not_a_dead_worker(tmp_path: Path) -> None:
    """Regression: ``sys.exit(3)`` inside the function was reported as
    ``TaskDiedError: worker ... exited with code 3``.  It is the function's own
    exception, as with ProcessPoolExecutor: ``SystemExit(3)`` (and GeneratorExit
    likewise), recorded with reason ``raised``; the worker lives on."""
    with SingleNodeExecutor(cache_directory=tmp_path / "c", max_workers=1) as exe:
        fut = exe.submit(_exits, 3)
        exc = fut.exception(timeout=30)
        assert isinstance(exc, SystemExit) and exc.code == 3, repr(exc)
        gen = exe.submit(_generator_exit).exception(timeout=30)
        assert isinstance(gen, GeneratorExit), repr(gen)
        assert exe.submit(len, "abc").result(timeout=30) == 3
    assert describe(tmp_path / "c", fut.key)["reason"] == "raised"
