"""An executorlib cache (issue 15, item 8): told clearly, and imported.

``tests/data/executorlib_cache.tar.gz`` is a real cache written by executorlib
1.11.0 from PyPI (``tests/data/make_executorlib_cache.py``): ``file/`` by its
file-based executor (a call depending on two others, a failure, an unfinished
input file), ``single/`` by its SingleNodeExecutor.  After ``xcache import``, the
same calls submitted to executorlib_cache are cache hits: nothing runs again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from executorlib_cache import SingleNodeExecutor, catalog, list_cache
from executorlib_cache.errors import CatalogError
from executorlib_cache.store import Store

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from xl_funcs import broken, scale, total  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def xl(tmp_path: Path) -> Path:
    with tarfile.open(DATA / "executorlib_cache.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path


def test_an_executorlib_cache_is_named_not_ignored(xl: Path) -> None:
    with pytest.raises(CatalogError, match="is an executorlib cache .* import"):
        list_cache(xl / "file")
    r = subprocess.run([sys.executable, "-m", "executorlib_cache", "--cache-dir",
                        str(xl / "file"), "ls"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "executorlib cache" in r.stderr and "import" in r.stderr
    with pytest.warns(UserWarning, match="holds an executorlib cache .* import"):
        SingleNodeExecutor(cache_directory=xl / "file").shutdown()


def test_import_then_the_same_calls_are_hits(xl: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "ours"
    store = Store(cache)
    report = catalog.import_executorlib(xl / "file", store)
    assert (report.imported, report.present, report.unfinished, report.skipped) == \
        (4, 0, 1, {})
    again = catalog.import_executorlib(xl / "file", store)  # a second run: no change
    assert (again.imported, again.present) == (0, 4)
    catalog.import_executorlib(xl / "single", store)
    rows = {r["function_name"]: r for r in catalog.get_cache_data(cache)}
    assert rows["total"]["output"] == 22 and rows["total"]["dependencies"]
    assert isinstance(rows["broken"]["error"], KeyError)
    counter = tmp_path / "ran.txt"
    monkeypatch.setenv("XCACHE_XL_COUNTER", str(counter))
    monkeypatch.setenv("PYTHONPATH", f"{DATA}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    with SingleNodeExecutor(cache_directory=cache) as exe:
        a = exe.submit(scale, 1)
        b = exe.submit(scale, 2, factor=10)
        c = exe.submit(total, a, b=b)
        five = exe.submit(scale, 5)
        assert (a.result(timeout=60), c.result(timeout=60), five.result(timeout=60)) == \
            (2, 22, 10)
        assert a.cached and b.cached and c.cached and five.cached
        err = exe.submit(broken, 3).exception(timeout=60)  # a failure: retried, as ours
    assert isinstance(err, KeyError)
    assert not counter.exists(), counter.read_text()  # nothing ran again


def test_xcache_import_command(xl: Path) -> None:
    """Into the executorlib directory itself: afterwards it is both."""
    src = xl / "file"
    cmd = [sys.executable, "-m", "executorlib_cache", "--cache-dir", str(src), "import",
           str(src)]
    env = {**os.environ, "PYTHONPATH": f"{DATA}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert "imported 4" in r.stdout and "unfinished (skipped) 1" in r.stdout, r.stdout
    assert len(list_cache(src)) == 4
    assert sorted(p.name for p in src.glob("*_o.h5"))  # the source is left as it was
    # without the calls' modules it cannot unpickle: said per file, exit 1, nothing half
    fresh = xl / "fresh"
    r = subprocess.run([sys.executable, "-m", "executorlib_cache", "--cache-dir", str(fresh),
                        "import", str(src)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": ""}, cwd=xl)
    assert r.returncode == 1 and "xl_funcs" in r.stderr, r.stderr
    assert list_cache(fresh) == []


def test_a_users_cache_key_is_kept(xl: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A call the user named in executorlib (``resource_dict={"cache_key":
    "project/run1"}``: ``project/run1_o.h5``) keeps that name, so the same
    ``cache_key`` finds it here; a default name gets this package's key."""
    src = xl / "file"
    (src / "project").mkdir()
    [last] = src.glob("total*_o.h5")  # the call nothing depends on
    os.rename(last, src / "project" / "run1_o.h5")
    (src / "pendingcall_i.h5").unlink()
    store = Store(tmp_path / "ours")
    report = catalog.import_executorlib(src, store)
    assert report.imported == 4 and not report.skipped, report
    assert store.finished("project/run1") is not None
    monkeypatch.setenv("XCACHE_XL_COUNTER", str(tmp_path / "ran.txt"))
    monkeypatch.setenv("PYTHONPATH", f"{DATA}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    with SingleNodeExecutor(cache_directory=tmp_path / "ours") as exe:
        a, b = exe.submit(scale, 1), exe.submit(scale, 2, factor=10)
        named = exe.submit(total, a, b=b, resource_dict={"cache_key": "project/run1"})
        assert named.result(timeout=60) == 22 and named.cached and a.cached
    assert not (tmp_path / "ran.txt").exists()


def test_upstreams_are_read_inside_the_imported_directory(xl: Path, tmp_path: Path) -> None:
    """A future argument names its upstream by the absolute path the cache had when
    it was made; when that path still holds another cache, the copy inside the
    directory being imported is the one read."""
    import shutil

    [last] = (xl / "file").glob("total*_o.h5")
    upstream = catalog.importer.read_executorlib_file(last)["input_args"][0]._file_name
    original = Path(upstream).parent  # where the cache was made (a temp dir, gone)
    if original.exists():
        pytest.skip(f"{original} exists on this machine")
    try:  # another cache there now: its file of the same name is garbage
        original.mkdir(parents=True)
        Path(upstream).write_bytes(b"not the upstream")
        store = Store(tmp_path / "ours")
        report = catalog.import_executorlib(xl / "file", store)
        assert report.imported == 4 and not report.skipped, report
    finally:
        shutil.rmtree(original, ignore_errors=True)


def test_importing_a_directory_without_executorlib_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogError, match="no executorlib cache files"):
        catalog.import_executorlib(tmp_path / "empty", Store(tmp_path / "ours"))
    with pytest.raises(CatalogError, match="not a directory"):
        catalog.import_executorlib(tmp_path / "missing", Store(tmp_path / "ours"))
