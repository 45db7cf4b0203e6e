"""export_workflow_filename (issue 15, item 7): the submitted graph as Python Workflow
Definition JSON, checked against executorlib's output and the published package's
pydantic model, and replayed by that package on our executor."""

from __future__ import annotations

import json
import sys

import cloudpickle
import pytest
from conftest import require

from executorlib_cache import SingleNodeExecutor, get_item_from_future, split_future

pytestmark = pytest.mark.timeout(90)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def add(a, b=1):
    return a + b


def pair(x):
    return x, x + 1


def total(values, scale=1):
    return sum(values) * scale


def validate(path):
    """The file parses with python_workflow_definition's model (the format's schema)."""
    models = require("python_workflow_definition.models")
    return models.PythonWorkflowDefinitionWorkflow.load_json_file(file_name=str(path))


def test_the_file_is_what_executorlib_writes(cache_dir, tmp_path):
    path = tmp_path / "wf.json"
    with SingleNodeExecutor(cache_directory=cache_dir, export_workflow_filename=path) as exe:
        a = exe.submit(add, 1, b=2)
        b = exe.submit(add, a, 5)
        assert b.result(timeout=30) == 8  # the calls run (executorlib's graph mode does not)
    # executorlib 1.11's file for the same script (docs/migration.md, notes section 6)
    expected = {
        "version": "0.1.0",
        "nodes": [{"id": 0, "type": "function", "value": f"{__name__}.add"},
                  {"id": 1, "type": "function", "value": f"{__name__}.add"},
                  {"id": 2, "type": "input", "value": 1, "name": "a"},
                  {"id": 3, "type": "input", "value": 2, "name": "b"},
                  {"id": 4, "type": "input", "value": 5, "name": "b"},
                  {"id": 5, "type": "output", "name": "result"}],
        "edges": [{"target": 0, "targetPort": "a", "source": 2, "sourcePort": None},
                  {"target": 0, "targetPort": "b", "source": 3, "sourcePort": None},
                  {"target": 1, "targetPort": "a", "source": 0, "sourcePort": None},
                  {"target": 1, "targetPort": "b", "source": 4, "sourcePort": None},
                  {"target": 5, "targetPort": None, "source": 1, "sourcePort": None}]}
    text = path.read_text()
    assert json.loads(text) == expected
    assert text.startswith('{\n    "version"')  # indent=4, as executorlib
    validate(path)


def test_selectors_containers_numpy_and_dedup(cache_dir, tmp_path):
    np = require("numpy")
    path = tmp_path / "wf.json"
    exe = SingleNodeExecutor(cache_directory=cache_dir, export_workflow_filename=str(path))
    p = exe.submit(pair, 3)
    lo, hi = split_future(p, 2)
    d = exe.submit(dict, x=lo)
    s = exe.submit(total, [lo, hi, 10], scale=get_item_from_future(d, "x"))
    t = exe.submit(total, np.arange(3), scale=3)
    assert (s.result(timeout=30), t.result(timeout=30)) == (51, 9)
    exe.shutdown()  # written by shutdown() too, not only at the end of `with`
    wf = json.loads(path.read_text())
    nodes = {n["id"]: n for n in wf["nodes"]}
    into = {(e["target"], e["targetPort"]): (e["source"], e["sourcePort"]) for e in wf["edges"]}
    assert [nodes[i]["value"] for i in range(4)] == [
        f"{__name__}.pair", "builtins.dict", f"{__name__}.total", f"{__name__}.total"]
    assert into[(1, "x")] == (0, "0")  # split_future element -> sourcePort
    helper, _ = into[(2, "values")]
    assert nodes[helper]["value"] == "python_workflow_definition.shared.get_list"
    assert into[(helper, "0")] == (0, "0") and into[(helper, "1")] == (0, "1")
    assert nodes[into[(helper, "2")][0]] == {"id": into[(helper, "2")][0], "type": "input",
                                             "value": 10, "name": "2"}
    assert into[(2, "scale")] == (1, "x")  # get_item_from_future
    assert nodes[into[(3, "values")][0]]["value"] == [0, 1, 2]  # numpy -> list
    assert into[(0, "x")] == into[(3, "scale")]  # the literal 3, one input node
    assert wf["nodes"][-1] == {"id": len(wf["nodes"]) - 1, "type": "output", "name": "result"}
    validate(path)


def test_the_package_replays_our_file_on_our_executor(cache_dir, tmp_path):
    replay = require("python_workflow_definition.executorlib")
    path = tmp_path / "wf.json"
    with SingleNodeExecutor(cache_directory=cache_dir, export_workflow_filename=path) as exe:
        first = exe.submit(add, 1, b=2)
        final = exe.submit(add, first, b=10)
        assert final.result(timeout=30) == 13
    with SingleNodeExecutor(cache_directory=cache_dir) as exe:
        result = replay.load_workflow_json(file_name=str(path), exe=exe)
        assert result.result(timeout=30) == 13
