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
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import zmq

from ..mpi import mpiexec_path
from .base import Backend, Died, Event, Finished, Task

#: a worker that dies this many times in a row before saying "ready" means the
#: environment is broken (e.g. the interpreter cannot import us): stop retrying
MAX_START_FAILURES = 3


@dataclass
class _Worker:
    proc: subprocess.Popen
    ident: bytes | None = None  # zmq routing id, known once "ready" arrives
    key: str | None = None  # task in hand
    slots: int = 0


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


class LocalBackend(Backend):
    name = "local"
    running_on_dispatch = True
    worker_writes_task = True

    def __init__(self, store: Any, max_workers: int | None = None) -> None:
        super().__init__(store, max_workers or os.cpu_count() or 1)
        self._workers: dict[int, _Worker] = {}  # by pid
        self._by_ident: dict[bytes, _Worker] = {}
        self._sock: zmq.Socket | None = None
        self._dir: str | None = None
        self._start_failures = 0
        self.broken: str | None = None

    # ------------------------------------------------------------- submit side
    def validate(self, resources: dict[str, Any]) -> None:
        if resources.get("cores", 1) > 1:
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
        self._dir = tempfile.mkdtemp(prefix="xcache-")  # 0700: no other user can connect
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
            [sys.executable, "-m", "executorlib_cache.worker", f"ipc://{self._dir}/workers",
             str(self.store.root), oct(self.store.dir_mode)[2:], oct(self.store.file_mode)[2:],
             str(os.getpid())],
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self._workers[proc.pid] = _Worker(proc)

    def _slots_used(self) -> int:
        return sum(w.slots for w in self._workers.values())

    def can_dispatch(self, task: Task) -> bool:
        if self.broken:
            return True  # dispatch() fails it with the reason
        assert self.max_workers is not None
        need = min(int(task.resources.get("cores", 1)), self.max_workers)
        if self._slots_used() + need > self.max_workers:
            return False
        if any(w.ident is not None and w.key is None for w in self._workers.values()):
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
        worker = next(w for w in self._workers.values() if w.ident is not None and w.key is None)
        assert worker.ident is not None
        worker.key = task.key
        worker.slots = min(int(task.resources.get("cores", 1)), self.max_workers)
        task.info["worker_pid"] = worker.proc.pid
        self._sock.send_multipart(
            [worker.ident, b"run", task.key.encode(), task.payload,
             json.dumps(task.resources).encode(), json.dumps(task.meta, default=str).encode()]
        )

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
            if kind == b"ready":
                w = self._workers.get(int(msg[2]))
                if w is not None:
                    w.ident = ident
                    self._by_ident[ident] = w
                    self._start_failures = 0
            elif kind == b"done":
                w = self._by_ident.get(ident)
                if w is not None:
                    w.key, w.slots = None, 0
                events.append(Finished(msg[2].decode(), msg[3].decode(), msg[4],
                                       json.loads(msg[5])))

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
                                   f"executorlib_cache.worker {describe_exit(rc)}, "
                                   f"{self._start_failures} times); see stderr above")
            if w.key is not None:
                events.append(self._died(w, rc))
        return events

    def _died(self, w: _Worker, rc: int) -> Event:
        assert w.key is not None
        outcome = self.store.read_outcome(w.key) if self.store.names(w.key) else None
        if outcome is not None:  # it wrote the result, then died before telling us
            return Finished(w.key, outcome.status, outcome.payload, outcome.meta)
        return Died(w.key, f"worker process {w.proc.pid} {describe_exit(rc)} while running "
                           f"task {w.key}; the worker was replaced", state=describe_exit(rc))

    def shutdown(self, wait: bool = True) -> None:
        if self._sock is not None:
            for w in self._workers.values():
                if w.ident is not None:
                    try:
                        self._sock.send_multipart([w.ident, b"exit"], zmq.NOBLOCK)
                    except zmq.ZMQError:
                        pass
        for w in self._workers.values():
            if w.ident is None and w.key is None:
                # still starting: it holds no task and would never hear "exit" (shutdown
                # used to wait 5 s for it, then kill it)
                w.proc.terminate()
        deadline = time.monotonic() + 5
        for w in self._workers.values():
            try:
                w.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        self._workers.clear()
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
