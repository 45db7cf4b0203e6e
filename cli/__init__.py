"""The ``xcache`` command: see and manage an executorlib_cache cache directory.

Installed as ``executorlib_cache.cli``; the command is
:func:`executorlib_cache.cli.app.main` (also ``python -m executorlib_cache``).
The work is done by :mod:`executorlib_cache.catalog`; this package only parses
arguments and draws tables.

``docs/cli.md`` is generated from the help texts (from an installed or editable
checkout)::

    typer executorlib_cache.cli.app utils docs --name xcache --output docs/cli.md
"""
