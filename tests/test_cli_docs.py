"""docs/cli.md is generated from the typer app; this keeps it from going stale."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import skip_unless_ci

ROOT = Path(__file__).resolve().parent.parent


def _body(text: str) -> str:
    """The generated part: without the leading "do not edit" comment."""
    if text.startswith("<!--"):
        text = text.split("-->", 1)[1]
    return text.strip()


@pytest.mark.timeout(60)
def test_cli_reference_matches_the_app(tmp_path):
    if importlib.util.find_spec("executorlib_cache.cli") is None:
        skip_unless_ci("needs an installed or editable checkout (pip install -e .)")
    out = tmp_path / "cli.md"
    subprocess.run([sys.executable, "-m", "typer", "executorlib_cache.cli.app", "utils", "docs",
                    "--name", "xcache", "--output", str(out)], check=True, timeout=50,
                   capture_output=True)
    assert _body(out.read_text()) == _body((ROOT / "docs" / "cli.md").read_text()), (
        "docs/cli.md is stale: regenerate it with "
        "`typer executorlib_cache.cli.app utils docs --name xcache --output docs/cli.md` "
        "(keep the comment at its top)")
