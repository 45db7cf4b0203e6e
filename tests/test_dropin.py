"""executorlib 1.11 scripts switch by changing their import (issue 15), on the local
backend: constructor signatures and options, resource keys, future helpers, the cache
API.  Real worker processes and real files; SLURM parts are in test_dropin_slurm.py,
the workflow export in test_workflow.py."""

from __future__ import annotations

import inspect
import os
import time
from concurrent.futures import CancelledError, Future
from pathlib import Path

import pytest
from conftest import require

import executorlib_cache
from executorlib_cache import (
    FluxClusterExecutor,
    SingleNodeExecutor,
    SlurmClusterExecutor,
    get_future_from_cache,
    get_item_from_future,
    split_future,
    terminate_task_in_cache,
)
from executorlib_cache.errors import (
    TaskDiedError,
    UnsupportedOptionError,
    UnsupportedResourceError,
    UpstreamFailedError,
)
from executorlib_cache.store import Store

pytestmark = pytest.mark.timeout(90)

#: executorlib 1.11's parameters, in order, with their defaults (inspect.signature)
SINGLE = [("max_workers", None), ("cache_directory", None), ("max_cores", None),
          ("resource_dict", None), ("hostname_localhost", None), ("block_allocation", False),
          ("init_function", None), ("disable_dependencies", False), ("refresh_rate", 0.01),
          ("plot_dependency_graph", False), ("plot_dependency_graph_filename", None),
          ("export_workflow_filename", None), ("log_obj_size", False), ("wait", True),
          ("restart_limit", 0), ("openmpi_oversubscribe", False)]
CLUSTER = [*SINGLE[:4], ("pysqa_config_directory", None), ("pmi_mode", None),
           *SINGLE[4:14], ("openmpi_oversubscribe", False)]
OURS = ["secret", "dir_mode", "file_mode", "progress", "recompute"]


def add(a, b=1):
    return a + b


def pair(x):
    return x, x * 10


def nothing():
    return None


def boom(x, why="boom"):
    raise ValueError(f"{why} {x}")


def slow(x, seconds=1.0):
    time.sleep(seconds)
    return x


def stamp(directory, i, seconds):
    """Record when the call ran: (start, end) in a file of its own."""
    t0 = time.time()
    time.sleep(seconds)
    Path(directory, f"{i}.txt").write_text(f"{t0} {time.time()}")
    return i


def max_overlap(directory: Path) -> int:
    spans = [tuple(map(float, p.read_text().split())) for p in directory.glob("*.txt")]
    return max(sum(1 for s, e in spans if s < t < e) for t in
               [s + 1e-6 for s, _ in spans])


def entries(cache: Path) -> set[str]:
    return set(Store(cache, create=False).keys()) if cache.exists() else set()


# ---------------------------------------------------------------- item 1: signatures
@pytest.mark.parametrize("cls, expected", [(SingleNodeExecutor, SINGLE),
                                           (SlurmClusterExecutor, CLUSTER),
                                           (FluxClusterExecutor, CLUSTER)])
def test_signatures_are_executorlibs_then_our_keyword_only_options(cls, expected):
    params = list(inspect.signature(cls).parameters.values())
    head = params[:len(expected)]
    assert [(p.name, p.default) for p in head] == expected
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in head)
    tail = params[len(expected):]
    assert [p.name for p in tail] == OURS
    assert all(p.kind is p.KEYWORD_ONLY for p in tail)


def test_first_positional_is_max_workers_and_no_ops_are_accepted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with SingleNodeExecutor(2, "c", None, {"threads_per_core": 1}, True, False, None,
                            False, 5.0, log_obj_size=True) as exe:
        assert exe._backend.max_workers == 2
        assert exe.submit(add, 1, b=2).result(timeout=30) == 3
    assert (tmp_path / "c").is_dir() and not (tmp_path / "2").exists()


@pytest.mark.parametrize("option, words", [
    ({"block_allocation": True}, "max_workers=K"),
    ({"init_function": lambda: {"x": 1}}, "as an argument"),
    ({"restart_limit": 2}, "restart_limit=0"),
])
def test_interactive_mode_options_say_what_to_use_instead(cache_dir, option, words):
    for cls in (SingleNodeExecutor, SlurmClusterExecutor):
        if cls is SlurmClusterExecutor and "restart_limit" in option:
            continue  # not a parameter of executorlib's cluster executors either
        with pytest.raises(UnsupportedOptionError, match=words) as info:
            cls(cache_directory=cache_dir, **option)
        assert isinstance(info.value, ValueError) and isinstance(info.value, NotImplementedError)
    assert not cache_dir.exists()  # refused before anything was created


def test_cluster_max_cores_is_refused_with_executorlibs_message(cache_dir):
    for cls in (SlurmClusterExecutor, FluxClusterExecutor):
        with pytest.raises(ValueError, match="^The number of cores cannot be controlled "
                                             "with the pysqa based backend."):
            cls(cache_directory=cache_dir, max_cores=4)


# ---------------------------------------------------------------- max_cores locally
def test_max_cores_is_a_budget_of_cores_across_running_calls(cache_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    with SingleNodeExecutor(4, cache_dir, max_cores=2) as exe:
        futs = [exe.submit(stamp, str(one), i, 0.6) for i in range(4)]
        futs += [exe.submit(stamp, str(two), i, 0.4, resource_dict={"threads_per_core": 2})
                 for i in range(3)]
        assert [f.result(timeout=60) for f in futs] == [0, 1, 2, 3, 0, 1, 2]
    assert max_overlap(one) == 2  # four 1-core calls, two at a time
    assert max_overlap(two) == 1  # 2 cores each (cores * threads_per_core): one at a time


def test_a_call_larger_than_the_executor_is_refused_at_submit(cache_dir):
    message = "^The specified number of cores is larger than the available number of cores.$"
    with SingleNodeExecutor(cache_directory=cache_dir, max_cores=2) as exe:
        with pytest.raises(ValueError, match=message):
            exe.submit(add, 1, resource_dict={"cores": 3})
        with pytest.raises(ValueError, match=message):
            exe.submit(add, 1, resource_dict={"cores": 2, "threads_per_core": 2})
    with SingleNodeExecutor(max_workers=1, cache_directory=cache_dir) as exe:
        with pytest.raises(ValueError, match=message):
            exe.submit(add, 1, resource_dict={"cores": 2})
    assert entries(cache_dir) == set()


# ---------------------------------------------------------------- resource keys locally
@pytest.mark.parametrize("resources", [
    {"gpus_per_core": 1}, {"num_nodes": 2}, {"exclusive": True}, {"run_time_max": 60},
    {"memory_max": 2}, {"partition": "gpu"}, {"queue": "q"}, {"priority": 3},
    {"slurm_cmd_args": ["--qos=x"]}, {"submission_template": "#!/bin/bash\n{{command}}"},
    {"pmi_mode": "pmix"},
])
def test_local_executor_refuses_what_it_cannot_honour(cache_dir, resources):
    with pytest.raises(UnsupportedResourceError, match="cores, threads_per_core, cwd") as info:
        SingleNodeExecutor(cache_directory=cache_dir, resource_dict=resources)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert list(resources)[0] in str(info.value)
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        with pytest.raises(UnsupportedResourceError):
            exe.submit(add, 1, resource_dict=resources)


def test_executorlibs_default_resource_dict_is_accepted(cache_dir):
    defaults = {"cores": 1, "threads_per_core": 1, "gpus_per_core": 0, "cwd": None,
                "openmpi_oversubscribe": False, "slurm_cmd_args": [], "exclusive": False}
    with SingleNodeExecutor(cache_directory=cache_dir, resource_dict=dict(defaults)) as exe:
        assert exe.submit(add, 2, resource_dict=dict(defaults)).result(timeout=30) == 3


def oversubscribe_env(_):
    return os.environ.get("OMPI_MCA_rmaps_base_oversubscribe")


def test_openmpi_oversubscribe_reaches_the_local_mpi_ranks(cache_dir):
    require("mpi4py")
    with SingleNodeExecutor(2, cache_dir, openmpi_oversubscribe=True) as exe:
        on = exe.submit(oversubscribe_env, 1, resource_dict={"cores": 2})
        off = exe.submit(oversubscribe_env, 2, resource_dict={
            "cores": 2, "openmpi_oversubscribe": False})
        assert on.result(timeout=60) == ["1", "1"]
        assert off.result(timeout=60) == [None, None]
    with pytest.raises(ValueError, match="must be a bool"):
        SingleNodeExecutor(cache_directory=cache_dir,
                           resource_dict={"openmpi_oversubscribe": "yes"})


def test_error_log_file_gets_each_failure_of_the_function(cache_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with SingleNodeExecutor(cache_directory=cache_dir,
                            resource_dict={"error_log_file": "errors.log"}) as exe:
        bad = exe.submit(boom, 3)
        later = exe.submit(add, bad)  # an upstream failure is not the function's
        good = exe.submit(add, 1)
        other = exe.submit(boom, 4, why="bang")
        with pytest.raises(ValueError, match="boom 3"):
            bad.result(timeout=30)
        with pytest.raises(UpstreamFailedError):
            later.result(timeout=30)
        assert good.result(timeout=30) == 2
        with pytest.raises(ValueError, match="bang 4"):
            other.result(timeout=30)
    text = (tmp_path / "errors.log").read_text()
    assert text.count("function: <function boom at") == 2
    assert "args: [3]\nkwargs: {}\nTraceback (most recent call last):" in text
    assert "args: [4]\nkwargs: {'why': 'bang'}\n" in text
    assert "ValueError: boom 3" in text and "ValueError: bang 4" in text
    assert "add" not in text


# ---------------------------------------------------------------- disable_dependencies, wait
def test_disable_dependencies_fails_pending_futures_and_inlines_done_ones(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir, disable_dependencies=True) as exe:
        upstream = exe.submit(slow, 5, 1.0)
        before = entries(cache_dir)
        refused = exe.submit(add, upstream)
        with pytest.raises(ValueError, match="^Future objects are not supported as input "
                                             r"if disable_dependencies=True.$"):
            refused.result(timeout=1)
        assert entries(cache_dir) == before  # nothing was submitted
        assert upstream.result(timeout=30) == 5
        inlined = exe.submit(add, upstream, b=[upstream])
        with pytest.raises(TypeError):  # 5 + [5]: the value was passed, not a reference
            inlined.result(timeout=30)
        assert exe.submit(add, upstream).key == exe.submit(add, 5).key


def test_wait_false_makes_every_shutdown_return_at_once(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir, wait=False) as exe:
        fut = exe.submit(slow, "late", 3.0)
        deadline = time.monotonic() + 20
        while not fut.running():  # handed to a worker
            assert time.monotonic() < deadline
            time.sleep(0.05)
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 1.0
    # the worker finishes the call it holds and writes it into the cache
    deadline = time.monotonic() + 20
    while True:
        try:
            assert get_future_from_cache(cache_dir, fut.key).result(timeout=20) == "late"
            break
        except FileNotFoundError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


# ---------------------------------------------------------------- item 3: future helpers
def test_split_future_passes_elements_without_entries_or_blocking(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        up = exe.submit(slow, (1, 2), 1.0)
        t0 = time.monotonic()
        first, second = split_future(up, n=2)
        down = exe.submit(add, first, b=second)
        assert time.monotonic() - t0 < 0.5  # neither split nor submit waited
        assert down.result(timeout=30) == 3
        assert (first.result(), second.result()) == (1, 2)
        assert entries(cache_dir) == {up.key, down.key}  # no entry per element
        swapped = exe.submit(add, second, b=first)
        assert swapped.key != down.key and swapped.result(timeout=30) == 3
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:  # a re-run: same keys, hits
        up2 = exe.submit(slow, (1, 2), 1.0)
        a, b = split_future(up2, 2)
        again = exe.submit(add, a, b=b)
        assert again.key == down.key and again.done() and again.cached


def test_get_item_from_future_nested_none_and_errors(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        d = exe.submit(dict, x=pair(3), y=5)
        x1 = split_future(get_item_from_future(d, "x"), 2)[1]
        assert x1.selector_path == ("x", 1) and x1.key == d.key
        assert exe.submit(add, x1, b=get_item_from_future(d, "y")).result(timeout=30) == 35
        missing = get_item_from_future(d, "z")
        with pytest.raises(KeyError):
            missing.result(timeout=30)
        with pytest.raises(KeyError):  # the dependent call fails with the same error
            exe.submit(add, missing).result(timeout=30)
        none = exe.submit(nothing)
        assert get_item_from_future(none, "k").result(timeout=30) is None  # as executorlib
        failed = exe.submit(boom, 1)
        with pytest.raises(ValueError, match="boom 1"):
            split_future(failed, 2)[0].result(timeout=30)
        with pytest.raises(UpstreamFailedError):
            exe.submit(add, split_future(failed, 2)[0]).result(timeout=30)
    with pytest.raises(ValueError):
        split_future(Future(), 0)


def test_a_cancelled_upstream_cancels_its_selectors(cache_dir):
    with SingleNodeExecutor(1, cache_dir) as exe:
        exe.submit(slow, 0, 1.0)
        exe.submit(slow, 1, 1.0)  # the worker prefetches this one
        queued = exe.submit(pair, 7)
        sel = get_item_from_future(queued, 0)
        assert sel.cancel() and queued.cancelled() and sel.cancelled()
        with pytest.raises(CancelledError):
            sel.result()


def test_batched_in_input_order_as_arguments(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        futs = [exe.submit(slow, i, 0.6 - 0.1 * i) for i in range(5)]
        batches = exe.batched(futs, n=2)
        assert len(batches) == 3
        sums = [exe.submit(sum, b) for b in batches]
        assert [b.result(timeout=30) for b in batches] == [[0, 1], [2, 3], [4]]
        assert [s.result(timeout=30) for s in sums] == [1, 5, 4]
        assert sums[0].key == exe.submit(sum, futs[:2]).key  # a batch is its members
        assert entries(cache_dir) == {f.key for f in futs} | {s.key for s in sums}
        failed = exe.batched([futs[0], exe.submit(boom, 9)], n=5)[0]
        with pytest.raises(ValueError, match="boom 9"):
            failed.result(timeout=30)
        with pytest.raises(ValueError):
            exe.batched(futs, 0)


def test_map_over_a_future_of_an_iterable(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        assert list(exe.map(add, exe.submit(list, range(3)))) == [1, 2, 3]
        assert list(exe.map(add, [1, 2], exe.submit(list, [10, 20]))) == [11, 22]


# ---------------------------------------------------------------- item 5: cache API
def test_get_future_from_cache_as_executorlib(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        ok, bad = exe.submit(add, 1), exe.submit(boom, 2)
        assert ok.result(timeout=30) == 2
        with pytest.raises(ValueError):
            bad.result(timeout=30)
    assert get_future_from_cache(cache_dir, ok.key).result() == 2
    with pytest.raises(ValueError, match="boom 2"):  # raised at once, not set on a future
        get_future_from_cache(cache_dir, bad.key)
    with pytest.raises(FileNotFoundError, match="Neither input nor output file for cache key "
                                                "nope-v1-0 found in cache directory"):
        get_future_from_cache(cache_dir, "nope-v1-0")
    with pytest.raises(FileNotFoundError):
        get_future_from_cache(cache_dir / "absent", ok.key)


def test_terminate_task_in_cache_stops_one_running_call(cache_dir):
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        done = exe.submit(add, 1)
        assert done.result(timeout=30) == 2
        running = exe.submit(slow, 1, 60)
        deadline = time.monotonic() + 20
        while not running.running():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)  # the worker has started it (its .running file)
        assert terminate_task_in_cache(cache_dir, running.key) == [running.key]
        with pytest.raises(TaskDiedError):
            running.result(timeout=30)
    assert terminate_task_in_cache(cache_dir, done.key) == []  # finished: kept
    assert get_future_from_cache(cache_dir, done.key).result() == 2
    with pytest.raises(FileNotFoundError):
        get_future_from_cache(cache_dir, running.key)
    with pytest.raises(FileNotFoundError):
        terminate_task_in_cache(cache_dir, "nope-v1-0")


def test_top_level_names_of_executorlib():
    for name in ("SingleNodeExecutor", "SlurmClusterExecutor", "FluxClusterExecutor",
                 "SlurmJobExecutor", "FluxJobExecutor",
                 "BaseExecutor", "get_cache_data", "get_future_from_cache", "split_future",
                 "get_item_from_future", "terminate_tasks_in_cache",
                 "terminate_task_in_cache"):
        assert name in executorlib_cache.__all__ and getattr(executorlib_cache, name)
    assert issubclass(SlurmClusterExecutor, executorlib_cache.BaseExecutor)


#: executorlib 1.11's SlurmJobExecutor / FluxJobExecutor parameters, in order
SLURM_JOB = [*SINGLE[:4], ("pmi_mode", None), *SINGLE[4:]]
FLUX_JOB = [*SINGLE[:4], ("pmi_mode", None), ("flux_executor", None),
            ("flux_executor_nesting", False), ("flux_log_files", False), *SINGLE[4:]]


@pytest.mark.parametrize("cls,expected", [
    (executorlib_cache.SlurmJobExecutor, SLURM_JOB),
    (executorlib_cache.FluxJobExecutor, FLUX_JOB)])
def test_job_executors_take_executorlibs_parameters_and_run(cls, expected, tmp_path):
    params = list(inspect.signature(cls).parameters.values())
    assert [(p.name, p.default) for p in params[:len(expected)]] == expected
    with cls(2, tmp_path / "cache", None, None, "pmix") as exe:  # positional, as executorlib
        assert exe.submit(add, 1, b=2).result(timeout=30) == 3
    if cls.__name__ == "FluxJobExecutor":
        with pytest.raises(UnsupportedOptionError, match="flux_executor"):
            cls(flux_executor=object())


def test_a_function_with_a_resource_dict_parameter_is_refused(tmp_path):
    def configure(x, resource_dict=None):
        return x

    with SingleNodeExecutor(cache_directory=tmp_path / "cache") as exe:
        with pytest.raises(ValueError, match="The parameter resource_dict is used internally"):
            exe.submit(configure, 1)
        assert exe.submit(max, 1, 2).result(timeout=30) == 2  # no signature: fine


# ---------------------------------------------------------------- keys, directories, recompute
def draw(tag, log):
    """An impure call: a new number each time it really runs (logged)."""
    import random

    with open(log, "a") as f:
        f.write(f"{tag}\n")
    return random.random()


def test_hierarchical_cache_key_stays_inside_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with SingleNodeExecutor(cache_directory=cache) as exe:
        f = exe.submit(add, 1, resource_dict={"cache_key": "project/run1"})
        g = exe.submit(add, f, resource_dict={"cache_key": "project/run2"})
        assert g.result(timeout=30) == 3
    assert f.key == "project/run1"
    assert not (cache / "project").exists()  # no directory made: '/' is encoded
    store = Store(cache, create=False)
    assert Path(store.path_of("project/run1", "done")).name == "project%2Frun1.h5"
    assert get_future_from_cache(cache, "project/run2").result() == 3
    assert {e["key"] for e in executorlib_cache.list_cache(cache)} == \
        {"project/run1", "project/run2"}
    for bad in ("../x", "project/../x", "/abs", "a//b", "a/.hidden", "a/"):
        with pytest.raises(ValueError, match="cache_key"):
            SingleNodeExecutor(cache_directory=cache).submit(
                add, 1, resource_dict={"cache_key": bad})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_recompute_per_call_and_per_executor(tmp_path: Path) -> None:
    cache, log = tmp_path / "cache", tmp_path / "ran.txt"
    with SingleNodeExecutor(cache_directory=cache) as exe:
        first = exe.submit(draw, "a", str(log)).result(timeout=30)
    with SingleNodeExecutor(cache_directory=cache) as exe:
        assert exe.submit(draw, "a", str(log)).result(timeout=30) == first  # a hit
        again = exe.submit(draw, "a", str(log), resource_dict={"recompute": True})
        second = again.result(timeout=30)
        # once per executor and key: the same call again is a hit of the new value
        assert exe.submit(draw, "a", str(log), resource_dict={"recompute": True}
                          ).result(timeout=30) == second
    assert second != first and log.read_text().split() == ["a", "a"]
    assert get_future_from_cache(cache, again.key).result() == second  # replaced
    with SingleNodeExecutor(cache_directory=cache, recompute=True) as exe:
        third = exe.submit(draw, "a", str(log)).result(timeout=30)
    assert third not in (first, second) and log.read_text().split() == ["a"] * 3
    store = Store(cache, create=False)
    assert store.kinds(again.key) == {"done"}  # one file: nothing of the old one left
    with pytest.raises(ValueError, match="recompute"):
        SingleNodeExecutor(cache_directory=cache).submit(
            add, 1, resource_dict={"recompute": "yes"})


def test_per_call_cache_directory(tmp_path: Path) -> None:
    """executorlib's ``resource_dict["cache_directory"]``: that call's entry lives in
    the other directory (run by an executor of the same kind there); futures cross
    between them as values."""
    main, other = tmp_path / "main", tmp_path / "other"
    with SingleNodeExecutor(cache_directory=main) as exe:
        a = exe.submit(add, 1)
        b = exe.submit(add, a, resource_dict={"cache_directory": str(other)})
        c = exe.submit(add, b)  # back in main, depending on the other cache's call
        assert (a.result(timeout=30), b.result(timeout=30), c.result(timeout=30)) == (2, 3, 4)
    assert {e["key"] for e in executorlib_cache.list_cache(other)} == {b.key}
    assert {e["key"] for e in executorlib_cache.list_cache(main)} == {a.key, c.key}
    assert get_future_from_cache(other, b.key).result() == 3
    with SingleNodeExecutor(cache_directory=main) as exe:  # a re-run: hits in both
        b2 = exe.submit(add, exe.submit(add, 1), resource_dict={"cache_directory": str(other)})
        assert b2.result(timeout=30) == 3 and b2.cached


@pytest.mark.timeout(60)
def test_a_failed_upstream_of_another_cache_is_named_by_its_key(tmp_path: Path) -> None:
    """A dependent on futures of another cache names the one that failed (not the
    first future it was given), its root cause, and through a call of a third cache
    that never got a key, still the failed call's key."""
    with SingleNodeExecutor(cache_directory=tmp_path / "c1", max_workers=1) as one, \
            SingleNodeExecutor(cache_directory=tmp_path / "c2", max_workers=1) as two, \
            SingleNodeExecutor(cache_directory=tmp_path / "c3", max_workers=1) as three:
        good, bad = one.submit(slow, 1, 0.5), one.submit(boom, 2)
        middle = two.submit(add, good, bad)  # both still pending: submitted later
        last = three.submit(add, middle)
        for fut in (middle, last):
            with pytest.raises(UpstreamFailedError) as info:
                fut.result(timeout=30)
            assert info.value.upstream_key == bad.key, (info.value.upstream_key, bad.key)
            assert info.value.root_key == bad.key and info.value.root_type == "ValueError"
            assert bad.key in str(info.value) and good.key not in str(info.value)
        done_first = two.submit(add, good, bad)  # both already done at submit()
        with pytest.raises(UpstreamFailedError) as info:
            done_first.result(timeout=30)
        assert info.value.upstream_key == bad.key
        # a call failed at submit() is no entry (key ""): passed on, onward to a third
        # cache or back into its own, it still names the failed call, and each root
        # its own (regression: all such calls hashed to one key, DependencyRef(""))
        for root in (bad, one.submit(boom, 3)):
            root.exception(timeout=30)
            failed_now = two.submit(add, root)
            assert failed_now.key == "" and failed_now.exception(timeout=5) is not None
            for exe in (three, two):
                with pytest.raises(UpstreamFailedError) as info:
                    exe.submit(add, failed_now).result(timeout=30)
                assert (info.value.upstream_key, info.value.root_key) == (root.key, root.key)
    for cache in ("c2", "c3"):  # nothing was written that names a keyless upstream
        for entry in executorlib_cache.list_cache(tmp_path / cache):
            assert "" not in (entry["dependencies"] or []), entry


def test_len_bool_info_and_max_workers_as_executorlib(tmp_path):
    exe = SingleNodeExecutor(2, tmp_path / "cache")
    assert len(exe) == 0 and bool(exe) is True  # an idle executor is still truthy
    assert exe.max_workers == 2 and exe.info["cache_directory"] == str(tmp_path / "cache")
    with pytest.raises(NotImplementedError, match="max_workers setter"):
        exe.max_workers = 3
    slow = exe.submit(time.sleep, 1)
    assert len(exe) >= 1
    slow.result(timeout=30)
    exe.shutdown()
    assert len(exe) == 0 and exe.info is None


def test_constructor_resource_dict_may_carry_cache_directory_and_recompute(tmp_path):
    """executorlib also takes both executor-wide in the constructor's resource_dict."""
    cache, log = tmp_path / "cache", tmp_path / "ran.txt"
    with SingleNodeExecutor(resource_dict={"cache_directory": str(cache)}) as exe:
        first = exe.submit(draw, "a", str(log)).result(timeout=30)
        assert exe.info["cache_directory"] == str(cache)
    with SingleNodeExecutor(cache_directory=cache, resource_dict={"recompute": True}) as exe:
        assert exe.info["recompute"] is True
        assert exe.submit(draw, "a", str(log)).result(timeout=30) != first
    assert log.read_text().split() == ["a", "a"]
