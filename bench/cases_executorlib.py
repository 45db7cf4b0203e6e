"""executorlib (the anchor, from PyPI) side of the benchmarks.

Runs in ``bench/.venvs/executorlib`` (``executorlib[cluster]==1.11.0``) through
``executorlib.api.TestClusterExecutor``: its HDF5 file scheduler with a local
subprocess spawner (one ``python -m executorlib.backend.cache_serial`` interpreter
per task), i.e. the code path of its SlurmClusterExecutor without SLURM.

    python bench/cases_executorlib.py CASE --n N --dir DIR   -> one JSON line
"""

from __future__ import annotations

import os
import sys

import _cases
import _common as c
from executorlib.api import TestClusterExecutor

SIDE = "executorlib"


def inc(x):
    return x + 1


def add(x, y):
    return x + y


def total(*xs):
    return sum(xs)


def echo(a):
    return a


def make_executor(cache_dir, args):
    # max_workers is refused by the file scheduler ("cannot be controlled")
    return TestClusterExecutor(cache_directory=cache_dir)


def fill(args) -> dict:
    """Write N finished ``inc(i)`` entries through executorlib's own code path minus
    the subprocess: ``serialize_funct`` for the key, ``hdf.dump`` of the input to
    ``<key>_i.h5`` and the backend's ``backend_write_file`` for the output (rename to
    ``_r.h5``, append, rename to ``_o.h5``), so the files are what a real run leaves.
    Running N=10,000 cold would take ~15 min (one interpreter per task); ``warm``
    reports ``new_files`` so a key mismatch (a cache miss) would show."""
    from executorlib.standalone.hdf import dump
    from executorlib.standalone.serialize import serialize_funct
    from executorlib.task_scheduler.file.backend import backend_write_file

    d = c.fresh_dir(args.dir)
    resource_dict = {"cores": 1, "threads_per_core": 1, "gpus_per_core": 0, "cwd": None,
                     "openmpi_oversubscribe": False, "exclusive": False}
    t0 = c.now()
    for i in range(args.n):
        key, data, err = serialize_funct(fn=inc, fn_args=[i], fn_kwargs={},
                                         resource_dict=resource_dict)
        assert err is None
        data["error_log_file"] = None
        file_name = os.path.join(d, key + "_i.h5")
        dump(file_name=file_name, data_dict=data)
        backend_write_file(file_name=file_name, output={"result": i + 1}, runtime=0.0)
    return {"seconds": round(c.now() - t0, 4),
            "method": "executorlib hdf.dump + backend_write_file"}


CASES = _cases.local_cases(make_executor, sys.modules[__name__]) | {"fill": fill}

if __name__ == "__main__":
    c.main(SIDE, CASES)
