"""How long does ``xcache ls`` take on a big cache?

Creates N entries (default 100,000) in a temporary cache directory and times

* ``xcache ls --json > /dev/null`` (a subprocess: ``python -m executorlib_cache``),
* ``xcache ls > /dev/null`` (the rich table),
* ``xcache stats``,
* ``catalog.get_cache_data`` in this process.

Entries are written with the Store API as the executor and runners write them
(format 2: ``write_outcome`` with the call, ``write_claim``, ``write_task``; about
0.3 ms per entry and process).  The mix is 85% done, 8% failed, 4% pending, 2%
queued, 1% running (owned by this process).

    PYTHONPATH=. python bench/bench_ls.py [N] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cloudpickle

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from executorlib_cache import catalog, liveness  # noqa: E402
from executorlib_cache.store import Store  # noqa: E402

FUNCTIONS = ("relax_structure", "compute_energy", "fit_potential", "analyse", "plot")


def kind_of(i: int) -> str:
    r = i % 100
    if r < 85:
        return "done"
    if r < 93:
        return "failed"
    if r < 97:
        return "pending"
    if r < 99:
        return "queued"
    return "running"


def key_of(i: int) -> str:
    fn = FUNCTIONS[i % len(FUNCTIONS)]
    return f"{fn}-{hashlib.sha256(str(i).encode()).hexdigest()[:32]}"


def task_meta(i: int, now: float) -> dict:
    return {
        "function": FUNCTIONS[i % len(FUNCTIONS)],
        "module": "workflow.steps",
        "qualname": FUNCTIONS[i % len(FUNCTIONS)],
        "submitted": now - 86400 + i * 0.01,
        "host": "login01",
        "user": "scientist",
        "pid": 4242,
        "python": "3.11.7",
        "version": "0.1.0",
        "cloudpickle": cloudpickle.__version__,
        "resource_dict": {"cores": 1},
        "dependencies": [key_of(i - 1)] if i % 10 == 3 else [],
        "args": f"({i}, structure=<Atoms 64>)",
        "payload_size": 120,
    }


def outcome_meta(i: int, status: str, now: float) -> dict:
    meta = {
        "started": now - 3600 + i * 0.01,
        "finished": now - 3590 + i * 0.01,
        "runtime": 10.0 + (i % 7),
        "host": "node042",
        "pid": 5000 + i % 1000,
        "job_id": None,
        "backend": "local",
    }
    if status == "failed":
        meta.update(error_type="ValueError", error_module="builtins",
                    error_message=f"bad input {i}", reason="raised",
                    traceback="Traceback (most recent call last):\n  ...\nValueError: bad")
    return meta


def write_entry(store: Store, i: int, now: float) -> None:
    key, kind = key_of(i), kind_of(i)
    owner = liveness.identity()
    payload = cloudpickle.dumps((len, ((i,),), {}))
    meta = task_meta(i, now)
    if kind == "pending":  # a batch call's task file, its claim given back
        store.write_task(key, payload, meta)
        return
    if kind in ("queued", "running"):
        claim = {"backend": "local", "job_id": None, "owner": owner, "submitted": now,
                 "function": meta["function"], "upstream_keys": meta["dependencies"]}
        if kind == "running":
            claim.update(started=now, runner={"host": owner["host"], "pid": os.getpid()})
        store.write_claim(key, claim)
        return
    store.write_outcome(key, kind, cloudpickle.dumps(i), outcome_meta(i, kind, now),
                        task=(payload, meta))


def _make_range(args: tuple[str, int, int, float]) -> None:
    directory, start, stop, now = args
    store = Store(directory)
    for i in range(start, stop):
        write_entry(store, i, now)


def create(directory: Path, n: int, mode: str = "real", workers: int = 4) -> float:
    """Fill ``directory`` with ``n`` entries using ``workers`` processes; seconds taken.
    ``mode`` is accepted for the format-1 checkouts' signature (``bench_slowfs``
    calls every checkout the same way) and ignored."""
    del mode
    t0 = time.perf_counter()
    Store(directory)
    now = time.time()
    bounds = [(n * w // workers, n * (w + 1) // workers) for w in range(workers)]
    jobs = [(str(directory), a, b, now) for a, b in bounds]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(_make_range, jobs, chunksize=1)
    return time.perf_counter() - t0


def time_cli(directory: Path, args: list[str], repeat: int,
             env_extra: dict[str, str] | None = None) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (user+sys, all processes) seconds of each run."""
    env = {**os.environ, **(env_extra or {}), "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, "-m", "executorlib_cache", "--cache-dir", str(directory), *args]
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, env=env)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def fmt(times: list[float]) -> str:
    return (f"min {min(times):.2f} s, median {statistics.median(times):.2f} s "
            f"({len(times)} runs)")


def fmt_cli(result: tuple[list[float], list[float]]) -> str:
    walls, cpus = result
    return f"{fmt(walls)}; cpu min {min(cpus):.2f} s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", nargs="?", type=int, default=100_000, help="entries (100000)")
    p.add_argument("--dir", help="cache directory to create (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the cache directory")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()

    base = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="xcache-bench-"))
    directory = base / "cache"
    try:
        if directory.exists() and any(directory.iterdir()):
            print(f"reusing {directory} ({sum(1 for _ in Store(directory).keys())} entries)")
        else:
            dt = create(directory, a.n, workers=a.workers)
            print(f"created {a.n} entries in {directory} in {dt:.1f} s")
        n = sum(1 for _ in Store(directory).keys())
        print(f"cpus: {os.cpu_count()}, entries: {n}, load average before: "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        one = {"XCACHE_SCAN_WORKERS": "1"}
        print(f"xcache ls --json > /dev/null  : "
              f"{fmt_cli(time_cli(directory, ['ls', '--json'], a.repeat))}")
        print(f"  same, one process           : "
              f"{fmt_cli(time_cli(directory, ['ls', '--json'], a.repeat, one))}")
        print(f"xcache ls > /dev/null         : "
              f"{fmt_cli(time_cli(directory, ['ls'], a.repeat))}")
        print(f"xcache stats > /dev/null      : "
              f"{fmt_cli(time_cli(directory, ['stats'], a.repeat))}")
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            rows = catalog.get_cache_data(directory)
            times.append(time.perf_counter() - t0)
        print(f"catalog.get_cache_data        : {fmt(times)}, {len(rows)} rows")
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"kept {directory}")


if __name__ == "__main__":
    main()
