"""Helpers shared by the per-side case scripts (``cases_*.py``).

A case script is run by ``bench/run.py`` in a fresh interpreter of the side's own
venv, measures one thing and prints exactly one JSON line on stdout.  Nothing here
imports a library under test, so every side can use it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

now = time.perf_counter


def emit(side: str, case: str, **fields) -> None:
    """Print the one JSON result line of this process."""
    print(json.dumps({"side": side, "case": case, **fields}), flush=True)


def fresh_dir(path: str | os.PathLike) -> Path:
    """Return ``path`` as an empty directory (removing what was there)."""
    p = Path(path)
    if p.exists():
        shutil.rmtree(p)
    p.mkdir(parents=True)
    return p


def disk_usage(path: str | os.PathLike) -> dict:
    """Apparent bytes (sum of regular files' sizes), allocated bytes (``du -sB1``)
    and file count under ``path``; also the directories below ``path`` and the bytes
    allocated to files alone and to directories alone (format 2 makes 256 shard
    directories once per cache: at small N they dominate ``du`` per entry)."""
    apparent = files = file_alloc = dirs = dir_alloc = 0
    for root, subdirs, names in os.walk(path):
        for name in names:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            apparent += st.st_size
            file_alloc += st.st_blocks * 512
            files += 1
        for name in subdirs:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            dirs += 1
            dir_alloc += st.st_blocks * 512
    out = subprocess.run(["du", "-sB1", str(path)], capture_output=True, text=True, check=True)
    return {"apparent_bytes": apparent, "du_bytes": int(out.stdout.split()[0]), "files": files,
            "file_alloc_bytes": file_alloc, "dirs": dirs, "dir_alloc_bytes": dir_alloc}


def count_files(path: str | os.PathLike) -> int:
    return sum(len(names) for _root, _dirs, names in os.walk(path))


def parse_args(cases: dict[str, Callable]) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(cases))
    ap.add_argument("--n", type=int, default=100, help="number of tasks, or MB for payload")
    ap.add_argument("--dir", required=True, help="working/cache directory for this case")
    ap.add_argument("--workers", type=int, default=None, help="max_workers where applicable")
    return ap.parse_args()


def main(side: str, cases: dict[str, Callable]) -> None:
    """Dispatch ``python cases_X.py CASE --n N --dir D`` to ``cases[CASE](args)``,
    which returns the fields of the result line."""
    args = parse_args(cases)
    t0 = now()
    fields = cases[args.case](args)
    emit(side, args.case, n=args.n, total_s=round(now() - t0, 4), **fields)
    sys.stdout.flush()
