"""Cache keys: stable across processes, hash seeds, paths and line shifts; sensitive
to the code and the arguments.  See ``executorlib_cache/hashing.py``."""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import math
import os
import re
import subprocess
import sys
import textwrap
import threading
import timeit
import tracemalloc
import types
from concurrent.futures import Future
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from conftest import require

from executorlib_cache import fingerprint, hashing
from executorlib_cache.deps import DependencyRef
from executorlib_cache.hashing import KEY_VERSION, canonical_digest, function_name, task_key

REPO = Path(__file__).resolve().parents[1]
KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=-]*$")
SUBPROCESS_TIMEOUT = 60


# -- helpers --------------------------------------------------------------------------


def load(source: str, name: str = "hmod", filename: str = "hmod.py") -> dict:
    """Execute ``source`` as a module called ``name``; return its namespace."""
    namespace: dict = {"__name__": name}
    exec(compile(textwrap.dedent(source), filename, "exec"), namespace)
    return namespace


def run_script(script: Path, cwd: Path, seed: str = "0") -> str:
    env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def run_scripts(jobs: list[tuple[Path, Path, str]]) -> list[str]:
    """Run several ``(script, cwd, seed)`` at once; their stdout, in order."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(script)], cwd=cwd,
            env=dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(REPO)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for script, cwd, seed in jobs
    ]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
            assert proc.returncode == 0, err
            outputs.append(out.strip())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return outputs


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def square(x):
    return x * x


def add(a, b=1, *, c=0):
    return square(a) + b + c


# -- key format ------------------------------------------------------------------------


class Adder:
    def __init__(self, n):
        self.n = n

    def __call__(self, x):
        return x + self.n

    def shifted(self, x):
        return x + self.n


def test_key_format():
    key = task_key(add, (1,), {})
    assert re.fullmatch(rf"add-v{KEY_VERSION}-[0-9a-f]{{32}}", key)
    for fn in (add, lambda x: x, functools.partial(add, 1), Adder(1), Adder(1).shifted, len,
               Adder, functools.partial(functools.partial(square), 2)):
        assert KEY_RE.match(task_key(fn, (1,), {})), fn


def test_function_name():
    assert function_name(add) == "add"
    assert function_name(lambda: 0) == "lambda"
    assert function_name(functools.partial(functools.partial(square, 1))) == "square"
    assert function_name(Adder(1)) == "Adder"
    assert function_name(Adder(1).shifted) == "shifted"
    assert function_name(Adder) == "Adder"
    assert function_name(len) == "len"
    long = load("def " + "x" * 60 + "(): pass")["x" * 60]
    assert function_name(long) == "x" * 40
    odd = load("def größe(): pass")["größe"]
    assert re.fullmatch(r"[A-Za-z0-9_]{1,40}", function_name(odd))
    nameless = load("def ü(): pass")["ü"]
    assert function_name(nameless) == "call"


# -- 1. hash seed ----------------------------------------------------------------------

SEED_SCRIPT = """
import json
from executorlib_cache.hashing import canonical_digest, task_key
from executorlib_cache.deps import DependencyRef

def work(*args, **kwargs):
    return len(args)

words = {f"w{i}" for i in range(50)}
cases = [
    ((words,), {}),
    ((frozenset(words),), {"tags": {"x", "y", "z"}}),
    (({"a": {"p", "q", "r"}, "b": frozenset({"s", "t"})},), {}),
    (({("a", 1), ("b", 2), ("c", 3)},), {"nested": [{frozenset({"u", "v"}), "w"}]}),
    (({frozenset({"a", "b"}): {"c", "d"}},), {}),
    ((DependencyRef("up-v1-0"), {DependencyRef("x"), DependencyRef("y")}), {}),
]
print(json.dumps([task_key(work, a, k) for a, k in cases] + [canonical_digest(words)]))
"""


def test_same_key_under_other_hash_seeds(tmp_path):
    script = write(tmp_path / "seed.py", SEED_SCRIPT)
    outputs = run_scripts([(script, tmp_path, seed) for seed in ("0", "1", "2")])
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(set(eval(outputs[0]))) == 7


# -- 2. kwargs and dict order --------------------------------------------------------


def test_kwargs_order_does_not_matter():
    assert task_key(add, (1,), {"b": 2, "c": 3}) == task_key(add, (1,), {"c": 3, "b": 2})
    assert task_key(add, (1,), {"b": 2}) != task_key(add, (1,), {"b": 3})
    assert task_key(add, (1,), {"b": 2}) != task_key(add, (1,), {"c": 2})


def test_dict_arguments_are_order_insensitive():
    one = {"x": 1, "y": {"a": [1, 2]}, 3: None}
    two = {3: None, "y": {"a": [1, 2]}, "x": 1}
    assert task_key(add, (one,), {}) == task_key(add, (two,), {})
    assert task_key(add, (one,), {}) != task_key(add, ({"x": 1},), {})
    # an OrderedDict is equal only to the same order: keep it
    first = collections.OrderedDict([("a", 1), ("b", 2)])
    second = collections.OrderedDict([("b", 2), ("a", 1)])
    assert canonical_digest(first) != canonical_digest(second)


# -- 3. paths, names, line numbers, edits (subprocesses) -------------------------------

MAIN_TEMPLATE = """
import math
from executorlib_cache.hashing import task_key

SCALE = {scale}

def helper(x):
    return x * {helper_factor}

{above}def work(x, y=2):
    total = {called}(x) + {const}
    return total {op} y * SCALE + math.floor(0.5)

print(task_key(work, (1,), {{"y": 5}}))
"""

MAIN_BASE = dict(scale=3, helper_factor=2, above="", called="helper", const=10, op="+")


def main_script(path: Path, **changes) -> Path:
    return write(path, MAIN_TEMPLATE.format(**{**MAIN_BASE, **changes}))


def test_main_script_key_ignores_location_and_line_shifts(tmp_path):
    base = main_script(tmp_path / "a" / "job.py")
    moved = main_script(tmp_path / "b" / "c" / "renamed_job.py")
    shifted = main_script(tmp_path / "a2" / "job.py", above="\n\n# a comment\n\n")
    other_cwd = tmp_path / "elsewhere"
    other_cwd.mkdir()
    keys = run_scripts([
        (base, base.parent, "0"),
        (moved, other_cwd, "1"),
        (shifted, tmp_path, "2"),
        (base, other_cwd, "3"),
    ])
    assert keys[0].startswith("work-v1-")
    assert len(set(keys)) == 1, keys


def test_main_script_key_follows_code_edits(tmp_path):
    variants = {
        "base": {},
        "const": dict(const=11),
        "op": dict(op="-"),
        "called": dict(called="abs"),
        "helper": dict(helper_factor=4),
        "global": dict(scale=4),
    }
    scripts = [main_script(tmp_path / name / "job.py", **edit) for name, edit in variants.items()]
    keys = run_scripts([(script, script.parent, "0") for script in scripts])
    assert len(set(keys)) == len(variants), dict(zip(variants, keys, strict=True))


MODULE_TEMPLATE = """
def helper(x):
    return x + {helper_add}

{above}def work(x):
    return helper(x) * {factor}
"""

DRIVER = """
import sys
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else {moddir!r})
import workmod
from executorlib_cache.hashing import task_key
print(task_key(workmod.work, (2,), {{}}))
"""


def test_importable_function_is_hashed_by_code_not_reference(tmp_path):
    variants = {
        "base": dict(helper_add=1, above="", factor=3),
        "moved": dict(helper_add=1, above="", factor=3),
        "shifted": dict(helper_add=1, above="# comment\n\n\n", factor=3),
        "body": dict(helper_add=1, above="", factor=4),
        "helper": dict(helper_add=2, above="", factor=3),
    }
    jobs = []
    for name, fields in variants.items():
        moddir = tmp_path / name / ("deep/pkgdir" if name == "moved" else "m")
        write(moddir / "workmod.py", MODULE_TEMPLATE.format(**fields))
        driver_source = DRIVER.format(moddir=str(moddir))
        driver = write(tmp_path / name / "drv" / f"driver_{name}.py", driver_source)
        jobs.append((driver, tmp_path if name == "moved" else driver.parent, "0"))
    keys = dict(zip(variants, run_scripts(jobs), strict=True))
    assert keys["base"] == keys["moved"] == keys["shifted"]
    assert len({keys["base"], keys["body"], keys["helper"]}) == 3


# -- 3/5. in-process fingerprint rules ------------------------------------------------

MODULE = """
import math

LIMIT = 10
SETTINGS = {"a": 1}

def helper(x):
    return x + LIMIT

def work(x, y=2, *, z=(1, "a")):
    return [helper(v) for v in range(x)] + [math.sqrt(y)]
"""


def key_of(source: str, fn: str = "work", **kw) -> str:
    return task_key(load(source, **kw)[fn], (3,), {"y": 4})


def test_filename_and_first_line_do_not_matter():
    base = key_of(MODULE)
    assert key_of(MODULE, filename="/elsewhere/other.py") == base
    assert key_of("\n\n\n# comment\n" + MODULE) == base
    assert key_of(MODULE.replace("def work", "\n# about work\n\ndef work")) == base


@pytest.mark.parametrize(
    "old, new",
    [
        ("x + LIMIT", "x - LIMIT"),  # helper body
        ("LIMIT = 10", "LIMIT = 11"),  # global constant used by the helper
        ("helper(v)", "abs(v)"),  # called name
        ("range(x)", "range(x + 1)"),  # body constant, inside a comprehension
        ("math.sqrt", "math.floor"),  # attribute
        ("import math", "import cmath as math"),  # module referenced
        ("y=2", "y=3"),  # default
        ('z=(1, "a")', 'z=(1, "b")'),  # keyword-only default
        ("def work(x, y=2", "def work(x, w=2"),  # argument name
    ],
)
def test_code_edits_change_the_key(old, new):
    assert MODULE.count(old) == 1
    assert key_of(MODULE) != key_of(MODULE.replace(old, new))


def test_a_small_mutable_global_enters_the_key_by_value():
    """Issue 12, item 10: a function that reads a global dict, list, small array or
    dataclass gets a new key when that global is edited -- also in place, which
    keeps the object's identity (so its fingerprint is not memoized)."""
    source = MODULE.replace("range(x)", "range(x + len(SETTINGS))")
    ns = load(source)
    before = task_key(ns["work"], (1,), {})
    assert task_key(ns["work"], (1,), {}) == before  # same value, same key
    ns["SETTINGS"]["b"] = 2
    edited = task_key(ns["work"], (1,), {})
    assert edited != before
    ns["SETTINGS"].pop("b")
    assert task_key(ns["work"], (1,), {}) == before
    arr = load("import numpy\nA = numpy.arange(4.0)\ndef f():\n    return A.sum()\n")
    k = task_key(arr["f"], (), {})
    arr["A"][0] = 7.0
    assert task_key(arr["f"], (), {}) != k


def test_a_global_that_cannot_enter_by_value_warns_once():
    """Too big, or an object of the user's own class: it enters by type only, and
    submit() says so once per function and global (CacheKeyWarning)."""
    import warnings

    ns = load("""
        BIG = {i: [i] * 3 for i in range(5000)}
        class Config:
            def __init__(self):
                self.scale = 2
        CONF = Config()
        def f(x):
            return BIG.get(x, x) * CONF.scale
    """, name="warnmod")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task_key(ns["f"], (1,), {})
        task_key(ns["f"], (2,), {})
    texts = [str(w.message) for w in caught if issubclass(w.category, hashing.CacheKeyWarning)]
    assert len(texts) == 2 and any("'BIG'" in t for t in texts) and \
        any("'CONF'" in t and "Config" in t for t in texts), texts
    assert all("cache_key" in t for t in texts)


def test_equal_dataframes_get_equal_keys():
    """Issue 12, item 9: frames that are ``equals`` get one key whatever their block
    layout (built at once or column by column); content changes give another."""
    pd = require("pandas")
    a = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]})
    b = pd.DataFrame({"x": [1.0, 2.0]})
    b["y"] = [3.0, 4.0]
    assert a.equals(b) and canonical_digest(a) == canonical_digest(b)
    assert canonical_digest(a.copy()) == canonical_digest(a)
    c = a.copy()
    c.iloc[0, 0] = 9.0
    d = a.rename(columns={"y": "z"})
    e = a.astype({"y": "float32"})
    f = a.set_index("x")
    for other in (c, d, e, f):
        assert canonical_digest(other) != canonical_digest(a)
    s1 = pd.Series([1, 2], index=pd.RangeIndex(2), name="s")
    s2 = pd.Series([1, 2], index=pd.Index([0, 1]), name="s")
    assert s1.equals(s2) and canonical_digest(s1) == canonical_digest(s2)
    cat = pd.Series(["a", "b"], dtype="category")
    cat2 = pd.Series(["a", "b"], dtype=pd.CategoricalDtype(["a", "b", "c"]))
    assert canonical_digest(cat) != canonical_digest(cat2)  # other categories
    mixed = pd.DataFrame({"s": ["u", None], "t": pd.to_datetime(["2024-01-01", None])})
    assert canonical_digest(mixed) == canonical_digest(mixed.copy())


def test_memo_sees_rebound_globals_and_helpers():
    ns = load(MODULE)
    work = ns["work"]
    first = task_key(work, (1,), {})
    assert task_key(work, (1,), {}) == first and work in fingerprint._FINGERPRINTS
    ns["LIMIT"] = 11
    assert task_key(work, (1,), {}) != first
    ns["LIMIT"] = 10
    assert task_key(work, (1,), {}) == first
    ns["helper"] = load(MODULE.replace("x + LIMIT", "x * LIMIT"))["helper"]
    assert task_key(work, (1,), {}) != first
    ns["helper"] = load(MODULE)["helper"]
    assert task_key(work, (1,), {}) == first
    ns["abs"] = len  # a global the function does not name: memo still valid
    assert task_key(work, (1,), {}) == first
    ns["range"] = len  # shadowing a builtin it uses: a new fingerprint
    assert task_key(work, (1,), {}) != first


def test_key_survives_bytecode_specialization():
    ns = load(MODULE)
    before = task_key(ns["work"], (1,), {})
    fingerprint._FINGERPRINTS.clear()
    for i in range(3000):
        ns["work"](2)
        ns["helper"](i)
    assert task_key(ns["work"], (1,), {}) == before


RECURSIVE = """
def fact(n):
    return 1 if n < 2 else n * fact(n - 1)

def even(n):
    return n == 0 or odd(n - 1)

def odd(n):
    return n != 0 and even(n - 1)

def make():
    def inner(n):
        return 0 if n == 0 else inner(n - 1)
    return inner

inner = make()
"""


def test_recursion_terminates_and_is_stable():
    a, b = load(RECURSIVE), load(RECURSIVE, filename="x.py")
    for name in ("fact", "even", "odd", "inner"):
        assert task_key(a[name], (3,), {}) == task_key(b[name], (3,), {})
    assert task_key(a["even"], (3,), {}) != task_key(a["odd"], (3,), {})
    edited = load(RECURSIVE.replace("n != 0 and", "n > 0 and"))
    assert task_key(a["even"], (3,), {}) != task_key(edited["even"], (3,), {})


def test_closure_contents_are_hashed():
    def make(k):
        def shifted(x):
            return x + k
        return shifted

    assert task_key(make(1), (0,), {}) == task_key(make(1), (0,), {})
    assert task_key(make(1), (0,), {}) != task_key(make(2), (0,), {})
    assert task_key(make({"a"}), (0,), {}) != task_key(make({"b"}), (0,), {})


def test_closure_cells_are_tracked_by_the_memo():
    def make(k):
        def shifted(x):
            return x + k

        def rebind(value):
            nonlocal k
            k = value

        return shifted, rebind

    shifted, rebind = make(1)
    first = task_key(shifted, (0,), {})
    assert shifted in fingerprint._FINGERPRINTS  # an int cell: memoized, checked by identity
    rebind(2)
    assert task_key(shifted, (0,), {}) != first
    rebind(1)
    assert task_key(shifted, (0,), {}) == first
    holder, _ = make([1])
    task_key(holder, (0,), {})
    assert holder not in fingerprint._FINGERPRINTS  # a list may change in place


DECORATED = """
import functools

def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args)
    return wrapper

@functools.cache
def cached(x):
    return x + 1

@logged
def work(x):
    return cached(x) * 2
"""


def test_decorated_functions_are_hashed_by_what_they_wrap():
    def key(namespace, name):
        return task_key(namespace[name], (1,), {})

    base = load(DECORATED)
    cached_edit = load(DECORATED.replace("x + 1", "x + 2"))
    work_edit = load(DECORATED.replace("* 2", "* 3"))
    assert key(base, "cached") != key(cached_edit, "cached")  # a functools.cache object
    assert key(base, "work") != key(cached_edit, "work")  # ... used as a helper
    assert key(base, "work") != key(work_edit, "work")  # a functools.wraps wrapper
    assert key(base, "work") == key(load(DECORATED, filename="other.py"), "work")
    assert base["work"] in fingerprint._FINGERPRINTS  # the wrapper's cell holds a function


def test_mutable_default_is_not_memoized():
    ns = load("def work(x, acc=[]):\n    return acc + [x]\n")
    before = task_key(ns["work"], (1,), {})
    ns["work"].__defaults__[0].append(5)
    assert ns["work"] not in fingerprint._FINGERPRINTS
    assert task_key(ns["work"], (1,), {}) != before


CLASSES = """
class Base:
    factor = 2

    def scale(self, x):
        return x * self.factor

class Model(Base):
    def __init__(self, n):
        self.n = n

    def __call__(self, x):
        return self.scale(x) + self.n

    @staticmethod
    def tool(x):
        return x - 1

    @property
    def double(self):
        return Model(self.n * 2)

def use(x):
    return Model(x).tool(x)
"""


@pytest.mark.parametrize(
    "old, new",
    [
        ("x * self.factor", "x / self.factor"),  # method of a base class
        ("factor = 2", "factor = 3"),  # class attribute
        ("return x - 1", "return x - 2"),  # staticmethod
        ("self.n * 2", "self.n * 3"),  # property
    ],
)
def test_classes_of_the_module_are_hashed_by_content(old, new):
    before, after = load(CLASSES), load(CLASSES.replace(old, new))
    assert task_key(before["use"], (1,), {}) != task_key(after["use"], (1,), {})
    assert task_key(before["Model"], (1,), {}) != task_key(after["Model"], (1,), {})
    assert task_key(before["Model"](1), (1,), {}) != task_key(after["Model"](1), (1,), {})


def test_class_attribute_change_invalidates_memo():
    ns = load(CLASSES)
    before = task_key(ns["use"], (1,), {})
    ns["Base"].factor = 5
    assert task_key(ns["use"], (1,), {}) != before
    ns["Base"].factor = 2
    assert task_key(ns["use"], (1,), {}) == before
    ns["Base"].extra = 1
    assert task_key(ns["use"], (1,), {}) != before


def test_main_classes_as_values_include_their_methods():
    main, again = load(CLASSES, name="__main__"), load(CLASSES, name="__main__")
    edited = load(CLASSES.replace("x - 1", "x - 2"), name="__main__")
    assert canonical_digest(main["Model"]) != canonical_digest(edited["Model"])
    assert canonical_digest(main["Model"](1)) != canonical_digest(edited["Model"](1))
    assert canonical_digest(main["Model"](1)) == canonical_digest(again["Model"](1))
    # classes of importable modules: by name
    assert canonical_digest(load(CLASSES)["Model"]) == canonical_digest(
        load(CLASSES.replace("x - 1", "x - 2"))["Model"]
    )


def test_other_callables():
    ns = load(CLASSES)
    model = ns["Model"]
    part = functools.partial
    assert task_key(part(add, 1), (), {}) != task_key(part(add, 2), (), {})
    assert task_key(part(add, 1), (), {}) != task_key(part(square, 1), (), {})
    assert task_key(part(add, b=1), (1,), {}) == task_key(part(add, b=1), (1,), {})
    assert task_key(Adder(1).shifted, (1,), {}) == task_key(Adder(1).shifted, (1,), {})
    assert task_key(Adder(1).shifted, (1,), {}) != task_key(Adder(2).shifted, (1,), {})
    assert task_key(Adder(1), (1,), {}) != task_key(Adder(2), (1,), {})
    assert task_key(model(1), (1,), {}) != task_key(model(2), (1,), {})
    assert task_key(len, ([1],), {}) != task_key(abs, ([1],), {})
    assert task_key(math.sqrt, (1,), {}) != task_key(math.floor, (1,), {})
    assert task_key([1].append, (1,), {}) != task_key([2].append, (1,), {})
    assert task_key(np.add, (1, 2), {}) != task_key(np.multiply, (1, 2), {})
    assert task_key(dict, (), {}) != task_key(list, (), {})


def test_functions_as_arguments_are_hashed_by_code():
    a, b = load(MODULE), load(MODULE.replace("x + LIMIT", "x - LIMIT"))
    assert task_key(map, (a["helper"], [1]), {}) != task_key(map, (b["helper"], [1]), {})
    assert task_key(map, (a["helper"], [1]), {}) == task_key(map, (load(MODULE)["helper"], [1]), {})
    assert canonical_digest(lambda x: x + 1) != canonical_digest(lambda x: x + 2)


# -- 4. no pickle bytes ----------------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: float
    y: float
    tags: frozenset = frozenset()


class Color(enum.Enum):
    RED = 1
    GREEN = 2


def test_ordinary_values_never_use_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("cloudpickle used for a value with a canonical encoding")

    monkeypatch.setattr(hashing.cloudpickle, "dumps", refuse)
    values = [
        Point(1, 2, frozenset({"a", "b"})), Color.RED, np.arange(6.0).reshape(2, 3),
        np.array([1, "a", None], dtype=object), np.float32(1.5), Path("/x/y"), int, np,
        collections.defaultdict(list, a=[1]), collections.Counter("hello"),
        collections.namedtuple("P", "a b")(1, 2), types.SimpleNamespace(a={1, 2}),
        lambda v: v + 1, square, functools.partial(square, 2), Adder(3), Adder(3).shifted,
        len, range(5), slice(1, None, 2), 1 + 2j, bytearray(b"xy"), compile("1", "f", "eval"),
    ]
    for value in values:
        assert task_key(add, (value,), {"k": value}), value


def test_exotic_objects_fall_back_to_pickle_and_unpicklable_ones_raise():
    calls = []
    original = hashing.cloudpickle.dumps

    def spy(obj, *args, **kwargs):
        calls.append(obj)
        return original(obj, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(hashing.cloudpickle, "dumps", spy)
    try:
        proxy = types.MappingProxyType({"a": 1})
        assert canonical_digest(proxy) == canonical_digest(types.MappingProxyType({"a": 1}))
        assert len(calls) == 2 and calls[0] is proxy
    finally:
        mp.undo()
    with pytest.raises(TypeError, match="lock"):
        task_key(add, (threading.Lock(),), {})


# -- 6. value encoding -----------------------------------------------------------------


def test_types_are_tagged():
    values = [
        None, True, False, 0, 1, 1.0, 0.0, "1", "", b"1", b"", bytearray(b"1"), 1 + 0j,
        (1,), [1], {1}, frozenset({1}), {1: None}, {"1": None}, range(1), slice(1),
        Color.RED, np.int64(1), np.float64(1.0), np.array(1), np.array([1]), Path("1"),
        DependencyRef("1"), int, float, str, math, (), [], {}, set(), frozenset(),
        ((1,),), [[1]], ("1",), (b"1",), ("a", "b"), ("ab",), ["a", "b"], ["ab"],
    ]
    digests = [canonical_digest(v) for v in values]
    assert len(set(digests)) == len(values)


def test_numbers():
    nan = canonical_digest(float("nan"))
    assert nan == canonical_digest(-float("nan")) == canonical_digest(np.nan)
    assert canonical_digest(float("inf")) != canonical_digest(float("-inf"))
    assert canonical_digest(2**100) != canonical_digest(2**100 + 1)
    assert canonical_digest(-(2**100)) != canonical_digest(2**100)
    assert canonical_digest(-1) != canonical_digest(255)
    assert canonical_digest(0.1 + 0.2) != canonical_digest(0.3)


def test_objects_by_type_and_state():
    assert canonical_digest(Point(1, 2)) == canonical_digest(Point(1, 2))
    assert canonical_digest(Point(1, 2)) != canonical_digest(Point(1, 3))
    assert canonical_digest(Point(1, 2)) != canonical_digest((1, 2))
    assert canonical_digest(Color.RED) != canonical_digest(Color.GREEN)
    first, second = types.SimpleNamespace(), types.SimpleNamespace()
    first.a, first.b = 1, 2
    second.b, second.a = 2, 1
    assert canonical_digest(first) == canonical_digest(second)
    assert canonical_digest(Path("a/b")) == canonical_digest(PurePosixPath("a/b"))
    assert canonical_digest(Path("a/b")) != canonical_digest("a/b")


def test_recursive_structures_terminate():
    loop = [1]
    loop.append(loop)
    other = [1]
    other.append(other)
    assert canonical_digest(loop) == canonical_digest(other)
    assert canonical_digest(loop) != canonical_digest([1, [1]])
    cyclic = {"a": 1}
    cyclic["self"] = cyclic
    canonical_digest(cyclic)
    node = types.SimpleNamespace(name="n")
    node.me = node
    node.family = {node.name: [node]}
    assert canonical_digest(node) == canonical_digest(node)
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = arr, 1
    canonical_digest(arr)


def test_numpy_arrays():
    c = np.arange(12.0).reshape(3, 4)
    assert canonical_digest(c) == canonical_digest(np.asfortranarray(c))
    strided = np.arange(24.0).reshape(3, 8)[:, ::2]
    assert canonical_digest(strided) == canonical_digest(np.ascontiguousarray(strided))
    assert canonical_digest(c) != canonical_digest(c.reshape(4, 3))
    assert canonical_digest(c) != canonical_digest(c.astype(np.float32))
    assert canonical_digest(c) != canonical_digest(c.tolist())
    assert canonical_digest(np.array([1, {"a"}], dtype=object)) == canonical_digest(
        np.array([1, {"a"}], dtype=object)
    )
    dates = np.array(["2024-01-01"], dtype="datetime64[D]")
    assert canonical_digest(dates) != canonical_digest(dates.astype("datetime64[s]"))
    fields = np.zeros(2, dtype=[("a", "f8"), ("b", "i4")])
    renamed = np.zeros(2, dtype=[("a", "f8"), ("c", "i4")])
    assert canonical_digest(fields) != canonical_digest(renamed)
    assert canonical_digest(np.float64(1)) != canonical_digest(np.float32(1))


# -- 7. dependencies ---------------------------------------------------------------------


def test_dependency_ref_and_future_with_key_are_the_same():
    pending = Future()
    pending.key = "up-v1-abc"  # type: ignore[attr-defined]
    ref_key = task_key(add, (DependencyRef("up-v1-abc"), [DependencyRef("up-v1-abc")]), {})
    assert task_key(add, (pending, [pending]), {}) == ref_key
    pending.set_result(42)
    assert task_key(add, (pending, [pending]), {}) == ref_key
    assert task_key(add, (DependencyRef("up-v1-abd"), [pending]), {}) != ref_key
    assert task_key(add, (42, [42]), {}) != ref_key
    with pytest.raises(TypeError, match="cache key"):
        task_key(add, (Future(),), {})


# -- 8. performance ------------------------------------------------------------------------


def test_simple_call_costs_well_under_100_us():
    args, kwargs = (1, 2.5, "name"), {"c": 3}
    task_key(add, args, kwargs)
    per_call = min(timeit.repeat(lambda: task_key(add, args, kwargs), number=500, repeat=5)) / 500
    assert per_call < 100e-6, f"{per_call * 1e6:.1f} us per call"


def test_large_array_is_streamed_without_copy():
    big = np.ones(64 * 2**20 // 8)
    tracemalloc.start()
    try:
        canonical_digest(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20, peak
