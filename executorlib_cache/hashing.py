"""Cache keys: ``task_key(fn, args, kwargs)`` names the cache entry of a call.

The key is the only link between a call and its cached result, so it must be a
function of *what is computed* and of nothing else.  The rules, and how they are kept:

* **Same key in every process.**  Nothing here uses ``hash()``, ``id()`` order or
  iteration order of sets: sets/frozensets are encoded as the sorted digests of their
  elements, dicts as the sorted digests of their (key, value) entries.  So the key is
  the same under any ``PYTHONHASHSEED`` and whatever order kwargs were passed in.
  Dicts passed as *arguments* are order-insensitive too (as ``==`` is); an
  ``OrderedDict`` keeps its order.
* **Our own encoding, not pickle bytes.**  Pickle output changes with the cloudpickle
  version, and cloudpickle pickles importable functions *by reference* (an edited body
  would keep its key).  Values are encoded by a tagged walk (``1``, ``1.0``, ``"1"``,
  ``b"1"`` and ``True`` all differ); ordinary objects by their type plus the parts of
  ``__reduce_ex__(4)``.  cloudpickle bytes are only a last resort for objects that
  cannot be reduced (property, mappingproxy, dict views...): such keys are stable only
  for one cloudpickle version, which is a cache miss at worst.
* **Functions are hashed by their code, wherever they live.**  The fingerprint of a
  function is its module, qualname and a hash of its code object (``co_code``,
  constants with nested code objects, names, variable names, argument counts, flags,
  exception table) -- never ``co_filename``, ``co_firstlineno`` or the line tables, so
  moving or renaming the script, another working directory or a blank line / comment
  above the function keep the key, while editing the body changes it.  Also hashed:
  ``__defaults__``, ``__kwdefaults__``, closure cell contents, and the globals the
  code (including nested code objects) names: functions and classes *of the same
  module* contribute their own fingerprint (so editing a helper the function calls
  changes the key), simple constants (None/bool/int/float/str/bytes and tuples of
  those) their value, modules their name, functions/builtins of other modules their
  qualified name, anything else only its type's qualified name (a global list or
  config object may change without changing the key).  Functions and classes of the
  same module are collected as a graph (each hashed once, recursion is harmless) and
  the fingerprint is the root's own digest plus the *sorted* digests of the rest.
  Builtins are fingerprinted by module + qualname (+ ``__self__``), partials by their
  function plus arguments, bound methods by ``__func__`` plus ``__self__``, classes by
  their methods and attributes, callable instances by their class plus their state.
* **Upstream tasks by key.**  A :class:`~executorlib_cache.deps.DependencyRef` and any
  future carrying a ``key`` string both encode as "dependency on <key>", so a
  dependent's key does not depend on whether its upstream was pending or done (a
  future without a key is refused: its value is unknown).  A reference with a
  selector (``split_future``/``get_item_from_future``) encodes as the upstream key
  plus the selector path; a batch (``Executor.batched``) as the list of its members.
* **Versioned.**  Keys look like ``name-v1-<32 hex>``; the hash starts with a version
  tag, so changing the encoding means bumping :data:`KEY_VERSION`.

Recursive values are encoded with back-references to the container being encoded.
Shared (non-recursive) sub-objects are encoded once per occurrence.

Cost (Python 3.11, this project's 2-core machine, timeit): ``task_key`` of a
module-level function with three small positional and one keyword argument takes
about 6 us (3 us with one int argument) after the first call (~110 us), because the
fingerprint of a function without closure and with immutable defaults is memoized per
function object and re-validated by identity checks of every global (and class
attribute) it read (reassigning ``fn.__code__``/``fn.__defaults__`` in place is not
detected; the memo is cleared past 4096 functions because its entries keep their
function's globals alive).  Closures whose cells hold constants, functions, classes
or modules are memoized the same way; a fresh function object (a lambda written in
the submit call) costs ~12-18 us.
Numeric numpy arrays are streamed into the hash without a copy when C-contiguous:
about 1 GB/s for a 100 MB array, the speed of blake2b itself.
"""

from __future__ import annotations

import copyreg
import enum
import re
import struct
import sys
import types
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from functools import partial
from pathlib import PurePath
from typing import Any

import cloudpickle

from executorlib_cache.deps import DependencyRef

from .errors import SerializationError
from .fingerprint import (
    Fingerprinter,
    _is_pandas,
    _new_hash,
    _qualified_name,
)

KEY_VERSION = 1

_KEY_TAG = b"xcache-key-v%d\0" % KEY_VERSION
_NAME_MAX = 40
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_]")
_NAN = struct.pack("<d", float("nan"))


class CacheKeyWarning(UserWarning):
    """A function reads a global whose value is not part of its cache key."""


_WARNED: set[str] = set()


def task_key(fn: Callable, args: tuple, kwargs: dict) -> str:
    """The cache key of ``fn(*args, **kwargs)``: ``name-v<KEY_VERSION>-<32 hex>``.

    Warns (:class:`CacheKeyWarning`, once per function and global) when the function
    reads a global of the user's that enters the key by type only (see the module
    docstring): editing it would not invalidate cached results.
    """
    enc = _Encoder()
    enc.h.update(_KEY_TAG)
    enc.put(b"F", enc.callable_digest(fn))
    try:
        enc.value(tuple(args))
        enc.value(dict(kwargs))
    except RecursionError:  # a list that contains itself, or nesting deeper than ~900
        raise SerializationError(
            f"the arguments of {function_name(fn)!r} cannot be hashed into a cache key: "
            "an argument contains itself (a self-referencing list or dict) or is nested "
            "too deeply; pass it in another form, or give the call a cache_key") from None
    for item in enc.unhashed:
        if item not in _WARNED:
            _WARNED.add(item)
            qualname, name, tname = item.split("|")
            warnings.warn(
                f"{qualname} reads the global {name!r} (a {tname}), which is not part of "
                "its cache key: after editing it, cached results of the call are still "
                "hits. Pass it as an argument, or give the call a cache_key.",
                CacheKeyWarning, stacklevel=4)
    return f"{function_name(fn)}-v{KEY_VERSION}-{enc.h.hexdigest()[:32]}"


def canonical_digest(obj: Any) -> str:
    """Hex digest of the canonical encoding of ``obj`` (see the module docstring)."""
    enc = _Encoder()
    enc.value(obj)
    return enc.h.hexdigest()


def function_name(fn: Any) -> str:
    """Short name of ``fn`` usable as a directory-name prefix: ``[A-Za-z0-9_]{1,40}``."""
    while isinstance(fn, partial):
        fn = fn.func
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        name = type(fn).__name__
    return _UNSAFE_NAME_CHARS.sub("", name)[:_NAME_MAX] or "call"





class _Encoder(Fingerprinter):
    """One canonical walk, feeding ``self.h``.

    ``containers`` maps the id of every value being encoded to its depth (for
    back-references); ``in_progress`` holds ids of callables being fingerprinted (a
    closure cell holding its own function); ``reads``/``memo_ok`` decide whether the
    fingerprint being computed may be memoized.
    """

    __slots__ = ("h", "containers", "in_progress", "reads", "memo_ok", "unhashed", "global_name")

    def __init__(self) -> None:
        self.h = _new_hash()
        self.containers: dict[int, int] = {}
        self.in_progress: set[int] = set()
        self.reads: list[tuple[Any, Any, Any]] = []
        self.memo_ok = True
        #: type names of globals that entered the key by type only (for the warning)
        self.unhashed: list[str] = []
        self.global_name = ""

    # -- primitives -------------------------------------------------------------------

    def header(self, tag: bytes, n: int) -> None:
        self.h.update(tag + n.to_bytes(8, "little"))

    def put(self, tag: bytes, payload: bytes) -> None:
        self.h.update(tag + len(payload).to_bytes(8, "little") + payload)

    def text(self, tag: bytes, s: str) -> None:
        self.put(tag, s.encode("utf-8", "surrogatepass"))

    def qualified(self, tag: bytes, module: str, qualname: str) -> None:
        self.text(tag, module)
        self.text(b".", qualname)

    def sub_digest(self, encode: Callable[..., None], *args: Any) -> bytes:
        outer, self.h = self.h, _new_hash()
        encode(*args)
        digest: bytes = self.h.digest()
        self.h = outer
        return digest

    def enter(self, obj: Any) -> bool:
        """Start encoding a container; False (and a back-reference) if it is recursive."""
        depth = self.containers.get(id(obj))
        if depth is not None:
            self.header(b"^", depth)
            return False
        self.containers[id(obj)] = len(self.containers)
        return True

    def leave(self, obj: Any) -> None:
        del self.containers[id(obj)]

    # -- values -----------------------------------------------------------------------

    def value(self, obj: Any) -> None:
        encode = _EXACT_TYPES.get(type(obj))
        if encode is not None:
            encode(self, obj)
        else:
            self.other_value(obj)

    def none(self, obj: None) -> None:
        self.h.update(b"N")

    def bool_(self, obj: bool) -> None:
        self.h.update(b"1" if obj else b"0")

    def int_(self, obj: int) -> None:
        self.put(b"i", obj.to_bytes(obj.bit_length() // 8 + 1, "little", signed=True))

    def float_(self, obj: float) -> None:
        self.h.update(b"f" + (_NAN if obj != obj else struct.pack("<d", obj)))

    def complex_(self, obj: complex) -> None:
        self.h.update(b"c")
        self.float_(obj.real)
        self.float_(obj.imag)

    def str_(self, obj: str) -> None:
        self.text(b"s", obj)

    def bytes_(self, obj: bytes) -> None:
        self.put(b"b", obj)

    def bytearray_(self, obj: bytearray) -> None:
        self.put(b"B", bytes(obj))

    def sequence(self, obj: list | tuple) -> None:
        if self.enter(obj):
            self.header(b"l" if type(obj) is list else b"t", len(obj))
            for item in obj:
                self.value(item)
            self.leave(obj)

    def dict_(self, obj: dict) -> None:
        if self.enter(obj):
            self.items(b"d", obj.items(), ordered=False)
            self.leave(obj)

    def items(self, tag: bytes, items: Iterable, ordered: bool) -> None:
        """Mapping entries; unordered ones sorted by (key digest, value digest)."""
        digest = self.sub_digest
        entries = [digest(self.value, k) + digest(self.value, v) for k, v in items]
        if not ordered:
            entries.sort()
        self.header(tag, len(entries))
        self.h.update(b"".join(entries))

    def set_(self, obj: set | frozenset) -> None:
        if self.enter(obj):
            digests = sorted(self.sub_digest(self.value, item) for item in obj)
            self.header(b"S" if type(obj) is frozenset else b"{", len(digests))
            self.h.update(b"".join(digests))
            self.leave(obj)

    def range_(self, obj: range) -> None:
        self.h.update(b"R")
        for part in (obj.start, obj.stop, obj.step):
            self.int_(part)

    def slice_(self, obj: slice) -> None:
        self.h.update(b":")
        for part in (obj.start, obj.stop, obj.step):
            self.value(part)

    def dependency(self, obj: DependencyRef) -> None:
        if obj.selector:  # the upstream key plus the path into its value
            self.text(b"K", obj.key)
            self.value(tuple(obj.selector))
        else:
            self.text(b"D", obj.key)

    def callable_value(self, obj: Any) -> None:
        self.put(b"F", self.callable_digest(obj))

    def other_value(self, obj: Any) -> None:
        numpy = sys.modules.get("numpy")  # no numpy imported -> no numpy objects
        if isinstance(obj, enum.Enum):
            self.qualified(b"E", *_qualified_name(type(obj)))
            self.value(obj.name if obj.name is not None else obj.value)
        elif isinstance(obj, DependencyRef):
            self.dependency(obj)
        elif isinstance(obj, Future):
            self.future(obj)
        elif isinstance(obj, type):
            self.class_value(obj)
        elif isinstance(obj, types.ModuleType):
            self.text(b"M", obj.__name__)
        elif isinstance(obj, PurePath):
            self.text(b"P", str(obj))
        elif isinstance(obj, types.CodeType):
            self.put(b"C", self.sub_digest(self.code, obj))
        elif numpy is not None and type(obj) is numpy.ndarray:
            self.ndarray(obj, numpy)
        elif _is_pandas(obj):
            self.pandas_value(obj, sys.modules["pandas"])
        elif numpy is not None and isinstance(obj, numpy.generic):
            self.text(b"n", obj.dtype.str)
            self.put(b"v", obj.tobytes())
        else:
            self.reduced(obj)

    def future(self, obj: Future) -> None:
        members = getattr(obj, "batch_members", None)
        if members is not None:  # a batch: the list of its members
            self.value(list(members))
            return
        key = getattr(obj, "key", None)
        path = getattr(obj, "selector_path", None)
        if isinstance(key, str) and path:
            self.dependency(DependencyRef(key, tuple(path)))
            return
        if not isinstance(key, str):
            raise TypeError(
                "a future without a cache key cannot be part of a cache key: pass futures "
                "returned by an executorlib_cache executor"
            )
        self.text(b"D", key)

    def class_value(self, cls: type) -> None:
        """A class as a value: by name; ``__main__`` classes also by their contents."""
        if cls.__module__ == "__main__":
            self.put(b"G", self.graph_digest(cls))
        else:
            self.qualified(b"T", *_qualified_name(cls))

    def ndarray(self, arr: Any, numpy: Any) -> None:
        self.h.update(b"a")
        self.value(arr.dtype.descr if arr.dtype.fields else arr.dtype.str)
        self.value(arr.shape)
        if arr.dtype.hasobject:
            if self.enter(arr):
                self.h.update(b"o")
                self.value(arr.tolist())
                self.leave(arr)
            return
        flat = numpy.ascontiguousarray(arr).reshape(-1).view(numpy.uint8)  # no copy if C order
        self.header(b"A", flat.nbytes)
        self.h.update(flat)

    def pandas_value(self, obj: Any, pd: Any) -> None:
        """A DataFrame, Series or Index by its content -- labels, names, dtypes and
        values -- never its internal block layout: frames that are ``equals`` (built
        at once, or column by column) get the same key."""
        if not self.enter(obj):
            return
        if isinstance(obj, pd.DataFrame):
            self.h.update(b"pD")
            self.pandas_index(obj.columns)
            self.pandas_index(obj.index)
            self.header(b"c", obj.shape[1])
            for _, column in obj.items():
                self.pandas_values(column)
        elif isinstance(obj, pd.Series):
            self.h.update(b"pS")
            self.value(obj.name)
            self.pandas_index(obj.index)
            self.pandas_values(obj)
        else:
            self.pandas_index(obj)
        self.leave(obj)

    def pandas_index(self, index: Any) -> None:
        self.h.update(b"pI")
        self.value(list(index.names))
        self.pandas_values(index)

    def pandas_values(self, data: Any) -> None:
        """dtype (its repr: categories, timezone, units) and the values as numpy."""
        self.text(b"t", repr(data.dtype))
        arr = data.to_numpy()
        if arr.dtype.hasobject:
            self.value(arr.tolist())
        else:
            self.ndarray(arr, sys.modules["numpy"])

    def reduced(self, obj: Any) -> None:
        """An ordinary object: its type plus the parts of ``__reduce_ex__(4)``."""
        try:
            reducer = copyreg.dispatch_table.get(type(obj))
            parts = reducer(obj) if reducer is not None else obj.__reduce_ex__(4)
        except Exception:
            self.pickled(obj)
            return
        if isinstance(parts, str):  # a global singleton, pickled by name
            self.qualified(b"g", getattr(obj, "__module__", None) or type(obj).__module__, parts)
            return
        if not self.enter(obj):
            return
        func, args, state, listitems, dictitems = (tuple(parts) + (None,) * 4)[:5]
        self.h.update(b"O")
        self.class_value(type(obj))
        self.qualified(b"q", *_qualified_name(func))
        self.value(args)
        self.value(state)
        self.value(None if listitems is None else list(listitems))
        if dictitems is not None:
            self.items(b"d", dictitems, ordered=isinstance(obj, OrderedDict))
        self.leave(obj)

    def pickled(self, obj: Any) -> None:
        """Last resort: cloudpickle bytes (stable only for one cloudpickle version)."""
        try:
            data = cloudpickle.dumps(obj, protocol=4)
        except Exception as exc:
            raise TypeError(
                f"cannot compute a cache key: {type(obj).__qualname__} object is neither "
                f"reducible nor picklable ({exc})"
            ) from exc
        self.put(b"p", data)

_EXACT_TYPES: dict[type, Callable[[_Encoder, Any], None]] = {
    type(None): _Encoder.none,
    bool: _Encoder.bool_,
    int: _Encoder.int_,
    float: _Encoder.float_,
    complex: _Encoder.complex_,
    str: _Encoder.str_,
    bytes: _Encoder.bytes_,
    bytearray: _Encoder.bytearray_,
    list: _Encoder.sequence,
    tuple: _Encoder.sequence,
    dict: _Encoder.dict_,
    set: _Encoder.set_,
    frozenset: _Encoder.set_,
    range: _Encoder.range_,
    slice: _Encoder.slice_,
    DependencyRef: _Encoder.dependency,
    types.FunctionType: _Encoder.callable_value,
    types.MethodType: _Encoder.callable_value,
    partial: _Encoder.callable_value,
    types.BuiltinFunctionType: _Encoder.callable_value,
}
