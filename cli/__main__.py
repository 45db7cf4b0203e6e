"""``python -m executorlib_cache.cli ...`` is ``xcache ...``."""

from executorlib_cache.cli.app import main

if __name__ == "__main__":
    main(prog_name="xcache")
