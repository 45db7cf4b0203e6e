"""Where calls run, behind one interface (``base.py``): the driver side.

* ``local.py``: persistent worker processes on this machine, fed over zmq;
* ``cluster.py``: one SLURM/flux job per call;
* ``pool.py``: calls packed into at most K SLURM/flux worker jobs (``max_workers``);
* ``submission.py``: submitting through pysqa (templates, errors, throttle);
* ``tracker.py``: one scheduler status call per tick for every job of a driver.

The scheduler dialects they use are in ``schedulers/`` (pure, also used by the
compute side); the claim protocol they follow is ``claims.py``.
"""
