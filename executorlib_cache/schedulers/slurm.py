"""SLURM as a dialect (:class:`~executorlib_cache.schedulers.Dialect`): pure functions.

Why a module of small pure functions (PSI/J style) instead of a class that
calls ``sbatch``: every rule about SLURM's command lines and output formats is
testable without a scheduler (``tests/test_cluster_units.py``), and the one
place that runs commands (``schedulers/commands.py``) is shared with flux.
Submission itself goes through pysqa with ``scheduler_templates/slurm.sh``; this
module supplies the template variables and parses what ``sbatch`` prints.

Status is asked with ONE ``squeue`` per tick for *our* job ids only
(``-j id1,id2,... -t all``), never every user's queue.  Finished jobs stay
visible for ``MinJobAge`` (300 s by default) and then vanish: a missing id is
"finished and purged", which the backend resolves by looking for the result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..resources import Resources
from .base import JobStatus, Phase, common_template_vars

NAME = "slurm"
QUEUE_TYPE = "SLURM"
WHY_UNSUPPORTED: dict[str, str] = {
    "priority": "SLURM lets a user lower a job's priority only (sbatch --nice); pass "
                "slurm_cmd_args=['--nice=N'] for that (a priority is flux's --urgency)",
}
#: the pysqa configuration file inside a config directory
CONFIG_FILES = ("queue.yaml",)
#: every resource_dict key SLURM honours (cache_key is the executor's own)
SUPPORTED = frozenset({
    "cores", "threads_per_core", "gpus_per_core", "num_nodes", "run_time_max",
    "memory_max", "partition", "queue", "exclusive", "slurm_cmd_args", "cwd", "cache_key",
    "pmi_mode", "error_log_file", "submission_template", "openmpi_oversubscribe",
})
#: more ids than this and squeue lists our user's jobs instead of a -j list
MAX_IDS_PER_QUERY = 1000
STATUS_FORMAT = "%i|%T|%r"

#: SLURM's job states (``squeue -o %T``, man squeue "JOB STATE CODES") -> the shared
#: table.  COMPLETING is not final (the job's processes are still being cleaned up);
#: a state not listed here (a newer SLURM) counts as QUEUED: active, not started.
PHASES: dict[str, Phase] = {
    **dict.fromkeys(("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                     "RESV_DEL_HOLD", "SPECIAL_EXIT"), Phase.QUEUED),
    **dict.fromkeys(("RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING",
                     "STAGE_OUT", "RESIZING"), Phase.RUNNING),
    "COMPLETED": Phase.COMPLETED,
    "FAILED": Phase.FAILED,
    **dict.fromkeys(("CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
                     "BOOT_FAIL", "DEADLINE", "REVOKED"), Phase.KILLED),
}


def status(state: str, reason: str = "") -> JobStatus:
    """A native state (any case) and reason -> :class:`JobStatus`."""
    state = state.upper()
    return JobStatus(state, PHASES.get(state, Phase.QUEUED), reason)


#: exported in every batch script: ``srun`` steps may share the CPUs of the step that
#: runs the call (``--overlap``), so a rank of an MPI call can start ``srun`` itself
#: (an external MPI program, ``srun hostname``) instead of waiting for free CPUs
#: until the time limit
JOB_ENV = {"SLURM_OVERLAP": "1"}


def unsupported(resources: dict[str, Any]) -> list[str]:
    """resource_dict keys SLURM cannot honour (``WHY_UNSUPPORTED`` says why)."""
    return sorted(set(resources) - SUPPORTED)


def not_as_asked(resources: dict[str, Any]) -> str | None:
    """A request sbatch accepts but does not honour, or None.

    ``num_nodes`` above ``cores`` (= ``--ntasks``): every node needs a task, and
    sbatch only warns ("can't run 1 processes on 2 nodes, setting nnodes to 1") and
    runs the job on fewer nodes.  (flux refuses it itself: "node count must not be
    greater than task count".)
    """
    res = Resources.stored(resources)
    if res.num_nodes is not None and res.num_nodes > res.cores:
        return (f"resource_dict num_nodes={res.num_nodes} with cores={res.cores}: SLURM "
                f"starts at least one task (rank) per node, so cores must be >= num_nodes; "
                f"sbatch would only warn and run the job on {res.cores} node(s)")
    return None


def memory_spec(gb: float) -> int | str:
    """``memory_max`` in GB for the template: whole GB as int, else MB as ``"1536M"``.

    pysqa truncates a float to int (1.5 -> 1); a string passes through untouched.
    """
    if float(gb).is_integer():
        return int(gb)
    return f"{math.ceil(gb * 1024)}M"


def template_vars(resources: dict[str, Any]) -> dict[str, Any]:
    """resource_dict -> variables of scheduler_templates/slurm.sh (and pysqa's own).

    ``cores`` -> ``--ntasks``; ``threads_per_core`` -> ``--cpus-per-task``;
    ``run_time_max`` stays in seconds (the template rounds up to minutes, SLURM's
    unit); ``cwd`` is applied by the runner, not here.
    """
    out = common_template_vars(resources)
    if resources.get("queue"):  # SLURM calls its queues partitions
        out["partition"] = resources["queue"]
    if resources.get("memory_max"):
        out["memory_max"] = memory_spec(resources["memory_max"])
    if resources.get("slurm_cmd_args"):
        out["slurm_cmd_args"] = list(resources["slurm_cmd_args"])
    return out


def launcher(resources: dict[str, Any]) -> list[str]:
    """Prefix that starts the MPI ranks inside the batch job (``cores > 1``).

    ``srun`` does not inherit ``--cpus-per-task`` from sbatch since SLURM 22.05,
    so it is repeated.  ``--kill-on-bad-exit=1`` (man srun): a rank that dies --
    even inside ``MPI_Init``, before our runner can report anything -- ends the
    step, so the job ends and the call fails with its log instead of the other
    ranks waiting for it until the time limit (SLURM's default is
    ``KillOnBadExit=0``).  The MPI plugin is the cluster's ``MpiDefault`` (pmi2 in
    CI) unless ``pmi_mode`` names one; ``openmpi_oversubscribe`` adds
    ``--oversubscribe``.
    """
    res = Resources.stored(resources)
    if not res.mpi:
        return []
    cmd = ["srun", "-n", str(res.cores), "--kill-on-bad-exit=1"]
    if res.threads > 1:
        cmd += ["-c", str(res.threads)]
    if resources.get("pmi_mode"):  # else the cluster's MpiDefault
        cmd += [f"--mpi={resources['pmi_mode']}"]
    if resources.get("openmpi_oversubscribe"):
        cmd += ["--oversubscribe"]
    return cmd


_PARSABLE_ID = re.compile(r"(\d+)(?:;\S+)?")
_SUBMITTED_ID = re.compile(r"Submitted batch job (\d+)(?: on cluster \S+)?")


def parse_job_id(output: str) -> str:
    """The job id in what ``sbatch`` printed, in every documented form (man sbatch):
    ``--parsable`` gives ``123`` or ``123;cluster`` (federation / multi-cluster),
    plain sbatch ``Submitted batch job 123`` or ``... 123 on cluster ci``; warning
    lines may come before or after it.  ``ValueError`` if no line holds an id."""
    found = None
    for line in output.splitlines():
        line = line.strip()
        m = _PARSABLE_ID.fullmatch(line) or _SUBMITTED_ID.fullmatch(line)
        if m:
            found = m.group(1)
    if found is None:
        raise ValueError(f"cannot read a job id from sbatch output {output.strip()!r}")
    return found


def normalize_job_id(text: str) -> str:
    """The form recorded in entries: ``123`` (a ``;cluster`` suffix dropped)."""
    return str(text).strip().split(";")[0]


def current_job_id(environ: Mapping[str, str]) -> str | None:
    """The id of the job this process runs in (``SLURM_JOB_ID``), or None."""
    return environ.get("SLURM_JOB_ID") or None


def status_command(job_ids: list[str], mine: bool = False) -> list[str]:
    """ONE squeue for our ids (all states, no header); our user's jobs if very many."""
    base = ["squeue", "-h", "-t", "all", "-o", STATUS_FORMAT]
    if mine or len(job_ids) > MAX_IDS_PER_QUERY:
        return [*base, "--me"]
    return [*base, "-j", ",".join(job_ids)]


def parse_status(output: str) -> dict[str, JobStatus]:
    """``id|STATE|reason`` lines -> {id: JobStatus}; odd lines are skipped."""
    states: dict[str, JobStatus] = {}
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not re.fullmatch(r"\d+([_+]\S+)?", parts[0].strip()):
            continue
        state_words = parts[1].split()
        if not state_words:
            continue
        reason = parts[2].strip() if len(parts) > 2 else ""
        states[parts[0].strip()] = status(state_words[0], "" if reason == "None" else reason)
    return states


def status_error(returncode: int, stderr: str) -> str:
    """How to read a failed squeue: ``"empty"`` (none of the ids is known any
    more: squeue exits 1 with "Invalid job id specified") or ``"error"``."""
    if "Invalid job id specified" in stderr:
        return "empty"
    return "error"


def lookup_command(names: list[str]) -> list[str]:
    """Find jobs by name (a submission whose id was never recorded): ONE call."""
    return ["squeue", "-h", "-t", "all", "--me", "--name=" + ",".join(names),
            "-o", "%i|%j|%T|%r"]


def parse_lookup(output: str, names: list[str] | None = None
                 ) -> dict[str, tuple[str, JobStatus]]:
    """``id|name|STATE|reason`` -> {name: (id, JobStatus)}; the newest id wins."""
    found: dict[str, tuple[str, JobStatus]] = {}
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0].strip().isdigit() or not parts[2].split():
            continue
        jid, name, state = parts[0].strip(), parts[1].strip(), parts[2].split()[0].upper()
        if names is not None and name not in names:
            continue
        reason = parts[3].strip() if len(parts) > 3 else ""
        old = found.get(name)
        if old is None or int(jid) > int(old[0]):
            found[name] = (jid, status(state, "" if reason == "None" else reason))
    return found


def cancel_error_is_benign(text: str) -> bool:
    """scancel complaints about jobs that ended already (it usually exits 0 then)."""
    return all(re.search(r"already completing or completed|Invalid job id", line)
               for line in text.splitlines() if "error" in line.lower())


#: error texts of a scheduler that is busy or briefly unreachable: retry the submit
TRANSIENT = ("Socket timed out", "Unable to contact slurm controller",
             "Resource temporarily unavailable", "slurm_receive_msg", "Zero Bytes were transmitted",
             "Connection refused", "Transport endpoint is not connected", "Connection timed out",
             "did not answer within")


def submit_error_is_transient(text: str) -> bool:
    """A submission that may succeed when tried again (not a refused job)."""
    return any(p in text for p in TRANSIENT)


def cancel_command(job_ids: list[str]) -> list[str]:
    """ONE ``scancel`` for all ids."""
    return ["scancel", *job_ids]


def unsatisfiable(job: JobStatus) -> bool:
    """SLURM refuses an impossible request at submission (sbatch's error): a job it
    accepted is never "unsatisfiable" here."""
    return False


def dependency_refused(text: str) -> bool:
    """sbatch refused a dependency: ``Job dependency problem`` (the upstream is
    unknown or already ended badly)."""
    return "Job dependency problem" in text


def default_log_files(job_id: str, working_directory: str) -> list[str]:
    """Where SLURM writes a job's output when the template names no file:
    ``slurm-<id>.out`` in the working directory (man sbatch, ``--output``)."""
    return [f"{working_directory}/slurm-{job_id}.out"]


def dependency_never_satisfied(job: JobStatus) -> bool:
    """An afterok upstream ended badly: SLURM cancels this job (kill-on-invalid-dep)."""
    return job.reason == "DependencyNeverSatisfied"
