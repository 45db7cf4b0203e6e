"""The quickstart on a SLURM cluster: the same calls, one SLURM job each.

Run on a login node, with the cache directory on a shared file system:

    pip install "executorlib_cache[submission]"
    python examples/slurm_quickstart.py

Stop it at any time and run it again: finished calls come from the cache and
queued jobs are re-attached, not submitted twice.
"""

# needs: slurm  (tests/test_docs.py runs it when the test command brought up SLURM)

import math
import time

from executorlib_cache import SlurmClusterExecutor

RESOURCES = {
    "partition": None,  # None: the cluster's default partition
    "run_time_max": 600,  # seconds
    "memory_max": 2,  # GB
}


def energy(n_atoms: int, spacing: float) -> float:
    time.sleep(0.2)
    return -n_atoms * math.exp(-spacing)


def lowest(energies: list[float]) -> float:
    return min(energies)


if __name__ == "__main__":
    with SlurmClusterExecutor(cache_directory="cache", resource_dict=RESOURCES) as exe:
        futures = [exe.submit(energy, 8, s) for s in (0.5, 1.0, 1.5, 2.0)]
        # queued at once with --dependency=afterok:<the four job ids>
        best = exe.submit(lowest, futures)
        print(f"lowest: {best.result():.3f}")
