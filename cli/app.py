"""``xcache``: see and manage an executorlib_cache cache directory.

A thin layer over :mod:`executorlib_cache.catalog`: options are parsed here,
everything else (scanning, statuses, selection, removal) happens there.

Exit codes: 0 success; 1 an error (missing cache directory, unknown or ambiguous
key, bad duration or size, entries refused or not removed, removal declined);
2 a usage error (unknown option, bad choice, bad status name).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from executorlib_cache import catalog
from executorlib_cache.catalog import ACTIVE, CatalogError, Entry
from executorlib_cache.store import STATUSES, Store

from .graph import graph as graph_command

app = typer.Typer(
    name="xcache",
    help="See and manage an executorlib_cache cache directory "
    "(every executor call is one entry).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

STATUS_STYLE = {
    "pending": "yellow",
    "queued": "blue",
    "running": "cyan",
    "done": "green",
    "failed": "red",
    "lost": "bold magenta",
    "corrupt": "bold red",
    "tampered": "bold white on red",
}
DEFAULT_CACHE_DIR = ".xcache"


class SortField(str, Enum):
    submitted = "submitted"
    finished = "finished"
    runtime = "runtime"
    size = "size"
    function = "function"
    status = "status"
    key = "key"


# ---------------------------------------------------------------- plumbing
def _stdout() -> Console:
    # piped output gets a wide table instead of rich's 80-column default
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
    return Console(highlight=False, width=width)


def _err(kind: str, message: str) -> None:
    line = " ".join(str(message).split())  # always one line
    sys.stderr.write(f"xcache: {kind}: {line}\n")
    sys.stderr.flush()


def _fail(message: str) -> NoReturn:
    _err("error", message)
    raise typer.Exit(1)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Known problems become one line on stderr and exit code 1; warnings one line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except CatalogError as e:
            _fail(str(e))
        except OSError as e:
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            _fail(f"{e.strerror or e}{where}")
        finally:
            for w in caught:
                _err("warning", str(w.message))


def _store(ctx: typer.Context) -> Store:
    return catalog.open_store(ctx.ensure_object(_State).cache_dir)


class _State:
    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir or Path(os.environ.get("XCACHE_DIR") or DEFAULT_CACHE_DIR)


def _statuses(values: list[str] | None) -> list[str] | None:
    try:
        wanted = catalog.parse_statuses(values)
    except CatalogError as e:
        raise typer.BadParameter(str(e)) from None
    return sorted(wanted) if wanted else None


def _complete_keys(ctx: typer.Context, incomplete: str) -> list[str]:
    root = ctx.find_root().params.get("cache_dir")
    directory = Path(root or os.environ.get("XCACHE_DIR") or DEFAULT_CACHE_DIR)
    try:
        with os.scandir(directory) as it:
            return sorted(d.name for d in it
                          if d.name.startswith(incomplete) and not d.name.startswith("."))[:200]
    except OSError:
        return []


def _complete_status(incomplete: str) -> list[str]:
    head, _, last = incomplete.rpartition(",")
    return [f"{head},{s}" if head else s for s in STATUSES if s.startswith(last)]


def _version(value: bool) -> None:
    if not value:
        return
    try:
        from importlib.metadata import version

        v = version("executorlib_cache")
    except Exception:
        import executorlib_cache

        v = getattr(executorlib_cache, "__version__", "unknown (not installed)")
    typer.echo(f"xcache (executorlib_cache) {v}")
    raise typer.Exit(0)


# ---------------------------------------------------------------- formatting
def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def fmt_duration(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 0.1:
        return f"{s * 1000:.1f}ms"
    if s < 60:
        return f"{s:.2f}s" if s < 10 else f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def fmt_size(n: int | float | None) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{int(n)}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}P"  # pragma: no cover


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def _summary(entries: Sequence[Entry]) -> str:
    counts = Counter(e.status for e in entries)
    parts = [f"{counts[s]} {s}" for s in STATUSES if counts[s]]
    size = fmt_size(sum(e.size or 0 for e in entries))
    return (_entries(len(entries)) + (f" ({', '.join(parts)})" if parts else "")
            + f", {size} pickled")


#: larger listings are printed as plain aligned text: rich lays out ~2,000 rows a second
RICH_ROWS = 1000
LS_COLUMNS = ("key", "function", "status", "submitted", "finished", "runtime", "job id", "size")


def _ls_cells(e: Entry, now: float) -> tuple[str, ...]:
    if e.runtime is not None:
        runtime = fmt_duration(e.runtime)
    elif e.status == "running" and e.started is not None:  # elapsed so far
        runtime = "+" + fmt_duration(max(0.0, now - e.started))
    else:
        runtime = "-"
    return (e.key, e.function or "?", e.status, fmt_time(e.submitted), fmt_time(e.finished),
            runtime, e.job_id or "-", fmt_size(e.size))


def _print_plain(entries: Sequence[Entry], total: Sequence[Entry], now: float) -> None:
    """The ls table without rich: fixed-width columns, one line per entry."""
    rows = [_ls_cells(e, now) for e in entries]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(LS_COLUMNS)]
    right = {5, 7}  # runtime, size

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = sys.stdout
    out.write(line(LS_COLUMNS) + "\n")
    out.write("\n".join(line(r) for r in rows))
    shown = f"showing {len(entries)} of " if len(entries) < len(total) else ""
    out.write(("\n" if rows else "") + shown + _summary(total) + "\n")


def _ls_table(entries: Sequence[Entry], total: Sequence[Entry], now: float) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, caption_justify="left")
    table.add_column("key", overflow="fold", no_wrap=False)
    table.add_column("function", overflow="ellipsis", max_width=30)
    table.add_column("status")
    table.add_column("submitted", no_wrap=True)
    table.add_column("finished", no_wrap=True)
    table.add_column("runtime", justify="right", no_wrap=True)
    table.add_column("job id", overflow="ellipsis", max_width=14)
    table.add_column("size", justify="right", no_wrap=True)
    for e in entries:
        cells = _ls_cells(e, now)
        table.add_row(
            Text(cells[0]),
            Text(cells[1]),
            _status_text(e.status),
            cells[3],
            cells[4],
            Text(cells[5], style="dim" if cells[5].startswith("+") else ""),
            Text(cells[6]),
            cells[7],
        )
    shown = f"showing {len(entries)} of " if len(entries) < len(total) else ""
    table.caption = shown + _summary(total)
    return table


# ---------------------------------------------------------------- commands
@app.callback()
def _main(
    ctx: typer.Context,
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", "-d", envvar="XCACHE_DIR", show_envvar=True,
        help=f"Cache directory \\[default: ./{DEFAULT_CACHE_DIR}].",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """See and manage an executorlib_cache cache directory."""
    ctx.obj = _State(cache_dir)


@app.command("ls")
def ls(
    ctx: typer.Context,
    status: list[str] | None = typer.Option(
        None, "--status", "-s", callback=_statuses, autocompletion=_complete_status,
        help="Only these statuses (repeat or comma-separate): " + ", ".join(STATUSES) + ".",
    ),
    function: str | None = typer.Option(
        None, "--function", "-f", help="Only functions matching this glob (name or module.name)."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only entries submitted within this long (30s, 2h, 7d, 1w)."
    ),
    older_than: str | None = typer.Option(
        None, "--older-than", help="Only entries submitted longer ago than this."
    ),
    sort: SortField = typer.Option(
        SortField.submitted, "--sort",
        help="Sort by this field (status: life-cycle order; ties by submit time; "
        "entries without a value last).",
    ),
    reverse: bool = typer.Option(False, "--reverse", "-r", help="Reverse the order."),
    as_json: bool = typer.Option(False, "--json", help="One JSON array of objects, no markup."),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1, help="Show at most N rows."),
    verify: bool = typer.Option(
        False, "--verify",
        help="Also read every .h5 file to find corrupt and tampered entries (slower).",
    ),
    watch: bool = typer.Option(
        False, "--watch", "-w", help="Refresh until no entry is pending, queued or running."
    ),
    interval: float = typer.Option(
        2.0, "--interval", min=0.1, help="Seconds between refreshes with --watch."
    ),
    no_scheduler: bool = typer.Option(
        False, "--no-scheduler", help="Do not ask slurm/flux which jobs died."
    ),
) -> None:
    """List entries: key, function, status, times, job id and size.

    Statuses: pending (not handed to a backend), queued, running, done, failed;
    lost (queued/running but its driver and runner are gone, or the scheduler
    no longer knows the job), corrupt, tampered.  Size is the pickled bytes of
    the call plus its result (xcache stats shows bytes on disk).

    Reads only directory listings and the small JSON files: nothing is unpickled
    and no user module is imported.  Only --verify reads the .h5 files, finding
    unreadable (corrupt) and, with XCACHE_SECRET, tampered ones; --status corrupt
    or tampered implies it.  Over 1,000 rows are printed as plain aligned text.
    """
    with _user_errors():
        store = _store(ctx)
        verify = verify or catalog.needs_verify(status)
        # validate the durations before the scan (exit 1 on a bad one)
        for d in (since, older_than):
            if d is not None:
                catalog.parse_duration(d)

        def select() -> tuple[list[Entry], list[Entry]]:
            entries = catalog.scan(store, verify=verify, check_scheduler=not no_scheduler)
            chosen = catalog.filter_entries(entries, status=status, function=function,
                                            since=since, older_than=older_than)
            chosen = catalog.sort_entries(chosen, sort.value, reverse)
            return chosen, (chosen[:limit] if limit else chosen)

        if watch and not as_json:
            _watch(select, interval)
            return
        with catalog.gc_paused():
            chosen, shown = select()
            if as_json:
                sys.stdout.write(json.dumps([e.row() for e in shown], default=str))
                sys.stdout.write("\n")
                return
        if len(shown) > RICH_ROWS:
            _print_plain(shown, chosen, time.time())
        else:
            _stdout().print(_ls_table(shown, chosen, time.time()))


def _watch(select: Any, interval: float) -> None:
    from rich.live import Live

    console = _stdout()
    try:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while True:
                chosen, shown = select()
                active = sum(1 for e in chosen if e.status in ACTIVE)
                note = Text(
                    f"{fmt_time(time.time())}  {active} pending/queued/running"
                    + (f", refreshing every {interval:g}s (Ctrl-C stops)" if active else
                       ": all finished"),
                    style="dim",
                )
                if len(shown) > RICH_ROWS:  # keep the live view fast: newest rows only
                    note.append(f"  (showing the last {RICH_ROWS} of {len(shown)} rows)")
                    shown = shown[-RICH_ROWS:]
                live.update(Group(_ls_table(shown, chosen, time.time()), note), refresh=True)
                if not active:
                    return
                time.sleep(interval)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command("show")
def show(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="Key or unique key prefix.", autocompletion=_complete_keys),
    load: bool = typer.Option(
        False, "--load",
        help="Unpickle the result/exception to show it (imports the user's modules).",
    ),
    tail: int = typer.Option(20, "--tail", min=0, help="Lines of each log file to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    no_scheduler: bool = typer.Option(
        False, "--no-scheduler", help="Do not ask slurm/flux whether the job died."
    ),
) -> None:
    """Show one entry in detail.

    Call (function, args summary, resources, dependencies), status, timings, host,
    job, the result size (its value with --load) or the remote traceback, and the
    last lines of the job's log files.
    """
    with _user_errors():
        store = _store(ctx)
        info = catalog.describe(store, key, load=load, tail=tail,
                                check_scheduler=not no_scheduler)
        if as_json:
            for name in ("result", "error"):
                if info.get(name) is not None:
                    info[name] = _short_repr(info[name], 10_000)
            sys.stdout.write(json.dumps(info, default=str, indent=2) + "\n")
            return
        _print_info(_stdout(), store, info, load)


def _short_repr(value: Any, limit: int = 2000) -> str:
    try:
        text = repr(value)
    except Exception as e:
        text = f"<repr failed: {type(e).__name__}: {e}>"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _print_info(console: Console, store: Store, info: dict[str, Any], load: bool) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")

    def row(label: str, value: Any) -> None:
        if value is None or value == "" or value == {} or value == []:
            return
        grid.add_row(label, value if isinstance(value, Text) else Text(str(value)))

    status = _status_text(info["status"])
    if info.get("reason"):
        status.append(f" ({info['reason']})", style="dim")
    row("key", info["key"])
    row("status", status)
    row("problem", info.get("problem"))
    fn = info.get("function") or "?"
    where = info.get("module")
    qual = info.get("qualname")
    row("function", f"{fn}" + (f"  ({where}.{qual or fn})" if where else ""))
    row("args", info.get("args"))
    if info.get("kwargs") not in (None, "{}"):
        row("kwargs", info.get("kwargs"))
    if info.get("resource_dict"):
        row("resources", json.dumps(info["resource_dict"], default=str, sort_keys=True))
    deps = info.get("dependencies") or []
    if deps:
        lines = Text()
        for i, d in enumerate(deps):
            st = store.file_status(d) if catalog._valid_name(d) else None
            lines.append(("\n" if i else "") + d + "  ")
            lines.append_text(_status_text(st or "missing"))
        row("dependencies", lines)
    submitted = fmt_time(info.get("submitted"))
    if info.get("submit_host") or info.get("user"):
        submitted += f"  by {info.get('user') or '?'}@{info.get('submit_host') or '?'}"
    row("submitted", submitted)
    row("started", fmt_time(info["started"]) if info.get("started") else None)
    row("finished", fmt_time(info["finished"]) if info.get("finished") else None)
    row("runtime", fmt_duration(info["runtime"]) if info.get("runtime") is not None else None)
    row("host", info.get("host"))
    job = info.get("job") or {}
    if job or info.get("backend"):
        backend = info.get("backend") or job.get("backend") or "?"
        jid = info.get("job_id")
        row("job", f"{backend}" + (f" job {jid}" if jid else "")
            + (f"  ({job['job_name']})" if job.get("job_name") else ""))
    versions = [f"{k} {info[k]}" for k in ("python", "version", "cloudpickle") if info.get(k)]
    row("versions", ", ".join(versions).replace("version ", "executorlib_cache ", 1))
    row("entry", f"{info['path']}  ({fmt_size(info.get('disk_size'))} on disk)")
    if info["status"] == "done":
        size = info.get("result_size")
        row("result", f"{fmt_size(size)} pickled" + ("" if load else
                                                     "; type unknown without --load"))
    if info["status"] == "failed" and info.get("error_type"):
        row("error", f"{info['error_type']}: {info.get('error_message') or ''}")
    if load:
        if info.get("load_error"):
            row("load", Text(f"cannot load: {info['load_error']}", style="red"))
        elif info["status"] == "done":
            row("value type", type(info.get("result")).__qualname__)
            row("value", _short_repr(info.get("result")))
        elif info["status"] == "failed":
            row("exception", _short_repr(info.get("error")))
    console.print(grid)
    if info.get("traceback"):
        console.print(Text("\nremote traceback:", style="bold"))
        console.print(Text(str(info["traceback"]).rstrip()), soft_wrap=True)
    for stream, log in (info.get("logs") or {}).items():
        header = Text(f"\n{stream}: {log['path']}", style="bold")
        if log["tail"] is None:
            header.append("  (cannot be read)", style="dim")
            console.print(header)
            continue
        header.append(f"  (last {len(log['tail'])} lines)", style="dim")
        console.print(header)
        if log["tail"]:
            console.print(Text("\n".join(log["tail"])), soft_wrap=True)


def _entries_table(entries: Sequence[Entry], limit: int = 30) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("key", "function", "status", "submitted", "on disk"):
        table.add_column(name, overflow="fold" if name == "key" else "ellipsis")
    for e in entries[:limit]:
        table.add_row(Text(e.key), Text(e.function or "?"), _status_text(e.status),
                      fmt_time(e.submitted), fmt_size(e.disk_size))
    if len(entries) > limit:
        table.caption = f"... and {len(entries) - limit} more"
    return table


@app.command("rm")
def rm(
    ctx: typer.Context,
    keys: list[str] | None = typer.Argument(
        None, help="Keys or unique key prefixes.", autocompletion=_complete_keys
    ),
    status: list[str] | None = typer.Option(
        None, "--status", "-s", callback=_statuses, autocompletion=_complete_status,
        help="Select these statuses (repeat or comma-separate).",
    ),
    function: str | None = typer.Option(
        None, "--function", "-f", help="Select functions matching this glob."
    ),
    older_than: str | None = typer.Option(
        None, "--older-than", help="Select entries submitted longer ago than this (7d, 2w)."
    ),
    all_entries: bool = typer.Option(False, "--all", help="Select every entry."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be removed."),
    force: bool = typer.Option(
        False, "--force",
        help="Also remove queued/running entries, cancelling their jobs first "
        "(slurm/flux: cancel; local: SIGTERM to the runner).",
    ),
) -> None:
    """Remove entries (keys and/or a selection; filters narrow given keys down).

    Shows what will go and asks first. Queued and running entries are kept
    unless --force. Removal is atomic per entry (renamed into .trash, then deleted).
    """
    with _user_errors():
        store = _store(ctx)
        plan = catalog.plan_removal(store, keys, status=status, function=function,
                                    older_than=older_than, all_entries=all_entries, force=force)
        console = _stdout()
        for e in plan.refused:
            _err("error", f"{e.key} is {e.status}"
                 + (f" ({e.backend} job {e.job_id})" if e.job_id else "")
                 + ": not removed; --force cancels it and removes it")
        if not plan.remove:
            console.print("nothing to remove")
            raise typer.Exit(1 if plan.refused else 0)
        size = fmt_size(sum(e.disk_size or 0 for e in plan.remove))
        console.print(_entries_table(plan.remove))
        active = [e for e in plan.remove if e.status in ("queued", "running")]
        what = f"{_entries(len(plan.remove))} ({size})"
        if active:
            what += f", cancelling {len(active)} queued/running job(s) first"
        if dry_run:
            console.print(f"dry run: would remove {what}")
            raise typer.Exit(1 if plan.refused else 0)
        if not yes and not typer.confirm(f"Remove {what}?", default=False):
            _fail("aborted: nothing removed")
        removed, notes = catalog.execute_removal(plan, force=force)
        for n in notes:
            _err("warning", n)
        console.print(f"removed {len(removed)} of {_entries(len(plan.remove))}")
        if plan.refused or len(removed) < len(plan.remove):
            raise typer.Exit(1)


@app.command("stats")
def stats(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    top: int = typer.Option(20, "--top", min=1, help="Functions to list."),
    no_scheduler: bool = typer.Option(
        False, "--no-scheduler", help="Do not ask slurm/flux which jobs died."
    ),
) -> None:
    """Counts per status and per function, total size, oldest and newest entry."""
    with _user_errors():
        s = catalog.cache_stats(_store(ctx), check_scheduler=not no_scheduler)
        if as_json:
            sys.stdout.write(json.dumps(s, indent=2) + "\n")
            return
        console = _stdout()
        head = Table.grid(padding=(0, 2))
        head.add_column(style="bold")
        head.add_column()
        head.add_row("directory", Text(s["directory"]))
        head.add_row("entries", str(s["entries"]))
        head.add_row("on disk", fmt_size(s["size"]))
        head.add_row("pickled", fmt_size(s["payload_size"]))
        if s["oldest"] is not None:
            head.add_row("oldest", Text(f"{fmt_time(s['oldest'])}  {s['oldest_key']}"))
            head.add_row("newest", Text(f"{fmt_time(s['newest'])}  {s['newest_key']}"))
        by_status = Table(box=None, header_style="bold", pad_edge=False)
        by_status.add_column("status")
        by_status.add_column("entries", justify="right")
        for st, n in s["by_status"].items():
            by_status.add_row(_status_text(st), str(n))
        by_fn = Table(box=None, header_style="bold", pad_edge=False)
        by_fn.add_column("function", overflow="fold")
        by_fn.add_column("entries", justify="right")
        by_fn.add_column("size", justify="right")
        items = list(s["by_function"].items())
        for fn, v in items[:top]:
            by_fn.add_row(Text(fn), str(v["entries"]), fmt_size(v["size"]))
        if len(items) > top:
            by_fn.caption = f"... and {len(items) - top} more functions"
        console.print(head, Text(""), by_status, Text(""), by_fn)


@app.command("prune")
def prune(
    ctx: typer.Context,
    max_size: str | None = typer.Option(
        None, "--max-size", help="Shrink the cache to at most this size (500M, 10G)."
    ),
    max_age: str | None = typer.Option(
        None, "--max-age", help="Remove finished entries not used for this long (30d, 2w)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be removed."),
) -> None:
    """Remove least recently used finished (done/failed) entries.

    First those not used for --max-age, then more, least recently used first,
    until the cache is at most --max-size (bytes on disk, all entries counted).
    "Used" is the later of the finish time and the mtime of result.h5/error.h5,
    which an executor may bump with os.utime on a cache hit; atime is not used
    (often disabled on HPC file systems, and refreshed by any reader or backup).
    Pending, queued and running entries are never touched. No confirmation is
    asked (finished entries can be recomputed); use --dry-run to look first.
    """
    with _user_errors():
        if max_size is None and max_age is None:
            _fail("give --max-size, --max-age or both")
        store = _store(ctx)
        plan, after = catalog.plan_prune(store, max_size, max_age)
        console = _stdout()
        freed = sum(e.disk_size or 0 for e in plan.remove)
        what = f"{_entries(len(plan.remove))} ({fmt_size(freed)}); cache size after: " \
               f"{fmt_size(after)}"
        if max_size is not None and after > catalog.parse_size(max_size):
            _err("warning", f"the cache stays above {max_size}: only finished entries are "
                 "pruned")
        if not plan.remove:
            console.print("nothing to prune")
            return
        if dry_run:
            console.print(_entries_table(catalog.sort_entries(plan.remove, "key")))
            console.print(f"dry run: would remove {what}")
            return
        removed, notes = catalog.execute_removal(plan, only_finished=True)
        for n in notes:
            _err("warning", n)
        console.print(f"pruned {len(removed)} of {what}")


# defined in cli/graph.py (a function, testable without this app)
app.command("graph")(graph_command)


def main(prog_name: str = "xcache") -> None:
    """Entry point of the ``xcache`` script."""
    if hasattr(signal, "SIGPIPE"):  # `xcache ls | head`: end quietly, like ls does
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    app(prog_name=prog_name)
