"""One directory of N small files, or the same files in 256 shard directories?

    python bench/bench_dirs.py [--sizes 100000 1000000] [--repeats 3 1] [--lookups 10000]
                               [--procs 2] [--parallel-max 100000] [--dir DIR] [--json FILE]
                               [--slowfs-sizes 100000] [--slowfs-delay-ms 1]
                               [--slowfs-creates 2000] [--slowfs-procs 4]
                               [--slowfs-entry-timeout 0]

Format 2 keeps a cache's files in 256 shards ``<cache>/<hh>/`` (``hh``: the first
byte of ``blake2s(key, digest_size=4)``, as ``store.py`` does).  This measures that
choice against one flat directory, with names shaped like real entries
(``inc-v1-<32 hex>.h5``, 64 bytes each), layouts interleaved in every repeat:

* ``create``: make the N files (``open(O_CREAT|O_EXCL)``, write, close) from one
  process, and the same from ``--procs`` processes in parallel (each its own slice
  of the names; a directory's entries are changed under its inode lock, so creates
  in one directory serialize);
* ``lookup``: ``os.stat`` of ``--lookups`` random names that exist (hits) and as many
  that do not (misses), each name once (a fresh negative lookup each time);
* ``list``: ``os.scandir`` of everything, counting files (``d_type``, no ``stat``);
* ``prune``: unlink 99% of the files, then list again (ext4 never shrinks a
  directory: the flat one keeps all its blocks), then unlink the rest.

Also the bytes the directories themselves take (``st_size`` and blocks of the
directory inodes).  All on the local file system of ``--dir`` (default: a temp dir
next to the system's temp dir); the page, dentry and inode caches are warm (nothing
is dropped: the machine is shared), so a lookup here is a hash or htree probe in
memory.

``--slowfs-sizes``: the same N files, made on the backing directory of a
``bench/slowfs.py`` mount (``--slowfs-delay-ms`` per metadata operation, kernel
caches off: every lookup reaches the daemon), then measured through the mount:
lookups (hits, misses), the listing, ``--slowfs-creates`` more files created by one
process, and as many by ``--slowfs-procs`` processes in parallel, with the daemon's
operation counts for each.  Everything is deleted afterwards.  One JSON line per
measurement on stdout, a table at the end; see bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
LAYOUTS = ("flat", "sharded")
PAYLOAD = b"x" * 64


def log(msg: str) -> None:
    print(f"[bench_dirs {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_names(n: int, rng: random.Random) -> list[str]:
    return [f"inc-v1-{rng.getrandbits(128):032x}.h5" for _ in range(n)]


def shard(name: str) -> str:
    """The shard of a file name, as ``store.py`` places it: the first byte of
    ``blake2s(key, digest_size=4)`` of the key (the name without ``.h5``)."""
    key = name[:-3] if name.endswith(".h5") else name
    return f"{hashlib.blake2s(key.encode(), digest_size=4).digest()[0]:02x}"


def path_of(root: str, layout: str, name: str) -> str:
    return f"{root}/{shard(name)}/{name}" if layout == "sharded" else f"{root}/{name}"


def dirs_of(root: str, layout: str) -> list[str]:
    return [f"{root}/{i:02x}" for i in range(256)] if layout == "sharded" else [root]


def make_root(root: str, layout: str) -> None:
    os.makedirs(root, exist_ok=True)
    if layout == "sharded":
        for d in dirs_of(root, layout):
            os.mkdir(d)


def _create(paths: list[str], start=None) -> None:
    if start is not None:
        start.wait()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for p in paths:
        fd = os.open(p, flags, 0o600)
        os.write(fd, PAYLOAD)
        os.close(fd)


def create(root: str, layout: str, names: list[str], procs: int) -> float:
    """Seconds to create the files (and the 256 shards), by ``procs`` processes."""
    paths = [path_of(root, layout, n) for n in names]
    if procs <= 1:
        t0 = time.perf_counter()
        make_root(root, layout)
        _create(paths)
        return time.perf_counter() - t0
    ctx = mp.get_context("fork")
    start = ctx.Event()
    workers = [ctx.Process(target=_create, args=(paths[i::procs], start)) for i in range(procs)]
    for w in workers:
        w.start()
    time.sleep(0.2)  # all forked and waiting
    t0 = time.perf_counter()
    make_root(root, layout)
    start.set()
    for w in workers:
        w.join()
    secs = time.perf_counter() - t0
    if any(w.exitcode for w in workers):
        raise RuntimeError(f"a create process failed ({[w.exitcode for w in workers]})")
    return secs


def lookups(root: str, layout: str, hits: list[str], misses: list[str]) -> tuple[float, float]:
    """Seconds for ``os.stat`` of every hit and of every miss."""
    hp = [path_of(root, layout, n) for n in hits]
    mp_ = [path_of(root, layout, n) for n in misses]
    t0 = time.perf_counter()
    for p in hp:
        os.stat(p)
    t_hit = time.perf_counter() - t0
    t0 = time.perf_counter()
    for p in mp_:
        try:
            os.stat(p)
        except FileNotFoundError:
            pass
        else:
            raise AssertionError(f"{p} exists")
    return t_hit, time.perf_counter() - t0


def listing(root: str, layout: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    count = 0
    for d in dirs_of(root, layout):
        with os.scandir(d) as it:
            for e in it:
                if e.is_file(follow_symlinks=False):
                    count += 1
    return time.perf_counter() - t0, count


def dir_bytes(root: str, layout: str) -> tuple[int, int]:
    """(st_size, allocated bytes) summed over the directory inodes."""
    size = blocks = 0
    for d in dirs_of(root, layout):
        st = os.stat(d)
        size += st.st_size
        blocks += st.st_blocks * 512
    return size, blocks


def unlink_all(root: str, layout: str, names: list[str]) -> float:
    t0 = time.perf_counter()
    for n in names:
        os.unlink(path_of(root, layout, n))
    return time.perf_counter() - t0


def emit(rec: dict, sink) -> None:
    line = json.dumps(rec)
    print(line, flush=True)
    if sink:
        sink.write(line + "\n")
        sink.flush()


# ------------------------------------------------------------------ local disk


def local_round(base: Path, n: int, layout: str, args, rng: random.Random, rep: int,
                sink) -> dict:
    names = make_names(n, rng)
    misses = make_names(args.lookups, rng)
    root = str(base / f"{layout}-{n}")
    rec = {"bench": "dirs", "fs": "local", "n": n, "layout": layout, "repeat": rep,
           "load": os.getloadavg()[0]}
    rec["create_s"] = round(create(root, layout, names, 1), 3)
    rec["create_us_per_file"] = round(rec["create_s"] / n * 1e6, 2)
    hits = rng.sample(names, args.lookups)
    h, m = lookups(root, layout, hits, misses)
    rec["lookup_hit_us"] = round(h / args.lookups * 1e6, 2)
    rec["lookup_miss_us"] = round(m / args.lookups * 1e6, 2)
    secs, count = listing(root, layout)
    assert count == n, (count, n)
    rec["list_s"] = round(secs, 3)
    rec["dir_size_bytes"], rec["dir_alloc_bytes"] = dir_bytes(root, layout)
    keep = set(rng.sample(names, n // 100))
    gone = [x for x in names if x not in keep]
    rec["unlink_s"] = round(unlink_all(root, layout, gone), 3)
    secs, count = listing(root, layout)
    assert count == len(keep)
    rec["list_after_prune_s"] = round(secs, 4)
    rec["dir_alloc_after_prune_bytes"] = dir_bytes(root, layout)[1]
    unlink_all(root, layout, list(keep))
    shutil.rmtree(root)
    if args.procs > 1 and n <= args.parallel_max:  # the same names, procs at once
        rec["procs"] = args.procs
        rec["create_parallel_s"] = round(create(root, layout, names, args.procs), 3)
        shutil.rmtree(root)
    emit(rec, sink)
    log(f"local n={n} {layout:7} create {rec['create_s']} s"
        + (f" ({args.procs} procs {rec['create_parallel_s']} s)" if "procs" in rec else "")
        + f", stat hit {rec['lookup_hit_us']} us miss {rec['lookup_miss_us']} us, "
          f"list {rec['list_s']} s, after prune {rec['list_after_prune_s']} s")
    return rec


# ------------------------------------------------------------------ slowfs


def slowfs_round(m, n: int, layout: str, args, rng: random.Random, rep: int, sink) -> dict:
    import slowfs

    names = make_names(n, rng)
    misses = make_names(args.lookups, rng)
    sub = f"{layout}-{n}-{rep}"
    broot, mroot = str(m.backing / sub), str(m.path / sub)
    t0 = time.perf_counter()
    create(broot, layout, names, 1)  # at local-disk speed, not through the mount
    made = time.perf_counter() - t0
    fs = f"slowfs {args.slowfs_delay_ms:g} ms" + (
        f", dentries cached {args.slowfs_entry_timeout:g} s" if args.slowfs_entry_timeout else "")
    rec = {"bench": "dirs", "fs": fs, "n": n,
           "layout": layout, "repeat": rep, "load": os.getloadavg()[0],
           "backing_create_s": round(made, 2)}

    def counted(fn, *a):
        before = m.stats()
        t0 = time.perf_counter()
        out = fn(*a)
        secs = time.perf_counter() - t0
        after = m.stats()
        ops = {k: after["counts"].get(k, 0) - before["counts"].get(k, 0)
               for k in after["counts"]}
        return out, secs, {k: v for k, v in ops.items() if v}, \
            after["metadata_ops"] - before["metadata_ops"]

    hits = rng.sample(names, args.lookups)
    (h, mi), _, ops, meta = counted(lookups, mroot, layout, hits, misses)
    rec["lookup_hit_us"] = round(h / args.lookups * 1e6, 1)
    rec["lookup_miss_us"] = round(mi / args.lookups * 1e6, 1)
    rec["lookup_ops_per_name"] = round(meta / (2 * args.lookups), 2)
    (secs, count), _, ops, meta = counted(listing, mroot, layout)
    assert count == n, (count, n)
    rec["list_s"] = round(secs, 3)
    rec["list_ops"] = ops
    extra = make_names(args.slowfs_creates, rng)
    paths = [path_of(mroot, layout, x) for x in extra]
    _, secs, ops, meta = counted(_create, paths)
    rec["create_us_per_file"] = round(secs / len(extra) * 1e6, 1)
    rec["create_ops_per_file"] = round(meta / len(extra), 2)
    extra2 = make_names(args.slowfs_creates, rng)
    secs = create_parallel_into(mroot, layout, extra2, args.slowfs_procs)
    rec["create_parallel_procs"] = args.slowfs_procs
    rec["create_parallel_us_per_file"] = round(secs / len(extra2) * 1e6, 1)
    shutil.rmtree(broot)
    assert slowfs.is_mounted(m.path)
    emit(rec, sink)
    log(f"{rec['fs']} n={n} {layout:7} stat hit {rec['lookup_hit_us']} us miss "
        f"{rec['lookup_miss_us']} us ({rec['lookup_ops_per_name']} ops), list {rec['list_s']} s, "
        f"create {rec['create_us_per_file']} us/file ({rec['create_ops_per_file']} ops), "
        f"{args.slowfs_procs} procs {rec['create_parallel_us_per_file']} us/file")
    return rec


def create_parallel_into(root: str, layout: str, names: list[str], procs: int) -> float:
    """Seconds for ``procs`` processes to create ``names`` into an existing tree."""
    paths = [path_of(root, layout, n) for n in names]
    ctx = mp.get_context("fork")
    start = ctx.Event()
    workers = [ctx.Process(target=_create, args=(paths[i::procs], start)) for i in range(procs)]
    for w in workers:
        w.start()
    time.sleep(0.2)
    t0 = time.perf_counter()
    start.set()
    for w in workers:
        w.join()
    if any(w.exitcode for w in workers):
        raise RuntimeError("a create process failed")
    return time.perf_counter() - t0


# ------------------------------------------------------------------ report


def table(recs: list[dict]) -> str:
    cols = [("create_s", "create s"), ("create_parallel_s", "create ‖ s"),
            ("create_us_per_file", "create us/file"),
            ("create_parallel_us_per_file", "create ‖ us/file"),
            ("lookup_hit_us", "stat hit us"), ("lookup_miss_us", "stat miss us"),
            ("lookup_ops_per_name", "ops/stat"), ("list_s", "list s"),
            ("list_after_prune_s", "list after prune s"), ("unlink_s", "unlink 99% s"),
            ("dir_alloc_bytes", "dir bytes")]
    groups: dict[tuple, list[dict]] = {}
    for r in recs:
        groups.setdefault((r["fs"], r["n"], r["layout"]), []).append(r)
    head = ["fs", "N", "layout", "runs"] + [c[1] for c in cols]
    rows = [head]
    for (fs, n, layout), rs in groups.items():
        row = [fs, str(n), layout, str(len(rs))]
        for key, _ in cols:
            vals = [r[key] for r in rs if key in r]
            if not vals:
                row.append("")
                continue
            med = statistics.median(vals)
            txt = f"{med:.4g}"
            if len(vals) > 1:
                txt += f" [{min(vals):.4g}-{max(vals):.4g}]"
            row.append(txt)
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(x.rjust(w) for x, w in zip(row, widths, strict=True))
                     for row in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000],
                    help="files per layout on the local disk (100000 1000000)")
    ap.add_argument("--repeats", type=int, nargs="+", default=[3, 1],
                    help="repeats per size, in --sizes order (last one for the rest)")
    ap.add_argument("--lookups", type=int, default=10_000, help="hits and misses each")
    ap.add_argument("--procs", type=int, default=2, help="parallel creators (2; 1 = skip)")
    ap.add_argument("--parallel-max", type=int, default=100_000,
                    help="parallel creates only up to this N (100000: at 1,000,000 the "
                    "extra pass would double the run time)")
    ap.add_argument("--dir", help="where the files go (default: a temp dir, removed)")
    ap.add_argument("--slowfs-sizes", type=int, nargs="*", default=[],
                    help="also on slowfs at these sizes (e.g. 100000)")
    ap.add_argument("--slowfs-delay-ms", type=float, default=1.0)
    ap.add_argument("--slowfs-repeats", type=int, default=1)
    ap.add_argument("--slowfs-entry-timeout", type=float, default=0.0,
                    help="kernel dentry cache timeout of the mount, s (0: a client that "
                    "caches nothing; e.g. 60: directories and found names are looked up "
                    "once, misses every time)")
    ap.add_argument("--slowfs-creates", type=int, default=2000,
                    help="files created through the mount into the full tree (2000)")
    ap.add_argument("--slowfs-procs", type=int, default=4, help="parallel creators (4)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="also write the JSON lines here")
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    base = Path(a.dir or tempfile.mkdtemp(prefix="xcache-dirs-")).resolve()
    base.mkdir(parents=True, exist_ok=True)
    sink = open(a.json, "w") if a.json else None
    recs: list[dict] = []
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    try:
        for i, n in enumerate(a.sizes):
            reps = a.repeats[min(i, len(a.repeats) - 1)]
            for rep in range(reps):
                order = LAYOUTS if rep % 2 == 0 else LAYOUTS[::-1]
                for layout in order:
                    recs.append(local_round(base, n, layout, a, rng, rep, sink))
        if a.slowfs_sizes:
            sys.path.insert(0, str(BENCH))
            import envs
            import slowfs

            with slowfs.slow_mount(delay_ms=a.slowfs_delay_ms, backing=base / "backing",
                                   mountpoint=base / "mnt",
                                   timeouts=(a.slowfs_entry_timeout, 0.0, 0.0),
                                   python=str(envs.slowfs_python(log)),
                                   log=base / "slowfs.log") as m:
                for n in a.slowfs_sizes:
                    for rep in range(a.slowfs_repeats):
                        order = LAYOUTS if rep % 2 == 0 else LAYOUTS[::-1]
                        for layout in order:
                            recs.append(slowfs_round(m, n, layout, a, rng, rep, sink))
        meta = {"bench": "meta", "dir": str(base), "sizes": a.sizes, "repeats": a.repeats,
                "lookups": a.lookups, "procs": a.procs, "slowfs_sizes": a.slowfs_sizes,
                "slowfs_delay_ms": a.slowfs_delay_ms,
                "slowfs_entry_timeout": a.slowfs_entry_timeout, "cpus": os.cpu_count(),
                "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
                "harness_s": round(time.perf_counter() - t_start, 1)}
        emit(meta, sink)
        print("\none directory vs 256 shards (medians [min-max]; ‖ = created by "
              f"{a.procs} processes at once locally, {a.slowfs_procs} on slowfs)\n"
              + table(recs))
    finally:
        if sink:
            sink.close()
        shutil.rmtree(base / "backing", ignore_errors=True)
        if not a.dir:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
