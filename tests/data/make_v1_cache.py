"""Make ``v1_cache.tar.gz``: a real format-1 cache written by executorlib_cache as of
commit dca23c5 (the last format-1 version), for tests/test_format.py.

    git archive dca23c5 | tar -x -C /tmp/v1src
    PYTHONPATH=/tmp/v1src:tests/data python tests/data/make_v1_cache.py OUT.tar.gz

Entries: square(0..3) done, square with cache_key "ab" (a key that looks like a
format-2 shard) done, fail(1) failed; the same in a signed cache (secret "s3cret");
and one unfinished entry claimed by a process that is gone.
"""

import json
import os
import subprocess
import sys
import tarfile
import tempfile

from v1_funcs import fail, square

import executorlib_cache
from executorlib_cache import SingleNodeExecutor

assert "v1src" in executorlib_cache.__file__, executorlib_cache.__file__


def fill(cache: str, secret: str | None) -> None:
    with SingleNodeExecutor(cache_directory=cache, secret=secret) as exe:
        futs = [exe.submit(square, i) for i in range(4)]
        futs.append(exe.submit(square, 7, resource_dict={"cache_key": "ab"}))
        futs.append(exe.submit(fail, 1))
        for f in futs:
            f.exception()


with tempfile.TemporaryDirectory() as tmp:
    fill(f"{tmp}/plain", None)
    fill(f"{tmp}/signed", "s3cret")
    # an unfinished entry whose driver is gone: a claim (job.json) only
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    os.mkdir(f"{tmp}/plain/orphan")
    with open(f"{tmp}/plain/orphan/job.json", "w") as f:
        json.dump({"backend": "local", "job_id": None, "submitted": 0.0,
                   "owner": {"host": os.uname().nodename, "pid": gone.pid, "start": "0"}}, f)
    with tarfile.open(sys.argv[1], "w:gz") as tar:
        tar.add(f"{tmp}/plain", "plain")
        tar.add(f"{tmp}/signed", "signed")
