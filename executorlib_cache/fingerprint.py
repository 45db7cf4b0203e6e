"""Fingerprints of functions and classes for cache keys (the "callables" rules of
``hashing.py``'s docstring), and which globals a function reads enter a key by value.

:class:`Fingerprinter` is a mixin of ``hashing._Encoder``: it walks code objects,
closures, defaults and the globals a function names; ``_Encoder`` supplies the value
encoding it calls back into (``value``, ``put``, ``text``...).  Fingerprints of
functions without mutable state are memoized per function object and re-validated
by identity checks of everything they read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import sys
import types
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

_SIMPLE_TYPES = frozenset({type(None), bool, int, float, str, bytes})
_BUILTIN_CALLABLES = (
    types.BuiltinFunctionType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)
#: class attributes that say where/how a class was defined, not what it does;
#: ``__slotnames__`` is added lazily by copyreg, ``__firstlineno__`` by Python 3.13
_UNHASHED_CLASS_ATTRS = frozenset(
    {"__dict__", "__weakref__", "__module__", "__qualname__", "__doc__", "__slotnames__",
     "__firstlineno__", "__static_attributes__"}
)
_MISSING = object()
_LENGTH = object()  # read-record key meaning "len(mapping)"
_CELL = object()  # read-record key meaning "the contents of this closure cell"
_MEMO_MAX = 4096

#: fingerprint memo: function or class -> (digest, reads); a read is
#: (mapping, key, value seen), (mapping, _LENGTH, length) or (cell, _CELL, contents)
_FINGERPRINTS: weakref.WeakKeyDictionary[Callable, tuple[bytes, tuple]] = (
    weakref.WeakKeyDictionary()
)



def _new_hash() -> Any:
    return hashlib.blake2b(digest_size=32)


#: a mutable global enters the key by value up to this many elements (about 0.5 ms
#: of hashing per submit at the limit; measured with the keys' own encoder)
GLOBAL_BY_VALUE_MAX = 1000
#: ... and a numpy array up to this many bytes
GLOBAL_ARRAY_MAX = 1 << 20
_CONTAINERS = (list, tuple, dict, set, frozenset)


def _is_pandas(obj: Any) -> bool:
    pd = sys.modules.get("pandas")  # no pandas imported -> no pandas objects
    return pd is not None and isinstance(obj, (pd.DataFrame, pd.Series, pd.Index))


def _json_like(obj: Any, budget: list[int]) -> bool:
    """Simple values in (nested) builtin containers, at most ``budget[0]`` in all."""
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if type(obj) in _SIMPLE_TYPES:
        return True
    if type(obj) is dict:
        return all(_json_like(k, budget) and _json_like(v, budget) for k, v in obj.items())
    if type(obj) in _CONTAINERS:
        return all(_json_like(x, budget) for x in obj)
    return False


def _small_data(obj: Any) -> bool:
    """A global that can enter a key by value cheaply: JSON-like containers, small
    numpy arrays, dataclass instances of such fields."""
    if type(obj) in _CONTAINERS:
        return _json_like(obj, [GLOBAL_BY_VALUE_MAX])
    numpy = sys.modules.get("numpy")
    if numpy is not None and type(obj) is numpy.ndarray:
        return not obj.dtype.hasobject and obj.nbytes <= GLOBAL_ARRAY_MAX
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _json_like([getattr(obj, f.name) for f in dataclasses.fields(obj)],
                          [GLOBAL_BY_VALUE_MAX])
    return False


def _users_data(obj: Any, home: str) -> bool:
    """Data the user may edit that did not enter the key by value: a container too
    large or holding objects, a numpy array over the limit, an instance of a class of
    the function's own module (a config object).  Other objects -- loggers, locks,
    a library's singletons -- stay silent."""
    numpy = sys.modules.get("numpy")
    if type(obj) in _CONTAINERS or (numpy is not None and type(obj) is numpy.ndarray):
        return True
    module = type(obj).__module__
    return module in (home, "__main__") and module != "builtins"


def _is_simple(value: Any) -> bool:
    """None/bool/int/float/str/bytes or a tuple of those: safe to hash by value."""
    if type(value) is tuple:
        return all(_is_simple(v) for v in value)
    return type(value) in _SIMPLE_TYPES


def _qualified_name(obj: Any) -> tuple[str, str]:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    qualname = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return str(module), str(qualname)


def _global_names(code: types.CodeType) -> dict[str, None]:
    """Names ``code`` and its nested code objects look up (in first-seen order)."""
    names = dict.fromkeys(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.update(_global_names(const))
    return names


def _cell_contents(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return _MISSING


def _reads_unchanged(reads: tuple) -> bool:
    for holder, key, seen in reads:
        if key is _LENGTH:
            changed = len(holder) != seen
        elif key is _CELL:
            changed = _cell_contents(holder) is not seen
        else:
            changed = holder.get(key, _MISSING) is not seen
        if changed:
            return False
    return True


def _is_shared_constant(value: Any) -> bool:
    """Safe to memoize by identity: immutable, or hashed by its own (tracked) reads."""
    return _is_simple(value) or isinstance(value, (types.FunctionType, type, types.ModuleType))


def _wrapped_function(obj: Any) -> Any:
    """The function a decorator object (``functools.cache``...) wraps, else None."""
    try:
        wrapped = obj.__wrapped__
    except Exception:  # arbitrary objects may raise anything from __getattr__
        return None
    return wrapped if type(wrapped) is types.FunctionType else None



class Fingerprinter:
    """Function and class fingerprints; mixed into the value encoder (see the module
    docstring), whose primitives it uses."""

    h: Any
    reads: list[tuple[Any, Any, Any]]
    memo_ok: bool
    unhashed: list[str]
    in_progress: set[int]

    # provided by the value encoder (hashing._Encoder)
    def put(self, tag: bytes, payload: bytes) -> None:
        """Feed a tagged, length-prefixed byte string."""

    def text(self, tag: bytes, s: str) -> None:
        """Feed a tagged string."""

    def header(self, tag: bytes, n: int) -> None:
        """Feed a tag and a count."""

    def qualified(self, tag: bytes, module: str, qualname: str) -> None:
        """Feed ``module.qualname``."""

    def sub_digest(self, encode: Callable[..., None], *args: Any) -> bytes:
        """The digest of what ``encode(*args)`` feeds, apart from the running hash."""
        raise NotImplementedError

    def value(self, obj: Any) -> None:
        """Feed any value, canonically."""

    def reduced(self, obj: Any) -> None:
        """Feed an ordinary object by its ``__reduce_ex__`` parts."""

    def callable_digest(self, fn: Any) -> bytes:
        """32 bytes naming what a callable computes (functions and classes by code,
        partials, bound methods, builtins by name, callable instances by state)."""
        if type(fn) is types.FunctionType or isinstance(fn, type):
            return self.graph_digest(fn)
        return self.sub_digest(self.callable_fingerprint, fn)

    def callable_fingerprint(self, fn: Any) -> None:
        """Feed a callable that is not a plain function or class."""
        if isinstance(fn, types.MethodType):
            self.put(b"m", self.callable_digest(fn.__func__))
            self.value(fn.__self__)
        elif isinstance(fn, partial):
            self.put(b"P", self.callable_digest(fn.func))
            self.value(fn.args)
            self.value(fn.keywords)
        elif isinstance(fn, _BUILTIN_CALLABLES):
            self.qualified(b"q", *_qualified_name(fn))
            self.value(getattr(fn, "__self__", None))
        else:  # a callable instance; decorators like functools.cache: also what they wrap
            self.put(b"G", self.graph_digest(type(fn)))
            wrapped = _wrapped_function(fn)
            if wrapped is not None:
                self.put(b"w", self.graph_digest(wrapped))
            self.reduced(fn)

    def graph_digest(self, root: Any) -> bytes:
        """Fingerprint of a function or class (see :meth:`graph`).  Outside any other
        fingerprint it does not depend on context, so it is memoized while every global,
        class attribute and closure cell it read is unchanged."""
        if id(root) in self.in_progress:  # e.g. a closure cell holding its own function
            return self.sub_digest(self.qualified, b"@", *_qualified_name(root))
        if self.in_progress:
            return self.graph(root)
        cached = _FINGERPRINTS.get(root)
        if cached is not None and _reads_unchanged(cached[1]):
            return cached[0]
        self.reads, self.memo_ok = [], True
        digest = self.graph(root)
        if self.memo_ok:
            if len(_FINGERPRINTS) >= _MEMO_MAX:  # entries reference their key: bound them
                _FINGERPRINTS.clear()
            _FINGERPRINTS[root] = (digest, tuple(self.reads))
        return digest

    def graph(self, root: Any) -> bytes:
        """The root's own digest followed by the sorted digests of the functions/classes
        of its module it reaches through globals, bases and class attributes (sorted, so
        the walk order is irrelevant; each is hashed once, so recursion is harmless)."""
        self.in_progress.add(id(root))
        home = root.__module__
        seen, queue, digests = {id(root)}, [root], []
        while queue:
            node = queue.pop()
            reached: list[Any] = []
            if isinstance(node, type):
                digests.append(self.sub_digest(self.class_body, node, home, reached))
            else:
                digests.append(self.sub_digest(self.function_body, node, home, reached))
            for ref in reached:
                if id(ref) not in seen:
                    seen.add(id(ref))
                    queue.append(ref)
        self.in_progress.discard(id(root))
        digest = _new_hash()
        digest.update(digests[0] + b"".join(sorted(digests[1:])))
        result: bytes = digest.digest()
        return result

    def function_body(self, fn: types.FunctionType, home: str, reached: list) -> None:
        """Feed one function: code, defaults, closure cells, the globals it names."""
        self.qualified(b"F", *_qualified_name(fn))
        self.put(b"C", self.sub_digest(self.code, fn.__code__))
        defaults, kwdefaults = fn.__defaults__, fn.__kwdefaults__
        if not (_is_simple(defaults) and all(map(_is_simple, (kwdefaults or {}).values()))):
            self.memo_ok = False
        self.value(defaults)
        self.value(kwdefaults)
        self.header(b"k", len(fn.__closure__ or ()))
        for cell in fn.__closure__ or ():
            contents = _cell_contents(cell)
            self.reads.append((cell, _CELL, contents))
            if contents is _MISSING:
                self.h.update(b"-")
            else:
                self.memo_ok = self.memo_ok and _is_shared_constant(contents)
                self.value(contents)
        namespace = fn.__globals__
        for name in _global_names(fn.__code__):
            found = namespace.get(name, _MISSING)
            self.reads.append((namespace, name, found))
            if found is not _MISSING:
                self.text(b"n", name)
                self.reference(found, home, reached, label=f"{fn.__qualname__}|{name}")

    def class_body(self, cls: type, home: str, reached: list) -> None:
        """Feed one class: bases and attributes (methods join the graph)."""
        self.qualified(b"T", *_qualified_name(cls))
        for base in cls.__bases__:
            self.reference(base, home, reached)
        attrs = vars(cls)
        self.reads.append((attrs, _LENGTH, len(attrs)))
        for name in sorted(attrs):
            if name not in _UNHASHED_CLASS_ATTRS:
                self.reads.append((attrs, name, attrs[name]))
                self.text(b"n", name)
                self.reference(attrs[name], home, reached,
                               label=f"{cls.__qualname__}|{cls.__qualname__}.{name}")

    def reference(self, obj: Any, home: str, reached: list, label: str = "") -> None:
        """A global or class attribute: same-module functions/classes join the graph."""
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        wrapped = _wrapped_function(obj) if callable(obj) else None
        if wrapped is not None and type(obj) is not types.FunctionType:
            self.h.update(b"w")  # a decorator object: hash what it wraps, then itself
            self.reference(wrapped, home, reached)
        if type(obj) is types.FunctionType or isinstance(obj, type):
            if obj.__module__ == home:
                reached.append(obj)
                self.qualified(b"&", *_qualified_name(obj))
            else:
                self.qualified(b"q", *_qualified_name(obj))
        elif _is_simple(obj):
            self.value(obj)
        elif isinstance(obj, types.ModuleType):
            self.text(b"M", obj.__name__)
        elif isinstance(obj, property):
            self.h.update(b"h")
            for accessor in (obj.fget, obj.fset, obj.fdel):
                self.reference(accessor, home, reached)
        elif isinstance(obj, _BUILTIN_CALLABLES):
            self.qualified(b"q", *_qualified_name(obj))
        elif _small_data(obj):
            # a mutable global a function reads (a config dict, a list, a small array
            # or dataclass): by value, so editing it changes the key; its fingerprint
            # is then recomputed at every submit (an in-place edit keeps its identity)
            self.memo_ok = False
            self.h.update(b"V")
            self.value(obj)
        else:
            self.qualified(b"y", *_qualified_name(type(obj)))
            if label and _users_data(obj, home):
                self.unhashed.append(f"{label}|{type(obj).__name__}")

    def code(self, code: types.CodeType) -> None:
        """A code object without its file name, line numbers or position tables."""
        self.put(b"b", code.co_code)
        self.put(b"x", getattr(code, "co_exceptiontable", b""))
        self.h.update(
            struct.pack(
                "<4q", code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
                code.co_flags,
            )
        )
        self.text(b"s", code.co_name)
        for names in (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars):
            self.value(names)
        self.value(code.co_consts)  # nested code objects come back here


