"""This project and executorlib side by side on a slow-metadata file system.

    python bench/bench_slowfs.py [--delay-ms 1] [--cold 500] [--warm 2000] [--ls 20000]
                                 [--repeats 3] [--executorlib-ls-repeats K]
                                 [--sides ours executorlib]
                                 [--ours-checkout PATH [--label NAME]]... [--workdir DIR]
                                 [--json FILE]

Mounts ``bench/slowfs.py`` (a FUSE passthrough that sleeps ``--delay-ms`` in every
metadata operation, kernel caches off) over a backing directory and, in one run with
the sides interleaved in every repeat, measures

* ``cold``: N trivial calls ``inc(i)`` on an empty cache (``_meta_run.py``; ours:
  SingleNodeExecutor with max_workers=2; executorlib: TestClusterExecutor, the
  local file-cache path of ``cases_executorlib.py``);
* ``warm``: a re-run of N calls that are all in the cache (filled beforehand on the
  backing directory, i.e. at local-disk speed: ours by a real cold run, executorlib
  by ``cases_executorlib.py fill``);
* ``ls``: ours ``xcache ls > /dev/null`` over N entries (made with the checkout's
  own ``bench/bench_ls.py`` ``create()``, fast mode); executorlib has no ``ls``, its
  nearest equivalent is ``executorlib.get_cache_data(cache_dir)`` (in a fresh
  interpreter, like ``xcache ls``), over N entries made by ``fill``.

For each measurement it reports the wall time and the operations the FUSE daemon
served during it (its exact counters, read before and after), per call/entry; then
medians, min-max and the ratio of the medians of this run to the first "ours".

``--ours-checkout PATH`` runs "ours" from another checkout (e.g. a git worktree of
an older commit: ``git worktree add /tmp/v1 <commit>``), installed editable in its
own venv ``bench/.venvs/xcache-<hash>`` (``envs.checkout_python``).  Give it more
than once to compare formats in the same run (e.g. v1 and v2): each checkout is a
side ``ours:<label>`` (``--label``, once per checkout, default ``git describe``).
Needs /dev/fuse, root (or fusermount3) and the Debian package ``fuse3``; see
bench/README.md.
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
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import envs  # noqa: E402
import slowfs  # noqa: E402

RUNNER = BENCH / "_meta_run.py"
SIDES = ("ours", "executorlib")
GET_CACHE_DATA = ("import sys, executorlib; rows = executorlib.get_cache_data(sys.argv[1]); "
                  "print(len(rows))")
BENCH_LS_CREATE = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
                   "import bench_ls; print(bench_ls.create(Path(sys.argv[2]), int(sys.argv[3]), "
                   "'fast', int(sys.argv[4])))")


def log(msg: str) -> None:
    print(f"[bench_slowfs {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], timeout: float, env: dict | None = None, cwd: Path | None = None,
        stdout=subprocess.PIPE) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env,
                       cwd=cwd, timeout=timeout)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {p.returncode}: {p.stderr[-1500:]}")
    return p, wall


def delta(before: dict, after: dict) -> dict:
    keys = set(before["counts"]) | set(after["counts"])
    d = {k: after["counts"].get(k, 0) - before["counts"].get(k, 0) for k in sorted(keys)}
    d = {k: v for k, v in d.items() if v}
    return {
        "ops": d,
        "metadata_ops": after["metadata_ops"] - before["metadata_ops"],
        "namespace_ops": after["namespace_ops"] - before["namespace_ops"],
        "lookup_ops": after["lookup_ops"] - before["lookup_ops"],
        "listing_ops": after["listing_ops"] - before["listing_ops"],
        "data_ops": after["data_ops"] - before["data_ops"],
        "errors": sum(after["errors"].values()) - sum(before["errors"].values()),
    }


@dataclass
class Side:
    """One column of the comparison: executorlib, or ours from one checkout."""

    name: str  # "executorlib", "ours" or "ours:<label>"
    kind: str  # "executorlib" or "ours" (the side argument of _meta_run.py)
    python: str
    label: str
    checkout: Path | None = None  # ours only
    env: dict = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return "".join(ch if ch.isalnum() else "_" for ch in self.name)


class Bench:
    def __init__(self, args, sides: list[Side], work: Path):
        self.a, self.sides, self.work = args, sides, work
        self.backing, self.mnt = work / "backing", work / "mnt"
        self.m: slowfs.SlowMount | None = None

    # -- preparation on the backing directory (local disk speed, not counted)
    def prepare(self) -> None:
        a, b = self.a, self.backing
        b.mkdir(parents=True, exist_ok=True)
        for s in self.sides:
            if a.warm:
                d = b / f"{s.slug}-warm" / "cache"
                # the same script as the warm run, so that the keys match
                _, wall = run([s.python, str(RUNNER), s.kind, "--case", "fill", "--n",
                               str(a.warm), "--dir", str(d), "--workers", "2"], 3600,
                              s.env, self.work)
                log(f"filled {s.name} warm cache ({a.warm} calls) in {wall:.1f} s")
            if not a.ls:
                continue
            d = b / f"{s.slug}-ls" / "cache"
            if s.kind == "ours":
                assert s.checkout is not None
                ls_py = s.checkout / "bench" / "bench_ls.py"
                if not ls_py.exists():
                    raise SystemExit(f"{ls_py} is missing: cannot fill the ls cache of {s.name}")
                _, wall = run([s.python, "-c", BENCH_LS_CREATE, str(ls_py.parent), str(d),
                               str(a.ls), "2"], 3600, s.env, self.work)
                log(f"filled {s.name} ls cache ({a.ls} entries, {ls_py} fast mode) "
                    f"in {wall:.1f} s")
            else:
                _, wall = run([s.python, str(BENCH / "cases_executorlib.py"), "fill", "--n",
                               str(a.ls), "--dir", str(d)], 3600, s.env, BENCH)
                log(f"filled {s.name} ls cache ({a.ls} entries, cases_executorlib.py fill) "
                    f"in {wall:.1f} s")

    # -- one measurement through the mount
    def measure(self, bench: str, s: Side, n: int, repeat: int) -> dict:
        a = self.a
        assert self.m is not None
        rec = {"bench": bench, "side": s.name, "n": n, "repeat": repeat, "label": s.label,
               "delay_ms": a.delay_ms}
        sub = f"{s.slug}-{bench}" + (f"-{repeat}" if bench == "cold" else "")
        if bench == "cold":
            (self.backing / sub / "cache").mkdir(parents=True)
        cache = self.mnt / sub / "cache"
        if bench in ("cold", "warm"):
            cmd = [s.python, str(RUNNER), s.kind, "--n", str(n), "--dir", str(cache),
                   "--workers", "2"]
        elif s.kind == "ours":
            cmd = [s.python, "-m", "executorlib_cache", "--cache-dir", str(cache), "ls"]
        else:
            cmd = [s.python, "-c", GET_CACHE_DATA, str(cache)]
        before = self.m.stats()
        try:
            p, wall = run(cmd, a.timeout, s.env, self.work,
                          stdout=subprocess.DEVNULL if bench == "ls" and s.kind == "ours"
                          else subprocess.PIPE)
        except subprocess.TimeoutExpired:
            return rec | {"error": f"timeout after {a.timeout:.0f} s"}
        except RuntimeError as e:
            return rec | {"error": str(e)}
        d = delta(before, self.m.stats())
        rec |= {"seconds": round(wall, 3), "fs": d,
                "metadata_ops_per_call": round(d["metadata_ops"] / n, 2)}
        if bench in ("cold", "warm"):
            out = json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])
            rec["executor_s"] = out["seconds"]
        elif s.kind == "executorlib":
            rec["rows"] = int(p.stdout.split()[-1])
        if bench == "warm" and d["ops"].get("create", 0) > n / 2:
            rec["warning"] = "files created during the warm re-run: cache misses?"
            log(f"WARNING {s.name} warm: {d['ops'].get('create')} creates for {n} calls")
        if bench == "cold":  # keep the backing dir small
            shutil.rmtree(self.backing / sub, ignore_errors=True)
        return rec

    def plan(self) -> list[tuple[str, Side, int]]:
        a, items = self.a, []
        for bench, n in (("cold", a.cold), ("warm", a.warm), ("ls", a.ls)):
            if not n:
                continue
            for s in self.sides:
                capped = bench == "cold" and s.kind == "executorlib"
                items.append((bench, s, min(n, a.executorlib_cold_max) if capped else n))
        return items


def summarize(recs: list[dict]) -> tuple[list[dict], str]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in recs:
        groups.setdefault((r["bench"], r["side"]), []).append(r)
    first_ours = {}  # bench -> the records of the first ours side
    for (bench, side), rs in groups.items():
        if side.startswith("ours") and bench not in first_ours:
            first_ours[bench] = rs
    rows, summary = [], []
    for (bench, side), rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            rows.append([bench, side, rs[0]["label"], str(rs[0]["n"]), "error"] + [""] * 7)
            summary.append({"bench": bench, "side": side, "error": rs[0]["error"]})
            continue
        secs = [r["seconds"] for r in ok]
        med = statistics.median(secs)
        n = ok[0]["n"]
        fs = ok[-1]["fs"]

        def per(k: str, fs: dict = fs, n: int = n) -> str:
            return f"{fs[k] / n:.2f}"

        s = {"bench": bench, "side": side, "label": ok[0]["label"], "n": n, "median_s": med,
             "min_s": min(secs), "max_s": max(secs), "runs": len(ok),
             "metadata_ops_per_call": round(fs["metadata_ops"] / n, 2),
             "fs_ops_last_run": fs["ops"]}
        ref = first_ours.get(bench)
        ratio = ""
        if ref is not None and ref is not rs:
            o = [r["seconds"] for r in ref if "error" not in r]
            if o and ref[0]["n"] == n:
                s["ratio_to_first_ours"] = round(med / statistics.median(o), 2)
                ratio = f"{s['ratio_to_first_ours']:.2f}x"
            elif o:
                ratio = f"(N {n} vs {ref[0]['n']})"
        summary.append(s)
        rows.append([bench, side, ok[0]["label"], str(n), f"{med:.2f}",
                     f"{min(secs):.2f}-{max(secs):.2f}", str(len(ok)), per("metadata_ops"),
                     per("namespace_ops"), per("lookup_ops"), per("listing_ops"), ratio])
    head = ["bench", "side", "label", "N", "median s", "range", "runs", "meta ops/call",
            "namespace", "lookups", "readdirs", "vs first ours"]
    rows = [head] + rows
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    text = "\n".join("  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True))
                     for row in rows)
    return summary, text


def make_sides(a) -> list[Side]:
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    sides = []
    if "ours" in a.sides:
        checkouts = [Path(c).resolve() for c in (a.ours_checkout or [envs.ROOT])]
        labels = list(a.label or [])
        for i, root in enumerate(checkouts):
            label = labels[i] if i < len(labels) else subprocess.run(
                ["git", "-C", str(root), "describe", "--always", "--dirty"],
                capture_output=True, text=True).stdout.strip() or root.name
            py = envs.checkout_python(root, log)
            name = "ours" if len(checkouts) == 1 else f"ours:{label}"
            sides.append(Side(name, "ours", str(py), label, root, dict(base_env)))
    if "executorlib" in a.sides:
        sides.append(Side("executorlib", "executorlib", str(envs.anchor_python(log)),
                          f"executorlib {envs.ANCHOR_VERSION}", None, dict(base_env)))
    return sides


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delay-ms", type=float, default=1.0, help="metadata delay (1 ms)")
    ap.add_argument("--entry-timeout", type=float, default=0.0,
                    help="seconds the kernel caches a looked-up name (0: every path "
                         "component is a round trip; a Lustre/NFS client caches them)")
    ap.add_argument("--cold", type=int, default=500, help="cold calls (500; 0 = skip)")
    ap.add_argument("--warm", type=int, default=2000, help="warm re-run calls (2000; 0 = skip)")
    ap.add_argument("--ls", type=int, default=20000, help="entries listed (20000; 0 = skip)")
    ap.add_argument("--executorlib-cold-max", type=int, default=500,
                    help="cap executorlib's cold N (its cold runs are slow)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--executorlib-ls-repeats", type=int, default=None,
                    help="run executorlib's ls (get_cache_data) only in the first K "
                    "repeats (default: every repeat; ~18 min per run at 20,000 entries)")
    ap.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    ap.add_argument("--ours-checkout", action="append",
                    help="run ours from this checkout (own editable venv); repeatable")
    ap.add_argument("--label", action="append",
                    help="name of each --ours-checkout (default: git describe)")
    ap.add_argument("--workdir", help="backing dir, mount point, log (default: temp, removed)")
    ap.add_argument("--json", help="also write the JSON lines here")
    ap.add_argument("--timeout", type=float, default=1800, help="per measurement, seconds")
    a = ap.parse_args(argv)

    sides = make_sides(a)
    daemon_python = str(envs.slowfs_python(log))
    work = Path(a.workdir or tempfile.mkdtemp(prefix="xcache-slowfs-")).resolve()
    if slowfs.is_mounted(work / "mnt"):
        raise SystemExit(f"{work / 'mnt'} is still mounted: bench/slowfs.py umount it first")
    if (work / "backing").exists():
        shutil.rmtree(work / "backing")
    work.mkdir(parents=True, exist_ok=True)
    b = Bench(a, sides, work)
    recs: list[dict] = []
    sink = open(a.json, "w") if a.json else None
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    caches = (f"names cached {a.entry_timeout:g} s, attributes not" if a.entry_timeout
              else "kernel caches off")
    try:
        b.prepare()
        with slowfs.slow_mount(delay_ms=a.delay_ms, backing=b.backing, mountpoint=b.mnt,
                               python=daemon_python, log=work / "slowfs.log",
                               timeouts=(a.entry_timeout, 0.0, 0.0)) as m:
            b.m = m
            log(f"mounted {m} (delay {a.delay_ms} ms, {caches})")
            items = b.plan()
            for r in range(a.repeats):
                for bench, s, n in items:
                    if (bench == "ls" and s.kind == "executorlib"
                            and a.executorlib_ls_repeats is not None
                            and r >= a.executorlib_ls_repeats):
                        continue
                    rec = b.measure(bench, s, n, r)
                    recs.append(rec)
                    line = json.dumps(rec)
                    print(line, flush=True)
                    if sink:
                        sink.write(line + "\n")
                        sink.flush()
                    what = rec.get("error") or (f"{rec['seconds']} s, "
                                                f"{rec['metadata_ops_per_call']} meta ops/call")
                    log(f"repeat {r} {bench:5} {s.name:12} n={n:<6} {what}")
        summary, text = summarize(recs)
        meta = {"bench": "meta", "delay_ms": a.delay_ms, "entry_timeout": a.entry_timeout,
                "repeats": a.repeats,
                "executorlib_ls_repeats": a.executorlib_ls_repeats,
                "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
                "sides": {s.name: {"label": s.label, "checkout": str(s.checkout or ""),
                                   "versions": envs.versions(s.python)} for s in sides},
                "machine": envs.machine(work),
                "harness_s": round(time.perf_counter() - t_start, 1), "summary": summary}
        print(json.dumps(meta))
        if sink:
            sink.write(json.dumps(meta) + "\n")
        print(f"\nslow-metadata FS (slowfs, {a.delay_ms} ms per metadata op, {caches}); "
              f"medians of {a.repeats} interleaved runs; ops counted by the FUSE "
              f"daemon (last run) per call or per listed entry\n{text}")
    finally:
        if sink:
            sink.close()
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if any("error" in r for r in recs) else 0


if __name__ == "__main__":
    sys.exit(main())
