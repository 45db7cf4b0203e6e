"""The local benchmark cases, shared by ``cases_ours.py`` and ``cases_executorlib.py``.

The task functions themselves (``inc``, ``add``, ``total``, ``echo``) are defined in
each case script, i.e. in ``__main__``, as a user's script would: both libraries then
pickle them by value, and the worker never needs to import this directory.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import _common as c

#: make_executor(cache_dir, args) -> a concurrent.futures-style executor
MakeExecutor = Callable[[str, object], object]


def trivial(args, make: MakeExecutor, fns: ModuleType, fresh: bool) -> dict:
    """N independent ``inc(i)``; ``fresh`` empties the cache first (cold)."""
    d = c.fresh_dir(args.dir) if fresh else args.dir
    files_before = c.count_files(d)
    t0 = c.now()
    with make(str(d), args) as exe:
        futs = [exe.submit(fns.inc, i) for i in range(args.n)]
        t_submit = c.now() - t0
        out = [f.result() for f in futs]
    seconds = c.now() - t0
    assert out == list(range(1, args.n + 1))
    return {
        "seconds": round(seconds, 4),
        "submit_s": round(t_submit, 4),
        "new_files": c.count_files(d) - files_before,
        "disk": c.disk_usage(d),
    }


def chain(args, make: MakeExecutor, fns: ModuleType) -> dict:
    """``inc(inc(...inc(0)))``, N long: each task takes the previous future."""
    d = c.fresh_dir(args.dir)
    t0 = c.now()
    with make(str(d), args) as exe:
        fut = exe.submit(fns.inc, 0)
        for _ in range(args.n - 1):
            fut = exe.submit(fns.inc, fut)
        out = fut.result()
    seconds = c.now() - t0
    assert out == args.n
    return {"seconds": round(seconds, 4)}


def fanout(args, make: MakeExecutor, fns: ModuleType) -> dict:
    """1 -> N -> 1: ``total(*[add(root, i) for i in range(N)])``, futures as arguments."""
    d = c.fresh_dir(args.dir)
    t0 = c.now()
    with make(str(d), args) as exe:
        root = exe.submit(fns.inc, 0)
        mids = [exe.submit(fns.add, root, i) for i in range(args.n)]
        out = exe.submit(fns.total, *mids).result()
    seconds = c.now() - t0
    assert out == sum(1 + i for i in range(args.n))
    return {"seconds": round(seconds, 4)}


def payload(args, make: MakeExecutor, fns: ModuleType) -> dict:
    """Round trip of an ``--n`` MB float64 array (random, incompressible) through
    ``echo``, after one warm-up task so executor and worker start-up are not timed."""
    import numpy as np

    d = c.fresh_dir(args.dir)
    a = np.random.default_rng(0).random(args.n * 2**20 // 8)
    with make(str(d), args) as exe:
        exe.submit(fns.inc, 0).result()
        t0 = c.now()
        out = exe.submit(fns.echo, a).result()
        seconds = c.now() - t0
    assert out.shape == a.shape and out[-1] == a[-1]
    return {"seconds": round(seconds, 4), "mb": args.n, "mb_per_s": round(args.n / seconds, 2),
            "disk": c.disk_usage(d), "entries": 2}


def local_cases(make: MakeExecutor, fns: ModuleType) -> dict[str, Callable]:
    """The case table of a cache-backed executor: name -> function(args) -> fields."""
    return {
        "cold": lambda args: trivial(args, make, fns, fresh=True),
        "warm": lambda args: trivial(args, make, fns, fresh=False),
        "fill": lambda args: trivial(args, make, fns, fresh=True) | {"method": "cold run"},
        "chain": lambda args: chain(args, make, fns),
        "fanout": lambda args: fanout(args, make, fns),
        "payload": lambda args: payload(args, make, fns),
    }
