"""``xcache graph``: the task graph of a cache directory.

A plain function the typer app registers (``app.command("graph")(graph)``), so
this module needs nothing from ``app.py`` and can be tested on its own.  DOT text
goes to stdout with no extra installed; ``--output`` renders through Graphviz.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from executorlib_cache import catalog
from executorlib_cache.catalog import graph_from_cache
from executorlib_cache.errors import CatalogError, GraphvizMissingError


def _fail(message: str) -> None:
    sys.stderr.write(f"xcache: error: {' '.join(message.split())}\n")
    raise typer.Exit(1)


def graph(
    ctx: typer.Context,
    output: Path | None = typer.Option(
        None, "--output", "-o",
        help="Write the graph to this file; the suffix picks the format: .svg, .png, .pdf "
        "(need Graphviz: the 'graph' extra and the 'dot' program) or .dot/.gv (plain text).",
    ),
    status: list[str] | None = typer.Option(
        None, "--status", "-s",
        help="Only entries with these statuses (repeat or comma-separate).",
    ),
    function: str | None = typer.Option(
        None, "--function", "-f", help="Only functions matching this glob (name or module.name)."
    ),
    no_scheduler: bool = typer.Option(
        False, "--no-scheduler", help="Do not ask slurm/flux which jobs died."
    ),
) -> None:
    """Draw the task graph: one node per entry (function, key, status; coloured by
    status), one edge per dependency.  Without --output, print Graphviz DOT text
    (pipe it into `dot -Tsvg`)."""
    obj = ctx.find_root().obj
    cache_dir = getattr(obj, "cache_dir", None) or Path(
        os.environ.get("XCACHE_DIR") or ".xcache"
    )
    try:
        statuses = catalog.parse_statuses(status)
    except CatalogError as e:
        raise typer.BadParameter(str(e), param_hint="--status") from None
    try:
        g = graph_from_cache(cache_dir, status=statuses, function=function,
                             check_scheduler=not no_scheduler)
        if output is None:
            sys.stdout.write(g.to_dot())
            return
        path = g.render(output)
    except (CatalogError, GraphvizMissingError, ValueError) as e:
        _fail(str(e))
    except OSError as e:
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        _fail(f"{e.strerror or e}{where}")
    edges = len(set(g.edges))
    sys.stderr.write(f"wrote {path} ({len(g.nodes)} tasks, {edges} dependencies)\n")
