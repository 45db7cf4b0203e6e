"""The ``resource_dict`` vocabulary, validated once at ``submit()``.

Every backend receives a :class:`Resources` that went through
:func:`merge_resources`, so a typo (``"core": 4``) fails in the user's script, not
in a job an hour later.  :class:`Resources` is a plain ``dict`` (it is stored as
JSON in the task's metadata) that also answers the derived values -- ``cores``,
``threads``, ``gpus_per_core``... -- in one place instead of every caller
re-deriving ``int(resources.get("cores", 1))``.
"""

from __future__ import annotations

import os
import re
from typing import Any

#: every key any backend understands, with its type and meaning
RESOURCE_KEYS: dict[str, str] = {
    "cores": "int >= 1: MPI ranks (cores > 1 runs the function under MPI)",
    "threads_per_core": "int >= 1: threads per rank (OMP/MKL/OPENBLAS_NUM_THREADS)",
    "gpus_per_core": "int >= 0: GPUs per rank",
    "num_nodes": "int >= 1: nodes for the job",
    "run_time_max": "int seconds > 0: wall-time limit",
    "memory_max": "number > 0: memory limit in GB",
    "partition": "str: scheduler partition (SLURM) or queue (flux)",
    "queue": "str: the same as partition (flux's word; --queue / --partition)",
    "pmi_mode": "str: PMI of MPI ranks in a job, e.g. 'pmix' for OpenMPI 5 (flux run -o "
                "pmi=..., srun --mpi=...)",
    "cwd": "str: working directory of the function",
    "cache_key": "str: explicit cache key instead of the content hash ('a/b' parts allowed)",
    "cache_directory": "str path: this call's entry lives in another cache directory "
                       "(an executor of the same kind on that directory runs it)",
    "recompute": "bool: run the call again even if its result is cached; the new result "
                 "replaces the old one (once per executor and key)",
    "exclusive": "bool: exclusive node allocation",
    "slurm_cmd_args": "list[str]: extra sbatch arguments",
    "error_log_file": "str path: when the function raises, append the call and the "
                      "traceback to this file (made absolute at submit)",
    "submission_template": "str: a jinja2 job-script template for this call (SLURM/flux), "
                           "rendered by pysqa instead of the shipped one",
    "priority": "int >= 0: flux job urgency (--urgency, 0-31; 16 is flux's default)",
    "openmpi_oversubscribe": "bool: let MPI ranks oversubscribe the cores (srun "
                             "--oversubscribe; Open MPI's oversubscribe setting locally)",
}

#: keys whose value here means "nothing asked for" (executorlib's default resource dict
#: carries them): dropped by merge_resources, so a backend never refuses a default
EMPTY_DEFAULTS: dict[str, Any] = {"openmpi_oversubscribe": False, "slurm_cmd_args": [],
                                  "gpus_per_core": 0, "exclusive": False}

DEFAULTS: dict[str, Any] = {"cores": 1, "threads_per_core": 1}



class Resources(dict):
    """A validated ``resource_dict`` (keys of :data:`RESOURCE_KEYS`).

    A dict subclass, so it pickles and serialises to JSON as a plain dict; the
    properties give the values with their defaults applied.  Build one with
    :func:`merge_resources` (validates) or :meth:`stored` (a dict read back from an
    entry written by this package: not validated again).
    """

    @classmethod
    def stored(cls, data: dict[str, Any] | None) -> Resources:
        """The resources recorded in an entry (``task meta["resource_dict"]``)."""
        return data if isinstance(data, Resources) else cls(data or {})

    @property
    def cores(self) -> int:
        """MPI ranks of the call (1: not under MPI)."""
        return int(self.get("cores") or 1)

    @property
    def threads(self) -> int:
        """Threads per rank (``threads_per_core``; sets OMP_NUM_THREADS and friends)."""
        return int(self.get("threads_per_core") or 1)

    @property
    def gpus_per_core(self) -> int:
        """GPUs per rank (0: none asked for)."""
        return int(self.get("gpus_per_core") or 0)

    @property
    def num_nodes(self) -> int | None:
        """Nodes of the job, or None to let the scheduler decide."""
        n = self.get("num_nodes")
        return int(n) if n else None

    @property
    def run_time_max(self) -> int | None:
        """Wall-time limit in seconds, or None for the scheduler's default."""
        t = self.get("run_time_max")
        return int(t) if t else None

    @property
    def mpi(self) -> bool:
        """True when the call runs under MPI (``cores > 1``)."""
        return self.cores > 1


_KEY_PART = r"[A-Za-z0-9_][A-Za-z0-9_.+=-]*"
#: a key, or a hierarchical key of parts joined by "/" (executorlib's "project/run1")
_KEY_RE = re.compile(rf"^{_KEY_PART}(/{_KEY_PART})*$")


def is_entry_key(key: str) -> bool:
    """Whether ``key`` is one the store can hold: the :func:`validate_cache_key`
    grammar (the executor's ``<name>-v1-<32 hex>`` keys follow it), up to 240
    characters.  A file in a shard whose name decodes to anything else is not an
    entry."""
    return len(key) <= 240 and _KEY_RE.match(key) is not None and ".." not in key


def validate_cache_key(key: Any) -> str:
    """A cache key names files inside the cache and may not escape it: 1-200
    characters from ``[A-Za-z0-9_.+=-]``, in parts joined by ``/`` (a hierarchical
    key such as ``"project/run1"``, as executorlib allows), no part starting with
    ``.`` or ``-``, no ``..``.  The store writes ``/`` as ``%2F`` in a file name, so a
    hierarchical key makes no directories.  Raises ``TypeError`` / ``ValueError``."""
    if not isinstance(key, str):
        raise TypeError(f"cache_key must be a str, got {type(key).__name__}")
    if len(key) > 200 or not _KEY_RE.match(key) or ".." in key:
        raise ValueError(
            f"invalid cache_key {key!r}: use 1-200 characters from [A-Za-z0-9_.+=-], "
            "optionally in parts joined by '/' (e.g. 'project/run1'), no part starting "
            "with '.' or '-', no '..'"
        )
    if len(key) + 2 * key.count("/") > 240:  # '/' is stored as '%2F'; NAME_MAX is 255
        raise ValueError(f"cache_key {key!r} is too long for a file name once each '/' is "
                         "written as '%2F': use fewer or shorter parts")
    return key


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"resource_dict[{name!r}] must be an int >= {minimum}, got {value!r}")
    return value


def merge_resources(defaults: dict[str, Any] | None, per_call: dict[str, Any] | None
                    ) -> Resources:
    """Executor-level defaults overlaid by the per-call dict, checked key by key.

    Raises ``TypeError`` when a dict is not a dict, ``ValueError`` naming the key,
    the value and what is valid for an unknown key or a bad value.
    """
    merged = Resources(DEFAULTS)
    for source in (defaults, per_call):
        if source is None:
            continue
        if not isinstance(source, dict):
            raise TypeError(f"resource_dict must be a dict, got {type(source).__name__}")
        unknown = sorted(set(source) - set(RESOURCE_KEYS))
        if unknown:
            raise ValueError(
                f"unknown resource_dict key(s) {unknown}; valid keys are: "
                + ", ".join(RESOURCE_KEYS)
            )
        merged.update({k: v for k, v in source.items() if v is not None})
    for name, empty in EMPTY_DEFAULTS.items():
        if name in merged and merged[name] == empty and type(merged[name]) is type(empty):
            del merged[name]
    _int("cores", merged["cores"], 1)
    _int("threads_per_core", merged["threads_per_core"], 1)
    if "gpus_per_core" in merged:
        _int("gpus_per_core", merged["gpus_per_core"], 0)
    if "num_nodes" in merged:
        _int("num_nodes", merged["num_nodes"], 1)
    if "run_time_max" in merged:
        _int("run_time_max", merged["run_time_max"], 1)
    if "memory_max" in merged:
        m = merged["memory_max"]
        if isinstance(m, bool) or not isinstance(m, (int, float)) or m <= 0:
            raise ValueError(f"resource_dict['memory_max'] must be a number > 0 (GB), got {m!r}")
    for name in ("partition", "queue", "cwd"):
        if name in merged and not isinstance(merged[name], str):
            raise ValueError(f"resource_dict[{name!r}] must be a str, got {merged[name]!r}")
    for name in ("partition", "queue"):  # one word of a #SBATCH / flux option line
        if name in merged and not re.fullmatch(r"[A-Za-z0-9_.,:+=@-]+", merged[name]):
            raise ValueError(f"resource_dict[{name!r}] must be a partition or queue name "
                             f"(letters, digits and _.,:+=@-, no spaces or line breaks), "
                             f"got {merged[name]!r}")
    if "cwd" in merged and any(c in merged["cwd"] for c in "\n\r\0"):
        raise ValueError(f"resource_dict['cwd'] must not contain a line break or NUL, got "
                         f"{merged['cwd']!r}")
    if "partition" in merged and "queue" in merged and merged["partition"] != merged["queue"]:
        raise ValueError(f"resource_dict has partition={merged['partition']!r} and "
                         f"queue={merged['queue']!r}: they name the same thing, give one")
    if "pmi_mode" in merged and not (isinstance(merged["pmi_mode"], str)
                                     and re.fullmatch(r"[A-Za-z0-9_,.-]+", merged["pmi_mode"])):
        raise ValueError("resource_dict['pmi_mode'] must be a PMI name such as 'pmix', "
                         f"'pmi2' or 'simple', got {merged['pmi_mode']!r}")
    if "exclusive" in merged and not isinstance(merged["exclusive"], bool):
        raise ValueError(f"resource_dict['exclusive'] must be a bool, got {merged['exclusive']!r}")
    if "slurm_cmd_args" in merged:
        a = merged["slurm_cmd_args"]
        if not isinstance(a, (list, tuple)) or not all(isinstance(x, str) for x in a):
            raise ValueError(f"resource_dict['slurm_cmd_args'] must be a list of str, got {a!r}")
        bad = [x for x in a if any(c in x for c in "\n\r\0")]
        if bad:  # each becomes one line of the job script: a line break would add a command
            raise ValueError(f"resource_dict['slurm_cmd_args'] items are sbatch options, one "
                             f"line each: no line breaks or NUL, got {bad!r}")
        merged["slurm_cmd_args"] = list(a)
    if "cache_key" in merged:
        validate_cache_key(merged["cache_key"])
    if "recompute" in merged and not isinstance(merged["recompute"], bool):
        raise ValueError(f"resource_dict['recompute'] must be True or False, got "
                         f"{merged['recompute']!r}")
    if "cache_directory" in merged:
        if not isinstance(merged["cache_directory"], (str, os.PathLike)) or \
                not str(merged["cache_directory"]):
            raise ValueError("resource_dict['cache_directory'] must be a path (str), got "
                             f"{merged['cache_directory']!r}")
        merged["cache_directory"] = os.path.abspath(os.path.expanduser(
            merged["cache_directory"]))
    if "priority" in merged:
        _int("priority", merged["priority"], 0)
    if "openmpi_oversubscribe" in merged and not isinstance(merged["openmpi_oversubscribe"],
                                                            bool):
        raise ValueError("resource_dict['openmpi_oversubscribe'] must be a bool, got "
                         f"{merged['openmpi_oversubscribe']!r}")
    if "submission_template" in merged and not isinstance(merged["submission_template"], str):
        raise ValueError("resource_dict['submission_template'] must be a str (a jinja2 "
                         f"template), got {type(merged['submission_template']).__name__}")
    if "error_log_file" in merged:
        path = merged["error_log_file"]
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise ValueError(f"resource_dict['error_log_file'] must be a path, got {path!r}")
        merged["error_log_file"] = os.path.abspath(os.fspath(path))
    return merged
