"""The interpreters the harness runs, and what machine it runs on.

* ``bench/.venvs/executorlib``: ``executorlib[cluster]==ANCHOR_VERSION`` from PyPI
  (h5py and pysqa come with the ``cluster`` extra) plus numpy;
* ``bench/.venvs/xcache``: this checkout installed editable (``-e .[submission]``)
  plus numpy; the stdlib reference runs with the same interpreter.

Both are made from the interpreter that runs the harness, so every side runs on the
same CPython.  ``bench/.venvs/`` is not committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENVS = BENCH / ".venvs"
ANCHOR_VERSION = "1.11.0"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _make_venv(venv: Path, requirements: list[str], marker: str, log) -> Path:
    """Create ``venv`` and pip-install ``requirements`` unless ``marker`` says done."""
    stamp = venv / ".bench-installed"
    if stamp.exists() and stamp.read_text() == marker and _python(venv).exists():
        return _python(venv)
    log(f"creating {venv} with {' '.join(requirements)}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(_python(venv)), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *requirements], check=True)
    stamp.write_text(marker)
    return _python(venv)


def anchor_python(log=print) -> Path:
    req = [f"executorlib[cluster]=={ANCHOR_VERSION}", "numpy"]
    return _make_venv(VENVS / "executorlib", req, " ".join(req), log)


def ours_python(log=print) -> Path:
    req = ["-e", f"{ROOT}[submission]", "numpy"]
    # re-install when the dependencies in pyproject.toml change
    marker = " ".join(req) + "\n" + (ROOT / "pyproject.toml").read_text()
    return _make_venv(VENVS / "xcache", req, marker, log)


def checkout_python(checkout: str | os.PathLike, log=print) -> Path:
    """A venv with ``checkout`` (any directory holding this project, e.g. a git
    worktree of an older commit) installed editable, for comparing formats:
    ``bench/.venvs/xcache-<hash of its path>``."""
    root = Path(checkout).resolve()
    if root == ROOT:
        return ours_python(log)
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    req = ["-e", f"{root}[submission]", "numpy"]
    marker = " ".join(req) + "\n" + (root / "pyproject.toml").read_text()
    return _make_venv(VENVS / f"xcache-{digest}", req, marker, log)


def slowfs_python(log=print) -> Path:
    """The interpreter of the slow FUSE file system's daemon (``bench/slowfs.py``)."""
    req = ["mfusepy>=3.1"]
    return _make_venv(VENVS / "slowfs", req, " ".join(req), log)


_VERSIONS = """
import json, platform
from importlib import metadata
out = {"python": platform.python_version()}
for name in ("executorlib_cache", "executorlib", "h5py", "numpy", "cloudpickle", "pyzmq",
             "pysqa"):
    try:
        out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
print(json.dumps(out))
"""


def versions(python: str | Path, env: dict | None = None) -> dict:
    out = subprocess.run([str(python), "-c", _VERSIONS], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return float("nan")


def _fs_type(path: Path) -> str:
    out = subprocess.run(["df", "--output=fstype", str(path)], capture_output=True, text=True)
    lines = out.stdout.split()
    return lines[-1] if out.returncode == 0 and lines else "unknown"


def _git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return out.stdout.strip()


def machine(workdir: Path) -> dict:
    dirty = bool(_git("status", "--porcelain", "--", "executorlib_cache", "cli"))
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "kernel": platform.release(),
        "os": platform.platform(terse=True),
        "workdir_fs": f"{workdir.parent}/ ({_fs_type(workdir)})",
        "git": _git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else ""),
        "loadavg_start": os.getloadavg(),
    }
