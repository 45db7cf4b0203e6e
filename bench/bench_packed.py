"""Metadata operations per call of the packed cluster path, counted by the slowfs daemon.

    python bench/bench_packed.py [--n 100] [--workers 2] [--repeats 3] [--delay-ms 0]
                                 [--cases packed [trivial]]
                                 [--ours-checkout PATH [--label NAME]]... [--workdir DIR]
                                 [--json FILE]

``SlurmClusterExecutor(max_workers=K)`` runs its calls in K worker jobs that slurmd
starts: ``strace -f`` on the driver cannot follow them (``bench_metadata.py``
sees the driver only).  Here the cache sits on ``bench/slowfs.py`` (a FUSE
passthrough, ``--delay-ms 0`` by default: nothing is slowed down, only counted),
mounted with ``--by-process`` so that the daemon also counts per requesting
process and records its ancestry.  SLURM jobs run as root on this machine and see
the mount.  For each repeat and side (sides interleaved):

* ``cold``: N trivial calls ``inc(i)`` on an empty cache (``_meta_run.py --case
  packed``), then the harness waits until every SLURM job whose script lies under
  the cache has left ``squeue`` and the counters have stopped moving (a worker
  job's last polls and exit record are counted);
* ``warm``: the same N calls again on that cache (all hits);
* ``empty``: the executor with no call on another empty cache: the one-time cost of
  making a cache (format 2: 256 shard directories, ``.format``, ``.lock``), which a
  cold run of N calls pays once.  ``cold - empty`` (in the table: ``cold/marginal``)
  is the cost of one more call.

The operations the daemon served between the two snapshots are divided by N, split
into **driver** (the driver process and its children: ``sbatch``, ``squeue``),
**jobs** (every process below a ``slurmstepd``: the batch script and the pool
worker) and **other** (requests the kernel sends with no process, e.g. a
``release`` after the process exited).  ``--cases trivial`` adds the local
``SingleNodeExecutor(max_workers=K)`` on the same mount, as a reference that relates
these counts to ``bench_metadata.py``'s strace counts.

With the kernel caches off (slowfs' default) every path component of every system
call reaches the daemon as a ``getattr`` (LOOKUP), so a call on
``<mnt>/<side>/cache/<hh>/<file>`` costs 4 of them: these counts are what a metadata
server sees from a client that caches nothing (an upper bound; see bench/README.md).
``--entry-timeout 60`` lets the kernel keep dentries (directories and existing files
are looked up once; attributes and misses still reach the daemon every time): close
to one operation per system call, like a client that caches names.
The worker jobs poll the queue directory while idle (every 0.05-1 s, up to 3 s
before they exit), so part of the jobs' count depends on timing: compare sides
measured in the same run.  ``--ours-checkout`` (repeatable, with ``--label``) runs
ours from another checkout in its own venv (``envs.checkout_python``), as in
``bench_slowfs.py``.  Needs /dev/fuse, root, ``fuse3``, a running SLURM (``sinfo``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import envs  # noqa: E402
import slowfs  # noqa: E402
from bench_slowfs import Side, make_sides  # noqa: E402

RUNNER = BENCH / "_meta_run.py"
ROLES = ("driver", "jobs", "other")


def log(msg: str) -> None:
    print(f"[bench_packed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def role(chain: list, driver_pid: int) -> str:
    """``driver`` (the driver or a descendant), ``jobs`` (below a slurmstepd) or
    ``other``, from the ancestry the daemon recorded at the first request."""
    pids = [p for p, _ in chain]
    if driver_pid in pids:
        return "driver"
    if any(name.startswith("slurmstepd") for _, name in chain):
        return "jobs"
    return "other"


def op_delta(before: dict, after: dict) -> Counter:
    return Counter({k: after.get(k, 0) - before.get(k, 0)
                    for k in set(before) | set(after)
                    if after.get(k, 0) - before.get(k, 0)})


def split_by_role(before: dict, after: dict, driver_pid: int) -> dict[str, Counter]:
    out = {r: Counter() for r in ROLES}
    b, a = before.get("by_process", {}), after.get("by_process", {})
    for pid, rec in a.items():
        d = op_delta(b.get(pid, {}).get("counts", {}), rec["counts"])
        out[role(rec["chain"], driver_pid)].update(d)
    return out


def summarize_ops(ops: Counter) -> dict[str, int]:
    return {
        "metadata": sum(v for k, v in ops.items() if k in slowfs.META_OPS),
        "namespace": sum(v for k, v in ops.items() if k in slowfs.NAMESPACE_OPS),
        "lookups": sum(v for k, v in ops.items() if k in slowfs.LOOKUP_OPS),
        "readdir": ops.get("readdir", 0),
        "data": sum(v for k, v in ops.items() if k in slowfs.DATA_OPS),
    }


def our_jobs(cache: Path) -> list[str]:
    """Ids of SLURM jobs whose batch script lies under ``cache`` (still queued or
    running)."""
    p = subprocess.run(["squeue", "-h", "-o", "%i|%o"], capture_output=True, text=True)
    root = str(cache)
    return [ln.split("|", 1)[0] for ln in p.stdout.splitlines()
            if "|" in ln and root in ln.split("|", 1)[1]]


def settle(m: slowfs.SlowMount, cache: Path, timeout: float) -> float:
    """Wait until no job of ``cache`` is in squeue and the counters are still for 1 s;
    return the seconds waited."""
    t0 = time.monotonic()
    last, still_since = None, None
    while time.monotonic() - t0 < timeout:
        jobs = our_jobs(cache)
        total = m.stats()["metadata_ops"]
        now = time.monotonic()
        if jobs or total != last:
            last, still_since = total, now
        elif now - still_since >= 1.0:
            break
        time.sleep(0.2)
    else:
        log(f"WARNING: jobs of {cache} still listed after {timeout:.0f} s: {our_jobs(cache)}")
    return round(time.monotonic() - t0, 2)


def measure(m: slowfs.SlowMount, s: Side, case: str, phase: str, n: int, workers: int,
            cache: Path, work: Path, timeout: float) -> dict:
    rec = {"bench": "packed_meta", "case": case, "phase": phase, "side": s.name,
           "label": s.label, "n": n, "workers": workers}
    cmd = [s.python, str(RUNNER), s.kind, "--case", case, "--n", str(n), "--dir", str(cache),
           "--workers", str(workers)]
    before = m.stats()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=s.env, cwd=work)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return rec | {"error": f"timeout after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return rec | {"error": f"exited {proc.returncode}: {err[-1500:]}"}
    waited = settle(m, cache, 120) if case == "packed" else 0.0
    after = m.stats()
    res = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    total = op_delta(before["counts"], after["counts"])
    roles = split_by_role(before, after, proc.pid)
    n = max(n, 1)  # empty: totals
    rec |= {
        "seconds": round(wall, 3), "executor_s": res["seconds"], "settle_s": waited,
        "ops": dict(sorted(total.items())),
        "per_call": {k: round(v / n, 3) for k, v in summarize_ops(total).items()},
        "ops_per_call": {k: round(v / n, 3) for k, v in sorted(total.items())},
        "by_role": {r: dict(sorted(c.items())) for r, c in roles.items() if c},
        "by_role_per_call": {r: {k: round(v / n, 3) for k, v in summarize_ops(c).items()}
                             for r, c in roles.items() if c},
        "processes": {r: sum(1 for pid, p in after.get("by_process", {}).items()
                             if role(p["chain"], proc.pid) == r
                             and op_delta(before.get("by_process", {}).get(pid, {})
                                          .get("counts", {}), p["counts"]))
                      for r in ROLES},
        "errors": sum(after["errors"].values()) - sum(before["errors"].values()),
        "other_processes": [
            {"pid": pid, "chain": p["chain"][:4],
             "ops": dict(op_delta(before.get("by_process", {}).get(pid, {}).get("counts", {}),
                                  p["counts"]))}
            for pid, p in after.get("by_process", {}).items()
            if role(p["chain"], proc.pid) == "other"
            and op_delta(before.get("by_process", {}).get(pid, {}).get("counts", {}),
                         p["counts"])],
    }
    if phase == "warm" and total.get("create", 0) > n / 2:
        rec["warning"] = "files created during the warm re-run: cache misses?"
    return rec


def marginal(recs: list[dict]) -> list[dict]:
    """Per (case, side): ``cold - empty`` of the same repeat, per call (the cost of one
    more call, without the one-time making of the cache)."""
    by = {(r["case"], r["side"], r["repeat"], r["phase"]): r for r in recs if "error" not in r}
    out = []
    for (case, side, rep, phase), cold in by.items():
        empty = by.get((case, side, rep, "empty"))
        if phase != "cold" or empty is None:
            continue
        n = cold["n"]

        def sub(a: dict, b: dict, n: int = n) -> dict:
            return {k: round((a.get(k, 0) - b.get(k, 0)) / n, 3) for k in set(a) | set(b)}

        roles = {ro: sub(summarize_ops(Counter(cold["by_role"].get(ro, {}))),
                         summarize_ops(Counter(empty["by_role"].get(ro, {}))))
                 for ro in ROLES}
        out.append(cold | {
            "phase": "cold/marginal", "seconds": cold["seconds"],
            "per_call": sub(summarize_ops(Counter(cold["ops"])),
                            summarize_ops(Counter(empty["ops"]))),
            "ops_per_call": sub(cold["ops"], empty["ops"]),
            "by_role_per_call": roles})
    return out


def table(recs: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in recs + marginal(recs):
        if "error" not in r:
            groups.setdefault((r["case"], r["side"], r["phase"]), []).append(r)
    kinds = ("getattr", "create", "mkdir", "rename", "unlink", "open", "opendir", "readdir")
    head = ["case", "side", "phase", "runs", "wall s", "meta/call", "driver", "jobs",
            "other", "ns", "lookups", "readdir", *kinds]
    rows = [head]
    for (case, side, phase), rs in groups.items():
        def med(f, rs=rs):
            return statistics.median(f(r) for r in rs)
        secs = [r["seconds"] for r in rs]
        row = [case, side, phase, str(len(rs)),
               f"{statistics.median(secs):.2f} [{min(secs):.2f}-{max(secs):.2f}]",
               f"{med(lambda r: r['per_call']['metadata']):.2f}"]
        for ro in ROLES:
            per_role = med(lambda r, ro=ro: r['by_role_per_call'].get(ro, {}).get('metadata', 0))
            row.append(f"{per_role:.2f}")
        row += [f"{med(lambda r, k=k: r['per_call'][k]):.2f}"
                for k in ("namespace", "lookups", "readdir")]
        row += [f"{med(lambda r, k=k: r['ops_per_call'].get(k, 0)):.2f}" for k in kinds]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(x.rjust(w) for x, w in zip(row, widths, strict=True))
                     for row in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="calls per phase (100)")
    ap.add_argument("--workers", type=int, default=2, help="max_workers (2)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--delay-ms", type=float, default=0.0,
                    help="slowfs metadata delay (0: count only)")
    ap.add_argument("--entry-timeout", type=float, default=0.0,
                    help="kernel dentry cache timeout of the mount, s (0: every path "
                    "component of every call is looked up; e.g. 60: directories and "
                    "existing files are looked up once, like a client that caches "
                    "dentries; attributes and misses are never cached)")
    ap.add_argument("--cases", nargs="+", choices=("packed", "trivial"), default=["packed"],
                    help="packed: SlurmClusterExecutor(max_workers); trivial: the local "
                    "SingleNodeExecutor(max_workers) as a reference")
    ap.add_argument("--ours-checkout", action="append",
                    help="run ours from this checkout (own editable venv); repeatable")
    ap.add_argument("--label", action="append", help="name of each --ours-checkout")
    ap.add_argument("--workdir", help="backing dir, mount point (default: temp, removed)")
    ap.add_argument("--json", help="also write the JSON lines here")
    ap.add_argument("--timeout", type=float, default=600, help="per phase, seconds")
    a = ap.parse_args(argv)
    if "packed" in a.cases and subprocess.run(["sinfo"], capture_output=True).returncode:
        raise SystemExit("sinfo does not answer: start SLURM (scripts/start-slurm.sh)")

    a.sides = ["ours"]
    sides = make_sides(a)
    daemon_python = str(envs.slowfs_python(log))
    work = Path(a.workdir or tempfile.mkdtemp(prefix="xcache-packed-")).resolve()
    backing, mnt = work / "backing", work / "mnt"
    if slowfs.is_mounted(mnt):
        raise SystemExit(f"{mnt} is still mounted: bench/slowfs.py umount it first")
    if backing.exists():
        shutil.rmtree(backing)
    work.mkdir(parents=True, exist_ok=True)
    recs: list[dict] = []
    sink = open(a.json, "w") if a.json else None
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    try:
        with slowfs.slow_mount(delay_ms=a.delay_ms, backing=backing, mountpoint=mnt,
                               python=daemon_python, log=work / "slowfs.log",
                               timeouts=(a.entry_timeout, 0.0, 0.0), by_process=True) as m:
            log(f"mounted {m} (delay {a.delay_ms} ms, kernel caches off, per process)")
            for r in range(a.repeats):
                for case in a.cases:
                    for s in sides:
                        sub = f"{s.slug}-{case}-{r}"
                        for d in ("cache", "empty"):
                            (backing / sub / d).mkdir(parents=True)
                        for phase in ("empty", "cold", "warm"):
                            cache = mnt / sub / ("empty" if phase == "empty" else "cache")
                            n = 0 if phase == "empty" else a.n
                            rec = measure(m, s, case, phase, n, a.workers, cache, work,
                                          a.timeout) | {"repeat": r}
                            recs.append(rec)
                            line = json.dumps(rec)
                            print(line, flush=True)
                            if sink:
                                sink.write(line + "\n")
                                sink.flush()
                            roles = rec.get("by_role_per_call", {})
                            what = rec.get("error") or (
                                f"{rec['seconds']} s, {rec['per_call']['metadata']} meta "
                                f"ops/call (driver "
                                f"{roles.get('driver', {}).get('metadata', 0)}"
                                f", jobs {roles.get('jobs', {}).get('metadata', 0)})")
                            log(f"repeat {r} {case} {s.name} {phase} n={n}: {what}")
                        shutil.rmtree(backing / sub, ignore_errors=True)
        meta = {"bench": "meta", "n": a.n, "workers": a.workers, "repeats": a.repeats,
                "delay_ms": a.delay_ms, "entry_timeout": a.entry_timeout, "cases": a.cases,
                "sides": {s.name: {"label": s.label, "checkout": str(s.checkout or ""),
                                   "versions": envs.versions(s.python)} for s in sides},
                "machine": envs.machine(work), "loadavg_start": load_start,
                "loadavg_end": os.getloadavg(),
                "harness_s": round(time.perf_counter() - t_start, 1)}
        print(json.dumps(meta))
        if sink:
            sink.write(json.dumps(meta) + "\n")
        print(f"\nFUSE daemon operations per call (N={a.n}, max_workers={a.workers}, medians "
              f"of {a.repeats} interleaved runs, kernel entry timeout {a.entry_timeout:g} s; "
              f"driver = driver process tree, jobs = processes under slurmstepd; the empty "
              f"rows are totals)\n{table(recs)}")
    finally:
        if sink:
            sink.close()
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if any("error" in r for r in recs) else 0


if __name__ == "__main__":
    sys.exit(main())
