"""This project and executorlib side by side on a slow-metadata file system.

    python bench/bench_slowfs.py [--delay-ms 1] [--cold 500] [--warm 2000] [--ls 20000]
                                 [--repeats 3] [--sides ours executorlib]
                                 [--ours-checkout PATH] [--workdir DIR] [--json FILE]

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
medians, min-max and the ratio executorlib/ours of the medians of this run.

``--ours-checkout PATH`` runs "ours" from another checkout (e.g. a git worktree of
an older commit: ``git worktree add /tmp/v1 <commit>``), installed editable in its
own venv ``bench/.venvs/xcache-<hash>`` (``envs.checkout_python``); ``--label``
names it in the output.  Needs /dev/fuse, root (or fusermount3) and the Debian
package ``fuse3``; see bench/README.md.
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


class Bench:
    def __init__(self, args, pythons: dict[str, str], envs_: dict[str, dict], work: Path):
        self.a, self.py, self.env, self.work = args, pythons, envs_, work
        self.backing, self.mnt = work / "backing", work / "mnt"
        self.m: slowfs.SlowMount | None = None

    # -- preparation on the backing directory (local disk speed, not counted)
    def prepare(self) -> None:
        a, b = self.a, self.backing
        b.mkdir(parents=True, exist_ok=True)
        if "ours" in a.sides and a.warm:
            d = b / "ours-warm" / "cache"
            d.mkdir(parents=True)
            _, wall = run([self.py["ours"], str(RUNNER), "ours", "--case", "fill", "--n",
                           str(a.warm), "--dir", str(d), "--workers", "2"], 3600,
                          self.env["ours"], self.work)
            log(f"filled ours warm cache ({a.warm} calls, real cold run on the backing "
                f"dir) in {wall:.1f} s")
        if "executorlib" in a.sides and a.warm:
            self._el_fill(b / "el-warm" / "cache", a.warm, runner=True)
        if "ours" in a.sides and a.ls:
            ls_py = Path(a.ours_checkout or envs.ROOT) / "bench" / "bench_ls.py"
            if not ls_py.exists():
                raise SystemExit(f"{ls_py} is missing: cannot fill ours ls cache")
            p, wall = run([self.py["ours"], "-c", BENCH_LS_CREATE, str(ls_py.parent),
                           str(b / "ours-ls" / "cache"), str(a.ls), "2"], 3600,
                          self.env["ours"], self.work)
            log(f"filled ours ls cache ({a.ls} entries, {ls_py} fast mode) in {wall:.1f} s")
        if "executorlib" in a.sides and a.ls:
            self._el_fill(b / "el-ls" / "cache", a.ls)

    def _el_fill(self, d: Path, n: int, runner: bool = False) -> None:
        if runner:  # same script as the warm run, so that the keys match
            _, wall = run([self.py["executorlib"], str(RUNNER), "executorlib", "--case",
                           "fill", "--n", str(n), "--dir", str(d)], 3600,
                          self.env["executorlib"], self.work)
            log(f"filled executorlib cache {d.parent.name} ({n} entries, fill) in {wall:.1f} s")
            return
        _, wall = run([self.py["executorlib"], str(BENCH / "cases_executorlib.py"), "fill",
                       "--n", str(n), "--dir", str(d)], 3600, self.env["executorlib"], BENCH)
        log(f"filled executorlib cache {d.parent.name} ({n} entries, fill) in {wall:.1f} s")

    # -- one measurement through the mount
    def measure(self, bench: str, side: str, n: int, repeat: int) -> dict:
        a = self.a
        assert self.m is not None
        rec = {"bench": bench, "side": side, "n": n, "repeat": repeat,
               "label": a.label if side == "ours" else "executorlib 1.11.0",
               "delay_ms": a.delay_ms}
        if bench == "cold":
            sub = f"{side}-cold-{repeat}"
            (self.backing / sub / "cache").mkdir(parents=True)
        elif bench == "warm":
            sub = f"{'ours' if side == 'ours' else 'el'}-warm"
        else:
            sub = f"{'ours' if side == 'ours' else 'el'}-ls"
        cache = self.mnt / sub / "cache"
        if bench in ("cold", "warm"):
            cmd = [self.py[side], str(RUNNER), side, "--n", str(n), "--dir", str(cache),
                   "--workers", "2"]
        elif side == "ours":
            cmd = [self.py[side], "-m", "executorlib_cache", "--cache-dir", str(cache), "ls"]
        else:
            cmd = [self.py[side], "-c", GET_CACHE_DATA, str(cache)]
        timeout = a.timeout
        before = self.m.stats()
        try:
            p, wall = run(cmd, timeout, self.env[side], self.work,
                          stdout=subprocess.DEVNULL if bench == "ls" and side == "ours"
                          else subprocess.PIPE)
        except subprocess.TimeoutExpired:
            return rec | {"error": f"timeout after {timeout:.0f} s"}
        except RuntimeError as e:
            return rec | {"error": str(e)}
        d = delta(before, self.m.stats())
        rec |= {"seconds": round(wall, 3), "fs": d,
                "metadata_ops_per_call": round(d["metadata_ops"] / n, 2)}
        if bench in ("cold", "warm"):
            out = json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])
            rec["executor_s"] = out["seconds"]
        elif side == "executorlib":
            rec["rows"] = int(p.stdout.split()[-1])
        if bench == "warm" and d["ops"].get("create", 0) > n / 2:
            rec["warning"] = "files created during the warm re-run: cache misses?"
            log(f"WARNING {side} warm: {d['ops'].get('create')} creates for {n} calls")
        if bench == "cold":  # keep the backing dir small
            shutil.rmtree(self.backing / sub, ignore_errors=True)
        return rec

    def plan(self) -> list[tuple[str, str, int]]:
        a, items = self.a, []
        for bench, n in (("cold", a.cold), ("warm", a.warm), ("ls", a.ls)):
            if not n:
                continue
            for side in a.sides:
                if side == "executorlib" and bench == "cold":
                    n_side = min(n, a.executorlib_cold_max)
                else:
                    n_side = n
                items.append((bench, side, n_side))
        return items


def summarize(recs: list[dict]) -> tuple[list[dict], str]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in recs:
        groups.setdefault((r["bench"], r["side"]), []).append(r)
    rows, summary = [], []
    for (bench, side), rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            rows.append([bench, side, rs[0]["label"], str(rs[0]["n"]), "error", "", "", "", "",
                         "", ""])
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
        other = groups.get((bench, "ours"))
        ratio = ""
        if side == "executorlib" and other:
            o = [r["seconds"] for r in other if "error" not in r]
            if o and other[0]["n"] == n:
                s["ratio_vs_ours"] = round(med / statistics.median(o), 2)
                ratio = f"{s['ratio_vs_ours']:.1f}x"
            elif o:
                ratio = f"(n differs: {other[0]['n']} vs {n})"
        summary.append(s)
        rows.append([bench, side, ok[0]["label"], str(n), f"{med:.2f}",
                     f"{min(secs):.2f}-{max(secs):.2f}", str(len(ok)), per("metadata_ops"),
                     per("namespace_ops"), per("lookup_ops"), per("listing_ops"), ratio])
    head = ["bench", "side", "label", "N", "median s", "range", "runs", "meta ops/call",
            "namespace", "lookups", "readdirs", "executorlib/ours"]
    rows = [head] + rows
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    text = "\n".join("  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True))
                     for row in rows)
    return summary, text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delay-ms", type=float, default=1.0, help="metadata delay (1 ms)")
    ap.add_argument("--cold", type=int, default=500, help="cold calls (500; 0 = skip)")
    ap.add_argument("--warm", type=int, default=2000, help="warm re-run calls (2000; 0 = skip)")
    ap.add_argument("--ls", type=int, default=20000, help="entries listed (20000; 0 = skip)")
    ap.add_argument("--executorlib-cold-max", type=int, default=500,
                    help="cap executorlib's cold N (its cold runs are slow)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    ap.add_argument("--ours-checkout", help="run ours from this checkout (own editable venv)")
    ap.add_argument("--label", help="name of ours in the output (default: git describe)")
    ap.add_argument("--workdir", help="backing dir, mount point, log (default: temp, removed)")
    ap.add_argument("--json", help="also write the JSON lines here")
    ap.add_argument("--timeout", type=float, default=1800, help="per measurement, seconds")
    a = ap.parse_args(argv)

    pythons, envs_ = {}, {}
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if "ours" in a.sides:
        if a.ours_checkout:
            pythons["ours"] = str(envs.checkout_python(a.ours_checkout, log))
        else:
            pythons["ours"] = str(envs.ours_python(log))
        envs_["ours"] = base_env
        root = Path(a.ours_checkout or envs.ROOT)
        if not a.label:
            a.label = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                                     capture_output=True, text=True).stdout.strip() or str(root)
    if "executorlib" in a.sides:
        pythons["executorlib"] = str(envs.anchor_python(log))
        envs_["executorlib"] = base_env
    daemon_python = str(envs.slowfs_python(log))

    work = Path(a.workdir or tempfile.mkdtemp(prefix="xcache-slowfs-")).resolve()
    if (work / "backing").exists():
        shutil.rmtree(work / "backing")
    work.mkdir(parents=True, exist_ok=True)
    b = Bench(a, pythons, envs_, work)
    recs: list[dict] = []
    sink = open(a.json, "w") if a.json else None
    t_start = time.perf_counter()
    try:
        b.prepare()
        with slowfs.slow_mount(delay_ms=a.delay_ms, backing=b.backing, mountpoint=b.mnt,
                               python=daemon_python, log=work / "slowfs.log") as m:
            b.m = m
            log(f"mounted {m} (delay {a.delay_ms} ms, kernel caches off)")
            items = b.plan()
            for r in range(a.repeats):
                for bench, side, n in items:
                    rec = b.measure(bench, side, n, r)
                    recs.append(rec)
                    line = json.dumps(rec)
                    print(line, flush=True)
                    if sink:
                        sink.write(line + "\n")
                        sink.flush()
                    what = rec.get("error") or (f"{rec['seconds']} s, "
                                                f"{rec['metadata_ops_per_call']} meta ops/call")
                    log(f"repeat {r} {bench:5} {side:12} n={n:<6} {what}")
        summary, text = summarize(recs)
        meta = {"bench": "meta", "delay_ms": a.delay_ms, "repeats": a.repeats,
                "versions": {s: envs.versions(pythons[s]) for s in pythons},
                "ours_checkout": str(Path(a.ours_checkout or envs.ROOT).resolve()),
                "label": a.label, "machine": envs.machine(work),
                "harness_s": round(time.perf_counter() - t_start, 1), "summary": summary}
        print(json.dumps(meta))
        if sink:
            sink.write(json.dumps(meta) + "\n")
        print(f"\nslow-metadata FS (slowfs, {a.delay_ms} ms per metadata op, kernel caches "
              f"off); medians of {a.repeats} interleaved runs; ops counted by the FUSE "
              f"daemon (last run) per call or per listed entry\n{text}")
    finally:
        if sink:
            sink.close()
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if any("error" in r for r in recs) else 0


if __name__ == "__main__":
    sys.exit(main())
