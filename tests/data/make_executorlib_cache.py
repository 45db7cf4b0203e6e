"""Make ``executorlib_cache.tar.gz``: a real cache of executorlib 1.11.0 (PyPI), for
tests/test_import.py.  Run with executorlib's own venv (bench/envs.py makes it):

    PYTHONPATH=tests/data bench/.venvs/executorlib/bin/python \
        tests/data/make_executorlib_cache.py OUT.tar.gz

``file/``: written by executorlib's file-based executor (``TestClusterExecutor``,
the local twin of SlurmClusterExecutor): scale(1), scale(2, factor=10), a call
depending on two others (its inputs hold executorlib ``FutureItem`` objects),
broken(3) failed, and an unfinished input file.  ``single/``: SingleNodeExecutor's
cache of scale(5).
"""

import os
import shutil
import sys
import tarfile
import tempfile

import executorlib
from executorlib.api import TestClusterExecutor
from xl_funcs import broken, scale, total

assert executorlib.__version__ == "1.11.0", executorlib.__version__

with tempfile.TemporaryDirectory() as tmp:
    with TestClusterExecutor(cache_directory=f"{tmp}/file") as exe:
        a = exe.submit(scale, 1)
        b = exe.submit(scale, 2, factor=10)
        c = exe.submit(total, a, b=b)
        d = exe.submit(broken, 3)
        print(c.result(), d.exception())
    # an unfinished entry: an input file without output
    files = sorted(os.listdir(f"{tmp}/file"))
    src = next(f for f in files if f.startswith("scale") and f.endswith("_o.h5"))
    shutil.copyfile(f"{tmp}/file/{src}", f"{tmp}/file/pendingcall_i.h5")
    with executorlib.SingleNodeExecutor(cache_directory=f"{tmp}/single") as exe:
        print(exe.submit(scale, 5).result())
    with tarfile.open(sys.argv[1], "w:gz") as tar:
        tar.add(f"{tmp}/file", "file")
        tar.add(f"{tmp}/single", "single")
