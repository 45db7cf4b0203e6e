"""How ``xcache`` shows things: formats, status colours, tables, the entry sheet."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from executorlib_cache import catalog
from executorlib_cache.catalog import Entry
from executorlib_cache.store import STATUSES, Store

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


def fmt_time(ts: float | None) -> str:
    """Epoch seconds -> ``YYYY-MM-DD HH:MM:SS`` local time; ``-`` for None."""
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def fmt_duration(s: float | None) -> str:
    """Seconds -> ``12.3ms``, ``1.23s``, ``12.3s``, ``4m05s``, ``2h03m``, ``3d04h``;
    ``-`` for None."""
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
    """Bytes (powers of 1024) -> ``512B``, ``1.5K``, ``3.2M``...; ``-`` for None."""
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{int(n)}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}P"  # pragma: no cover


def count_entries(n: int) -> str:
    """``"1 entry"`` / ``"3 entries"``."""
    return f"{n} entry" if n == 1 else f"{n} entries"


def status_text(status: str) -> Text:
    """A status in its ``xcache ls`` colour."""
    return Text(status, style=STATUS_STYLE.get(status, ""))


def summary(entries: Sequence[Entry]) -> str:
    """The footer of a listing: entries per status and pickled bytes."""
    counts = Counter(e.status for e in entries)
    parts = [f"{counts[s]} {s}" for s in STATUSES if counts[s]]
    size = fmt_size(sum(e.size or 0 for e in entries))
    return (count_entries(len(entries)) + (f" ({', '.join(parts)})" if parts else "")
            + f", {size} pickled")


#: larger listings are printed as plain aligned text: rich lays out ~2,000 rows a second
RICH_ROWS = 1000
LS_COLUMNS = ("key", "function", "status", "submitted", "finished", "runtime", "job id", "size")


def ls_cells(e: Entry, now: float) -> tuple[str, ...]:
    """The cells of one ``xcache ls`` row (times relative to ``now``)."""
    if e.runtime is not None:
        runtime = fmt_duration(e.runtime)
    elif e.status == "running" and e.started is not None:  # elapsed so far
        runtime = "+" + fmt_duration(max(0.0, now - e.started))
    else:
        runtime = "-"
    return (e.key, e.function or "?", e.status, fmt_time(e.submitted), fmt_time(e.finished),
            runtime, e.job_id or "-", fmt_size(e.size))


def print_plain(entries: Sequence[Entry], total: Sequence[Entry], now: float) -> None:
    """A listing as aligned plain text (fast for many rows; pipes and files)."""
    """The ls table without rich: fixed-width columns, one line per entry."""
    rows = [ls_cells(e, now) for e in entries]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(LS_COLUMNS)]
    right = {5, 7}  # runtime, size

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = sys.stdout
    out.write(line(LS_COLUMNS) + "\n")
    out.write("\n".join(line(r) for r in rows))
    shown = f"showing {len(entries)} of " if len(entries) < len(total) else ""
    out.write(("\n" if rows else "") + shown + summary(total) + "\n")


def ls_table(entries: Sequence[Entry], total: Sequence[Entry], now: float) -> Table:
    """A listing as a rich table with a summary caption."""
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
        cells = ls_cells(e, now)
        table.add_row(
            Text(cells[0]),
            Text(cells[1]),
            status_text(e.status),
            cells[3],
            cells[4],
            Text(cells[5], style="dim" if cells[5].startswith("+") else ""),
            Text(cells[6]),
            cells[7],
        )
    shown = f"showing {len(entries)} of " if len(entries) < len(total) else ""
    table.caption = shown + summary(total)
    return table



def short_repr(value: Any, limit: int = 2000) -> str:
    """``repr`` cut to ``limit`` characters (a failing ``repr`` is shown as such)."""
    try:
        text = repr(value)
    except Exception as e:
        text = f"<repr failed: {type(e).__name__}: {e}>"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def print_info(console: Console, store: Store, info: dict[str, Any], load: bool) -> None:
    """The sheet of ``xcache show``: metadata, claim, outcome, logs, value."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")

    def row(label: str, value: Any) -> None:
        if value is None or value == "" or value == {} or value == []:
            return
        grid.add_row(label, value if isinstance(value, Text) else Text(str(value)))

    status = status_text(info["status"])
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
            st = store.file_status(d) if catalog.valid_name(d) else None
            lines.append(("\n" if i else "") + d + "  ")
            lines.append_text(status_text(st or "missing"))
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
            row("value", short_repr(info.get("result")))
        elif info["status"] == "failed":
            row("exception", short_repr(info.get("error")))
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


def entries_table(entries: Sequence[Entry], limit: int = 30) -> Table:
    """The first ``limit`` entries of a removal plan as a table."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("key", "function", "status", "submitted", "on disk"):
        table.add_column(name, overflow="fold" if name == "key" else "ellipsis")
    for e in entries[:limit]:
        table.add_row(Text(e.key), Text(e.function or "?"), status_text(e.status),
                      fmt_time(e.submitted), fmt_size(e.disk_size))
    if len(entries) > limit:
        table.caption = f"... and {len(entries) - limit} more"
    return table

