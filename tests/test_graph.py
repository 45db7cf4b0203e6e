"""Dependency graphs: DOT from a cache directory, ``xcache graph``, and the
executor's ``plot_dependency_graph`` -- rendered by a real ``dot`` run."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import typer
from conftest import skip_unless_ci
from typer.testing import CliRunner

from executorlib_cache import SingleNodeExecutor
from executorlib_cache import graph as graph_mod
from executorlib_cache.catalog import graph_from_cache
from executorlib_cache.errors import GraphvizMissingError, UpstreamFailedError
from executorlib_cache.graph import (
    Node,
    TaskGraph,
    graph_from_rows,
    render_dot,
)

pytestmark = pytest.mark.timeout(120)

HAVE_GRAPHVIZ = (shutil.which("dot") is not None
                 and importlib.util.find_spec("graphviz") is not None)


@pytest.fixture
def needs_dot() -> None:
    """Rendering tests need the 'graph' extra and the dot program; CI must have them."""
    if not HAVE_GRAPHVIZ:
        skip_unless_ci("the 'graph' extra (python graphviz + the dot program) is not installed")


def add(a, b=0):
    return a + b


def fail(msg):
    raise ValueError(msg)


def _diamond(cache_dir: Path) -> dict[str, str]:
    """top -> (left, right) -> bottom, plus a failure and its dependent."""
    with SingleNodeExecutor(cache_directory=cache_dir, max_workers=2) as exe:
        top = exe.submit(add, 1)
        left = exe.submit(add, top, 10)
        right = exe.submit(add, top, b=20)
        bottom = exe.submit(add, left, right)
        bad = exe.submit(fail, "boom")
        after_bad = exe.submit(add, bad, 1)
        assert bottom.result(timeout=60) == 32
        with pytest.raises(ValueError):
            bad.result(timeout=60)
        with pytest.raises(UpstreamFailedError):
            after_bad.result(timeout=60)
    return {"top": top.key, "left": left.key, "right": right.key, "bottom": bottom.key,
            "bad": bad.key, "after_bad": after_bad.key}


def _edges(dot: str) -> set[tuple[str, str]]:
    out = set()
    for line in dot.splitlines():
        if "->" in line:
            a, b = line.strip().rstrip(";").split(" -> ")
            out.add((a.strip('"'), b.strip('"')))
    return out


def test_graph_from_cache_has_nodes_statuses_and_edges(cache_dir):
    keys = _diamond(cache_dir)
    g = graph_from_cache(cache_dir, check_scheduler=False)
    assert set(g.nodes) == set(keys.values())
    assert g.nodes[keys["bottom"]].status == "done"
    assert g.nodes[keys["bottom"]].function == "add"
    assert g.nodes[keys["bad"]].status == "failed"
    assert g.nodes[keys["after_bad"]].status == "failed"
    dot = g.to_dot()
    assert _edges(dot) == {
        (keys["top"], keys["left"]), (keys["top"], keys["right"]),
        (keys["left"], keys["bottom"]), (keys["right"], keys["bottom"]),
        (keys["bad"], keys["after_bad"]),
    }
    assert graph_mod.STATUS_COLOURS["failed"] in dot and graph_mod.STATUS_COLOURS["done"] in dot
    # filtering keeps only edges between shown nodes, and invents no "missing" nodes
    only_failed = graph_from_cache(cache_dir, status=["failed"], check_scheduler=False)
    assert set(only_failed.nodes) == {keys["bad"], keys["after_bad"]}
    assert only_failed.edges == [(keys["bad"], keys["after_bad"])]


def test_removed_upstream_is_drawn_as_missing():
    g = graph_from_rows([
        {"key": "b-v1-" + "1" * 32, "function": "b", "status": "done",
         "dependencies": ["a-v1-" + "0" * 32]},
    ])
    assert g.nodes["a-v1-" + "0" * 32] == Node("a-v1-" + "0" * 32, "a", "missing")
    assert "dashed" in g.to_dot()


def test_dot_quoting_survives_odd_names():
    g = TaskGraph({'we"ird\\key': Node('we"ird\\key', "f\nn", "done")}, [])
    dot = g.to_dot()
    assert '"we\\"ird\\\\key"' in dot and "f\\nn" in dot


@pytest.mark.usefixtures("needs_dot")
def test_rendered_svg_is_valid_and_labelled(cache_dir, tmp_path):
    keys = _diamond(cache_dir)
    out = graph_from_cache(cache_dir, check_scheduler=False).render(tmp_path / "g.svg")
    root = ET.parse(out).getroot()  # well-formed XML
    assert root.tag.endswith("svg")
    text = out.read_text()
    assert text.count('class="node"') == len(keys) and text.count('class="edge"') == 5
    assert ">add<" in text and ">fail<" in text and ">failed<" in text


@pytest.mark.usefixtures("needs_dot")
def test_cli_graph_prints_dot_and_renders_png(cache_dir, tmp_path):
    keys = _diamond(cache_dir)
    from executorlib_cache.__main__ import ensure_cli_package

    ensure_cli_package()
    from executorlib_cache.cli.graph import graph as graph_command

    state = type("State", (), {"cache_dir": cache_dir})()
    app = typer.Typer()

    @app.callback()
    def main(ctx: typer.Context) -> None:
        ctx.obj = state

    app.command("graph")(graph_command)
    runner = CliRunner()
    res = runner.invoke(app, ["graph"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("digraph") and keys["bottom"] in res.stdout
    png = tmp_path / "g.png"
    res = runner.invoke(app, ["graph", "--output", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(app, ["graph", "--status", "nonsense"])
    assert res.exit_code == 2


def test_xcache_graph_through_the_real_command_line(cache_dir):
    keys = _diamond(cache_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "executorlib_cache", "--cache-dir", str(cache_dir), "graph",
         "--no-scheduler", "--function", "fail"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(graph_mod.__file__).parents[1])},
    )
    assert proc.returncode == 0, proc.stderr
    assert keys["bad"] in proc.stdout and keys["bottom"] not in proc.stdout


def test_missing_graphviz_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz -> ImportError
    with pytest.raises(GraphvizMissingError, match=r"pip install 'executorlib_cache\[graph\]'"):
        render_dot("digraph { a }", tmp_path / "x.svg")
    assert render_dot("digraph { a }", tmp_path / "x.dot").read_text() == "digraph { a }"


@pytest.mark.usefixtures("needs_dot")
def test_missing_dot_binary_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' on PATH
    with pytest.raises(GraphvizMissingError, match="'dot' program"):
        render_dot("digraph { a }", tmp_path / "x.png")


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        render_dot("digraph { a }", tmp_path / "noext")


@pytest.mark.usefixtures("needs_dot")
def test_executor_plot_dependency_graph_renders_what_was_submitted(cache_dir, tmp_path):
    svg = tmp_path / "submitted.svg"
    with SingleNodeExecutor(cache_directory=cache_dir, plot_dependency_graph=True,
                            plot_dependency_graph_filename=str(svg)) as exe:
        a = exe.submit(add, 1, 2)
        b = exe.submit(add, a, 3)
        c = exe.submit(add, a, b=b)
        assert c.result(timeout=60) == 9  # the tasks still run
    text = svg.read_text()
    ET.fromstring(text)
    assert text.count('class="node"') == 3 and text.count('class="edge"') == 3
    assert ">done<" in text
    # second run: everything is a cache hit and is drawn as "cached"
    with SingleNodeExecutor(cache_directory=cache_dir, plot_dependency_graph=True,
                            plot_dependency_graph_filename=str(svg)) as exe:
        a = exe.submit(add, 1, 2)
        exe.submit(add, exe.submit(add, a, 3), 4)
    text = svg.read_text()
    assert text.count(">cached<") == 2 and text.count('class="node"') == 3
    assert text.count(">done<") == 1  # add(b, 4) is new: it ran


def test_executor_graph_without_filename_prints_dot(cache_dir, capsys):
    with SingleNodeExecutor(cache_directory=cache_dir, plot_dependency_graph=True) as exe:
        a = exe.submit(add, 1)
        exe.submit(add, a, 1).result(timeout=60)
    out = capsys.readouterr().out
    assert out.startswith("digraph") and _edges(out) and a.key in out


def test_executor_graph_failure_to_render_is_a_warning(cache_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.warns(UserWarning, match="dependency graph not drawn"):
        with SingleNodeExecutor(cache_directory=cache_dir,
                                plot_dependency_graph_filename=str(tmp_path / "g.svg")) as exe:
            fut = exe.submit(add, 5)
    assert fut.result() == 5


def test_recorder_keeps_no_finished_future():
    import gc
    import weakref
    from concurrent.futures import Future

    from executorlib_cache.graph import GraphRecorder

    rec = GraphRecorder()
    up: Future = Future()
    up.key = "up-v1-" + "a" * 32
    down: Future = Future()
    down.key = "down-v1-" + "b" * 32
    rec.add(up, add, [])
    rec.add(down, add, [up.key])
    up.set_result(bytearray(10))
    ref = weakref.ref(up)
    del up
    gc.collect()
    assert ref() is None
    g = rec.graph()
    assert g.nodes["up-v1-" + "a" * 32].status == "done"
    assert g.nodes["down-v1-" + "b" * 32].status == "pending"
    assert g.edges == [("up-v1-" + "a" * 32, "down-v1-" + "b" * 32)]
