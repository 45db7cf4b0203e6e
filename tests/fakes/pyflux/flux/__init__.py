"""Minimal stand-in for flux-core's Python bindings (``import flux``), for tests.

flux-core is not packaged for Debian 12 and its bindings (PyPI ``flux-python``)
need libflux, so they cannot be installed on the CI machines.  pysqa's FLUX mode
imports ``flux.job.JobID`` when a FLUX QueueAdapter is created, and that is the
only part provided here (see ``flux.job``).  Tests put ``tests/fakes/pyflux`` on
``sys.path`` together with ``tests/fakes`` on ``PATH`` (the fake ``flux``
command); nothing outside the tests imports this package.
"""

FAKE = True
