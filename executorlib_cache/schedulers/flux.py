"""flux as a dialect (:class:`~executorlib_cache.schedulers.Dialect`): pure functions.

The same contract as ``slurm.py``, with flux's formats.  Observed behaviour of a
real flux-core 0.88 is written down in ``shared/flux/FACTS.md`` of the project's
steering repository; the parsers here follow it.

Submission goes through pysqa's FLUX mode (``flux batch``) with
``scheduler_templates/flux.sh``; status is ONE ``flux jobs`` call with our ids
and an explicit output format (pysqa's default listing cuts job names at 10
characters and lists every job of the user); cancel is ONE ``flux cancel``.

Job ids: ``flux batch`` prints an F58 id (``ƒ2X9vzc7``; ``f`` instead of ``ƒ``
outside UTF-8 locales).  The backend records the *decimal* form, which every
flux command accepts in any locale and which is printed by ``{id.dec}``; the F58
form is recorded next to it (``job_id_f58``) for people reading ``flux jobs``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..resources import Resources
from .base import JobStatus, Phase, common_template_vars

NAME = "flux"
QUEUE_TYPE = "FLUX"
#: our shipped templates keep the flux config in flux.yaml (queue.yaml is SLURM)
CONFIG_FILES = ("flux.yaml", "queue.yaml")
SUPPORTED = frozenset({
    "cores", "threads_per_core", "gpus_per_core", "num_nodes", "run_time_max",
    "partition", "queue", "exclusive", "cwd", "cache_key", "pmi_mode", "priority",
    "error_log_file", "submission_template",
})
WHY_UNSUPPORTED = {
    "openmpi_oversubscribe": "The option openmpi_oversubscribe is not available with the "
                             "flux backend.",
    "memory_max": "flux batch has no memory limit option",
    "slurm_cmd_args": "these are sbatch options; flux batch cannot take them",
}
MAX_IDS_PER_QUERY = 1000
STATUS_FORMAT = "{id.dec}|{status}|{exception.type}|{exception.note}"
LOOKUP_FORMAT = "{id.dec}|{name}|{status}|{exception.type}|{exception.note}"

F58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
#: flux's ``{status}`` names -> the shared table.  CLEANUP ("C") is not final: a
#: cancelled or timed-out job shows it for 0.3-1 s before CANCELED/TIMEOUT (FACTS.md),
#: and a job stays RUN about 1 s after its script wrote its result.  Unknown names
#: count as QUEUED (active, not started).
PHASES: dict[str, Phase] = {
    **dict.fromkeys(("NEW", "DEPEND", "PRIORITY", "SCHED"), Phase.QUEUED),
    **dict.fromkeys(("RUN", "CLEANUP"), Phase.RUNNING),
    **dict.fromkeys(("COMPLETED", "INACTIVE"), Phase.COMPLETED),
    "FAILED": Phase.FAILED,
    **dict.fromkeys(("CANCELED", "CANCELLED", "TIMEOUT"), Phase.KILLED),
}


def status(state: str, reason: str = "") -> JobStatus:
    """A native status name (any case) and reason -> :class:`JobStatus`."""
    state = state.upper()
    return JobStatus(state, PHASES.get(state, Phase.QUEUED), reason)


#: exported in every batch script (nothing for flux: a job is its own instance)
JOB_ENV: dict[str, str] = {}


def unsupported(resources: dict[str, Any]) -> list[str]:
    """resource_dict keys flux cannot honour (``WHY_UNSUPPORTED`` says why)."""
    return sorted(set(resources) - SUPPORTED)


def not_as_asked(resources: dict[str, Any]) -> str | None:
    """Nothing: flux refuses what it cannot honour at submission, with its own text
    (e.g. ``-N 2 -n 1``: "node count must not be greater than task count")."""
    return None


def template_vars(resources: dict[str, Any]) -> dict[str, Any]:
    """resource_dict -> variables of scheduler_templates/flux.sh.

    ``cores`` -> ``-n`` (slots), ``threads_per_core`` -> ``-c``, ``gpus_per_core``
    -> ``-g``, ``num_nodes`` -> ``-N``, ``run_time_max`` seconds -> ``-t Ns``,
    ``queue`` (or ``partition``, SLURM's word for it) -> ``--queue``, ``priority`` ->
    ``--urgency`` (0-31; above 16 only for the instance owner).
    """
    out = common_template_vars(resources)
    if resources.get("queue"):
        out["partition"] = resources["queue"]
    if resources.get("priority") is not None:
        out["priority"] = int(resources["priority"])
    return out


def launcher(resources: dict[str, Any]) -> list[str]:
    """Prefix that starts the MPI ranks inside the batch job (``cores > 1``):
    ``flux run -n N [-c T]`` (flux's PMI-1 serves the mpich wheel, FACTS.md).
    """
    res = Resources.stored(resources)
    if not res.mpi:
        return []
    cmd = ["flux", "run", "-n", str(res.cores)]
    if res.threads > 1:
        cmd += ["-c", str(res.threads)]
    if resources.get("pmi_mode"):  # e.g. "pmix" for OpenMPI 5 (flux-pmix plugin)
        cmd += ["-o", f"pmi={resources['pmi_mode']}"]
    return cmd


def f58_decode(text: str) -> int:
    """An F58 id (``ƒ...`` or ``f...``) -> the integer id; ``ValueError`` otherwise."""
    s = text.strip()
    if not s or s[0] not in ("\u0192", "f") or len(s) < 2:
        raise ValueError(f"not an F58 job id: {text!r}")
    value = 0
    for ch in s[1:]:
        digit = F58_ALPHABET.find(ch)
        if digit < 0:
            raise ValueError(f"not an F58 job id: {text!r}")
        value = value * 58 + digit
    return value


def f58_encode(jobid: int) -> str:
    """The integer id -> F58 with the ``ƒ`` prefix."""
    digits = ""
    while True:
        jobid, rem = divmod(jobid, 58)
        digits = F58_ALPHABET[rem] + digits
        if jobid == 0:
            return "\u0192" + digits


def to_decimal(text: str) -> str:
    """Any flux id encoding we may meet (decimal, 0x hex, F58) -> decimal string."""
    s = text.strip()
    if s.isdigit():
        return s
    if s.startswith("0x"):
        return str(int(s, 16))
    return str(f58_decode(s))


def normalize_job_id(text: str) -> str:
    """The form recorded in entries: decimal, which every flux command accepts in
    any locale (FACTS.md: "Record one form consistently")."""
    return to_decimal(str(text))


def current_job_id(environ: Mapping[str, str]) -> str | None:
    """The decimal id of the flux job this process runs in, or None.

    A batch script has no ``FLUX_JOB_ID`` (only tasks of ``flux run``/``flux submit``
    get it); it has ``FLUX_ENCLOSING_ID``, the batch job's id in F58 (FACTS.md)."""
    for var in ("FLUX_JOB_ID", "FLUX_ENCLOSING_ID"):
        raw = environ.get(var)
        if raw:
            try:
                return to_decimal(raw)
            except ValueError:
                continue
    return None


def parse_job_id(output: str) -> str:
    """``flux batch`` prints the new id (F58) as the last word of its last line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    if not lines:
        raise ValueError("flux batch printed no job id")
    try:
        return to_decimal(lines[-1].split()[-1])
    except ValueError:
        raise ValueError(
            f"cannot read a job id from flux batch output {output.strip()!r}") from None


def status_command(job_ids: list[str], mine: bool = False) -> list[str]:
    """ONE ``flux jobs`` for our ids with an explicit output format: a site's default
    format may differ (named queues add a QUEUE column that breaks pysqa's parser,
    FACTS.md).  Our user's jobs (``-a``, with a count above flux's default 1000)
    when there are very many ids."""
    base = ["flux", "jobs", "-n", "-o", STATUS_FORMAT]
    if mine or len(job_ids) > MAX_IDS_PER_QUERY:
        return [*base, "-a", "-c", str(2 * len(job_ids) + MAX_IDS_PER_QUERY)]
    return [*base, *job_ids]


def _reason(exc_type: str, note: str) -> str:
    exc_type, note = exc_type.strip(), note.strip()
    return f"{exc_type}: {note}" if exc_type and note else exc_type or note


def parse_status(output: str) -> dict[str, JobStatus]:
    """``dec|STATUS|exception type|note`` -> {dec id: JobStatus}."""
    states: dict[str, JobStatus] = {}
    for line in output.splitlines():
        parts = line.strip().split("|", 3)
        if len(parts) < 2 or not parts[0].strip().isdigit() or not parts[1].strip():
            continue
        parts += [""] * (4 - len(parts))
        states[parts[0].strip()] = status(parts[1].split()[0], _reason(parts[2], parts[3]))
    return states


_UNKNOWN_ID = re.compile(r"JobID \S+ unknown|unknown job id")


def status_error(returncode: int, stderr: str) -> str:
    """A failed ``flux jobs ID...``.  flux prints ``JobID <id> unknown`` on stderr for
    every unknown (purged) id; it exits 0 with the rows of the known ones, and 1 only
    when NONE is known (FACTS.md): then ``"empty"``.  Anything else is an error."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if lines and all(_UNKNOWN_ID.search(ln) for ln in lines):
        return "empty"
    return "error"


def lookup_command(names: list[str]) -> list[str]:
    """ONE ``flux jobs`` call.  flux filters by one name (``--name``), so one name is
    asked for directly; several are found in our user's listing (``-a`` counts at
    most ``-c`` jobs: 1000 by default, raised here)."""
    base = ["flux", "jobs", "-a", "-n", "-o", LOOKUP_FORMAT]
    if len(names) == 1:
        return [*base, f"--name={names[0]}"]
    return [*base, "-c", str(MAX_IDS_PER_QUERY + 10 * len(names))]


def parse_lookup(output: str, names: list[str] | None = None
                 ) -> dict[str, tuple[str, JobStatus]]:
    """``dec|name|STATUS|type|note`` -> {name: (id, JobStatus)}; the newest id wins."""
    found: dict[str, tuple[str, JobStatus]] = {}
    for line in output.splitlines():
        parts = line.strip().split("|", 4)
        if len(parts) < 3 or not parts[0].strip().isdigit():
            continue
        parts += [""] * (5 - len(parts))
        jid, name = parts[0].strip(), parts[1].strip()
        if names is not None and name not in names:
            continue
        old = found.get(name)
        if old is None or int(jid) > int(old[0]):
            found[name] = (jid, status(parts[2].split()[0], _reason(parts[3], parts[4])))
    return found


def cancel_error_is_benign(text: str) -> bool:
    """flux cancel exits 1 for inactive (ended) or purged jobs: nothing to cancel."""
    return all(re.search(r"job is inactive|unknown job id", line)
               for line in text.splitlines() if "ERROR" in line.upper())


#: error texts of a scheduler that is busy or briefly unreachable: retry the submit
TRANSIENT = ("Resource temporarily unavailable", "Connection refused",
             "Connection reset", "Socket timed out", "timed out", "did not answer within")


def submit_error_is_transient(text: str) -> bool:
    """A submission that may succeed when tried again (not a refused job)."""
    return any(p in text for p in TRANSIENT)


def cancel_command(job_ids: list[str]) -> list[str]:
    """ONE ``flux cancel`` for all ids."""
    return ["flux", "cancel", *job_ids]


def unsatisfiable(job: JobStatus) -> bool:
    """flux accepted a job it can never run and failed it at once: ``exception
    type=alloc "unsatisfiable request ..."`` (more cores or GPUs than the instance
    has; FACTS.md).  The request was never runnable: a refused submission, not a
    job that died."""
    return not job.active and job.reason.startswith("alloc")


def dependency_refused(text: str) -> bool:
    """``flux batch`` refused an ``afterok`` on an upstream that already failed, was
    cancelled or is unknown (FACTS.md: ``dependency: afterok: job ... failed or was
    canceled`` / ``id N: job not found``)."""
    return "dependency" in text and ("failed or was canceled" in text
                                     or "job not found" in text)


def default_log_files(job_id: str, working_directory: str) -> list[str]:
    """Where flux writes a job's output when the template names no file:
    ``flux-{{id}}.out`` in the submission directory, the id in F58 with the ``ƒ``
    character whatever the locale (FACTS.md)."""
    try:
        return [f"{working_directory}/flux-{f58_encode(int(to_decimal(job_id)))}.out"]
    except ValueError:
        return []


def dependency_never_satisfied(job: JobStatus) -> bool:
    """flux raises a fatal "dependency" exception when afterok can never be met."""
    return re.match(r"dependency\b", job.reason) is not None
