"""A persistent local worker process (one interpreter for many tasks).

    driver (ROUTER, ipc:// in a 0700 dir)  <-- "ready" ---  worker (DEALER)
                                           --- "run" ---->  run_entry() -> <key>.h5
                                           <-- "done" ----  (status, payload, meta)

The worker writes the outcome into the cache itself, so a result survives the
driver: if the driver dies mid-task the worker finishes the task, writes it,
and exits (a new driver then finds the result instead of running it again).
Tasks with ``cores > 1`` are run by ``mpiexec -n cores ... runner --mpi``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections import deque
from typing import Any

import zmq

from ..errors import TaskDiedError
from ..mpi import mpiexec_path
from ..resources import Resources
from ..serialization import dumps_exception
from ..store import Store
from .runner import run_entry

#: environment that lets Open MPI's mpiexec start more ranks than there are cores
#: (Open MPI 4: the MCA variable; Open MPI 5: PRRTE's mapping policy); MPICH ignores
#: both (it always allows it)
OVERSUBSCRIBE_ENV = {"OMPI_MCA_rmaps_base_oversubscribe": "1",
                     "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe"}


def run_mpi_task(store: Store, key: str, cores: int, oversubscribe: bool = False
                 ) -> tuple[str, bytes, dict[str, Any]]:
    """Run an entry under ``mpiexec -n cores`` and return its outcome
    ``(status, payload, meta)``; a run that wrote nothing is recorded as a
    :class:`TaskDiedError` with the tail of mpiexec's stderr.  ``oversubscribe``
    (``resource_dict["openmpi_oversubscribe"]``) adds :data:`OVERSUBSCRIBE_ENV`.
    """
    mpiexec = mpiexec_path()
    cmd = [str(mpiexec), "-n", str(cores), sys.executable, "-m", "executorlib_cache.compute.runner",
           "--mpi", str(store.root), key]
    env = {**os.environ, **OVERSUBSCRIBE_ENV} if oversubscribe else None
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
                          env=env)
    sys.stderr.buffer.write(proc.stderr)
    outcome = store.read_outcome(key)
    if outcome is not None:
        return outcome.status, outcome.payload, outcome.meta
    tail = proc.stderr.decode(errors="replace")[-2000:]
    hint = (" (a rank was killed by SIGKILL, which usually means the kernel's "
            "out-of-memory killer: check `dmesg` or the call's memory use)"
            if proc.returncode in (-9, 137) or "signal 9" in tail or "Killed" in tail else "")
    exc = TaskDiedError(
        f"MPI run of {key} ({' '.join(cmd[:3])}) exited with code {proc.returncode} "
        f"without writing a result{hint}; stderr tail:\n{tail}"
    )
    payload, meta = dumps_exception(exc)
    meta["reason"] = "died"
    store.write_outcome(key, "failed", payload, meta)
    return "failed", payload, meta


def _reply(sock: zmq.Socket, key: str, status: str, out: bytes, meta: dict[str, Any]) -> None:
    try:
        sock.send_multipart(
            [b"done", key.encode(), status.encode(), out, json.dumps(meta, default=str).encode()],
            flags=zmq.NOBLOCK,
        )
    except zmq.Again:
        pass  # the driver is gone; the outcome is in the cache anyway


def serve(address: str, cache_directory: str, dir_mode: int, file_mode: int,
          parent: int) -> None:
    """Serve tasks until told to exit or the driver ``parent`` is gone.

    ``parent`` comes from the command line: reading ``os.getppid()`` at start-up
    would miss a driver that died while this interpreter was still importing.

    The driver may queue a second task here while the first runs (so a worker never
    waits for a round trip); "started" tells it which one really began, and a
    "cancel" that arrives before a queued task starts withdraws it.  A call handed
    to this worker counts as started: after "exit", or once the driver is gone, the
    worker still runs the calls it holds, then exits.
    """
    store = Store(cache_directory, create=False, dir_mode=dir_mode, file_mode=file_mode)
    running = RunningFile(address)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 2000)
    sock.connect(address)
    sock.send_multipart([b"ready", str(os.getpid()).encode()])
    queue: deque[list[bytes]] = deque()
    exiting = False  # told to exit, or the driver is gone: run what we hold, then go
    try:
        while True:
            if not queue:
                if exiting:
                    return
                if not sock.poll(1000):
                    if os.getppid() != parent:  # the driver is gone and we are idle
                        return
                    continue
            if not exiting and not _take_messages(sock, queue):
                exiting = True  # b"exit": the calls handed to us still run
            if not queue:
                continue
            msg = queue.popleft()
            if os.getppid() != parent and not _still_ours(store, msg[1].decode(), parent):
                continue  # the driver died; its claim was removed or taken over since
            _send(sock, [b"started", msg[1]])
            running.set(msg[1])
            _run_one(store, sock, msg)
            running.set(b"")
            if os.getppid() != parent:  # nobody to serve any more: finish what we hold
                exiting = True
    finally:
        running.close()
        sock.close(linger=500)
        ctx.term()


def _still_ours(store: Store, key: str, driver: int) -> bool:
    """A call handed to this worker before its driver died: run it only while the
    entry's claim still names that driver (``xcache rm`` removed it, or a new driver
    took the entry over: running it too would run it twice)."""
    claim = store.read_claim(key)
    owner = claim.get("owner") if claim else None
    return isinstance(owner, dict) and owner.get("pid") == driver \
        and owner.get("host") == socket.gethostname()


class RunningFile:
    """``<workers dir>/<pid>.running``: the key this worker runs now (empty: none).

    The workers directory is the driver's private socket directory on this host
    (named in every local claim as ``workers``): ``xcache rm --force`` and
    ``terminate_task_in_cache`` read it to stop the worker running a call
    (``liveness.local_runner``).  One ``pwrite`` per call on a local temp
    directory, nothing on the cache's file system."""

    def __init__(self, address: str) -> None:
        path = address.removeprefix("ipc://").rsplit("/", 1)[0]
        try:
            self.fd: int | None = os.open(f"{path}/{os.getpid()}.running",
                                          os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError:
            self.fd = None

    def set(self, key: bytes) -> None:
        """Say which key runs now (``b""``: none)."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, key + (b"\n" if key else b""), 0)
        except OSError:
            pass

    def close(self) -> None:
        """Close the file (it goes with the workers directory)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _take_messages(sock: zmq.Socket, queue: deque[list[bytes]]) -> bool:
    """Move every waiting message into ``queue``; apply cancels; False on "exit"."""
    while True:
        try:
            msg = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return True
        if msg[0] == b"run":
            queue.append(msg)
        elif msg[0] == b"cancel":
            for queued in list(queue):
                if queued[1] == msg[1]:
                    queue.remove(queued)
                    _send(sock, [b"cancelled", msg[1]])
        else:
            return False


def _run_one(store: Store, sock: zmq.Socket, msg: list[bytes]) -> None:
    key, payload = msg[1].decode(), msg[2]
    task_meta = json.loads(msg[4])
    resources = Resources.stored(json.loads(msg[3]))
    cores = resources.cores
    if cores > 1:
        try:  # the ranks read the call from the task file
            store.write_task(key, payload, task_meta)
        except Exception as exc:  # disk full, permission denied: fail the task, clearly
            out, meta = dumps_exception(exc)
            meta.update(reason="raised", host=socket.gethostname(), pid=os.getpid())
            _unrecorded(store, key)
            _reply(sock, key, "failed", out, meta)
            return
    try:
        if cores > 1:
            status, out, meta = run_mpi_task(store, key, cores,
                                             bool(resources.get("openmpi_oversubscribe")))
        else:
            status, out, meta = run_entry(store, key, payload, task_meta)
    except Exception as exc:  # not even the error could be written (disk full,
        status = "failed"  # read-only): tell the driver why instead of dying
        out, meta = dumps_exception(exc)
        meta.update(reason="raised", host=socket.gethostname(), pid=os.getpid())
        _unrecorded(store, key)
    _reply(sock, key, status, out, meta)


def _unrecorded(store: Store, key: str) -> None:
    """Nothing could be recorded (disk full, read-only): give the claim back (an
    unlink frees space, it needs none), so the entry is absent and a later run
    runs the call again instead of waiting on a claim nobody serves."""
    try:
        store.release_claim(key)
        store.sweep_temps(key)
    except OSError:
        pass


def _send(sock: zmq.Socket, parts: list[bytes]) -> None:
    try:
        sock.send_multipart(parts, flags=zmq.NOBLOCK)
    except zmq.Again:
        pass  # the driver is gone; the cache has the truth


def main() -> None:
    """``python -m executorlib_cache.compute.worker ADDR CACHE DIRMODE FILEMODE DRIVER_PID``.

    SIGINT is ignored: the driver decides what a Ctrl-C means for its workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    address, cache_directory, dir_mode, file_mode, parent = sys.argv[1:6]
    serve(address, cache_directory, int(dir_mode, 8), int(file_mode, 8), int(parent))


if __name__ == "__main__":
    main()
