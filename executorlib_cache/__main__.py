"""``python -m executorlib_cache`` runs the ``xcache`` command line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def ensure_cli_package() -> None:
    """Make ``executorlib_cache.cli`` importable from a source checkout.

    An installed package maps the top-level ``cli/`` directory to
    ``executorlib_cache.cli`` (pyproject.toml).  Run from the source tree with
    ``PYTHONPATH=<checkout>`` there is no such mapping, so register ``cli/`` under
    that name here.  Nothing happens when the package is installed.
    """
    name = "executorlib_cache.cli"
    if name in sys.modules or importlib.util.find_spec(name) is not None:
        return
    init = Path(__file__).resolve().parent.parent / "cli" / "__init__.py"
    if not init.is_file():
        return
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(init.parent)]
    )
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def run() -> None:
    """``python -m executorlib_cache ...`` = ``xcache ...``."""
    ensure_cli_package()
    from executorlib_cache.cli.app import main

    main(prog_name="xcache")


if __name__ == "__main__":
    run()
