"""One measured phase for ``bench_metadata.py`` and ``bench_slowfs.py``.

    python bench/_meta_run.py SIDE [--case trivial] --n N --dir CACHE [--workers 2]

Runs N calls ``inc(i)`` through the side's executor on the cache directory CACHE,
which the caller has prepared (empty for a cold run, filled for a warm one), and
prints one JSON line.  Unlike ``cases_*.py`` nothing else touches CACHE here: no
``rmtree`` before, no walk or ``du`` after, so every file-system operation on CACHE
(counted by strace or by the slow FUSE daemon) is the library's own.

* ``ours``: ``executorlib_cache.SingleNodeExecutor(cache_directory=CACHE,
  max_workers=W)`` (the package importable from the interpreter/``PYTHONPATH``);
* ``executorlib``: ``executorlib.api.TestClusterExecutor(cache_directory=CACHE)``,
  the same local HDF5 file-cache path as ``cases_executorlib.py``.

``inc`` is defined here, in ``__main__``, so both libraries pickle it by value.
Cases are a table (``CASES``): ``trivial`` (above); ``fill`` makes the cache a warm
run of ``trivial`` hits; ``packed`` (ours only): the same N calls through
``SlurmClusterExecutor(cache_directory=CACHE, max_workers=W)``, i.e. W worker jobs
on the local SLURM that take the calls from the pool queue (``bench_packed.py``
counts its operations with the slowfs daemon: strace cannot follow processes that
slurmd starts).
"""

from __future__ import annotations

import argparse
import json
import time


def inc(x):
    return x + 1


def make_executor(side: str, cache_dir: str, workers: int, packed: bool = False):
    if side == "ours" and packed:
        from executorlib_cache import SlurmClusterExecutor

        return SlurmClusterExecutor(cache_directory=cache_dir, max_workers=workers)
    if packed:
        raise ValueError("packed: ours only (executorlib's SlurmClusterExecutor cannot pack)")
    if side == "ours":
        from executorlib_cache import SingleNodeExecutor

        return SingleNodeExecutor(cache_directory=cache_dir, max_workers=workers)
    if side == "executorlib":
        from executorlib.api import TestClusterExecutor

        # max_workers is refused by its file scheduler ("cannot be controlled")
        return TestClusterExecutor(cache_directory=cache_dir)
    raise ValueError(side)


def trivial(args) -> dict:
    """N independent ``inc(i)``: wall time from creating the executor to leaving it."""
    t0 = time.perf_counter()
    with make_executor(args.side, args.dir, args.workers, args.case == "packed") as exe:
        futs = [exe.submit(inc, i) for i in range(args.n)]
        t_submit = time.perf_counter() - t0
        out = [f.result() for f in futs]
    seconds = time.perf_counter() - t0
    assert out == list(range(1, args.n + 1)), "wrong results"
    return {"seconds": round(seconds, 4), "submit_s": round(t_submit, 4)}


def fill(args) -> dict:
    """Fill CACHE with the N finished ``inc(i)`` of this script (the key of a task
    depends on the pickled function, which includes its file: a cache filled by
    another script would not hit).  ours: a real cold run; executorlib: the ``fill``
    helper of ``cases_executorlib.py`` (its own writers, no subprocess per task)
    given this script's ``inc``."""
    if args.side == "ours":
        return trivial(args) | {"method": "cold run"}
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cases_executorlib

    cases_executorlib.inc = inc  # fill() looks ``inc`` up in its module's globals
    return cases_executorlib.fill(args)


CASES = {"trivial": trivial, "fill": fill, "packed": trivial}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("side", choices=("ours", "executorlib"))
    ap.add_argument("--case", choices=sorted(CASES), default="trivial")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--dir", required=True, help="the cache directory (prepared by the caller)")
    ap.add_argument("--workers", type=int, default=2,
                    help="ours: max_workers (2): local workers, or worker jobs (packed)")
    args = ap.parse_args()
    # import the library before the clock starts, as cases_*.py do
    if args.side == "ours":
        import executorlib_cache  # noqa: F401
    else:
        import executorlib.api  # noqa: F401
    fields = CASES[args.case](args)
    print(json.dumps({"side": args.side, "case": args.case, "n": args.n, **fields}), flush=True)


if __name__ == "__main__":
    main()
