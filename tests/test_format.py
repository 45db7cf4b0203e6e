"""Format 2 and the caches users already have (issue 14, item 5).

``tests/data/v1_cache.tar.gz`` is a real format-1 cache written by the last
format-1 version (``tests/data/make_v1_cache.py``).  Its finished entries must be
cache hits for this version -- never silently recomputed -- and ``xcache migrate``
must convert it in place, entry by entry, resumably after a kill.  Also the shape
of a format-2 cache: one file per finished entry, a fixed lock file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import entry_path

from executorlib_cache import SingleNodeExecutor, catalog
from executorlib_cache.errors import CorruptEntryError, TamperedEntryError
from executorlib_cache.store import Store

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from v1_funcs import fail, square  # noqa: E402

pytestmark = pytest.mark.timeout(120)
V1_KEYS = 5  # square(0..3) and cache_key "ab" done; fail(1) failed (+ an orphan claim)


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    """A copy of the format-1 caches: ``plain/`` and ``signed/`` (secret "s3cret")."""
    with tarfile.open(DATA / "v1_cache.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path


def counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    counter = tmp_path / "ran.txt"
    monkeypatch.setenv("XCACHE_V1_COUNTER", str(counter))
    monkeypatch.setenv("PYTHONPATH", f"{DATA}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return counter


def run_all(cache: Path, secret: str | None = None) -> list[object]:
    with SingleNodeExecutor(cache_directory=cache, secret=secret) as exe:
        futs = [exe.submit(square, i) for i in range(4)]
        futs.append(exe.submit(square, 7, resource_dict={"cache_key": "ab"}))
        futs.append(exe.submit(fail, 1))
        return [f.exception(timeout=60) or f.result() for f in futs]


def test_format_1_entries_are_hits_with_one_warning(v1: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    counter = counted(tmp_path, monkeypatch)
    with pytest.warns(UserWarning, match="format-1 entries") as caught:
        out = run_all(v1 / "plain")
    assert [w for w in caught if "format-1" in str(w.message)][1:] == []  # once
    assert out[:5] == [0, 1, 4, 9, 49]
    assert isinstance(out[5], ValueError)  # a failure is retried, as in format 1
    assert not counter.exists() or "7" not in counter.read_text()
    ran = counter.read_text().split() if counter.exists() else []
    assert ran == [], f"format-1 results were computed again: {ran}"
    assert (v1 / "plain" / ".format").is_file()
    assert json.loads((v1 / "plain" / ".format").read_text())["v1_entries"] is True
    # the shard-named entry "ab" was moved aside, and is still read
    assert (v1 / "plain" / ".v1-ab").is_dir()
    rows = {r["key"]: r for r in catalog.list_cache(v1 / "plain")}
    assert rows["ab"]["status"] == "done"
    assert sum(r["status"] == "done" for r in rows.values()) == V1_KEYS


def test_xcache_ls_reads_a_format_1_cache_without_changing_it(v1: Path) -> None:
    before = sorted(p.name for p in (v1 / "plain").iterdir())
    rows = {r["key"]: r for r in catalog.list_cache(v1 / "plain", verify=True)}
    assert sorted(r["status"] for r in rows.values()) == ["done"] * V1_KEYS + ["failed"]
    assert rows["ab"]["function"] == "square" and rows["ab"]["runtime"] is not None
    assert sorted(p.name for p in (v1 / "plain").iterdir()) == before  # read only


def test_migrate_converts_in_place(v1: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cache = v1 / "plain"
    counts = catalog.migrate(Store(cache, create=False))
    assert counts == {"migrated": V1_KEYS + 1, "dropped": 1}  # the orphan claim dropped
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == \
        [f"{i:02x}" for i in range(256)]
    assert not (cache / ".locks").exists()
    assert json.loads((cache / ".format").read_text()) == {"format": 2, "v1_entries": False}
    store = Store(cache, create=False)
    assert store.read_hit("ab").payload  # type: ignore[union-attr]
    assert entry_path(cache, "ab").is_file()
    payload, meta = store.read_task("ab")  # the call came along
    assert meta["function"] == "square" and payload
    counter = counted(tmp_path, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no format-1 warning any more
        out = run_all(cache)
    assert out[:5] == [0, 1, 4, 9, 49] and not counter.exists()
    assert catalog.migrate(Store(cache, create=False)) == {}  # nothing left: a no-op


def test_migrate_resumes_after_a_kill(v1: Path) -> None:
    """Killed right after writing the 3rd format-2 file (before its old directory
    went): a second run finishes; nothing is lost or duplicated."""
    cache = v1 / "plain"
    code = ("import sys; from executorlib_cache import catalog; "
            "from executorlib_cache.store import Store; "
            "catalog.migrate(Store(sys.argv[1], create=False))")
    env = {**os.environ, "XCACHE_CRASH_AT": "result.h5:after_replace", "XCACHE_CRASH_SKIP": "2"}
    proc = subprocess.run([sys.executable, "-c", code, str(cache)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    rows = catalog.list_cache(cache)  # mid-migration: every entry still readable
    assert sorted(r["status"] for r in rows) == ["done"] * V1_KEYS + ["failed"], rows
    # as if killed between moving an old directory into .trash and deleting it
    (cache / ".trash" / "f-0123.v1-999-00000000ab" / "task.h5").parent.mkdir(parents=True)
    counts = catalog.migrate(Store(cache, create=False))
    assert counts.get("present", 0) == 1  # the one killed between its two steps
    assert list((cache / ".trash").iterdir()) == []  # and nothing of it is left
    assert counts.get("migrated", 0) >= 1 and "corrupt" not in counts, counts
    rows = catalog.list_cache(cache, verify=True)
    assert sorted(r["status"] for r in rows) == ["done"] * V1_KEYS + ["failed"], rows
    assert json.loads((cache / ".format").read_text())["v1_entries"] is False


def test_migrate_keeps_signatures(v1: Path) -> None:
    cache = v1 / "signed"
    with pytest.raises(TamperedEntryError):  # format 1 signed it: a wrong secret is refused
        Store(cache, create=False, secret="wrong").read_hit("ab")
    counts = catalog.migrate(Store(cache, create=False, secret="s3cret"))
    assert counts == {"migrated": V1_KEYS + 1}
    assert Store(cache, create=False, secret="s3cret").read_hit("ab") is not None
    with pytest.raises(TamperedEntryError):
        Store(cache, create=False, secret="wrong").read_hit("ab")
    with pytest.raises(TamperedEntryError):
        Store(cache, create=False, secret="other").read_task("ab")


def test_a_finished_entry_is_one_file_and_locks_do_not_grow(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with SingleNodeExecutor(cache_directory=cache, max_workers=2) as exe:
        futs = [exe.submit(square, i) for i in range(50)]
        assert [f.result(timeout=60) for f in futs] == [i * i for i in range(50)]
    files = [p for p in cache.rglob("*") if p.is_file()]
    entries = [p for p in files if p.parent.parent == cache and len(p.parent.name) == 2]
    assert len(entries) == 50
    others = sorted(str(p.relative_to(cache)) for p in files if p not in entries)
    assert others == [".format", ".lock"], others  # no cache hit: no usage log


def test_xcache_migrate_command(v1: Path) -> None:
    cmd = [sys.executable, "-m", "executorlib_cache", "--cache-dir", str(v1 / "plain"),
           "migrate"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "6 migrated" in first.stdout and "1 dropped" in first.stdout, first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "nothing to migrate" in again.stdout, again.stdout


@pytest.mark.timeout(60)
def test_two_threads_reading_entries_at_once_each_get_their_own(tmp_path: Path) -> None:
    """Regression: entries are parsed in memory, and HDF5 knows an in-memory file by
    its name; with one fixed name, a submit() reading a hit while the poller thread
    read a result got the other's open file -- the entry was called corrupt ("belongs
    to entry ...") and moved aside.  Seen with four drivers racing under load."""
    import threading

    from executorlib_cache.serialization import dumps, loads

    store = Store(tmp_path / "cache")
    keys = [f"k{i}" for i in range(4)]
    for i, key in enumerate(keys):
        store.write_outcome(key, "done", dumps(i), {}, task=(b"call", {}))
    wrong: list[tuple[str, object]] = []

    def read(key: str, want: int) -> None:
        for _ in range(500):
            try:
                got = store.read_outcome(key)
            except Exception as e:  # noqa: BLE001 -- "belongs to entry ..."
                wrong.append((key, e))
                continue
            if got is None or loads(got.payload) != want:
                wrong.append((key, got and loads(got.payload)))

    threads = [threading.Thread(target=read, args=(k, i)) for i, k in enumerate(keys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong, wrong[:5]


@pytest.mark.timeout(60)
def test_names_no_key_encodes_to_are_not_entries(tmp_path: Path) -> None:
    """A file in a shard whose name ``encode_key`` cannot have produced (``%ZZ.h5``,
    a raw ``@``, a ``%2E`` that is not leading), or an entry file copied into a
    shard its key does not hash to, is nobody's entry: ``xcache ls``, ``stats``
    and ``rm --all`` leave it alone instead of listing a key that maps elsewhere."""
    import shutil

    from executorlib_cache.naming import SUFFIX, encode_key, split_name

    for key in ("plain", "inc-v1-" + "0" * 32, "project/run1", "a+b=c", "x" * 200):
        for kind, suffix in SUFFIX.items():
            assert split_name(encode_key(key) + suffix) == (key, kind)
    for stranger in ("%ZZ.h5", "a@b.h5", "a%2Eb.h5", "%2f.h5", "@claim", ".h5",
                     "x%2.h5", "x@y@claim", "notes.txt",
                     # names that decode, but to no key the store can hold
                     "a b.h5", "\u00fc.h5", "-x.h5", "x..y.h5", "a%25b.h5", "%2Ehidden.h5"):
        assert split_name(stranger) is None, stranger

    cache = tmp_path / "cache"
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        assert exe.submit(square, 7, resource_dict={"cache_key": "real"}).result(
            timeout=30) == 49
    real = entry_path(cache, "real")
    other = next(d for d in sorted(cache.iterdir()) if d.is_dir()
                 and len(d.name) == 2 and d != real.parent)
    shutil.copy(real, other / real.name)  # the right name in the wrong shard
    for stranger in ("%ZZ.h5", "a@b.h5", "a%2Eb@claim"):
        shutil.copy(real, real.parent / stranger)
    for key in ("a b", "-x"):  # decodable names of keys no executor accepts
        shutil.copy(real, entry_path(cache, key))
    shutil.copy(real, entry_path(cache, "copy"))  # a valid key: listed, as what it is
    rows = {e["key"]: (e["status"], e["problem"]) for e in catalog.list_cache(cache)}
    assert rows == {"real": ("done", None), "copy": ("corrupt", "its file is entry real's")}
    Store(cache).remove("copy")
    assert [e["key"] for e in catalog.list_cache(cache)] == ["real"]
    ls = subprocess.run([sys.executable, "-m", "executorlib_cache", "--cache-dir",
                         str(cache), "ls", "--json"], capture_output=True, text=True,
                        timeout=60)
    assert ls.returncode == 0, ls.stderr
    assert [e["key"] for e in json.loads(ls.stdout)] == ["real"]
    rm = subprocess.run([sys.executable, "-m", "executorlib_cache", "--cache-dir",
                         str(cache), "rm", "--all", "--yes"], capture_output=True,
                        text=True, timeout=60)
    assert rm.returncode == 0, rm.stderr + rm.stdout
    assert not real.exists()
    left = sorted(p.name for p in cache.glob("??/*"))
    assert left == sorted(["%ZZ.h5", "a@b.h5", "a%2Eb@claim", real.name, "a b.h5",
                           "-x.h5"]), left


@pytest.mark.timeout(90)
@pytest.mark.parametrize("garbage", [b"", b"\x00garbage", b"[2]", b'{"format": "2"}',
                                     b'{"format": true}', b'{"v1_entries": false}',
                                     b'{"format": 1}', b'{"format": 2, "v1_entries": "no"}'])
def test_a_damaged_format_file_is_warned_about_and_rewritten(tmp_path: Path,
                                                              garbage: bytes) -> None:
    """``.format`` that is not ``{"format": <int>, ...}`` (a truncated copy, a user's
    edit) is named in a warning and rewritten from what the cache holds; the
    finished entries stay hits and nothing runs again."""
    cache = tmp_path / "cache"
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        assert exe.submit(square, 3).result(timeout=30) == 9
    [before] = catalog.list_cache(cache)
    (cache / ".format").write_bytes(garbage)
    with pytest.warns(UserWarning, match=r"\.format is damaged"):
        with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
            fut = exe.submit(square, 3)
            assert fut.result(timeout=30) == 9
            assert fut.done()
    assert json.loads((cache / ".format").read_text()) == {"format": 2,
                                                           "v1_entries": False}
    [entry] = catalog.list_cache(cache)
    assert entry["status"] == "done" and entry["finished"] == before["finished"]
    assert catalog.get_cache_data(cache)[0]["output"] == 9


@pytest.mark.timeout(60)
@pytest.mark.parametrize("secret", [None, "s3cret"])
def test_the_span_table_reads_what_hdf5_reads(tmp_path: Path, secret: str | None) -> None:
    """A file written in memory carries the span table in its user block; reading by
    the table gives exactly what HDF5 gives for every kind of file, and a file
    changed in any byte after the user block (here: the meta rewritten in place
    with h5py) is read through HDF5 again, which then decides."""
    import h5py

    from executorlib_cache import fileio, spans
    from executorlib_cache.serialization import dumps

    store = Store(tmp_path / "cache", secret=secret)
    call = (dumps((square, (4,), {})), {"function": "square"})
    store.write_task("t", *call)
    store.write_outcome("d", "done", dumps(16), {}, task=call)
    store.write_outcome("f", "failed", dumps(KeyError("k")), {}, task=call)
    names = (b"task", b"result", b"error")
    for key, kind in (("t", "task"), ("d", "done"), ("f", "failed")):
        data = Path(store.path_of(key, kind)).read_bytes()
        by_table = spans.read_located(data, names, secret is not None)
        assert by_table is not None, kind
        skip = fileio.userblock_size(data)
        plain = b"#xcache-entry 2 2\n{}\n".ljust(skip, b" ") + data[skip:]
        assert spans.read_located(plain, names, True) is None  # no table: HDF5 reads
        assert by_table == fileio.read_entry(plain, names, secret is not None, kind)
    assert store.read_hit("d").payload == dumps(16)
    # a table that lies (result -> the call's bytes; a base in the padding) is not used
    path = Path(store.path_of("d", "done"))
    good = path.read_bytes()
    line = good.split(b"\n")[2]
    table = json.loads(line)
    for lie in ({**table, "spans": {**table["spans"], "result": table["spans"]["task"]}},
                {**table, "base": table["base"] - 64}):
        forged = json.dumps(lie, separators=(",", ":")).encode()
        ub = fileio.userblock_size(good)
        block = good[:ub].replace(line, forged, 1)
        assert block[ub:].strip(b" ") == b""  # only padding is cut
        path.write_bytes(block[:ub].ljust(ub, b" ") + good[ub:])
        assert spans.read_located(path.read_bytes(), names, False) is None
        assert store.read_hit("d").payload == dumps(16), lie  # what HDF5 reads
    path.write_bytes(good)
    # the table is not part of the summary: a listing reads and parses no more bytes
    from executorlib_cache.naming import SUMMARY_FIELDS
    summary = fileio.read_summary(store.path_of("d", "done"))
    assert summary is not None and set(summary) <= set(SUMMARY_FIELDS), summary

    path = Path(store.path_of("d", "done"))
    with h5py.File(path, "r+", locking=False) as f:  # same length, other content
        meta = bytes(f.attrs["meta"]).replace(b'"key": "d"', b'"key": "x"')
        assert b'"key": "x"' in meta
        del f.attrs["meta"]
        f.attrs["meta"] = np.bytes_(meta)
    assert spans.read_located(path.read_bytes(), names, False) is None
    with pytest.raises((CorruptEntryError, TamperedEntryError)):
        store.read_hit("d")


@pytest.mark.timeout(60)
def test_a_payload_found_twice_in_the_image_gets_no_table_and_still_reads(
        tmp_path: Path) -> None:
    """The writer records a span only for bytes that occur exactly once in the HDF5
    image; a result equal to the call's bytes occurs twice, so that file has no
    table and is read through HDF5."""
    from executorlib_cache import fileio, spans
    from executorlib_cache.serialization import dumps

    store = Store(tmp_path / "cache")
    same = dumps("twice")
    store.write_outcome("k", "done", same, {}, task=(same, {"function": "square"}))
    data = Path(store.path_of("k", "done")).read_bytes()
    assert spans.read_located(data, (b"result",), False) is None
    nl = data.index(b"\n")
    after_summary = nl + 1 + int(data[len(fileio.SUMMARY_MAGIC):nl]) + 1
    assert data[after_summary:fileio.userblock_size(data)].strip(b" ") == b""  # no table
    assert store.read_hit("k").payload == same


@pytest.mark.timeout(90)
def test_a_fifo_under_an_entry_name_hangs_nothing(tmp_path: Path) -> None:
    """Entry files are opened without blocking: a named pipe under an entry's name
    is listed as corrupt (it used to hang ``xcache ls`` for ever), and a call with
    that key moves it aside and runs."""
    cache = tmp_path / "cache"
    with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
        exe.submit(square, 2, resource_dict={"cache_key": "real"}).result(timeout=30)
    os.mkfifo(entry_path(cache, "fifo"))
    ls = subprocess.run([sys.executable, "-m", "executorlib_cache", "--cache-dir",
                         str(cache), "ls", "--json"], capture_output=True, text=True,
                        timeout=30)
    assert ls.returncode == 0, ls.stderr
    rows = {e["key"]: e["status"] for e in json.loads(ls.stdout)}
    assert rows == {"real": "done", "fifo": "corrupt"}, rows
    with pytest.warns(UserWarning, match="fifo"):
        with SingleNodeExecutor(cache_directory=cache, max_workers=1) as exe:
            fut = exe.submit(square, 5, resource_dict={"cache_key": "fifo"})
            assert fut.result(timeout=30) == 25
    assert entry_path(cache, "fifo").is_file()
