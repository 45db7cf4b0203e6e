"""Packing benchmark: N trivial calls in K worker jobs vs. one SLURM job per call.

    python bench/bench_packing.py [--n 1000] [--workers 8] [--baseline-n 100]
                                  [--executorlib auto|skip] [--skip-baseline]
                                  [--dir DIR] [--out FILE]

Runs on the local SLURM (``scripts/start-slurm.sh``), in one invocation:

* ``packed``: N trivial calls with ``SlurmClusterExecutor(max_workers=K)``;
* ``per_job``: ``--baseline-n`` trivial calls without ``max_workers`` (one sbatch per
  call), extrapolated linearly to N (``extrapolated_seconds``);
* ``executorlib`` (optional, ``auto``: if ``bench/.venvs/executorlib/bin/python``
  exists): executorlib's ``SlurmClusterExecutor`` on ``--baseline-n`` calls, also
  extrapolated to N.

Each variant runs in its own process with logging wrappers for sbatch/squeue/scancel
first on PATH (jobs inherit PATH, so the workers' own calls are counted too).  The
result is ONE JSON object on stdout (and in ``--out`` if given)::

    {"bench": "packing", "n": 1000, "workers": 8,
     "packed": {"seconds", "submit_seconds", "sbatch", "squeue", "scancel",
                "worker_jobs", "per_task_ms_in_worker", "task_ms_median"},
     "worker_loop": {"n", "seconds", "ms_per_task"},
     "per_job": {"n", "seconds", "sbatch", "squeue", "extrapolated_seconds"},
     "executorlib": {...} | {"status": "skipped", "reason"},
     "speedup_vs_per_job": x, "targets": {"speedup_10x": bool, "sbatch_le_20": bool}}

``per_task_ms_in_worker``: median over the worker jobs of (busy span / calls it ran),
from the entries' started/outcome times (bounded below by how fast the driver hands
calls out).  ``worker_loop``: one worker, in-process, on min(N, 1000) tickets queued
beforehand: what one trivial call costs inside a worker, end to end.
Exit status 0 also when a target is missed (the JSON says so); 2 if a run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
EXECUTORLIB_PY = BENCH / ".venvs" / "executorlib" / "bin" / "python"
WRAPPED = ("sbatch", "squeue", "scancel")


def inc(x):
    return x + 1


# ---------------------------------------------------------------------- one variant
def _wrappers(bindir: Path, log: Path) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    for name in WRAPPED:
        real = shutil.which(name)
        if real is None:
            raise SystemExit(f"{name} not found: is SLURM running (scripts/start-slurm.sh)?")
        script = bindir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexec "{real}" "$@"\n')
        script.chmod(0o755)
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ['PATH']}"
    log.touch()


def _counts(log: Path) -> dict[str, int]:
    out = dict.fromkeys(WRAPPED, 0)
    for line in log.read_text().splitlines():
        word = line.split(" ", 1)[0]
        if word in out:
            out[word] += 1
    return out


def _in_worker_costs(cache: Path) -> dict[str, float | int]:
    """Per worker job: (last finished - first started) / calls; median over workers."""
    by_job: dict[str, list[tuple[float, float]]] = {}
    runtimes = []
    for entry in cache.iterdir():
        if entry.name.startswith("."):
            continue
        try:
            out = json.loads((entry / "outcome.json").read_text())
        except (OSError, ValueError):
            continue
        by_job.setdefault(str(out.get("job_id")), []).append((out["started"], out["finished"]))
        runtimes.append(out.get("runtime") or 0.0)
    per_task = [(max(f for _, f in xs) - min(s for s, _ in xs)) / len(xs)
                for xs in by_job.values() if len(xs) >= 10]
    return {"worker_jobs": len(by_job),
            "per_task_ms_in_worker": round(1000 * statistics.median(per_task), 2)
            if per_task else None,
            "task_ms_median": round(1000 * statistics.median(runtimes), 3) if runtimes else None}


def worker_loop(n: int, work: Path) -> dict:
    """One pool worker, in this process, on N tickets queued beforehand: the cost of
    a trivial call inside a worker (take, record, run, write, release), no SLURM."""
    sys.path.insert(0, str(REPO))
    from executorlib_cache.claims import claim_token
    from executorlib_cache.compute.pool_worker import PoolWorker
    from executorlib_cache.liveness import identity
    from executorlib_cache.pool_queue import queue_dir, ticket_name
    from executorlib_cache.serialization import dumps_call
    from executorlib_cache.store import Store

    store = Store(work / "cache")
    qdir = queue_dir(store.root, "bench")
    qdir.mkdir(parents=True)
    owner = identity()
    for i in range(n):
        key = f"inc-bench-{i:06d}"
        store.write_task(key, dumps_call(inc, (i,), {}),
                         {"function": "inc", "resource_dict": {"cores": 1}})
        job = {"backend": "slurm", "job_id": None, "owner": owner, "submitted": time.time(),
               "pool": "bench"}
        store.write_claim(key, job)
        (qdir / ticket_name(i, claim_token(job), key)).touch()
    idle = 0.05
    worker = PoolWorker(str(store.root), "bench", "w0", "slurm", "bench", None, idle)
    t0 = time.perf_counter()
    worker.serve()
    seconds = time.perf_counter() - t0 - idle
    done = sum(1 for i in range(n) if store.finished(f"inc-bench-{i:06d}") == "done")
    return {"n": n, "done": done, "seconds": round(seconds, 3),
            "ms_per_task": round(1000 * seconds / n, 3)}


def child(variant: str, n: int, workers: int, work: Path) -> dict:
    if variant == "worker_loop":
        return worker_loop(n, work)
    log = work / "calls.log"
    _wrappers(work / "bin", log)
    cache = work / "cache"
    t0 = time.monotonic()
    if variant == "executorlib":
        from executorlib import SlurmClusterExecutor as Exe

        exe = Exe(cache_directory=str(cache),
                  pysqa_config_directory=str(BENCH / "slurm_pysqa"))
    else:
        sys.path.insert(0, str(REPO))
        from executorlib_cache import SlurmClusterExecutor

        exe = SlurmClusterExecutor(cache_directory=str(cache),
                                   max_workers=workers if variant == "packed" else None)
    with exe:
        futs = [exe.submit(inc, i) for i in range(n)]
        submitted = time.monotonic() - t0
        out = [f.result() for f in futs]
    seconds = time.monotonic() - t0
    if out != list(range(1, n + 1)):
        raise SystemExit(f"{variant}: wrong results")
    res: dict = {"n": n, "seconds": round(seconds, 3), "submit_seconds": round(submitted, 3),
                 **_counts(log)}
    if variant == "packed":
        res.update(_in_worker_costs(cache))
    return res


def run_child(variant: str, n: int, workers: int, base: Path, python: str) -> dict:
    work = base / variant
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    if variant == "executorlib":
        env.pop("PYTHONPATH")
    proc = subprocess.run([python, __file__, "--child", variant, "--n", str(n),
                           "--workers", str(workers), "--dir", str(work)],
                          capture_output=True, text=True, env=env, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"status": "failed", "exit": proc.returncode, "stderr": proc.stderr[-2000:]}
    return json.loads(lines[-1])


# ---------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="calls in the packed run")
    ap.add_argument("--workers", type=int, default=8, help="max_workers of the packed run")
    ap.add_argument("--baseline-n", type=int, default=100,
                    help="calls in the one-job-per-call runs (extrapolated to --n)")
    ap.add_argument("--skip-baseline", action="store_true", help="only the packed run")
    ap.add_argument("--executorlib", choices=("auto", "skip"), default="auto")
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--child", choices=("packed", "per_job", "executorlib", "worker_loop"),
                    help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.child:
        print(json.dumps(child(ns.child, ns.n, ns.workers, Path(ns.dir))), flush=True)
        return 0

    base = Path(ns.dir or tempfile.mkdtemp(prefix="xcache-bench-packing-")).resolve()
    base.mkdir(parents=True, exist_ok=True)
    result: dict = {"bench": "packing", "n": ns.n, "workers": ns.workers,
                    "host_cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    result["packed"] = run_child("packed", ns.n, ns.workers, base, sys.executable)
    failed = result["packed"].get("status") == "failed"
    result["worker_loop"] = run_child("worker_loop", min(ns.n, 1000), 1, base, sys.executable)
    scale = ns.n / ns.baseline_n
    if not ns.skip_baseline:
        per_job = run_child("per_job", ns.baseline_n, ns.workers, base, sys.executable)
        if "seconds" in per_job:
            per_job["extrapolated_seconds"] = round(per_job["seconds"] * scale, 1)
        result["per_job"] = per_job
        failed |= per_job.get("status") == "failed"
    if ns.executorlib == "auto" and EXECUTORLIB_PY.exists() and not ns.skip_baseline:
        ex = run_child("executorlib", ns.baseline_n, ns.workers, base, str(EXECUTORLIB_PY))
        if "seconds" in ex:
            ex["extrapolated_seconds"] = round(ex["seconds"] * scale, 1)
        result["executorlib"] = ex
    else:
        result["executorlib"] = {"status": "skipped", "reason": "--executorlib skip" if
                                 ns.executorlib == "skip" else f"no {EXECUTORLIB_PY}"}
    packed, per_job = result["packed"], result.get("per_job", {})
    if "seconds" in packed and "extrapolated_seconds" in per_job:
        speedup = per_job["extrapolated_seconds"] / packed["seconds"]
        result["speedup_vs_per_job"] = round(speedup, 1)
        result["targets"] = {"speedup_10x": speedup >= 10,
                             "sbatch_le_20": packed.get("sbatch", 99) <= 20}
    if ns.dir is None:
        shutil.rmtree(base, ignore_errors=True)
    text = json.dumps(result)
    print(text, flush=True)
    if ns.out:
        Path(ns.out).write_text(text + "\n")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
