"""The embedded default: a pool of persistent worker processes fed over zmq.

No interpreter start per task: ``max_workers`` workers (default: CPU count)
start on the first dispatch and serve tasks until shutdown.  Futures resolve
on a worker's "done" message.  A worker that dies fails the task it held
with :class:`TaskDiedError` and is replaced on demand.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from ..errors import UnsupportedResourceError
from ..liveness import pid_alive
from ..mpi import mpiexec_path
from ..resources import Resources
from .base import Backend, Died, Event, Finished, Requeue, Started, Task

#: a worker that dies this many times in a row before saying "ready" means the
#: environment is broken (e.g. the interpreter cannot import us): stop retrying
MAX_START_FAILURES = 3


#: tasks handed to one worker at once: the one it runs and the next one, so that it
#: never sits idle waiting for the driver's round trip (the driver thread may be busy
#: submitting; Python hands the GIL over only every few milliseconds)
PREFETCH = 2


@dataclass
class _Worker:
    proc: subprocess.Popen
    ident: bytes | None = None  # zmq routing id, known once "ready" arrives
    keys: list[str] = field(default_factory=list)  # handed over, in order
    started: set[str] = field(default_factory=set)  # keys it said it began
    cost: dict[str, int] = field(default_factory=dict)  # cores each held task needs

    @property
    def slots(self) -> int:
        """Cores it may use now: the most any held task needs (they run one by one)."""
        return max((self.cost.get(k, 1) for k in self.keys), default=0)


#: why a process usually gets SIGKILL without anyone sending it
OOM_HINT = ("SIGKILL usually means the kernel's out-of-memory killer: check `dmesg` or the "
            "call's memory use, and run fewer calls at once (max_workers)")


def describe_exit(returncode: int) -> str:
    """A ``Popen.returncode`` in words: ``killed by signal SIGKILL`` / ``exited with code 2``."""
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def died_hint(returncode: int) -> str:
    """`` (hint)`` for a death with a usual cause (SIGKILL: out of memory), else ""."""
    return f" ({OOM_HINT})" if returncode in (-signal.SIGKILL, 128 + signal.SIGKILL) else ""


#: the resource_dict keys the local backend honours; any other key with a value that asks
#: for something (gpus_per_core=1, a partition, a time limit...) is refused at submit()
LOCAL_KEYS = ("cores", "threads_per_core", "cwd", "cache_key", "error_log_file",
              "openmpi_oversubscribe")
#: executorlib's message for a call larger than the executor (scripts may match on it)
TOO_MANY_CORES = "The specified number of cores is larger than the available number of cores."


class LocalBackend(Backend):
    """Persistent worker processes on this machine (see the module docstring).

    Capacity (``budget``): ``max_cores`` if given, else ``max_workers``, else the CPU
    count.  A running call uses ``cores * threads_per_core`` of it when ``max_cores``
    is given (as executorlib counts), else ``cores`` (an MPI call of ``cores`` ranks
    occupies ``cores`` slots).  Processes: ``max_workers``, else ``max_cores``, else the
    CPU count.  With an explicit ``max_cores``/``max_workers``, a call that needs more
    than the budget is refused at ``submit()`` (``ValueError``, executorlib's
    message); with neither, it waits until the machine is idle and runs alone.
    """
    name = "local"
    worker_writes_task = True

    def __init__(self, store: Any, max_workers: int | None = None,
                 max_cores: int | None = None) -> None:
        cpus = os.cpu_count() or 1
        super().__init__(store, max_workers or max_cores or cpus)
        self.max_cores = max_cores
        #: True when the user set a limit: a call above it is an error, not a wait
        self.strict = max_cores is not None or max_workers is not None
        self.budget = max_cores or max_workers or cpus
        self._workers: dict[int, _Worker] = {}  # by pid
        self._by_ident: dict[bytes, _Worker] = {}
        self._sock: zmq.Socket | None = None
        self._dir: str | None = None
        # named now (made at start()): every claim names it, so that `xcache rm --force`
        # and terminate_task_in_cache find the worker running a call (liveness.py)
        self._dir_name = os.path.join(tempfile.gettempdir(),
                                      f"xcache-{os.getpid()}-{secrets.token_hex(4)}")
        self.claim_fields = {"workers": self._dir_name}
        self._start_failures = 0
        self.broken: str | None = None

    # ------------------------------------------------------------- submit side
    def cost(self, resources: Resources) -> int:
        """Cores of the budget a call uses while it runs (see the class docstring)."""
        if self.max_cores is not None:
            return resources.cores * resources.threads
        return resources.cores

    def validate(self, resources: Resources) -> None:
        """Refuse keys it cannot honour (:data:`LOCAL_KEYS` only), a call larger than an
        explicit ``max_cores``/``max_workers``, and MPI without mpi4py/mpiexec."""
        refused = sorted(k for k, v in resources.items()
                         if k not in LOCAL_KEYS and v not in (None, False, [], (), 0))
        if refused:
            raise UnsupportedResourceError(
                f"resource_dict key(s) {refused} cannot be honoured by SingleNodeExecutor, "
                "which runs calls on this machine; it honours "
                f"{', '.join(LOCAL_KEYS)} (use SlurmClusterExecutor or FluxClusterExecutor "
                "for scheduler resources)")
        if self.strict and self.cost(resources) > self.budget:
            raise ValueError(TOO_MANY_CORES)
        cwd = resources.get("cwd")
        if cwd and not os.path.isdir(cwd):  # on this machine, so it can be checked now
            raise ValueError(f"resource_dict['cwd'] must be an existing directory on this "
                             f"machine, got {cwd!r}")
        if resources.cores > 1:
            if importlib.util.find_spec("mpi4py") is None:
                raise ImportError(
                    f"resource_dict cores={resources['cores']} runs the function under MPI "
                    "and needs mpi4py: pip install 'executorlib_cache[mpi]' mpich"
                )
            if mpiexec_path() is None:
                raise ImportError(
                    "cores > 1 needs an 'mpiexec' next to the Python interpreter or on PATH "
                    "(pip install mpich, or load your cluster's MPI module)"
                )

    # ------------------------------------------------------------- poller side
    def start(self, ctx: zmq.Context) -> None:
        _sweep_socket_dirs()
        os.mkdir(self._dir_name, 0o700)  # 0700: no other user can connect
        self._dir = self._dir_name
        self._sock = ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(f"ipc://{self._dir}/workers")

    def sockets(self) -> list[zmq.Socket]:
        return [self._sock] if self._sock is not None else []

    def _spawn(self) -> None:
        assert self._sock is not None and self._dir is not None
        env = dict(os.environ)
        # the worker must import what the driver can (functions pickled by reference)
        paths = [p or os.getcwd() for p in sys.path]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        # the permissions asked for, also for `mpiexec ... runner` started by a worker
        env["XCACHE_DIR_MODE"] = oct(self.store.dir_mode)[2:]
        env["XCACHE_FILE_MODE"] = oct(self.store.file_mode)[2:]
        if self.store.secret is not None:  # an explicit secret=: workers sign with it too
            env.pop("XCACHE_SECRET_FILE", None)
            env["XCACHE_SECRET"] = self.store.secret  # type: ignore[assignment]
        proc = subprocess.Popen(
            [sys.executable, "-m", "executorlib_cache.compute.worker", f"ipc://{self._dir}/workers",
             str(self.store.root), oct(self.store.dir_mode)[2:], oct(self.store.file_mode)[2:],
             str(os.getpid())],
            stdin=subprocess.DEVNULL,
            env=env,
            # its own session: a Ctrl-C in the terminal reaches the driver only, which
            # decides (workers finish their call, or are stopped by a second Ctrl-C)
            start_new_session=True,
        )
        self._workers[proc.pid] = _Worker(proc)

    def _slots_used(self) -> int:
        return sum(w.slots for w in self._workers.values())

    def _pick(self, task: Task) -> _Worker | None:
        """An idle worker if possible; for a 1-core task also one with room in its queue."""
        need = min(self.cost(task.resources), self.budget)
        ready = [w for w in self._workers.values() if w.ident is not None]
        idle = [w for w in ready if not w.keys]
        if idle and self._slots_used() + need <= self.budget:
            return idle[0]
        if need == 1:
            room = [w for w in ready if w.keys and w.slots == 1 and len(w.keys) < PREFETCH]
            if room:
                return min(room, key=lambda w: len(w.keys))
        return None

    def can_dispatch(self, task: Task) -> bool:
        if self.broken:
            return True  # dispatch() fails it with the reason
        assert self.max_workers is not None
        if self._pick(task) is not None:
            return True
        starting = sum(1 for w in self._workers.values() if w.ident is None)
        # start as many workers as there is work waiting (in parallel: each takes
        # ~0.15 s to import), but never more than max_workers, and one at a time
        # while a start keeps failing
        want = min(self.max_workers - len(self._workers), max(1, self.demand) - starting)
        if self._start_failures:
            want = min(want, 1 - starting)
        for _ in range(max(0, want)):
            try:
                self._spawn()
            except OSError as e:  # e.g. the interpreter cannot be executed: fail tasks
                self._start_failures += 1  # clearly instead of crashing the poller
                if self._start_failures >= MAX_START_FAILURES:
                    self.broken = (f"local worker processes cannot start ({sys.executable}: "
                                   f"{e}, {self._start_failures} times)")
                    return True
                break
        return False

    def dispatch(self, task: Task, upstream_job_ids: list[str]) -> None:
        if self.broken:
            raise RuntimeError(self.broken)
        assert self._sock is not None and self.max_workers is not None
        worker = self._pick(task)
        assert worker is not None and worker.ident is not None
        worker.keys.append(task.key)
        worker.cost[task.key] = min(self.cost(task.resources), self.budget)
        self._sock.send_multipart(
            [worker.ident, b"run", task.key.encode(), task.payload,
             json.dumps(task.resources).encode(), json.dumps(task.meta, default=str).encode()]
        )

    def cancel(self, task: Task) -> None:
        """Withdraw a task queued in a worker that has not started it yet."""
        for w in self._workers.values():
            if task.key in w.keys and w.ident is not None and self._sock is not None:
                try:
                    self._sock.send_multipart([w.ident, b"cancel", task.key.encode()],
                                              zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass

    def collect(self, ready: set[Any]) -> list[Event]:
        events: list[Event] = []
        if self._sock is None or self._sock not in ready:
            return events
        while True:
            try:
                msg = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return events
            ident, kind = msg[0], msg[1]
            w = self._by_ident.get(ident)
            if kind == b"ready":
                w = self._workers.get(int(msg[2]))
                if w is not None:
                    w.ident = ident
                    self._by_ident[ident] = w
                    self._start_failures = 0
            elif kind == b"started":
                if w is not None:
                    w.started.add(msg[2].decode())
                events.append(Started(msg[2].decode()))
            elif kind in (b"done", b"cancelled"):
                key = msg[2].decode()
                if w is not None and key in w.keys:
                    w.keys.remove(key)
                    w.started.discard(key)
                    w.cost.pop(key, None)
                if kind == b"done":
                    events.append(Finished(key, msg[3].decode(), msg[4], json.loads(msg[5])))

    def check(self, tasks: dict[str, Task]) -> list[Event]:
        events: list[Event] = []
        for pid, w in list(self._workers.items()):
            rc = w.proc.poll()
            if rc is None:
                continue
            del self._workers[pid]
            if w.ident is not None:
                self._by_ident.pop(w.ident, None)
            else:
                self._start_failures += 1
                if self._start_failures >= MAX_START_FAILURES:
                    self.broken = (f"local worker processes cannot start ({sys.executable} -m "
                                   f"executorlib_cache.compute.worker {describe_exit(rc)}, "
                                   f"{self._start_failures} times); see stderr above")
            for key in w.keys:
                events.append(self._died(w, key, rc))
        return events

    def _died(self, w: _Worker, key: str, rc: int) -> Event:
        outcome = self.store.read_outcome(key)
        if outcome is not None:  # it wrote the result, then died before telling us
            return Finished(key, outcome.status, outcome.payload, outcome.meta)
        message = (f"worker process {w.proc.pid} {describe_exit(rc)} while running "
                   f"task {key}; the worker was replaced")
        # a worker runs its calls in the order it got them: the first it held may have
        # begun even if its "started" was lost with the process; never run that twice
        maybe_began = key in w.started or (not w.started and bool(w.keys)
                                           and key == w.keys[0])
        if not maybe_began:
            return Requeue(key, message)  # queued behind the task that died: never began
        return Died(key, f"worker process {w.proc.pid} {describe_exit(rc)} while running "
                         f"task {key}; the worker was replaced{died_hint(rc)}",
                    state=describe_exit(rc))

    def interrupt(self) -> None:
        """Ctrl-C: stop every worker now (SIGKILL to its process group, MPI ranks
        included): nothing of this driver keeps running on this machine."""
        self.kill()

    def kill(self) -> None:
        """SIGKILL every worker and its MPI processes (its process group)."""
        for w in self._workers.values():
            try:
                os.killpg(w.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for w in self._workers.values():
            try:
                w.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._workers.clear()
        self._by_ident.clear()

    def _send_exit(self) -> None:
        if self._sock is None:
            return
        for w in self._workers.values():
            if w.ident is not None:
                try:
                    self._sock.send_multipart([w.ident, b"exit"], zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass

    def shutdown(self, wait: bool = True) -> None:
        """Tell every worker to exit.  ``wait``: wait up to 5 s for them (they are
        idle: every call is resolved), then kill what is left; else leave them to
        finish the call they run and exit on their own."""
        self._send_exit()
        for w in self._workers.values():
            if w.ident is None and not w.keys:
                # still starting: it holds no task and would never hear "exit" (shutdown
                # used to wait 5 s for it, then kill it)
                w.proc.terminate()
        if wait:
            deadline = time.monotonic() + 5
            for w in self._workers.values():
                try:
                    w.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    w.proc.kill()
                    w.proc.wait()
        self._workers.clear()
        if self._sock is not None:
            # deliver the "exit" messages before the socket goes (busy workers read
            # them after their call)
            self._sock.close(linger=1000 if not wait else 0)
            self._sock = None
        if self._dir is not None:  # connected workers keep their connection
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _sweep_socket_dirs() -> None:
    """Remove the socket directories (``$TMPDIR/xcache-<pid>-<hex>``) that killed
    drivers left: the driver's pid is gone and no worker of it still runs (its
    ``<pid>.running`` file names a live process).  Only this user's, best effort."""
    tmp = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(tmp) if n.startswith("xcache-")]
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) != 3 or not parts[1].isdigit() or pid_alive(int(parts[1])):
            continue
        path = os.path.join(tmp, name)
        try:
            if os.stat(path).st_uid != os.getuid():
                continue
            running = [f for f in os.listdir(path) if f.endswith(".running")]
        except OSError:
            continue
        if any(f.split(".")[0].isdigit() and pid_alive(int(f.split(".")[0])) for f in running):
            continue
        shutil.rmtree(path, ignore_errors=True)
