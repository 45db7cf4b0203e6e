"""Task graphs: which call feeds which, coloured by status.

Two sources, one picture:

* ``catalog.graph_from_cache`` reads a cache directory (the task metadata in each
  entry file carries a
  ``dependencies`` list of upstream keys) and builds a :class:`TaskGraph` with
  :func:`graph_from_rows`, for ``xcache graph``;
* :class:`GraphRecorder` is fed by an executor created with
  ``plot_dependency_graph=True`` and draws what *this* script submitted.

This module sits below the catalog (it reads no cache): the executor's observers
(this recorder, the progress bar) need nothing of the CLI's library.

DOT text is generated here, by hand, so printing a graph needs nothing beyond
the core install.  Only *rendering* (SVG/PNG/PDF) needs Graphviz -- the
``graph`` extra (the ``graphviz`` Python package) plus the ``dot`` program --
and a missing piece is reported by :class:`GraphvizMissingError` saying what to
install, instead of an ``ImportError`` from deep inside.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import GraphvizMissingError
from .future import future_status

#: fill colour per status (the ``xcache ls`` colours, as light fills that keep text legible)
STATUS_COLOURS: dict[str, str] = {
    "pending": "#fff3b0",  # yellow
    "queued": "#cfe2ff",  # blue
    "running": "#b6effb",  # cyan
    "done": "#c7f0c2",  # green
    "cached": "#e2f5dc",  # pale green: done before this run, resolved at submit
    "failed": "#f8b4b4",  # red
    "cancelled": "#e0e0e0",  # grey
    "lost": "#f0b3f0",  # magenta
    "corrupt": "#d9534f",
    "tampered": "#d9534f",
    "missing": "#ffffff",  # a dependency whose entry is not in the cache (removed)
}
#: output suffixes written as DOT text, no Graphviz needed
DOT_SUFFIXES = (".dot", ".gv")
INSTALL_HINT = (
    "install the 'graph' extra and the Graphviz 'dot' program: "
    "pip install 'executorlib_cache[graph]' and "
    "apt-get install graphviz (or: conda install -c conda-forge graphviz, "
    "brew install graphviz, module load graphviz)"
)
_KEY_HASH = re.compile(r".+-v\d+-([0-9a-f]{8})[0-9a-f]*")


@dataclass
class Node:
    """One call in a :class:`TaskGraph`: its key, function name and status."""
    key: str
    function: str | None
    status: str


@dataclass
class TaskGraph:
    """Nodes by key and ``(upstream, downstream)`` edges."""

    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def to_dot(self, name: str = "tasks") -> str:
        """Graphviz DOT source: one box per call labelled ``function`` / key hash / status."""
        lines = [
            f"digraph {_quote(name)} {{",
            "  rankdir=LR;",
            '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
            '  edge [color="#555555"];',
        ]
        for node in sorted(self.nodes.values(), key=lambda n: n.key):
            colour = STATUS_COLOURS.get(node.status, "#ffffff")
            extra = ', style="rounded,dashed"' if node.status == "missing" else ""
            lines.append(
                f"  {_quote(node.key)} [label={_quote(_label(node))}, "
                f'fillcolor="{colour}", tooltip={_quote(node.key)}{extra}];'
            )
        for up, down in sorted(set(self.edges)):
            lines.append(f"  {_quote(up)} -> {_quote(down)};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def render(self, filename: str | os.PathLike[str]) -> Path:
        """Write the graph to ``filename``; the suffix picks the format (svg, png, pdf, dot)."""
        return render_dot(self.to_dot(), filename)


def _label(node: Node) -> str:
    m = _KEY_HASH.fullmatch(node.key)
    ident = m.group(1) if m else node.key
    return f"{node.function or '?'}\n{ident}\n{node.status}"


def _quote(text: str) -> str:
    """A DOT double-quoted string (backslash, quote and newline escaped)."""
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def graph_from_rows(rows: Iterable[Mapping[str, Any]]) -> TaskGraph:
    """A graph from :func:`~executorlib_cache.catalog.get_cache_data` rows.

    A dependency whose entry is gone (``xcache rm``) still gets a node, drawn
    dashed with status ``missing``, so the picture shows what a re-run would need.
    """
    graph = TaskGraph()
    for row in rows:
        key = str(row["key"])
        graph.nodes[key] = Node(key, row.get("function"), str(row.get("status") or "?"))
        for up in row.get("dependencies") or ():
            graph.edges.append((str(up), key))
    for up, _ in graph.edges:
        if up not in graph.nodes:
            m = re.fullmatch(r"(.+)-v\d+-[0-9a-f]{16,}", up)
            graph.nodes[up] = Node(up, m.group(1) if m else None, "missing")
    return graph


def render_dot(dot: str, filename: str | os.PathLike[str]) -> Path:
    """Write DOT text (``.dot``/``.gv``) or render it with Graphviz (any other suffix)."""
    path = Path(filename)
    fmt = path.suffix.lower().lstrip(".")
    if not fmt:
        raise ValueError(f"{path}: give a suffix that names the format (.svg, .png, .pdf, .dot)")
    if path.suffix.lower() in DOT_SUFFIXES:
        path.write_text(dot)
        return path
    try:
        import graphviz
    except ImportError:
        raise GraphvizMissingError(
            f"rendering {path.name} needs the 'graphviz' Python package: {INSTALL_HINT}"
        ) from None
    if fmt not in graphviz.FORMATS:
        raise ValueError(f"{path}: Graphviz cannot write {fmt!r}; use .svg, .png, .pdf or .dot")
    try:
        data = graphviz.Source(dot).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise GraphvizMissingError(
            f"rendering {path.name} needs the Graphviz 'dot' program on PATH: {INSTALL_HINT}"
        ) from None
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- executor side
class GraphRecorder:
    """What an executor submitted, for ``plot_dependency_graph=True``.

    Keeps key, function name, upstream keys and -- once the call has finished --
    its final status.  A future is held only while it is unfinished: a finished
    future holds its result, which may be a large array, and the graph must not
    keep it alive until shutdown.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: key -> [function name, upstream keys, final status or None, unfinished future]
        self._calls: dict[str, list[Any]] = {}

    def add(self, future: Future, fn: Any, dependencies: Iterable[str]) -> None:
        """Record a submitted call and its upstream keys (a second submit of the
        same key adds nothing).
        """
        key = str(getattr(future, "key", id(future)))
        name = getattr(fn, "__name__", type(fn).__name__)
        with self._lock:
            if key in self._calls:
                return  # the same call submitted twice: one node
            self._calls[key] = [name, list(dependencies), None, future]
        future.add_done_callback(functools.partial(self._finished, key))

    def _finished(self, key: str, future: Future) -> None:
        status = future_status(future)
        with self._lock:
            entry = self._calls[key]
            entry[2], entry[3] = status, None

    def graph(self) -> TaskGraph:
        """The graph of everything recorded so far, with current statuses."""
        with self._lock:
            calls = {k: list(v) for k, v in self._calls.items()}
        graph = TaskGraph()
        for key, (name, deps, status, fut) in calls.items():
            graph.nodes[key] = Node(key, name, status or future_status(fut))
            graph.edges.extend((up, key) for up in deps)
        return graph

    def draw(self, filename: str | os.PathLike[str] | None) -> Path | None:
        """Render to ``filename``; without one, show it inline in Jupyter or print DOT.

        Called by the executor at shutdown; a rendering problem is a warning, not an
        exception, because every task has already run by then and its results must
        stay reachable.
        """
        graph = self.graph()
        if filename is not None:
            return graph.render(filename)
        if _in_jupyter():
            try:
                import graphviz
                from IPython.display import display

                display(graphviz.Source(graph.to_dot()))
                return None
            except ImportError:
                pass
        sys.stdout.write(graph.to_dot())
        sys.stdout.flush()
        return None


def _in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


__all__ = [
    "GraphRecorder",
    "GraphvizMissingError",
    "Node",
    "STATUS_COLOURS",
    "TaskGraph",
    "graph_from_rows",
    "render_dot",
]
