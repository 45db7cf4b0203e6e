"""Fixtures of the fault suite: per-fault counters (lost / duplicate executions,
hangs) written to ``tests/faults/.counts.json`` at the end of a session, small
tmpfs mounts, and the SLURM switch."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SLURM_WANTED, skip_unless_ci

COUNTS_FILE = Path(__file__).resolve().parent / ".counts.json"


class Counts:
    """What the suite measured, per fault: scenarios run, calls checked, and how many
    results were lost, executed twice, or hung (the last three must stay 0)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, int]] = {}

    def add(self, fault: str, *, scenarios: int = 1, calls: int = 0, lost: int = 0,
            duplicates: int = 0, hangs: int = 0) -> None:
        row = self.rows.setdefault(fault, dict.fromkeys(
            ("scenarios", "calls", "lost", "duplicates", "hangs"), 0))
        row["scenarios"] += scenarios
        row["calls"] += calls
        row["lost"] += lost
        row["duplicates"] += duplicates
        row["hangs"] += hangs


_COUNTS = Counts()


@pytest.fixture(scope="session")
def counts() -> Iterator[Counts]:
    yield _COUNTS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    """A test that ran into a timeout (its own bound on a future, or pytest-timeout)
    is a hang: counted per test module, next to the per-fault rows."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and call.excinfo is not None:
        text = f"{call.excinfo.typename} {call.excinfo.value}"
        if call.excinfo.errisinstance(TimeoutError) or "Timeout" in text:
            _COUNTS.add(f"hangs in {item.module.__name__}", scenarios=0, hangs=1)


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    if _COUNTS.rows:
        data = {"written": time.strftime("%Y-%m-%d %H:%M:%S"), "faults": _COUNTS.rows}
        COUNTS_FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


# ----------------------------------------------------------------- tmpfs
class Tmpfs:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read_only(self) -> None:
        """Make the file system read-only for every path looked up from now on: a
        read-only bind mount over it (undone by :meth:`writable`).  ``remount,ro`` of
        the tmpfs itself is refused ("busy") while any process holds one of its files
        open for writing, and a process that claimed an entry keeps the cache's
        ``.lock`` open (its claim locks are POSIX locks on that descriptor)."""
        p = str(self.path)
        subprocess.run(["mount", "--bind", p, p], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", p], check=True,
                       capture_output=True)

    def writable(self) -> None:
        """Undo :meth:`read_only`."""
        subprocess.run(["umount", str(self.path)], check=True, capture_output=True)

    def fill(self, leave: int) -> Path:
        """Fill the file system up to ``leave`` free bytes; returns the filler file."""
        filler = self.path / f"filler-{uuid.uuid4().hex[:8]}"
        st = os.statvfs(self.path)
        free = st.f_bavail * st.f_frsize
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, free - leave))
        return filler

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize


def _mount(path: Path, size: str) -> None:
    if os.geteuid() != 0:
        skip_unless_ci("needs root to mount a tmpfs")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        skip_unless_ci(f"cannot mount a tmpfs here: {proc.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Any]:
    """``tmpfs("2m")`` mounts a fresh tmpfs of that size (unmounted afterwards)."""
    mounted: list[Path] = []

    def make(size: str = "2m") -> Tmpfs:
        path = tmp_path / f"tmpfs{len(mounted)}"
        path.mkdir()
        _mount(path, size)
        mounted.append(path)
        return Tmpfs(path)

    yield make
    for path in reversed(mounted):
        for _ in range(3):  # a read-only bind left by a failed test, then the tmpfs
            if not os.path.ismount(path):
                break
            r = subprocess.run(["umount", str(path)], capture_output=True)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", str(path)], capture_output=True)


# ----------------------------------------------------------------- SLURM switch
def slurm_wanted() -> bool:
    """Same switch as tests/test_slurm.py: CI=true/1/yes or XCACHE_TEST_SLURM=1."""
    return SLURM_WANTED
