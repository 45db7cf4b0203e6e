"""Quickstart: a few calls with a dependency, run on this machine.

    python examples/quickstart.py      # first run: computes, ~1 s
    python examples/quickstart.py      # second run: every call is a cache hit

Results live in ``$XCACHE_DIR`` (default ``./.xcache``); look at them with
``xcache ls``.  To run the same script on a SLURM cluster, replace
``SingleNodeExecutor`` by ``SlurmClusterExecutor`` (see examples/slurm_quickstart.py).
"""

import math
import time

from executorlib_cache import SingleNodeExecutor


def energy(n_atoms: int, spacing: float) -> float:
    """Stand-in for an expensive simulation."""
    time.sleep(0.2)
    return -n_atoms * math.exp(-spacing)


def lowest(energies: list[float]) -> float:
    return min(energies)


if __name__ == "__main__":
    start = time.perf_counter()
    with SingleNodeExecutor() as exe:
        futures = [exe.submit(energy, 8, s) for s in (0.5, 1.0, 1.5, 2.0)]
        best = exe.submit(lowest, futures)  # a list of futures: waits for all four
        cached = sum(f.done() for f in futures)  # cache hits are done at submit()
        print(f"energies: {[round(f.result(), 3) for f in futures]}")
        print(f"lowest:   {best.result():.3f}")
    print(f"{cached} of {len(futures)} calls came from the cache "
          f"({exe.cache_directory}); took {time.perf_counter() - start:.1f} s")
