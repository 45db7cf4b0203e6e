"""What runs a call: the compute side, on a login node's workers or on compute nodes.

* :mod:`.runner` executes one entry and writes its outcome (in a local worker, as
  a batch job ``python -m executorlib_cache.compute.runner``, or under
  ``mpiexec``/``srun``/``flux run`` for MPI ranks);
* :mod:`.worker` is a persistent local worker process fed over zmq;
* :mod:`.pool_worker` runs many entries inside one scheduler job (``max_workers=K``).

These modules import only the store, the claim protocol, the pool-queue layout,
serialization and the scheduler dialects -- never the executors or ``backends/``
(``tests/test_layout.py`` checks it), so a job on a compute node starts without
loading zmq, pysqa or the driver's code.
"""
