"""The wheel users install holds every subpackage (the suite itself runs on an
editable install, which would hide a package missing from pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_the_wheel_has_every_subpackage_and_the_templates(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                           "-q", "-w", str(tmp_path)], capture_output=True, text=True,
                          timeout=280)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("executorlib_cache-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packaged = {n.rsplit("/", 1)[0] for n in names if n.endswith("__init__.py")}
    source = {"executorlib_cache/" + str(p.parent.relative_to(ROOT / "executorlib_cache"))
              for p in (ROOT / "executorlib_cache").rglob("__init__.py")}
    source = {s.removesuffix("/.") for s in source} | {"executorlib_cache/cli"}
    assert source <= packaged, f"missing from the wheel: {sorted(source - packaged)}"
    assert any(n.startswith("executorlib_cache/scheduler_templates/") and n.endswith(".sh")
               for n in names)
    modules = {n for n in names if n.endswith(".py")}
    for py in (ROOT / "executorlib_cache").rglob("*.py"):
        assert f"executorlib_cache/{py.relative_to(ROOT / 'executorlib_cache')}" in modules
