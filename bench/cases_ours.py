"""executorlib_cache (this project) side of the benchmarks: the local backend
(persistent worker processes over pyzmq) through ``SingleNodeExecutor``.

    python bench/cases_ours.py CASE --n N --dir DIR   -> one JSON line

``warm`` expects the cache made by ``fill`` (a real cold run of the same calls).
"""

from __future__ import annotations

import sys

import _cases
import _common as c

from executorlib_cache import SingleNodeExecutor

SIDE = "ours"


def inc(x):
    return x + 1


def add(x, y):
    return x + y


def total(*xs):
    return sum(xs)


def echo(a):
    return a


def make_executor(cache_dir, args):
    return SingleNodeExecutor(cache_directory=cache_dir, max_workers=args.workers)


CASES = _cases.local_cases(make_executor, sys.modules[__name__])

if __name__ == "__main__":
    c.main(SIDE, CASES)
