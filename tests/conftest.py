"""Shared fixtures: a fresh cache directory per test, and running user scripts
in separate interpreters (re-runs, racing drivers, killed drivers)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


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
