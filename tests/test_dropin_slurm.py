"""executorlib's resource keys on a real SLURM (issue 15): a call's own
submission_template, openmpi_oversubscribe (srun --oversubscribe), error_log_file in a
job, priority refused with the reason, split_future across jobs (afterok + selector).

Runs when ``CI=true`` or ``XCACHE_TEST_SLURM=1`` (see test_slurm.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from conftest import SLURM_WANTED, job_dir, require

if not SLURM_WANTED:
    pytest.skip("SLURM tests are off: run `sudo bash scripts/test.sh` (starts a local "
                "SLURM), or set XCACHE_TEST_SLURM=1 where SLURM is running",
                allow_module_level=True)

require("pysqa")

from executorlib_cache import (  # noqa: E402
    SlurmClusterExecutor,
    split_future,
    terminate_tasks_in_cache,
)
from executorlib_cache.store import Store  # noqa: E402

pytestmark = pytest.mark.timeout(120)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def add(a: int, b: int = 1) -> int:
    return a + b


def pair(x: int) -> tuple[int, int]:
    return x, x * 10


def boom(x: int) -> None:
    raise ValueError(f"boom {x}")


def ranks(_: Any) -> tuple[int, int]:
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()


@pytest.fixture
def cache(tmp_path: Path) -> Any:
    path = tmp_path / "cache"
    yield path
    if path.exists():
        terminate_tasks_in_cache(path)


def test_a_calls_own_submission_template_is_used(cache: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    template = ("#!/bin/bash\n#SBATCH --job-name={{job_name}}\n"
                "#SBATCH --chdir={{working_directory}}\n#SBATCH --ntasks={{cores}}\n"
                "#SBATCH --output={{stdout_path}}\n#SBATCH --error={{stderr_path}}\n"
                "{%- if dependency_list %}\n"
                "#SBATCH --dependency=afterok:{{ dependency_list | join(':') }}\n"
                "{%- endif %}\n"
                f"echo \"{{{{job_name}}}} {{{{cores}}}}\" >> {marker}\n"
                "{{command}}\n")
    with SlurmClusterExecutor(None, cache) as exe:  # positional: max_workers, cache_directory
        own = exe.submit(add, 1, resource_dict={"submission_template": template})
        after = exe.submit(add, own, b=5, resource_dict={"submission_template": template})
        plain = exe.submit(add, 100)
        assert (own.result(timeout=90), after.result(timeout=90)) == (2, 7)
        assert plain.result(timeout=90) == 101
    lines = marker.read_text().splitlines()
    assert len(lines) == 2 and all(line.endswith(" 1") for line in lines)
    assert {line.split(".")[0] for line in lines} == {own.key, after.key}


def test_openmpi_oversubscribe_and_error_log_in_jobs(cache: Path, tmp_path: Path) -> None:
    require("mpi4py")
    log = tmp_path / "errors.log"
    with SlurmClusterExecutor(cache_directory=cache, openmpi_oversubscribe=True,
                              resource_dict={"error_log_file": str(log)}) as exe:
        mpi = exe.submit(ranks, 1, resource_dict={"cores": 2})
        bad = exe.submit(boom, 7)
        assert sorted(mpi.result(timeout=90)) == [(0, 2), (1, 2)]
        with pytest.raises(ValueError, match="boom 7"):
            bad.result(timeout=90)
    script = job_dir(cache, mpi.key).glob("**/run_queue.sh")
    assert any("srun -n 2 --kill-on-bad-exit=1 --oversubscribe" in p.read_text()
               for p in script)
    text = log.read_text()
    assert "function: <function boom at" in text and "args: [7]" in text
    assert "ValueError: boom 7" in text


def test_priority_is_refused_on_slurm_with_the_reason(cache: Path) -> None:
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        with pytest.raises(ValueError, match="--nice"):
            exe.submit(add, 1, resource_dict={"priority": 5})


def test_split_future_across_jobs(cache: Path) -> None:
    t0 = time.monotonic()
    with SlurmClusterExecutor(cache_directory=cache) as exe:
        lo, hi = split_future(exe.submit(pair, 4), 2)
        total = exe.submit(add, lo, b=hi)  # queued afterok, before the upstream ran
        assert time.monotonic() - t0 < 10
        assert total.result(timeout=90) == 44
        assert set(Store(cache, create=False).keys()) == {lo.key, total.key}  # no entry
        # per element
