"""``xcache import``: bring the finished entries of an executorlib cache into ours.

An executorlib (1.10, 1.11) cache is a directory of ``<key>_o.h5`` files (finished)
and ``<key>_i.h5`` files (submitted, not finished), with a sub-directory per key for
pysqa jobs.  Each ``.h5`` holds one dataset per field (``function``,
``input_args``, ``input_kwargs``, ``output`` or ``error``, ``runtime``,
``resource_dict``, ...), each the ``cloudpickle`` bytes of the value (a ``uint8``
array; executorlib <= 1.9 wrote opaque scalars).  See docs/migration.md.

Each finished call is written as a format-2 entry under the key **this package**
gives the same call (``hashing.task_key``), so that re-running the script with
``executorlib_cache`` finds it: an argument that was an executorlib future
(``FutureItem``, naming the upstream's ``_o.h5``) becomes a ``DependencyRef`` to
the upstream's new key, imported first.  Unpickling needs the modules of the calls,
as reading the cache with executorlib does; executorlib itself is not needed (its
``FutureItem`` is read through a stand-in).  Unfinished ``_i.h5`` entries are
skipped (run the script again).  The source files are left as they are.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..deps import DependencyRef
from ..errors import CatalogError
from ..fileio import HOST
from ..hashing import task_key
from ..resources import validate_cache_key
from ..serialization import dumps, dumps_call, dumps_exception
from ..store import DONE, FAILED, Store

#: the class executorlib pickles for a future argument (read through a stand-in)
FUTURE_ITEM = ("executorlib.task_scheduler.file.shared", "FutureItem")


def executorlib_files(directory: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """``(finished, unfinished)``: the ``*_o.h5`` and ``*_i.h5`` files below
    ``directory`` (executorlib walks sub-directories too: hierarchical keys)."""
    done: list[Path] = []
    pending: list[Path] = []
    for base, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".") and len(d) != 2]
        for name in files:
            if name.endswith("_o.h5"):
                done.append(Path(base, name))
            elif name.endswith("_i.h5"):
                pending.append(Path(base, name))
    return sorted(done), sorted(pending)


class _FutureItem:
    """Stand-in for executorlib's ``FutureItem`` (its state: ``_file_name``,
    ``_selector``), so that reading a cache does not need executorlib."""

    _file_name: str
    _selector: int | str | None = None


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == FUTURE_ITEM:
            return _FutureItem
        return super().find_class(module, name)


def _loads(data: bytes) -> Any:
    return _Unpickler(io.BytesIO(data)).load()


def read_executorlib_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The fields of one executorlib ``.h5`` file, unpickled.  Raises ``OSError``
    for an unreadable file and what unpickling raises (a module missing here)."""
    import h5py

    out: dict[str, Any] = {}
    with h5py.File(path, "r", locking=False) as f:
        for name, ds in f.items():
            raw = ds[()]
            data = raw.tobytes() if getattr(raw, "dtype", None) is not None \
                and raw.dtype.kind == "u" else bytes(raw)
            out[name] = _loads(data)
    return out


@dataclass
class ImportReport:
    """What :func:`import_executorlib` did: counts and a note per skipped file."""

    imported: int = 0
    present: int = 0
    unfinished: int = 0
    skipped: dict[str, str] = field(default_factory=dict)


#: executorlib's own key for a call: the function's name and 32 hex digits (md5)
_DEFAULT_KEY = re.compile(r"[0-9a-f]{32}$")


def user_cache_key(path: str, source: str, fn: Any) -> str | None:
    """The ``cache_key`` the user gave executorlib for the call in ``path`` (its file
    name without ``_o.h5``, below ``source``; ``/``-joined when in sub-directories),
    or None when the name is executorlib's default (function name + 32 hex digits):
    the call then gets this package's key, and a re-run without ``cache_key`` finds
    it.  ``ValueError`` for a name that is not a valid key here."""
    rel = os.path.relpath(path, source).replace(os.sep, "/")
    stem = rel[: -len("_o.h5")]
    name = getattr(fn, "__name__", "")
    tail = stem.rsplit("/", 1)[-1]
    if "/" not in stem and tail.startswith(name) and _DEFAULT_KEY.match(tail[len(name):]):
        return None
    return validate_cache_key(stem)


class _Importer:
    def __init__(self, store: Store, found: list[Path], source: str = ".") -> None:
        self.store = store
        self.source = os.path.realpath(source)
        # a FutureItem names its upstream by absolute path where the cache was made:
        # a cache moved since is matched by the file's path inside it
        self.by_name = {str(p.name): str(p) for p in found}
        self.keys: dict[str, str] = {}  # resolved path -> our key
        self.report = ImportReport()
        self.active: set[str] = set()

    def key_of(self, path: str) -> str | None:
        """Import ``path`` (its upstreams first) and return our key for it."""
        path = os.path.realpath(path)
        if path in self.keys:
            return self.keys[path]
        if path in self.active or path in self.report.skipped:
            return None
        self.active.add(path)
        try:
            return self._import(path)
        except Exception as e:  # a module missing here, a damaged file
            self.report.skipped[path] = f"{type(e).__name__}: {e}"
            return None
        finally:
            self.active.discard(path)

    def _ref(self, value: Any) -> Any:
        if isinstance(value, _FutureItem):
            # the copy inside the imported directory first: the original path may be
            # another (older) cache that is still there
            name = self.by_name.get(os.path.basename(value._file_name), value._file_name)
            up = self.key_of(name)
            if up is None:
                raise CatalogError(f"its upstream {value._file_name} could not be imported")
            sel = getattr(value, "_selector", None)
            return DependencyRef(up, (sel,)) if sel is not None else DependencyRef(up)
        if type(value) is list:
            return [self._ref(v) for v in value]
        if type(value) is tuple:
            return tuple(self._ref(v) for v in value)
        if type(value) is dict:
            return {k: self._ref(v) for k, v in value.items()}
        return value

    def _import(self, path: str) -> str:
        fields = read_executorlib_file(path)
        fn = fields["function"]
        args = tuple(self._ref(list(fields.get("input_args") or [])))
        kwargs = self._ref(dict(fields.get("input_kwargs") or {}))
        key = user_cache_key(path, self.source, fn) or task_key(fn, args, kwargs)
        self.keys[path] = key
        store = self.store
        with store.claim(key):
            if store.finished(key) is not None:
                self.report.present += 1
                return key
            payload = dumps_call(fn, args, kwargs)
            deps = sorted({a.key for a in _refs((args, kwargs))})
            submitted = os.path.getmtime(path)
            task_meta = {
                "key": key, "function": getattr(fn, "__name__", type(fn).__name__),
                "module": getattr(fn, "__module__", None),
                "qualname": getattr(fn, "__qualname__", None), "submitted": submitted,
                "host": HOST, "user": os.environ.get("USER", "?"), "pid": os.getpid(),
                "python": "", "version": "", "cloudpickle": "",
                "resource_dict": fields.get("resource_dict") or {}, "dependencies": deps,
                "args": repr(args)[:300], "kwargs": repr(kwargs)[:300],
                "payload_size": len(payload), "argv": [],
            }
            meta: dict[str, Any] = {"backend": "executorlib", "job_id": None,
                                    "finished": submitted, "imported_from": path}
            if fields.get("runtime") is not None:
                meta["runtime"] = float(fields["runtime"])
            qid = fields.get("queue_id")
            if qid is not None:
                meta["job_id"] = str(qid)
            if "error" in fields:
                out, emeta = dumps_exception(fields["error"])
                meta.update(emeta, reason="raised")
                store.write_outcome(key, FAILED, out, meta, task=(payload, task_meta),
                                    lock=False)
            else:
                store.write_outcome(key, DONE, dumps(fields.get("output")), meta,
                                    task=(payload, task_meta), lock=False)
        self.report.imported += 1
        return key


def _refs(obj: Any) -> list[DependencyRef]:
    if isinstance(obj, DependencyRef):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [r for v in obj for r in _refs(v)]
    if isinstance(obj, dict):
        return [r for v in obj.values() for r in _refs(v)]
    return []


def import_executorlib(source: str | os.PathLike[str], store: Store) -> ImportReport:
    """Import the finished entries of the executorlib cache ``source`` into ``store``
    (may be the same directory).  Returns an :class:`ImportReport`; a file that
    cannot be read here is skipped with the reason, never half-written.  Safe to run
    again (entries already present are counted, not rewritten)."""
    if not os.path.isdir(source):
        raise CatalogError(f"{source}: not a directory (give an executorlib cache directory)")
    done, pending = executorlib_files(source)
    if not done and not pending:
        raise CatalogError(f"{source}: no executorlib cache files (<key>_o.h5, <key>_i.h5) "
                           "found in it or below it")
    imp = _Importer(store, done, str(source))
    for path in done:
        imp.key_of(str(path))
    imp.report.unfinished = len(pending)
    return imp.report
