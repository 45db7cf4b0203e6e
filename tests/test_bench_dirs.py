"""bench/bench_dirs.py (one directory vs 256 shards): a tiny run of both layouts, and
its shards are the store's; slowfs' per-process counters (``--by-process``), which
bench/bench_packed.py uses to tell a driver from SLURM jobs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import skip_unless_ci

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import bench_dirs  # noqa: E402
import bench_packed  # noqa: E402


def test_shards_are_the_stores(tmp_path):
    from executorlib_cache.store import Store

    store = Store(tmp_path / "cache")
    key = "inc-v1-0123456789abcdef0123456789abcdef"
    want = Path(store.path_of(key, "done"))
    assert want.parent.name == bench_dirs.shard(key + ".h5")
    assert bench_dirs.path_of(str(store.root), "sharded", key + ".h5") == str(want)


@pytest.mark.timeout(30)
def test_tiny_run_both_layouts(tmp_path, capsys):
    out = tmp_path / "dirs.jsonl"
    work = tmp_path / "work"
    assert bench_dirs.main(["--sizes", "400", "--repeats", "2", "--lookups", "50",
                            "--procs", "2", "--dir", str(work), "--json", str(out)]) == 0
    recs = [json.loads(ln) for ln in out.read_text().splitlines()]
    runs = [r for r in recs if r["bench"] == "dirs"]
    assert sorted(r["layout"] for r in runs) == ["flat", "flat", "sharded", "sharded"]
    for r in runs:
        assert r["n"] == 400 and r["create_s"] > 0 and r["create_parallel_s"] > 0
        assert r["lookup_hit_us"] > 0 and r["lookup_miss_us"] > 0 and r["list_s"] >= 0
    sharded = next(r for r in runs if r["layout"] == "sharded")
    flat = next(r for r in runs if r["layout"] == "flat")
    assert sharded["dir_size_bytes"] >= 256 * 4096 > flat["dir_size_bytes"]
    assert recs[-1]["bench"] == "meta"
    assert "one directory vs 256 shards" in capsys.readouterr().out
    assert os.listdir(work) == [], "files left behind"


def test_packed_roles():
    chain_driver = [[120, "sbatch"], [100, "python"], [1, "init"]]
    chain_job = [[300, "python"], [290, "bash"], [280, "slurmstepd"], [1, "init"]]
    assert bench_packed.role(chain_driver, 100) == "driver"
    assert bench_packed.role(chain_job, 100) == "jobs"
    assert bench_packed.role([], 100) == "other"


@pytest.mark.timeout(60)
def test_slowfs_counts_per_process(tmp_path):
    if not os.path.exists("/dev/fuse"):
        skip_unless_ci("needs /dev/fuse")
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError, AttributeError) as e:
        skip_unless_ci(f"needs mfusepy and libfuse3: {e}")
    if os.geteuid() != 0 and not shutil.which("fusermount3"):
        skip_unless_ci("needs root or fusermount3 to mount FUSE")
    import slowfs

    mp = tmp_path / "mnt"
    with slowfs.slow_mount(delay_ms=0, backing=tmp_path / "b", mountpoint=mp,
                           by_process=True) as m:
        before = m.stats()
        child = subprocess.run(
            [sys.executable, "-c", "import os, sys; open(sys.argv[1], 'w').write('x'); "
             "[os.stat(sys.argv[1]) for _ in range(5)]; print(os.getpid())", str(mp / "f")],
            capture_output=True, text=True, check=True)
        pid = child.stdout.strip()
        after = m.stats()
        assert m.stats()["counts"] == after["counts"], "asking for stats touched the mount"
    procs = after["by_process"]
    assert pid in procs, procs.keys()
    chain = procs[pid]["chain"]
    assert chain[0][0] == int(pid) and os.getpid() in [p for p, _ in chain]
    assert procs[pid]["counts"]["getattr"] >= 5 and procs[pid]["counts"]["create"] == 1
    assert bench_packed.role(chain, os.getpid()) == "driver"
    assert sum(c["counts"].get("create", 0) for c in procs.values()) \
        == after["counts"]["create"] - before["counts"].get("create", 0)
