"""``export_workflow_filename``: the submitted graph as Python Workflow Definition JSON.

The format is the one executorlib writes (and the ``python_workflow_definition``
package defines with pydantic; its ``load_workflow_json`` replays such a file on an
executor)::

    {"version": "0.1.0",
     "nodes": [{"id": 0, "type": "function", "value": "module.function"}, ...,
               {"id": 2, "type": "input", "name": "b", "value": 2}, ...,
               {"id": N, "type": "output", "name": "result"}],
     "edges": [{"target": 1, "targetPort": "a", "source": 0, "sourcePort": null}, ...]}

* Function nodes first, one per submitted call (ids in submission order; the same
  call submitted twice is one node: it is one cache entry), then, in the order they
  are met, input nodes (literal arguments, deduplicated by value) and helper nodes
  ``python_workflow_definition.shared.get_list``/``get_dict`` for a list, tuple or
  dict argument that holds futures, then one output node fed by the last call.
* Ports are parameter names (``inspect.signature(fn).bind``); a future from
  ``split_future``/``get_item_from_future`` is an edge from its upstream call with
  ``sourcePort`` = the selector (``str``); a batch is a list of its members.
* Values are written as JSON: tuples as lists, numpy arrays with ``tolist()``, and
  anything JSON cannot hold as its ``repr`` (a string).

Differences from executorlib, on purpose: the calls run (executorlib writes the file
only in its graph-only mode, where nothing runs); the file is written at every
shutdown, also ``shutdown()`` outside ``with``; literal elements of a list or dict
that also holds futures are kept as inputs (executorlib drops them); the output node
is fed by the last submitted call.

The JSON is written here, without the ``python_workflow_definition`` package (a
runtime dependency that pins pydantic below the versions users have); the test
suite validates the files against that package's model.
"""

from __future__ import annotations

import inspect
import json
import os
import threading
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any

VERSION = "0.1.0"
GET_LIST = "python_workflow_definition.shared.get_list"
GET_DICT = "python_workflow_definition.shared.get_dict"


def function_path(fn: Any) -> str:
    """``module.name`` of a callable (partials by their function, callable objects
    by their class), as the function node's value."""
    while isinstance(fn, partial):
        fn = fn.func
    target = fn if hasattr(fn, "__name__") else type(fn)
    module = getattr(target, "__module__", None) or "builtins"
    return f"{module}.{target.__name__}"


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: lists for tuples, ``tolist()`` for numpy, str keys,
    ``repr`` for anything else."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and type(value).__module__.split(".")[0] == "numpy":
        return jsonable(tolist())
    return repr(value)


def _holds_future(value: Any) -> bool:
    if isinstance(value, Future):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_future(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_future(v) for v in value.values())
    return False


def bound_arguments(fn: Any, args: tuple, kwargs: dict) -> list[tuple[str, Any]]:
    """``(parameter name, value)`` of a call; ``*args`` as one list, ``**kwargs``
    spread out.  Without a signature (some builtins): ``"0"``, ``"1"``... then the
    keyword names."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return [(str(i), a) for i, a in enumerate(args)] + list(kwargs.items())
    out: list[tuple[str, Any]] = []
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.extend(value.items())
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            out.append((name, list(value)))
        else:
            out.append((name, value))
    return out


class WorkflowRecorder:
    """The calls an executor submitted, for ``export_workflow_filename``.

    Holds each call's function and arguments (not results) until shutdown.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[tuple[str, Any, tuple, dict]] = []
        self._keys: set[str] = set()

    def add(self, future: Future, fn: Any, args: tuple, kwargs: dict) -> None:
        """Record a submitted call (arguments as passed, futures included)."""
        key = str(getattr(future, "key", id(future)))
        with self._lock:
            if key not in self._keys:
                self._keys.add(key)
                self._calls.append((key, fn, args, kwargs))

    def to_dict(self) -> dict[str, Any]:
        """The workflow as a dict in the Python Workflow Definition format."""
        with self._lock:
            calls = list(self._calls)
        builder = _Builder({key: i for i, (key, _, _, _) in enumerate(calls)})
        builder.nodes = [{"id": i, "type": "function", "value": function_path(fn)}
                         for i, (_, fn, _, _) in enumerate(calls)]
        for i, (_, fn, args, kwargs) in enumerate(calls):
            for name, value in bound_arguments(fn, args, kwargs):
                builder.connect(value, i, name, name)
        out_id = len(builder.nodes)
        builder.nodes.append({"id": out_id, "type": "output", "name": "result"})
        if calls:
            builder.edges.append({"target": out_id, "targetPort": None,
                                  "source": len(calls) - 1, "sourcePort": None})
        return {"version": VERSION, "nodes": builder.nodes, "edges": builder.edges}

    def write(self, filename: str | os.PathLike[str]) -> Path:
        """Write the JSON (indent 4, as executorlib) to ``filename``, atomically."""
        path = Path(filename)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=4))
        os.replace(tmp, path)
        return path


class _Builder:
    """Nodes and edges, with inputs deduplicated by (type, JSON value)."""

    def __init__(self, call_ids: dict[str, int]) -> None:
        self.call_ids = call_ids
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []
        self._inputs: dict[tuple[str, str], int] = {}

    def _edge(self, source: int, port: str | None, target: int, target_port: str) -> None:
        self.edges.append({"target": target, "targetPort": target_port, "source": source,
                           "sourcePort": port})

    def connect(self, value: Any, target: int, port: str, name: str) -> None:
        """An edge into ``target``'s ``port`` from whatever produces ``value``."""
        members = getattr(value, "batch_members", None)
        if members is not None:
            value = list(members)
        if isinstance(value, Future):
            self._future(value, target, port, name)
        elif isinstance(value, (list, tuple, dict)) and _holds_future(value):
            helper = len(self.nodes)
            is_dict = isinstance(value, dict)
            self.nodes.append({"id": helper, "type": "function",
                               "value": GET_DICT if is_dict else GET_LIST})
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                self.connect(v, helper, str(k), str(k))
            self._edge(helper, None, target, port)
        else:
            self._edge(self._input(value, name), None, target, port)

    def _future(self, fut: Future, target: int, port: str, name: str) -> None:
        key = getattr(fut, "key", None)
        path = getattr(fut, "selector_path", None) or ()
        source = self.call_ids.get(key) if isinstance(key, str) else None
        if source is None:  # not submitted through this executor: its value, if known
            value = None
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                value = fut.result()
            self._edge(self._input(value, name), None, target, port)
            return
        self._edge(source, "/".join(str(s) for s in path) if path else None, target, port)

    def _input(self, value: Any, name: str) -> int:
        data = jsonable(value)
        ident = (type(value).__name__, json.dumps(data, sort_keys=True))
        if ident not in self._inputs:
            self._inputs[ident] = len(self.nodes)
            self.nodes.append({"id": len(self.nodes), "type": "input", "value": data,
                               "name": name})
        return self._inputs[ident]


__all__ = ["WorkflowRecorder", "bound_arguments", "function_path", "jsonable"]
