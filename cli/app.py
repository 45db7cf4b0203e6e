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
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from executorlib_cache import catalog
from executorlib_cache.catalog import ACTIVE, Entry
from executorlib_cache.errors import CatalogError, CorruptEntryError
from executorlib_cache.store import STATUSES, Store

from . import render
from .graph import graph as graph_command

app = typer.Typer(
    name="xcache",
    help="See and manage an executorlib_cache cache directory "
    "(every executor call is one entry).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)



DEFAULT_CACHE_DIR = ".xcache"


class SortField(str, Enum):
    """The ``--sort`` choices (``catalog.SORT_FIELDS``)."""
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
        except (CatalogError, CorruptEntryError) as e:  # also: a cache of a newer format
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
    if not directory.is_dir():
        return []
    try:  # one listing per shard (format 2)
        keys = Store(directory, create=False).keys()
        return sorted(k for k in keys if k.startswith(incomplete))[:200]
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
        if len(shown) > render.RICH_ROWS:
            render.print_plain(shown, chosen, time.time())
        else:
            _stdout().print(render.ls_table(shown, chosen, time.time()))


def _watch(select: Any, interval: float) -> None:
    from rich.live import Live

    console = _stdout()
    try:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while True:
                chosen, shown = select()
                active = sum(1 for e in chosen if e.status in ACTIVE)
                note = Text(
                    f"{render.fmt_time(time.time())}  {active} pending/queued/running"
                    + (f", refreshing every {interval:g}s (Ctrl-C stops)" if active else
                       ": all finished"),
                    style="dim",
                )
                if len(shown) > render.RICH_ROWS:  # keep the live view fast: newest rows only
                    note.append(f"  (showing the last {render.RICH_ROWS} of {len(shown)} rows)")
                    shown = shown[-render.RICH_ROWS:]
                live.update(Group(render.ls_table(shown, chosen, time.time()), note), refresh=True)
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
                    info[name] = render.short_repr(info[name], 10_000)
            sys.stdout.write(json.dumps(info, default=str, indent=2) + "\n")
            return
        render.print_info(_stdout(), store, info, load)



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
        size = render.fmt_size(sum(e.disk_size or 0 for e in plan.remove))
        console.print(render.entries_table(plan.remove))
        active = [e for e in plan.remove if e.status in ("queued", "running")]
        what = f"{render.count_entries(len(plan.remove))} ({size})"
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
        console.print(f"removed {len(removed)} of {render.count_entries(len(plan.remove))}")
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
        head.add_row("on disk", render.fmt_size(s["size"]))
        head.add_row("pickled", render.fmt_size(s["payload_size"]))
        if s["oldest"] is not None:
            head.add_row("oldest", Text(f"{render.fmt_time(s['oldest'])}  {s['oldest_key']}"))
            head.add_row("newest", Text(f"{render.fmt_time(s['newest'])}  {s['newest_key']}"))
        by_status = Table(box=None, header_style="bold", pad_edge=False)
        by_status.add_column("status")
        by_status.add_column("entries", justify="right")
        for st, n in s["by_status"].items():
            by_status.add_row(render.status_text(st), str(n))
        by_fn = Table(box=None, header_style="bold", pad_edge=False)
        by_fn.add_column("function", overflow="fold")
        by_fn.add_column("entries", justify="right")
        by_fn.add_column("size", justify="right")
        items = list(s["by_function"].items())
        for fn, v in items[:top]:
            by_fn.add_row(Text(fn), str(v["entries"]), render.fmt_size(v["size"]))
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
    "Used" is the later of the finish time and the last cache hit, which
    executors log in .used/ when they shut down; atime is not used (often
    disabled on HPC file systems, and refreshed by any reader or backup).
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
        what = (f"{render.count_entries(len(plan.remove))} ({render.fmt_size(freed)}); "
                f"cache size after: {render.fmt_size(after)}")
        if max_size is not None and after > catalog.parse_size(max_size):
            _err("warning", f"the cache stays above {max_size}: only finished entries are "
                 "pruned")
        if not plan.remove:
            console.print("nothing to prune")
            return
        if dry_run:
            console.print(render.entries_table(catalog.sort_entries(plan.remove, "key")))
            console.print(f"dry run: would remove {what}")
            return
        removed, notes = catalog.execute_removal(plan, only_finished=True)
        for n in notes:
            _err("warning", n)
        console.print(f"pruned {len(removed)} of {what}")


@app.command("migrate")
def migrate(ctx: typer.Context) -> None:
    """Convert a cache's format-1 entries (one directory each) to format 2.

    Entry by entry, each under its claim lock: the format-2 file is written
    atomically, then the old directory goes. Safe to interrupt (Ctrl-C, kill) and
    to run again; drivers may keep using the cache meanwhile. A signed cache needs
    the same XCACHE_SECRET. Unfinished format-1 entries whose driver is gone are
    dropped (a format-2 driver computes them afresh); those whose driver still
    runs are left for a later run.
    """
    with _user_errors():
        store = _store(ctx)
        counts = catalog.migrate(store)
        console = _stdout()
        if not counts:
            console.print("no format-1 entries: nothing to migrate")
            return
        parts = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
        console.print(f"format-1 entries: {parts}")
        if counts.get("in-flight"):
            _err("warning", f"{counts['in-flight']} unfinished format-1 entries belong to a "
                 "running driver: run `xcache migrate` again when it has finished")


@app.command("import")
def import_(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="An executorlib cache directory (its *_o.h5 files)."),
) -> None:
    """Import the finished entries of an executorlib cache into this cache.

    Each finished call (<key>_o.h5) becomes an entry under the key executorlib_cache
    gives the same call, so re-running the script with executorlib_cache finds it
    instead of computing it again; failures come along as recorded failures.
    Unpickling needs the modules of the calls (not executorlib). Unfinished entries
    (<key>_i.h5) are skipped; the source is not changed. Safe to run again. The
    cache may be the executorlib directory itself.
    """
    with _user_errors():
        if not source.is_dir():
            _fail(f"{source} is not a directory")
        with warnings.catch_warnings():  # "holds an executorlib cache": being imported
            warnings.simplefilter("ignore")
            store = Store(ctx.find_root().params.get("cache_dir")
                          or os.environ.get("XCACHE_DIR") or DEFAULT_CACHE_DIR)
        report = catalog.import_executorlib(source, store)
        console = _stdout()
        console.print(f"imported {report.imported}, already present {report.present}, "
                      f"unfinished (skipped) {report.unfinished}, could not be read "
                      f"{len(report.skipped)}")
        for path, why in sorted(report.skipped.items()):
            _err("warning", f"{path}: {why}")
        if report.skipped:
            raise typer.Exit(1)


# defined in cli/graph.py (a function, testable without this app)
app.command("graph")(graph_command)


def main(prog_name: str = "xcache") -> None:
    """Entry point of the ``xcache`` script."""
    if hasattr(signal, "SIGPIPE"):  # `xcache ls | head`: end quietly, like ls does
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    app(prog_name=prog_name)
