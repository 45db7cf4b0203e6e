"""SLURM benchmarks, for either side, on the local SLURM (``scripts/start-slurm.sh``).

    python bench/cases_slurm.py {ours,executorlib} CASE --n N --dir DIR  -> one JSON line

Cases: ``trivial`` (N ``inc(i)`` jobs), ``chain`` (N dependent jobs), ``scancel``
(submit ``nap(60)``, wait until RUNNING, ``scancel`` it, time until
``fut.exception()`` returns), ``packed`` (N trivial tasks with ``max_workers=8``).

Every ``sbatch``/``squeue``/``scancel``/``scontrol``/``sacct`` the library runs goes
through a wrapper on ``PATH`` that appends one line to a log and then runs the real
binary, so the JSON line reports how many of each were called.  The harness' own
``squeue``/``scancel`` (in ``scancel``) call the real binaries and are not counted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _common as c

BENCH = Path(__file__).resolve().parent
WRAPPED = ("sbatch", "squeue", "scancel", "scontrol", "sacct")
WORKERS_PACKED = 8


def inc(x):
    return x + 1


def nap(seconds):
    import time

    time.sleep(seconds)
    return seconds


def install_wrappers(bindir: Path, log: Path) -> dict[str, str]:
    """Put logging wrappers for the SLURM clients first on PATH; return the real paths."""
    bindir.mkdir(parents=True, exist_ok=True)
    real = {}
    for name in WRAPPED:
        path = shutil.which(name)
        if path is None:
            continue
        real[name] = path
        if name == "sbatch":  # also log the job id it prints
            body = (f'out=$("{path}" "$@"); rc=$?\n'
                    '[ -n "$out" ] && printf "%s\\n" "$out"\n'
                    f'echo "$(date +%s.%N) sbatch-out $out" >> "{log}"\n'
                    'exit $rc\n')
        else:
            body = f'exec "{path}" "$@"\n'
        script = bindir / name
        script.write_text(f'#!/bin/sh\necho "$(date +%s.%N) {name} $*" >> "{log}"\n{body}')
        script.chmod(0o755)
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ['PATH']}"
    log.touch()
    return real


def count_calls(log: Path) -> dict[str, int]:
    counts = dict.fromkeys(WRAPPED, 0)
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in counts:
            counts[parts[1]] += 1
    return counts


def last_job_id(log: Path) -> str | None:
    ids = re.findall(r"sbatch-out\D*(\d+)", log.read_text())
    return ids[-1] if ids else None


def make_executor(side: str, cache_dir: str, max_workers: int | None = None):
    if side == "executorlib":
        from executorlib import SlurmClusterExecutor

        return SlurmClusterExecutor(cache_directory=cache_dir, max_workers=max_workers,
                                    pysqa_config_directory=str(BENCH / "slurm_pysqa"))
    import executorlib_cache

    if not hasattr(executorlib_cache, "SlurmClusterExecutor"):
        raise Pending("executorlib_cache.SlurmClusterExecutor does not exist yet")
    return executorlib_cache.SlurmClusterExecutor(cache_directory=cache_dir,
                                                  max_workers=max_workers)


class Pending(Exception):
    """The feature this case needs is not in our API yet: reported, not a crash."""


def trivial(side, args, log, real, max_workers=None) -> dict:
    d = c.fresh_dir(args.dir)
    t0 = c.now()
    with make_executor(side, str(d), max_workers) as exe:
        futs = [exe.submit(inc, i) for i in range(args.n)]
        out = [f.result() for f in futs]
    seconds = c.now() - t0
    assert out == list(range(1, args.n + 1))
    calls = count_calls(log)
    return {"seconds": round(seconds, 3), "calls": calls,
            "squeue_per_s": round(calls["squeue"] / seconds, 3)}


def chain(side, args, log, real) -> dict:
    d = c.fresh_dir(args.dir)
    t0 = c.now()
    with make_executor(side, str(d)) as exe:
        fut = exe.submit(inc, 0)
        for _ in range(args.n - 1):
            fut = exe.submit(inc, fut)
        out = fut.result()
    seconds = c.now() - t0
    assert out == args.n
    return {"seconds": round(seconds, 3), "calls": count_calls(log)}


def packed(side, args, log, real) -> dict:
    if side == "executorlib":
        raise Pending("executorlib's SlurmClusterExecutor has no packing (max_workers refused)")
    try:
        return trivial(side, args, log, real, max_workers=WORKERS_PACKED)
    except (TypeError, NotImplementedError, ValueError) as e:
        if "max_workers" in str(e) or isinstance(e, NotImplementedError):
            raise Pending(f"max_workers on SLURM: {type(e).__name__}: {e}") from e
        raise


def _job_state(real: dict, job_id: str) -> str:
    out = subprocess.run([real["squeue"], "-h", "-j", job_id, "-o", "%T"],
                         capture_output=True, text=True)
    return out.stdout.strip()


def scancel(side, args, log, real) -> dict:
    d = c.fresh_dir(args.dir)
    with make_executor(side, str(d)) as exe:
        fut = exe.submit(nap, 60)
        deadline = time.monotonic() + 120
        job_id, state = None, ""
        while time.monotonic() < deadline and state != "RUNNING":
            job_id = job_id or last_job_id(log)
            state = _job_state(real, job_id) if job_id else ""
            time.sleep(0.1)
        if state != "RUNNING":
            raise RuntimeError(f"job {job_id} not RUNNING after 120 s (state {state!r})")
        time.sleep(0.5)  # let the task itself start inside the job
        t0 = c.now()
        subprocess.run([real["scancel"], job_id], check=True)
        exc = fut.exception(timeout=180)
        latency = c.now() - t0
    first = str(exc).splitlines()[0][:160] if exc is not None else ""
    return {"seconds": round(latency, 3), "job_id": job_id,
            "exception": f"{type(exc).__name__}: {first}" if exc is not None else None,
            "calls": count_calls(log)}


CASES = {"trivial": trivial, "chain": chain, "packed": packed, "scancel": scancel}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("side", choices=("ours", "executorlib"))
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    work = c.fresh_dir(args.dir + "-slurmbin")
    log = work / "calls.log"
    real = install_wrappers(work / "bin", log)
    args.dir = str(Path(args.dir).resolve())
    try:
        fields = CASES[args.case](args.side, args, log, real)
    except Pending as e:
        c.emit(args.side, args.case, n=args.n, status="pending", reason=str(e))
        return
    c.emit(args.side, args.case, n=args.n, **fields)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
