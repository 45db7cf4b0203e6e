"""Run every benchmark for executorlib_cache, executorlib and ProcessPoolExecutor.

    python bench/run.py [--quick | --smoke] [--full] [--only NAME ...] [--repeats 3]

Each measurement is one fresh interpreter of the side's own venv running a
``cases_*.py`` script that prints one JSON line; this script only orchestrates:
it creates the venvs (``bench/.venvs/``), interleaves the sides inside every
repeat (so machine noise hits them alike), keeps the raw lines in
``bench/results/run-*.jsonl`` and writes ``docs/benchmarks.md``.

``--smoke``: ours only, tiny sizes, no venvs (the running interpreter with
PYTHONPATH=repo), no docs; exits non-zero when a benchmark crashes.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import envs
import report

BENCH = envs.BENCH
ROOT = envs.ROOT
BENCHMARKS = ("cold", "warm", "chain", "fanout", "payload", "disk", "ls", "slurm")
SIDES = ("ours", "executorlib", "stdlib")
SCRIPTS = {"ours": "cases_ours.py", "executorlib": "cases_executorlib.py",
           "stdlib": "cases_stdlib.py"}

#: sizes per mode; "anchor_cold_max": largest cold N run for executorlib without --full
SIZES = {
    "default": {"cold": [100, 500, 2000], "anchor_cold_max": 500, "warm": [1000, 10000],
                "anchor_warm_single": 10000, "chain": 20, "fanout": 100, "payload": 100,
                "disk": 100, "ls": 100_000, "slurm_trivial": [20, 100], "slurm_chain": 10,
                "slurm_packed": 1000},
    "quick": {"cold": [100], "anchor_cold_max": 100, "warm": [1000],
              "anchor_warm_single": 10**9, "chain": 20, "fanout": 100, "payload": 20,
              "disk": 100, "ls": 10_000, "slurm_trivial": [20], "slurm_chain": 5,
              "slurm_packed": 200},
    "smoke": {"cold": [20], "anchor_cold_max": 0, "warm": [50], "anchor_warm_single": 10**9,
              "chain": 5, "fanout": 10, "payload": 1, "disk": 20, "ls": 500,
              "slurm_trivial": [3], "slurm_chain": 3, "slurm_packed": 20},
}


@dataclass
class Item:
    """One measurement to repeat: ``python SCRIPT [side] CASE --n N --dir D``."""

    bench: str
    side: str
    case: str
    n: int
    repeats: int
    script: str = ""
    slurm: bool = False
    note: str = ""
    fill: bool = False  # run CASE "fill" once before the repeats (warm re-runs)
    timeout: float = 900.0
    extra: list = field(default_factory=list)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def slurm_up() -> bool:
    try:
        return subprocess.run(["sinfo"], capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def plan(opts, sizes: dict, sides: list[str], have_slurm: bool) -> list[Item]:
    """The measurements of this run, grouped so that sides interleave per repeat."""
    R, items = opts.repeats, []

    def add(bench, case, n, local_sides, repeats=None, **kw):
        for side in local_sides:
            if side in sides:
                items.append(Item(bench, side, case, n, repeats or R, script=SCRIPTS[side],
                                  **kw))

    want = set(opts.only or BENCHMARKS)
    if "cold" in want:
        for n in sizes["cold"]:
            anchor = ["executorlib"] if (opts.full or n <= sizes["anchor_cold_max"]) else []
            add("cold", "cold", n, ["ours", *anchor, "stdlib"], timeout=1800)
    if "warm" in want:
        for n in sizes["warm"]:
            add("warm", "warm", n, ["ours"], fill=True)
            single = n >= sizes["anchor_warm_single"] and not opts.full
            add("warm", "warm", n, ["executorlib"], fill=True, timeout=1800,
                repeats=1 if single else R,
                note=f"warm re-run N={n}: 1 run (O(N^2) submit, ~100 s each); --full for 3"
                if single else "")
    if "chain" in want:
        add("chain", "chain", sizes["chain"], ["ours", "executorlib", "stdlib"])
    if "fanout" in want:
        add("fanout", "fanout", sizes["fanout"], ["ours", "executorlib", "stdlib"])
    if "payload" in want:
        add("payload", "payload", sizes["payload"], ["ours", "executorlib", "stdlib"])
    if "disk" in want:
        add("disk", "cold", sizes["disk"], ["ours", "executorlib"], repeats=1)
    if "slurm" in want and have_slurm:
        for n in sizes["slurm_trivial"]:
            add("slurm", "trivial", n, ["ours", "executorlib"], slurm=True)
        add("slurm", "chain", sizes["slurm_chain"], ["ours", "executorlib"], slurm=True)
        add("slurm", "scancel", 1, ["ours", "executorlib"], slurm=True)
        add("slurm", "packed", sizes["slurm_packed"], ["ours"], slurm=True, timeout=1800)
    return items


def run_bounded(cmd: list[str], env: dict | None, cwd: Path,
                timeout: float) -> subprocess.CompletedProcess:
    """``subprocess.run`` in its own session; on timeout the whole process group (the
    case script and the workers or task interpreters it started) is killed."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, cwd=str(cwd), start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_one(item: Item, python: str, env: dict, workdir: Path, case: str | None = None,
            timeout: float | None = None) -> dict:
    """Run one fresh interpreter; return its JSON line (or an ``error`` record)."""
    case = case or item.case
    cache = workdir / f"{item.bench}-{item.side}-{item.case}-{item.n}"
    if item.slurm:
        cmd = [python, str(BENCH / "cases_slurm.py"), item.side, case]
    else:
        cmd = [python, str(BENCH / item.script), case]
    cmd += ["--n", str(item.n), "--dir", str(cache), *item.extra]
    rec = {"bench": item.bench, "side": item.side, "case": case, "n": item.n}
    t0 = time.perf_counter()
    try:
        p = run_bounded(cmd, env, BENCH, timeout or item.timeout)
    except subprocess.TimeoutExpired:
        return rec | {"error": f"timeout after {timeout or item.timeout:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["(no stderr)"])[-3:]
        return rec | {"error": f"exit {p.returncode}: " + " | ".join(tail)[-600:]}
    out = json.loads(lines[-1])
    out.update(rec, wall_s=round(time.perf_counter() - t0, 3))
    return out


def run_ls(opts, n: int, python: str, env: dict) -> list[dict]:
    """``bench/bench_ls.py`` (the CLI engineer's): parse its ``label : min ..`` lines."""
    script = BENCH / "bench_ls.py"
    rec = {"bench": "ls", "side": "ours", "case": "ls", "n": n}
    if not script.exists():
        return [rec | {"status": "not yet measured", "reason": "bench/bench_ls.py absent"}]
    cmd = [python, str(script), str(n), "--repeat", str(opts.repeats)]
    try:
        p = run_bounded(cmd, env, ROOT, 1800)
    except subprocess.TimeoutExpired:
        return [rec | {"error": "timeout after 1800 s"}]
    pat = re.compile(r"^(.*?)\s*:\s*min ([\d.]+) s, median ([\d.]+) s \((\d+) runs\)")
    recs = []
    for line in p.stdout.splitlines():
        m = pat.match(line.strip())
        if m:
            recs.append(rec | {"label": m[1], "min_s": float(m[2]), "seconds": float(m[3]),
                               "runs": int(m[4])})
    if p.returncode != 0 or not recs:
        tail = (p.stderr.strip().splitlines() or p.stdout.strip().splitlines() or ["?"])[-3:]
        return [rec | {"error": f"exit {p.returncode}: " + " | ".join(tail)[-600:]}]
    return recs


def execute(items: list[Item], pythons: dict, envs_: dict, workdir: Path, sink) -> list[dict]:
    """Run the plan: per (bench, case, n), fill once per side, then repeats x sides."""
    results: list[dict] = []
    groups: dict[tuple, list[Item]] = {}
    for it in items:
        groups.setdefault((it.bench, it.case, it.n, it.slurm), []).append(it)

    def keep(rec):
        results.append(rec)
        sink.write(json.dumps(rec) + "\n")
        sink.flush()
        what = rec.get("error") or rec.get("status") or f"{rec.get('seconds')} s"
        log(f"{rec['bench']:8} {rec['case']:8} n={rec['n']:<6} {rec['side']:12} {what}")

    for (_bench, _case, _n, _slurm), group in groups.items():
        for it in group:
            if it.fill:
                keep(run_one(it, pythons[it.side], envs_[it.side], workdir, case="fill",
                             timeout=3600) | {"bench": "fill"})
        for r in range(max(it.repeats for it in group)):
            for it in group:
                if r < it.repeats:
                    keep(run_one(it, pythons[it.side], envs_[it.side], workdir)
                         | {"repeat": r, "note": it.note})
        for it in group:
            shutil.rmtree(workdir / f"{it.bench}-{it.side}-{it.case}-{it.n}", ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small N, all sides")
    mode.add_argument("--smoke", action="store_true",
                      help="ours only, tiny N, no venvs, no docs; non-zero exit on a crash")
    ap.add_argument("--full", action="store_true",
                    help="also executorlib's slow parts (cold N=2000, 3 runs of warm 10,000)")
    ap.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    ap.add_argument("--sides", nargs="+", choices=SIDES, help="default: all (smoke: ours)")
    ap.add_argument("--repeats", type=int, default=None, help="runs per measurement (3; smoke 1)")
    ap.add_argument("--workdir", default=None, help="where caches are made (default: a tmp dir)")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--results", default=None,
                    help="raw JSON lines file (default: bench/results/run-<time>-<mode>.jsonl)")
    opts = ap.parse_args(argv)
    opts.repeats = opts.repeats or (1 if opts.smoke else 3)
    mode_name = "smoke" if opts.smoke else "quick" if opts.quick else "default"
    sizes = SIZES[mode_name]
    sides = opts.sides or (["ours"] if opts.smoke else list(SIDES))
    have_slurm = slurm_up()
    if not have_slurm and (opts.only is None or "slurm" in opts.only):
        log("sinfo does not answer: SLURM benchmarks skipped")

    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pythons, envs_ = {}, {}
    if opts.smoke:  # no venvs: the interpreter running this, with the checkout on the path
        pythons["ours"] = pythons["stdlib"] = sys.executable
        envs_["ours"] = envs_["stdlib"] = base_env | {"PYTHONPATH": str(ROOT)}
    else:
        pythons["ours"] = pythons["stdlib"] = str(envs.ours_python(log))
        envs_["ours"] = envs_["stdlib"] = base_env
    if "executorlib" in sides:
        pythons["executorlib"] = str(envs.anchor_python(log))
        envs_["executorlib"] = base_env

    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix="xcache-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    machine = envs.machine(workdir)
    versions = {side: envs.versions(pythons[side], envs_[side]) for side in set(sides)}
    items = plan(opts, sizes, sides, have_slurm)
    if opts.smoke:
        for it in items:
            it.timeout = min(it.timeout, 120.0)
    raw = Path(opts.results or BENCH / "results" /
               f"run-{time.strftime('%Y%m%d-%H%M%S')}-{mode_name}.jsonl")
    raw.parent.mkdir(parents=True, exist_ok=True)
    log(f"{len(items)} measurements, {opts.repeats} repeats, raw lines -> {raw}")
    t0 = time.perf_counter()
    with raw.open("w") as sink:
        results = execute(items, pythons, envs_, workdir, sink)
        if "ls" in (opts.only or BENCHMARKS) and "ours" in sides:
            for rec in run_ls(opts, sizes["ls"], pythons["ours"], envs_["ours"]):
                results.append(rec)
                sink.write(json.dumps(rec) + "\n")
                log(f"ls       n={rec['n']} {rec.get('label', '')} "
                    f"{rec.get('error') or rec.get('status') or rec.get('seconds')}")
        machine["loadavg_end"] = os.getloadavg()
        machine["harness_s"] = round(time.perf_counter() - t0, 1)
        cmdline = "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
        meta = {"bench": "meta", "machine": machine, "versions": versions, "full": opts.full,
                "sizes": sizes, "have_slurm": have_slurm, "cmdline": cmdline.strip()}
        sink.write(json.dumps(meta) + "\n")
    if not opts.workdir:
        shutil.rmtree(workdir, ignore_errors=True)

    crashed = [r for r in results if "error" in r and r["side"] == "ours"]
    if not (opts.smoke or opts.no_docs):
        text = report.render(results, machine, versions, opts.full, sizes, have_slurm,
                             meta["cmdline"])
        Path(opts.docs).write_text(report.with_manual(text, opts.docs))
        log(f"wrote {opts.docs}")
    for r in crashed:
        log(f"CRASH {r['bench']} {r['case']} n={r['n']}: {r['error']}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
