"""The ``xcache`` command, driven as a user would (CliRunner, and a real subprocess)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_catalog import NOW, dead_identity, make_entry, new_key
from typer.testing import CliRunner

from executorlib_cache import catalog
from executorlib_cache.__main__ import ensure_cli_package
from executorlib_cache.store import CLAIM, DONE, TASK, Store

ensure_cli_package()  # a source checkout: map cli/ to executorlib_cache.cli
from executorlib_cache.cli.app import app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache")


def xcache(store: Store | Path, *args: str, input: str | None = None,
           env: dict[str, str] | None = None) -> Any:
    root = store.root if isinstance(store, Store) else store
    runner = CliRunner()
    return runner.invoke(app, ["--cache-dir", str(root), *args], input=input,
                         env={"COLUMNS": "250", **(env or {})})


def ls_json(store: Store, *args: str, env: dict[str, str] | None = None) -> list[dict]:
    r = xcache(store, "ls", "--json", *args, env=env)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def keys_of(rows: list[dict]) -> list[str]:
    return [r["key"] for r in rows]


def one_line_error(r: Any, code: int = 1) -> str:
    assert r.exit_code == code, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("xcache: error: ")
    assert "Traceback" not in r.output
    return lines[0]


# ---------------------------------------------------------------- ls
def test_ls_table(store: Store) -> None:
    done = make_entry(store, "done", function="relax", runtime=65)
    failed = make_entry(store, "failed", function="energy")
    pending = make_entry(store, "pending", function="plot")
    r = xcache(store, "ls")
    assert r.exit_code == 0, r.output
    for word in ("key", "function", "status", "submitted", "finished", "runtime",
                 "job id", "size", done, failed, pending, "relax", "energy", "plot",
                 "done", "failed", "pending", "1m05s", "3 entries"):
        assert word in r.stdout, word


def test_ls_json_fields(store: Store) -> None:
    done = make_entry(store, "done", runtime=2.5, job_id=None)
    running = make_entry(store, "running", backend="local")
    rows = ls_json(store)
    assert {tuple(r) for r in rows} == {catalog.FIELDS}
    by = {r["key"]: r for r in rows}
    assert by[done]["status"] == "done" and by[done]["runtime"] == 2.5
    assert by[done]["function"] == "add" and isinstance(by[done]["size"], int)
    assert by[running]["status"] == "running" and by[running]["finished"] is None
    assert "\x1b[" not in xcache(store, "ls", "--json").stdout  # no markup


def test_ls_empty_cache(store: Store) -> None:
    assert ls_json(store) == []
    r = xcache(store, "ls")
    assert r.exit_code == 0 and "0 entries" in r.stdout


def test_ls_filters(store: Store) -> None:
    old = make_entry(store, "done", function="relax", submitted=NOW - 10 * 86400)
    mid = make_entry(store, "failed", function="relax_cell", submitted=NOW - 3 * 3600)
    new = make_entry(store, "pending", function="plot", submitted=NOW - 60)
    assert keys_of(ls_json(store, "--status", "done")) == [old]
    assert keys_of(ls_json(store, "--status", "done,failed")) == [old, mid]
    assert keys_of(ls_json(store, "-s", "pending", "-s", "failed")) == [mid, new]
    assert keys_of(ls_json(store, "--function", "relax*")) == [old, mid]
    assert keys_of(ls_json(store, "--function", "plot")) == [new]
    assert keys_of(ls_json(store, "--since", "1d")) == [mid, new]
    assert keys_of(ls_json(store, "--since", "2h")) == [new]
    assert keys_of(ls_json(store, "--older-than", "1w")) == [old]
    assert keys_of(ls_json(store, "--older-than", "1h", "--function", "relax_*")) == [mid]


def test_ls_sort_reverse_limit(store: Store) -> None:
    a = make_entry(store, "done", function="b", submitted=NOW - 300, runtime=5)
    b = make_entry(store, "done", function="c", submitted=NOW - 200, runtime=50)
    c = make_entry(store, "done", function="a", submitted=NOW - 100, runtime=0.5)
    d = make_entry(store, "pending", function="d", submitted=NOW - 50)
    assert keys_of(ls_json(store)) == [a, b, c, d]  # default: submitted, oldest first
    assert keys_of(ls_json(store, "--reverse")) == [d, c, b, a]
    assert keys_of(ls_json(store, "--sort", "runtime")) == [c, a, b, d]  # no runtime: last
    assert keys_of(ls_json(store, "--sort", "runtime", "-r")) == [b, a, c, d]
    assert keys_of(ls_json(store, "--sort", "function")) == [c, a, b, d]
    assert keys_of(ls_json(store, "--sort", "key")) == sorted([a, b, c, d])
    assert keys_of(ls_json(store, "--sort", "status", "--limit", "2")) == [d, a]
    assert keys_of(ls_json(store, "--reverse", "-n", "1")) == [d]
    r = xcache(store, "ls", "--limit", "2")
    assert "showing 2 of 4 entries" in r.stdout


def test_ls_usage_errors_exit_2(store: Store) -> None:
    for args in (["ls", "--status", "finished"], ["ls", "--sort", "color"],
                 ["ls", "--limit", "0"], ["ls", "--bogus"], ["frobnicate"]):
        r = xcache(store, *args)
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output


@pytest.mark.parametrize("args", [
    ["ls", "--since", "yesterday"], ["ls", "--older-than", "5x"],
    ["rm", "--older-than", "soon", "--yes"], ["prune", "--max-size", "huge"],
    ["prune", "--max-age", "old"], ["show", "nope"],
])
def test_bad_values_exit_1_with_one_line(store: Store, args: list[str]) -> None:
    make_entry(store, "done")
    line = one_line_error(xcache(store, *args))
    assert "invalid" in line or "no entry" in line


def test_missing_cache_dir_exit_1(tmp_path: Path) -> None:
    for cmd in (["ls"], ["stats"], ["show", "abc"], ["rm", "--all", "--yes"],
                ["prune", "--max-age", "1d"]):
        line = one_line_error(xcache(tmp_path / "nowhere", *cmd))
        assert "does not exist" in line
    assert not (tmp_path / "nowhere").exists()


def test_cache_dir_from_env(store: Store) -> None:
    key = make_entry(store, "done")
    r = CliRunner().invoke(app, ["ls", "--json"], env={"XCACHE_DIR": str(store.root)})
    assert r.exit_code == 0, r.output
    assert keys_of(json.loads(r.stdout)) == [key]


def test_watch_stops_when_everything_finished(store: Store) -> None:
    running = make_entry(store, "running")

    def finish() -> None:
        time.sleep(0.5)
        store.write_outcome(running, "done", b"\x80\x04K\x03.", {"runtime": 0.5,
                                                                  "finished": time.time()})

    t = threading.Thread(target=finish)
    t.start()
    start = time.monotonic()
    r = xcache(store, "ls", "--watch", "--interval", "0.1")
    t.join()
    assert r.exit_code == 0, r.output
    assert time.monotonic() - start < 30
    assert "all finished" in r.stdout and "done" in r.stdout


# ---------------------------------------------------------------- show
def test_show_by_unique_prefix(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "run.out"
    log.write_text("".join(f"output line {i}\n" for i in range(40)))
    dep = make_entry(store, "done", key="prep-v1-0000aaaa")
    key = make_entry(store, "done", key="relax-v1-1234abcd", function="relax", runtime=12.5,
                     dependencies=[dep], job_id=None,
                     job_extra={"stdout": str(log), "working_directory": str(tmp_path)})
    r = xcache(store, "show", "relax-v1-12")
    assert r.exit_code == 0, r.output
    out = r.stdout
    for word in (key, "relax", "mymod", "(1, 2)", '"cores": 1', dep, "done", "12.5s",
                 "node7", "local", "type unknown without --load", str(log),
                 "output line 39", "output line 20"):
        assert word in out, word
    assert "output line 19" not in out  # only the last 20 lines
    r = xcache(store, "show", "relax", "--load")
    assert r.exit_code == 0 and "value" in r.stdout and "int" in r.stdout
    info = json.loads(xcache(store, "show", key, "--json").stdout)
    assert info["key"] == key and info["runtime"] == 12.5


def test_show_ambiguous_and_unknown_prefix(store: Store) -> None:
    make_entry(store, key="fit-v1-aaaa1111")
    make_entry(store, key="fit-v1-aaaa2222")
    line = one_line_error(xcache(store, "show", "fit-v1-aaaa"))
    assert "ambiguous" in line and "fit-v1-aaaa1111" in line and "fit-v1-aaaa2222" in line
    assert "no entry matches" in one_line_error(xcache(store, "show", "zzz"))
    assert "not a valid cache key" in one_line_error(xcache(store, "show", "../cache"))


def test_show_failed_prints_the_remote_traceback(store: Store) -> None:
    key = make_entry(store, "failed", error=ZeroDivisionError("division by zero"))
    r = xcache(store, "show", key[:16])
    assert r.exit_code == 0, r.output
    assert "remote traceback" in r.stdout
    assert 'File "job.py", line 1' in r.stdout
    assert "ZeroDivisionError: division by zero" in r.stdout
    assert "raised" in r.stdout


def test_show_does_not_interpret_markup_in_user_data(store: Store) -> None:
    key = make_entry(store, "failed", error=ValueError("[bold red]not markup[/]"))
    r = xcache(store, "show", key)
    assert "[bold red]not markup[/]" in r.stdout


# ---------------------------------------------------------------- rm
def test_rm_yes(store: Store) -> None:
    a = make_entry(store, "done")
    b = make_entry(store, "failed")
    r = xcache(store, "rm", a[:15], "--yes")
    assert r.exit_code == 0, r.output
    assert "removed 1 of 1 entry" in r.stdout
    assert keys_of(ls_json(store)) == [b]


def test_rm_dry_run(store: Store) -> None:
    a = make_entry(store, "done")
    r = xcache(store, "rm", "--all", "--dry-run")
    assert r.exit_code == 0, r.output
    assert a in r.stdout and "would remove 1 entry" in r.stdout
    assert keys_of(ls_json(store)) == [a]


def test_rm_asks_for_confirmation(store: Store) -> None:
    a = make_entry(store, "done")
    r = xcache(store, "rm", a, input="n\n")
    assert "Remove 1 entry" in r.stdout
    assert one_line_error(r) == "xcache: error: aborted: nothing removed"
    assert keys_of(ls_json(store)) == [a]
    r = xcache(store, "rm", a, input="y\n")
    assert r.exit_code == 0, r.output
    assert ls_json(store) == []


def test_rm_selections(store: Store) -> None:
    old = make_entry(store, "done", function="relax", submitted=NOW - 30 * 86400)
    failed = make_entry(store, "failed", function="relax")
    other = make_entry(store, "failed", function="plot")
    r = xcache(store, "rm", "--yes")
    assert "nothing selected" in one_line_error(r)
    assert xcache(store, "rm", "--status", "failed", "--function", "relax", "-y").exit_code == 0
    assert keys_of(ls_json(store)) == [old, other]
    assert xcache(store, "rm", "--older-than", "7d", "-y").exit_code == 0
    assert keys_of(ls_json(store)) == [other]
    r = xcache(store, "rm", "--status", "done", "-y")
    assert r.exit_code == 0 and "nothing to remove" in r.stdout
    assert xcache(store, "rm", "--all", "-y").exit_code == 0
    assert ls_json(store) == [] and failed


def test_rm_refuses_running_without_force(store: Store) -> None:
    running = make_entry(store, "running")
    queued = make_entry(store, "queued")
    done = make_entry(store, "done")
    r = xcache(store, "rm", running, "--yes")
    assert r.exit_code == 1
    assert "running" in r.stderr and "--force" in r.stderr
    r = xcache(store, "rm", "--all", "--yes")
    assert r.exit_code == 1  # done removed, the others kept and reported
    assert sorted(keys_of(ls_json(store))) == sorted([running, queued]) and done


def test_rm_force_kills_the_local_runner(store: Store) -> None:
    runner = subprocess.Popen(["sleep", "60"])
    try:
        key = make_entry(store, "running", runner_pid=runner.pid)
        assert ls_json(store)[0]["status"] == "running"
        r = xcache(store, "rm", key, "--force", "--yes")
        assert r.exit_code == 0, r.output
        assert runner.wait(timeout=10) == -signal.SIGTERM
    finally:
        runner.kill()
        runner.wait()
    assert ls_json(store) == []


def test_rm_lost_entry_needs_no_force(store: Store) -> None:
    dead = dead_identity()
    key = make_entry(store, "queued", owner=dead)
    (row,) = ls_json(store)
    assert row["status"] == "lost" and "gone" in row["problem"]
    assert keys_of(ls_json(store, "--status", "lost")) == [key]
    r = xcache(store, "rm", "--status", "lost", "--yes")
    assert r.exit_code == 0, r.output
    assert ls_json(store) == []


def test_rm_cannot_delete_outside_the_cache(store: Store, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data").write_text("keep me")
    make_entry(store, "done")
    for arg in ("../victim", "..", str(victim), "../cache", ".trash", ".lock", ".jobs"):
        r = xcache(store, "rm", arg, "--yes", "--force")
        assert r.exit_code == 1, (arg, r.output)
        assert "not a valid cache key" in one_line_error(r)
    assert (victim / "data").read_text() == "keep me"
    assert len(ls_json(store)) == 1


# ---------------------------------------------------------------- corrupt/tampered
def test_corrupt_entries_show_and_can_be_removed(store: Store) -> None:
    zero = make_entry(store, "done")
    open(store.path_of(zero, DONE), "wb").close()
    random_bytes = make_entry(store, "pending")
    Path(store.path_of(random_bytes, TASK)).write_bytes(os.urandom(512))
    no_json = make_entry(store, "queued")
    Path(store.path_of(no_json, CLAIM)).write_bytes(b"{half")
    good = make_entry(store, "done")

    assert {r["key"]: r["status"] for r in ls_json(store)}[no_json] == "corrupt"
    statuses = {r["key"]: r["status"] for r in ls_json(store, "--verify")}
    assert statuses == {zero: "corrupt", random_bytes: "corrupt", no_json: "corrupt",
                        good: "done"}
    r = xcache(store, "ls", "--verify")
    assert r.exit_code == 0 and "corrupt" in r.stdout
    r = xcache(store, "show", random_bytes)
    assert r.exit_code == 0 and "corrupt" in r.stdout and "HDF5" in r.stdout
    r = xcache(store, "stats")
    assert r.exit_code == 0 and "corrupt" in r.stdout
    r = xcache(store, "rm", "--status", "corrupt", "--yes")
    assert r.exit_code == 0, r.output
    assert keys_of(ls_json(store)) == [good]


def test_tampered_entry_with_secret(store: Store) -> None:
    signed = Store(store.root, secret="s3cret")
    ok = make_entry(signed, "done")
    forged = make_entry(signed, "done")
    # someone rewrites the result without knowing the secret
    Store(store.root, secret="other").write_outcome(forged, "done", b"\x80\x04K\x2a.", {})
    env = {"XCACHE_SECRET": "s3cret"}
    statuses = {r["key"]: r["status"] for r in ls_json(store, "--verify", env=env)}
    assert statuses == {ok: "done", forged: "tampered"}
    assert keys_of(ls_json(store, "--status", "tampered", env=env)) == [forged]
    r = xcache(store, "show", forged, "--load", env=env)
    assert r.exit_code == 0
    assert "tampered" in r.stdout and "signature" in r.stdout
    assert "42" not in r.stdout.split("signature")[-1]  # never unpickled
    r = xcache(store, "rm", "--status", "tampered", "--yes", env=env)
    assert r.exit_code == 0, r.output
    assert keys_of(ls_json(store, env=env)) == [ok]


# ---------------------------------------------------------------- stats, prune
def test_stats(store: Store) -> None:
    make_entry(store, "done", function="relax", submitted=NOW - 500)
    make_entry(store, "done", function="relax")
    newest = make_entry(store, "failed", function="plot", submitted=NOW - 5)
    r = xcache(store, "stats")
    assert r.exit_code == 0, r.output
    for word in ("entries", "3", "done", "failed", "relax", "plot", "oldest", "newest",
                 newest):
        assert word in r.stdout, word
    s = json.loads(xcache(store, "stats", "--json").stdout)
    assert s["entries"] == 3 and s["by_status"] == {"done": 2, "failed": 1}
    assert s["by_function"]["relax"]["entries"] == 2 and s["size"] > 0


def _used(store: Store, key: str, days_ago: float) -> None:
    """A line of an executor's usage log: ``key`` was a cache hit ``days_ago``."""
    with open(store.root / ".used" / "test.log", "a") as f:
        f.write(f"{NOW - days_ago * 86400:.0f} {key}\n")


def test_prune(store: Store) -> None:
    old = make_entry(store, "done", finished=NOW - 40 * 86400)
    mid = make_entry(store, "done", finished=NOW - 10 * 86400)
    new = make_entry(store, "failed", finished=NOW - 3600)
    running = make_entry(store, "running", submitted=NOW - 100 * 86400)
    pending = make_entry(store, "pending", submitted=NOW - 100 * 86400)
    _used(store, old, 40)
    _used(store, mid, 10)
    r = xcache(store, "prune", "--max-age", "30d", "--dry-run")
    assert r.exit_code == 0, r.output
    assert old in r.stdout and mid not in r.stdout and "would remove 1 entry" in r.stdout
    assert len(ls_json(store)) == 5
    assert xcache(store, "prune", "--max-age", "30d").exit_code == 0
    assert old not in keys_of(ls_json(store))
    r = xcache(store, "prune", "--max-size", "1")
    assert r.exit_code == 0, r.output
    assert "stays above" in r.stderr  # only finished entries are pruned
    assert sorted(keys_of(ls_json(store))) == sorted([running, pending]) and new
    assert "give --max-size" in one_line_error(xcache(store, "prune"))


def test_prune_by_size_keeps_the_recently_used(store: Store) -> None:
    keys = [make_entry(store, "done", finished=NOW - (10 - i) * 86400) for i in range(6)]
    for i, k in enumerate(keys):
        _used(store, k, 10 - i)
    total = json.loads(xcache(store, "stats", "--json").stdout)["size"]
    r = xcache(store, "prune", "--max-size", str(total // 2 + 1))
    assert r.exit_code == 0, r.output
    assert sorted(keys_of(ls_json(store))) == sorted(keys[3:])


# ---------------------------------------------------------------- the installed command
def test_subprocess_python_m(store: Store) -> None:
    key = make_entry(store, "done")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, "-m", "executorlib_cache", "--cache-dir", str(store.root)]
    p = subprocess.run([*cmd, "ls", "--json"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert keys_of(json.loads(p.stdout)) == [key]
    p = subprocess.run([*cmd, "show", "nokey"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 1
    assert p.stderr.strip() == f"xcache: error: no entry matches 'nokey' in {store.root}"
    p = subprocess.run([sys.executable, "-m", "executorlib_cache", "--version"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("xcache (executorlib_cache) ")
    p = subprocess.run([*cmd, "ls", "--sort", "nope"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == 2


def test_help_for_every_command(store: Store) -> None:
    for cmd in ([], ["ls"], ["show"], ["rm"], ["stats"], ["prune"]):
        r = xcache(store, *cmd, "--help")
        assert r.exit_code == 0, (cmd, r.output)
        assert "Usage" in r.stdout


def test_key_completion(store: Store) -> None:
    from executorlib_cache.cli import app as app_module

    a = make_entry(store, key="relax-v1-0001")
    make_entry(store, key="plot-v1-0002")

    class Ctx:
        def find_root(self) -> Any:
            return self

        params = {"cache_dir": store.root}

    assert app_module._complete_keys(Ctx(), "rel") == [a]  # type: ignore[arg-type]
    assert app_module._complete_status("done,fa") == ["done,failed"]


def test_queued_local_entry_without_task_files(store: Store) -> None:
    key = new_key("relax")
    store.write_claim(key, {"backend": "local", "owner": dead_identity()})
    (row,) = ls_json(store)
    assert row["function"] == "relax" and row["status"] == "lost"


def test_large_listing_is_plain_text(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from executorlib_cache.cli import render as render_module

    keys = [make_entry(store, "done", submitted=NOW - 100 + i) for i in range(5)]
    monkeypatch.setattr(render_module, "RICH_ROWS", 3)
    r = xcache(store, "ls")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["key", "function", "status", "submitted", "finished",
                                "runtime", "job", "id", "size"]
    assert [ln.split()[0] for ln in lines[1:6]] == keys
    assert lines[-1].startswith("5 entries (5 done)")


def test_refuses_a_directory_that_is_not_a_cache(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "thesis").mkdir(parents=True)
    (home / "thesis" / "chapter1.tex").write_text("precious")
    for cmd in (["rm", "--all", "--yes"], ["ls"], ["prune", "--max-size", "0"]):
        assert "not an executorlib_cache cache" in one_line_error(xcache(home, *cmd))
    assert (home / "thesis" / "chapter1.tex").read_text() == "precious"


def test_rm_keys_and_all_is_an_error(store: Store) -> None:
    key = make_entry(store, "done")
    assert "not both" in one_line_error(xcache(store, "rm", key, "--all", "--yes"))
    assert keys_of(ls_json(store)) == [key]


def test_a_cache_of_a_newer_format_is_one_error_line(tmp_path: Path) -> None:
    """Regression: ``xcache ls`` on a cache written by a newer version printed a
    traceback; it is one ``xcache: error`` line naming the format, exit code 1."""
    cache = tmp_path / "newer"
    cache.mkdir()
    (cache / ".format").write_text('{"format": 99}')
    for cmd in (["ls"], ["stats"]):
        r = subprocess.run([sys.executable, "-m", "executorlib_cache", "--cache-dir",
                            str(cache), *cmd], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "xcache: error" in r.stderr and "format 99" in r.stderr, r.stderr
