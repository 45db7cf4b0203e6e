"""Shared fixtures: a fresh cache directory per test, and running user scripts
in separate interpreters (re-runs, racing drivers, killed drivers)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

#: CI runs everything: a prerequisite missing there is a failure, never a skip
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: SLURM tests run in CI (the test command starts SLURM) or when asked for
SLURM_WANTED = IN_CI or os.environ.get("XCACHE_TEST_SLURM") == "1"


def skip_unless_ci(reason: str) -> None:
    """Skip on a developer's machine that lacks ``reason``; in CI, fail instead."""
    if IN_CI:
        pytest.fail(f"CI must be able to run this test, but: {reason}")
    pytest.skip(reason, allow_module_level=True)


def require(module: str) -> Any:
    """``pytest.importorskip`` that fails in CI, where the test command installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        skip_unless_ci(f"needs {module} ({e})")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def write_script(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def run_script(path: Path, *args: str, cwd: Path | None = None, timeout: float = 60,
               env: dict[str, str] | None = None, check: bool = True
               ) -> subprocess.CompletedProcess[str]:
    """Run ``python path args`` like a user would; fail loudly with its output."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, str(path), *args], cwd=cwd or path.parent,
                          capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{path.name} exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
                             f"stderr:\n{proc.stderr}")
    return proc


def entry_path(cache: Path | str, key: str, kind: str = "done") -> Path:
    """The file of one ``kind`` of an entry (``done``, ``failed``, ``claim``,
    ``task``), as the store names it (format 2: ``<cache>/<hh>/<key>[@kind]...``)."""
    from executorlib_cache.store import Store

    return Path(Store(cache, create=None).path_of(key, kind))


def entry_exists(cache: Path | str, key: str) -> bool:
    """Some file of the entry exists."""
    from executorlib_cache.store import Store

    return Store(cache, create=None).exists(key)


def job_of(cache: Path | str, key: str) -> dict[str, Any]:
    """What the entry records about its job: the claim while it is in flight; once
    it finished, the claim its runner kept in the outcome (``meta["claim"]``),
    with the runner's own ``job_id``/``host``/``backend`` over it."""
    from executorlib_cache.store import Store

    store = Store(cache, create=False)
    claim = store.read_claim(key)
    if claim is not None:
        return claim
    try:
        outcome = store.read_outcome(key)
    except Exception:
        return {}
    if outcome is None:
        return {}
    kept = outcome.meta.get("claim") or {}
    # the runner's own job id is the truth about which job ran it (the claim it kept
    # may predate the driver recording the id)
    return {**kept, **{k: outcome.meta.get(k) for k in ("job_id", "host", "backend")
                       if outcome.meta.get(k) is not None}}


def outcome_meta(cache: Path | str, key: str) -> dict[str, Any]:
    """The metadata of the entry's outcome (times, host, job id...), or ``{}``."""
    from executorlib_cache.store import Store

    try:
        outcome = Store(cache, create=False).read_outcome(key)
    except Exception:
        return {}
    return outcome.meta if outcome is not None else {}


def job_dir(cache: Path | str, key: str) -> Path:
    """``<cache>/.jobs/<key>/``: a batch call's script and logs (the driver keeps them
    after success only with ``XCACHE_KEEP_JOB_DIRS=1``, which tests that read the
    script set)."""
    from executorlib_cache.store import Store

    return Path(Store(cache, create=None).job_dir(key))


@pytest.fixture(autouse=True)
def keep_job_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests read job scripts after the call: keep them (``XCACHE_KEEP_JOB_DIRS``;
    tests/test_slurm.py checks the default tidying with this turned off)."""
    from executorlib_cache.backends import cluster

    monkeypatch.setattr(cluster, "KEEP_JOB_DIRS", True)
    monkeypatch.setenv("XCACHE_KEEP_JOB_DIRS", "1")
