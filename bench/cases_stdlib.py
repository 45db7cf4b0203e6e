"""Standard library reference: ``concurrent.futures.ProcessPoolExecutor``.

No persistence and no cache (so no warm re-run and no disk figures), and it cannot
take a future as an argument: the chain and the fan-out/fan-in wait for each
upstream result in the driver before submitting the dependants.

    python bench/cases_stdlib.py CASE --n N --dir DIR   -> one JSON line
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import _common as c

SIDE = "stdlib"


def inc(x):
    return x + 1


def add(x, y):
    return x + y


def total(*xs):
    return sum(xs)


def echo(a):
    return a


def _executor(args):
    return ProcessPoolExecutor(max_workers=args.workers)


def cold(args) -> dict:
    t0 = c.now()
    with _executor(args) as exe:
        futs = [exe.submit(inc, i) for i in range(args.n)]
        out = [f.result() for f in futs]
    seconds = c.now() - t0
    assert out == list(range(1, args.n + 1))
    return {"seconds": round(seconds, 4)}


def chain(args) -> dict:
    t0 = c.now()
    with _executor(args) as exe:
        x = exe.submit(inc, 0).result()
        for _ in range(args.n - 1):
            x = exe.submit(inc, x).result()
    seconds = c.now() - t0
    assert x == args.n
    return {"seconds": round(seconds, 4)}


def fanout(args) -> dict:
    t0 = c.now()
    with _executor(args) as exe:
        root = exe.submit(inc, 0).result()
        mids = [exe.submit(add, root, i) for i in range(args.n)]
        out = exe.submit(total, *[m.result() for m in mids]).result()
    seconds = c.now() - t0
    assert out == sum(1 + i for i in range(args.n))
    return {"seconds": round(seconds, 4)}


def payload(args) -> dict:
    import numpy as np

    a = np.random.default_rng(0).random(args.n * 2**20 // 8)
    with _executor(args) as exe:
        exe.submit(inc, 0).result()  # warm-up: a worker is running
        t0 = c.now()
        out = exe.submit(echo, a).result()
        seconds = c.now() - t0
    assert out.shape == a.shape and out[-1] == a[-1]
    return {"seconds": round(seconds, 4), "mb": args.n, "mb_per_s": round(args.n / seconds, 2)}


CASES = {"cold": cold, "chain": chain, "fanout": fanout, "payload": payload}

if __name__ == "__main__":
    c.main(SIDE, CASES)
