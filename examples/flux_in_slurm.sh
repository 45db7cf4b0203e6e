#!/bin/bash
# Run a workflow with FluxClusterExecutor inside one SLURM allocation:
# SLURM hands out the nodes once, flux schedules the many small jobs inside them.
#
#   sbatch examples/flux_in_slurm.sh
#
# Needs flux-core (conda install -c conda-forge flux-core flux-sched) and
# executorlib_cache[submission] in the environment activated below.
#SBATCH --job-name=xcache-flux
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --exclusive
#SBATCH --time=01:00:00

set -euo pipefail
# source /path/to/conda/bin/activate my-env     # the environment with flux + executorlib_cache

# one flux broker per node, bootstrapped over PMI-2 by srun; flux exits with the script
srun --mpi=pmi2 --nodes="$SLURM_NNODES" --ntasks-per-node=1 \
    flux start bash -c '
        flux resource list                       # cores and GPUs flux sees
        python - <<PY
from executorlib_cache import FluxClusterExecutor


def square(x):
    return x * x


with FluxClusterExecutor(cache_directory="cache", resource_dict={"cores": 1}) as exe:
    print(sum(f.result() for f in [exe.submit(square, i) for i in range(100)]))
PY
    '
