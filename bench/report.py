"""Turn the JSON lines of one harness run into ``docs/benchmarks.md``."""

from __future__ import annotations

import statistics
import time

SIDE_NAMES = {"ours": "executorlib_cache", "executorlib": "executorlib", "stdlib": "ProcessPool"}


def _ok(results, **match) -> list[dict]:
    return [r for r in results
            if "error" not in r and "status" not in r
            and all(r.get(k) == v for k, v in match.items())]


def _secs_parts(v: float, like: float | None = None) -> tuple[str, str]:
    """``v`` as (number, unit), in the unit and precision chosen for ``like``."""
    like = v if like is None else like
    if like < 0.01:
        return f"{v * 1000:.2f}", "ms"
    digits = 0 if like >= 100 else 1 if like >= 10 else 2 if like >= 1 else 3
    return f"{v:.{digits}f}", "s"


def _secs(v: float, like: float | None = None) -> str:
    return " ".join(_secs_parts(v, like))


def _mbs(v: float, like: float | None = None) -> str:
    return f"{v:.0f} MB/s"


def _bytes(v: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if v >= size:
            return f"{v / size:.1f} {unit}"
    return f"{v:.0f} B"


def _median(results, key="seconds", **match) -> float | None:
    vals = [r[key] for r in _ok(results, **match) if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def _cell(results, key="seconds", fmt=_secs, **match) -> str:
    """``median [min–max]`` of this run's values (``(1 run)`` when alone)."""
    vals = [r[key] for r in _ok(results, **match) if r.get(key) is not None]
    every = [r for r in results if all(r.get(k) == v for k, v in match.items())]
    if not vals:
        if any("error" in r for r in every):
            return "**crashed**"
        pend = [r for r in every if r.get("status") == "pending"]
        return "pending feature" if pend else "–"
    med = statistics.median(vals)
    if len(vals) == 1:
        return f"{fmt(med)} (1 run)"
    lo, hi = fmt(min(vals), med).split()[0], fmt(max(vals), med).split()[0]
    return f"{fmt(med)} [{lo}–{hi}]"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "–"
    r = a / b
    return f"{r:.0f}×" if r >= 100 else f"{r:.1f}×" if r >= 1 else f"{r:.2f}×"


def _verdict(value, limit, inclusive: bool = False) -> str:
    if value is None:
        return "not measured"
    ok = value <= limit if inclusive else value < limit
    return "**met**" if ok else f"**missed** (by {_pct(value, limit)})"


def _pct(value: float, limit: float) -> str:
    return f"{(value / limit - 1) * 100:.0f}%"


#: docs/benchmarks.md: everything from this line on is written by hand (the
#: bench_metadata / bench_packed / bench_dirs / bench_slowfs sections) and kept when
#: run.py or report.py render the generated part above it
MANUAL_MARKER = ("<!-- Hand-written sections below (bench_metadata.py, bench_packed.py, "
                 "bench_dirs.py, bench_slowfs.py): bench/run.py and bench/report.py keep "
                 "everything from this line on. -->")


def with_manual(text: str, old_path) -> str:
    """``text`` plus the hand-written tail of the current file at ``old_path``."""
    from pathlib import Path

    try:
        old = Path(old_path).read_text()
    except OSError:
        return text
    i = old.find(MANUAL_MARKER)
    return text if i < 0 else text.rstrip("\n") + "\n\n" + old[i:]


def machine_table(machine: dict, versions: dict, cmdline: str) -> list[str]:
    ours = versions.get("ours", {})
    anchor = versions.get("executorlib", {})
    rows = [
        ("date", time.strftime("%Y-%m-%d %H:%M %Z")),
        ("command", f"`{cmdline}`"),
        ("CPU", f"{machine['cpu']}, {machine['cores']} cores"),
        ("RAM", f"{machine['ram_gib']} GiB"),
        ("kernel / OS", f"{machine['kernel']} / {machine['os']}"),
        ("caches on", machine["workdir_fs"]),
        ("python", ours.get("python") or anchor.get("python", "?")),
        ("executorlib_cache", f"{ours.get('executorlib_cache', '?')} (git {machine['git']})"),
        ("executorlib", anchor.get("executorlib", "not run")),
        ("h5py (ours / executorlib venv)", f"{ours.get('h5py', '?')} / {anchor.get('h5py', '–')}"),
        ("numpy, cloudpickle, pyzmq (ours)",
         f"{ours.get('numpy', '?')}, {ours.get('cloudpickle', '?')}, {ours.get('pyzmq', '?')}"),
        ("pysqa (ours / executorlib venv)",
         f"{ours.get('pysqa', '–')} / {anchor.get('pysqa', '–')}"),
        ("load average at start / end",
         f"{' '.join(f'{x:.2f}' for x in machine['loadavg_start'])} / "
         f"{' '.join(f'{x:.2f}' for x in machine.get('loadavg_end', ()))}"),
        ("harness wall time", f"{machine.get('harness_s', '?')} s"),
    ]
    return ["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]


def local_table(results: list[dict], sizes: dict, full: bool) -> list[str]:
    out = ["| benchmark | N | executorlib_cache | executorlib | ProcessPoolExecutor "
           "| executorlib ÷ ours | ours ÷ ProcessPool |",
           "|---|---|---|---|---|---|---|"]
    rows = [("cold: N trivial tasks", "cold", n) for n in sizes["cold"]]
    rows += [("warm re-run: N cached calls", "warm", n) for n in sizes["warm"]]
    rows += [("dependency chain", "chain", sizes["chain"]),
             ("fan-out/fan-in 1 → N → 1", "fanout", sizes["fanout"]),
             ("payload round trip (MB)", "payload", sizes["payload"])]
    for label, bench, n in rows:
        cells, meds = [], {}
        for side in ("ours", "executorlib", "stdlib"):
            m = dict(bench=bench, n=n, side=side)
            meds[side] = _median(results, **m)
            cell = _cell(results, **m)
            if cell == "–" and side == "executorlib" and bench == "cold" and not full:
                cell = "not run (N > cap, `--full`)"
            if cell == "–" and side == "stdlib" and bench == "warm":
                cell = "n/a (no cache)"
            cells.append(cell)
        out.append(f"| {label} | {n} | {' | '.join(cells)} | "
                   f"{_ratio(meds['executorlib'], meds['ours'])} | "
                   f"{_ratio(meds['ours'], meds['stdlib'])} |")
    n = sizes["payload"]
    mbs = [_cell(results, key="mb_per_s", fmt=_mbs, bench="payload", n=n, side=s)
           for s in ("ours", "executorlib", "stdlib")]
    out.append(f"| payload throughput | {n} MB | {' | '.join(mbs)} | | |")
    return out


def disk_table(results: list[dict], sizes: dict) -> list[str]:
    out = ["| what | side | apparent bytes per entry | `du` bytes per entry | "
           "allocated to files, per entry | files per entry | directories (once per cache) |",
           "|---|---|---|---|---|---|---|"]
    for side in ("ours", "executorlib"):
        recs = _ok(results, bench="disk", side=side)
        if recs:
            r, n = recs[-1], recs[-1]["n"]
            d = r["disk"]
            files_only = (_bytes(d["file_alloc_bytes"] / n) if "file_alloc_bytes" in d
                          else "–")
            dirs = (f"{d['dirs']} ({_bytes(d['dir_alloc_bytes'])})" if "dirs" in d else "–")
            out.append(f"| trivial `inc(i)` entry (N={n}) | {SIDE_NAMES[side]} | "
                       f"{_bytes(d['apparent_bytes'] / n)} | {_bytes(d['du_bytes'] / n)} | "
                       f"{files_only} | {d['files'] / n:.1f} | {dirs} |")
    for side in ("ours", "executorlib"):
        recs = _ok(results, bench="payload", side=side)
        if recs:
            d = recs[-1]["disk"]
            out.append(f"| {sizes['payload']} MB array in + out, whole cache dir "
                       f"(+1 trivial warm-up entry) | {SIDE_NAMES[side]} | "
                       f"{_bytes(d['apparent_bytes'])} | {_bytes(d['du_bytes'])} | "
                       f"{_bytes(d['file_alloc_bytes']) if 'file_alloc_bytes' in d else '–'} | "
                       f"{d['files']} files | {d.get('dirs', '–')} |")
    return out


def ls_rows(results: list[dict]) -> list[str]:
    recs = [r for r in results if r.get("bench") == "ls"]
    if not recs:
        return ["`xcache ls`: **not yet measured** (not run in this invocation)."]
    out = ["| command (bench/bench_ls.py) | entries | median | min |", "|---|---|---|---|"]
    for r in recs:
        if "label" in r:
            out.append(f"| {r['label']} | {r['n']} | {_secs(r['seconds'])} | "
                       f"{_secs(r['min_s'])} ({r['runs']} runs) |")
        else:
            out.append(f"| xcache ls | {r['n']} | **not yet measured**: "
                       f"{r.get('reason') or r.get('error')} | |")
    return out


def slurm_table(results: list[dict], sizes: dict) -> list[str]:
    out = ["| case | N | side | wall time | sbatch | squeue | squeue per s | notes |",
           "|---|---|---|---|---|---|---|---|"]
    cases = [("trivial", n) for n in sizes["slurm_trivial"]]
    cases += [("chain", sizes["slurm_chain"]), ("scancel", 1), ("packed", sizes["slurm_packed"])]
    labels = {"trivial": "trivial tasks", "chain": "chain (afterok)",
              "scancel": "scancel → future fails", "packed": "packed, max_workers=8"}
    for case, n in cases:
        for side in ("ours", "executorlib"):
            match = dict(bench="slurm", case=case, n=n, side=side)
            every = [r for r in results if all(r.get(k) == v for k, v in match.items())]
            if not every:
                continue
            ok = _ok(results, **match)
            note = ""
            pend = [r for r in every if r.get("status") == "pending"]
            if pend:
                note = f"pending feature: {pend[0]['reason']}"
            errs = [r for r in every if "error" in r]
            if errs:
                note = f"crashed: {errs[0]['error'][:200]}"
            if ok and case == "scancel":
                note = (note + " " + (ok[-1].get("exception") or "no exception")[:140]).strip()

            def calls(name, ok=ok):
                vals = [r["calls"][name] for r in ok if "calls" in r]
                return f"{statistics.median(vals):.0f}" if vals else "–"

            sq = _median(results, key="squeue_per_s", **match)
            out.append(f"| {labels[case]} | {n} | {SIDE_NAMES[side]} | {_cell(results, **match)} "
                       f"| {calls('sbatch')} | {calls('squeue')} | "
                       f"{'–' if sq is None else f'{sq:.2f}'} | {note} |")
    return out


def targets_table(results: list[dict], sizes: dict, have_slurm: bool) -> list[str]:
    out = ["| target (from the issues) | measured (ours, median) | verdict |", "|---|---|---|"]

    def row(text, value, limit, shown=None, inclusive=False):
        shown = shown or ("–" if value is None else _secs(value))
        out.append(f"| {text} | {shown} | {_verdict(value, limit, inclusive)} |")

    row("500 trivial tasks cold ≤ 0.6 s (issue 14; was < 1 s)",
        _median(results, bench="cold", n=500, side="ours"), 0.6, inclusive=True)
    row("re-run of 10,000 cached calls ≤ 1.5 s (issue 14; was < 2 s)",
        _median(results, bench="warm", n=10000, side="ours"), 1.5, inclusive=True)
    row("chain of 20 < 0.2 s", _median(results, bench="chain", n=20, side="ours"), 0.2)
    disk = _ok(results, bench="disk", side="ours")
    if disk:
        d, n = disk[-1]["disk"], disk[-1]["n"]
        app, du = d["apparent_bytes"] / n, d["du_bytes"] / n
        if "file_alloc_bytes" in d:
            fa = d["file_alloc_bytes"] / n
            out.append(f"| trivial entry on disk < 6 KB | {_bytes(app)} apparent, {_bytes(fa)} "
                       f"allocated to the entry's files; {_bytes(du)} `du` per entry at N={n} "
                       f"(includes {d['dirs']} directories made once per cache, "
                       f"{_bytes(d['dir_alloc_bytes'])}) | apparent {_verdict(app, 6000)}, "
                       f"allocated {_verdict(fa, 6000)} (per entry at large N; "
                       f"`du` at N={n} {_verdict(du, 6000)}) |")
        else:
            out.append(f"| trivial entry on disk < 6 KB | {_bytes(app)} apparent, {_bytes(du)} "
                       f"allocated (`du`) | apparent {_verdict(app, 6000)}, "
                       f"allocated {_verdict(du, 6000)} |")
    else:
        row("trivial entry on disk < 6 KB", None, 6000)
    ls = [r for r in _ok(results, bench="ls") if r.get("label", "").startswith("xcache ls >")]
    row("`xcache ls` on 100,000 entries ≤ 3 s",
        ls[0]["seconds"] if ls and ls[0]["n"] >= 100_000 else None, 3.0, inclusive=True)
    if not have_slurm:
        out.append("| SLURM targets | SLURM not running (`sinfo` failed) | not measured |")
        return out
    big = max(sizes["slurm_trivial"])
    small = min(sizes["slurm_trivial"])
    tb = _ok(results, bench="slurm", case="trivial", n=big, side="ours")
    ts = _ok(results, bench="slurm", case="trivial", n=small, side="ours")
    if tb and ts:
        sq_b = statistics.median(r["calls"]["squeue"] for r in tb)
        sb_b = statistics.median(r["calls"]["sbatch"] for r in tb)
        rate_b = statistics.median(r["squeue_per_s"] for r in tb)
        rate_s = statistics.median(r["squeue_per_s"] for r in ts)
        grows_with_time = sq_b < big and (big == small or rate_b <= 2 * rate_s + 0.5)
        out.append(f"| SLURM: squeue calls grow with time, not with tasks | {sq_b:.0f} squeue "
                   f"for {big} tasks; {rate_s:.2f}/s at N={small}, {rate_b:.2f}/s at N={big} | "
                   f"{'**met**' if grows_with_time else '**missed**'} |")
        out.append(f"| SLURM: no more sbatch than tasks needing to run | {sb_b:.0f} sbatch for "
                   f"{big} tasks | {'**met**' if sb_b <= big else '**missed**'} |")
    else:
        why = [r.get("reason") or r.get("error", "") for r in results
               if r.get("bench") == "slurm" and r.get("side") == "ours" and "seconds" not in r]
        out.append(f"| SLURM: squeue calls grow with time; no more sbatch than tasks | "
                   f"{(why or ['not run'])[0][:160]} | not measured |")
    row("SLURM: scancel → future failure < 5 s",
        _median(results, bench="slurm", case="scancel", side="ours"), 5.0)
    n_p = sizes["slurm_packed"]
    packed = _ok(results, bench="slurm", case="packed", n=n_p, side="ours")
    per_task = _median(results, bench="slurm", case="trivial", n=big, side="ours")
    if packed and per_task:
        t = statistics.median(r["seconds"] for r in packed)
        sb = statistics.median(r["calls"]["sbatch"] for r in packed)
        one_per_task = per_task * n_p / big  # extrapolated from the unpacked run
        ok = one_per_task / t >= 10 and sb <= 20
        out.append(f"| SLURM: {n_p} tasks packed ≥ 10× faster than one sbatch per task, ≤ 20 "
                   f"sbatch | {_secs(t)} with {sb:.0f} sbatch vs ~{_secs(one_per_task)} "
                   f"(unpacked N={big} × {n_p // big}) = {one_per_task / t:.1f}× | "
                   f"{'**met**' if ok else '**missed**'} |")
    else:
        pend = [r for r in results if r.get("bench") == "slurm" and r.get("case") == "packed"
                and r.get("side") == "ours"]
        why = (pend[0].get("reason") or pend[0].get("error", ""))[:160] if pend else "not run"
        out.append(f"| SLURM: {n_p} tasks packed ≥ 10× faster, ≤ 20 sbatch | {why} | "
                   f"not measured (pending feature) |")
    return out


def problems(results: list[dict], sizes: dict, full: bool, have_slurm: bool) -> list[str]:
    out = []
    for r in results:
        if "error" in r:
            out.append(f"- {SIDE_NAMES.get(r['side'], r['side'])} {r['bench']}/{r['case']} "
                       f"N={r['n']} crashed: `{r['error'][:300]}`")
        elif r.get("bench") == "warm" and r.get("new_files"):
            out.append(f"- {SIDE_NAMES[r['side']]} warm N={r['n']}: {r['new_files']} new files "
                       "during the re-run (cache misses?)")
    pending = {(r["side"], r["bench"], r["case"], r["reason"]) for r in results
               if r.get("status") == "pending"}
    out += [f"- {SIDE_NAMES.get(side, side)} {bench}/{case}: pending feature ({reason})"
            for side, bench, case, reason in sorted(pending)]
    notes = sorted({r["note"] for r in results if r.get("note")})
    out += [f"- executorlib: {n}" for n in notes]
    if not full and max(sizes["cold"]) > sizes["anchor_cold_max"]:
        out.append(f"- executorlib cold runs capped at N ≤ {sizes['anchor_cold_max']} "
                   "(one interpreter per task: N=2000 takes ~190 s); `--full` runs them.")
    if not have_slurm:
        out.append("- SLURM benchmarks not run: `sinfo` did not answer.")
    return out


def render(results, machine, versions, full, sizes, have_slurm, cmdline) -> str:
    md = [
        "# Benchmarks: executorlib_cache vs executorlib vs ProcessPoolExecutor",
        "",
        "Generated by `bench/run.py` (see `bench/README.md`); do not edit by hand, except "
        "the sections after the marker near the end (kept by `run.py`/`report.py`). "
        "Every number is the median of several runs, each in a fresh interpreter, with the "
        "range (min–max) in brackets; the sides are interleaved within each repeat and the "
        "ratios compare medians of this same run. The machine is shared and noisy: trust "
        "the ratios more than the absolute times.",
        "",
        "Sides: **executorlib_cache** = this checkout, `SingleNodeExecutor` (local persistent "
        "workers over pyzmq); **executorlib** = `executorlib==1.11.0` from PyPI, "
        "`executorlib.api.TestClusterExecutor` (its HDF5 file scheduler, one interpreter per "
        "task: the code path of its SlurmClusterExecutor, locally); **ProcessPoolExecutor** = "
        "`concurrent.futures`, no cache (the floor without persistence; it cannot take "
        "futures as arguments, so chain and fan-out wait in the driver).",
        "",
        "## Machine",
        "",
        *machine_table(machine, versions, cmdline),
        "",
        "## Targets",
        "",
        *targets_table(results, sizes, have_slurm),
        "",
        "## Local backend",
        "",
        "Wall time from creating the executor to leaving its `with` block (all results "
        "back, shut down). Warm = the same script run again on a cache that already holds "
        "every result (executorlib's cache is filled with its own `hdf.dump` + "
        "`backend_write_file`, the files a real run leaves; ours by a real cold run). "
        "Payload = one call `echo(a)` on a random float64 array, after a warm-up task; "
        "MB/s = array size / round-trip time.",
        "",
        *local_table(results, sizes, full),
        "",
        "## Disk",
        "",
        "Apparent = sum of the files' sizes; `du` = blocks allocated (`du -sB1`, includes "
        "directories), divided by the number of entries. On ext4 every non-empty file and "
        "every directory takes at least one 4 KB block, so the allocated size of a small "
        "entry is set by how many files (and directories) it has, not by its bytes. Format "
        "2 makes 256 shard directories (and a few hidden ones) once per cache: at N=100 "
        "they are most of `du` per entry; \"allocated to files\" is the per-entry figure "
        "at large N.",
        "",
        *disk_table(results, sizes),
        "",
        "## `xcache ls`",
        "",
        *ls_rows(results),
        "",
        "executorlib has no CLI; its `get_cache_data()` unpickles every file.",
        "",
        "## SLURM",
        "",
    ]
    if have_slurm:
        md += ["Local single-node SLURM (`scripts/start-slurm.sh`, 8 advertised CPUs on 2 cores). "
               "`sbatch`/`squeue` counted by logging wrappers first on `PATH`. executorlib uses "
               "`bench/slurm_pysqa/` (its built-in pysqa template leaves `--partition` empty, "
               "which this SLURM refuses); ours uses its own templates. scancel: submit "
               "`nap(60)`, wait for RUNNING, `scancel` the job, time until `fut.exception()` "
               "returns.", "", *slurm_table(results, sizes)]
    else:
        md += ["Not measured: SLURM was not running (`sinfo` failed)."]
    issues = problems(results, sizes, full, have_slurm)
    md += ["", "## Not measured, caps and failures", "", *(issues or ["- none"]), ""]
    return "\n".join(md)


def merge(paths: list) -> tuple[list[dict], dict]:
    """Results of several raw files; a later file replaces whole benchmarks of earlier
    ones (e.g. a later ``--only slurm`` run), so every ratio still compares sides
    measured in the same run."""
    import json
    from pathlib import Path

    results: list[dict] = []
    metas = []
    for path in paths:
        lines = [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]
        metas += [r for r in lines if r.get("bench") == "meta"]
        new = [r for r in lines if r.get("bench") != "meta"]
        benches = {r["bench"] for r in new} | ({"warm"} if any(
            r["bench"] == "fill" for r in new) else set())
        results = [r for r in results if r["bench"] not in benches] + new
    meta = dict(metas[0])
    if len(metas) > 1:
        meta["cmdline"] = "` + `".join(m["cmdline"] for m in metas)
        meta["have_slurm"] = any(m["have_slurm"] for m in metas)
        gits = list(dict.fromkeys(m["machine"]["git"] for m in metas))
        meta["machine"] = dict(
            metas[-1]["machine"], loadavg_start=metas[0]["machine"]["loadavg_start"],
            git=" then ".join(gits),
            harness_s=sum(m["machine"].get("harness_s", 0) for m in metas))
    return results, meta


def main() -> None:
    """Re-render docs from raw files: ``python bench/report.py RAW.jsonl... [-o OUT.md]``."""
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("raw", nargs="+", help="bench/results/run-*.jsonl, later ones win")
    ap.add_argument("-o", "--out", default=str(Path(__file__).parents[1] / "docs" /
                                               "benchmarks.md"))
    a = ap.parse_args()
    results, meta = merge(a.raw)
    text = render(results, meta["machine"], meta["versions"], meta["full"], meta["sizes"],
                  meta["have_slurm"], meta["cmdline"])
    Path(a.out).write_text(with_manual(text, a.out))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
