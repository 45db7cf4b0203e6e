"""A function that runs on several MPI ranks (local backend: mpiexec).

    pip install "executorlib_cache[mpi]" mpich
    python examples/mpi_function.py

Every rank calls the function; the future's result is the list of all ranks'
return values, in rank order.
"""

from executorlib_cache import SingleNodeExecutor


def distributed_sum(n: int) -> tuple[int, int, int]:
    from mpi4py import MPI  # imported where it runs: the driver needs no MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    partial = sum(range(rank, n, size))
    return rank, size, comm.allreduce(partial)


if __name__ == "__main__":
    with SingleNodeExecutor(max_workers=2) as exe:
        per_rank = exe.submit(distributed_sum, 1000, resource_dict={"cores": 2}).result()
    for rank, size, total in per_rank:
        print(f"rank {rank} of {size}: total {total}")
    assert all(total == sum(range(1000)) for _, _, total in per_rank)
