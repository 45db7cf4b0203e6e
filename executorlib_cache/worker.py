"""A persistent local worker process (one interpreter for many tasks).

    driver (ROUTER, ipc:// in a 0700 dir)  <-- "ready" ---  worker (DEALER)
                                           --- "run" ---->  run_entry() -> result.h5
                                           <-- "done" ----  (status, payload, meta)

The worker writes the outcome into the cache itself, so a result survives the
driver: if the driver dies mid-task the worker finishes the task, writes it,
and exits (a new driver then finds the result instead of running it again).
Tasks with ``cores > 1`` are run by ``mpiexec -n cores ... runner --mpi``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

import zmq

from .errors import TaskDiedError
from .mpi import mpiexec_path
from .runner import run_entry
from .serialization import dumps_exception
from .store import Store


def run_mpi_task(store: Store, key: str, cores: int) -> tuple[str, bytes, dict[str, Any]]:
    mpiexec = mpiexec_path()
    cmd = [str(mpiexec), "-n", str(cores), sys.executable, "-m", "executorlib_cache.runner",
           "--mpi", str(store.root), key]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    sys.stderr.buffer.write(proc.stderr)
    outcome = store.read_outcome(key)
    if outcome is not None:
        return outcome.status, outcome.payload, outcome.meta
    tail = proc.stderr.decode(errors="replace")[-2000:]
    exc = TaskDiedError(
        f"MPI run of {key} ({' '.join(cmd[:3])}) exited with code {proc.returncode} "
        f"without writing a result; stderr tail:\n{tail}"
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
    """
    store = Store(cache_directory, create=False, dir_mode=dir_mode, file_mode=file_mode)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 2000)
    sock.connect(address)
    sock.send_multipart([b"ready", str(os.getpid()).encode()])
    try:
        while True:
            if not sock.poll(1000):
                if os.getppid() != parent:  # the driver is gone and we are idle
                    return
                continue
            msg = sock.recv_multipart()
            if msg[0] != b"run":
                return  # b"exit"
            key, payload = msg[1].decode(), msg[2]
            resources = json.loads(msg[3])
            cores = int(resources.get("cores", 1))
            try:
                # always: a task.h5 left by an earlier attempt may be damaged or tampered
                # with, and this claim's payload is what runs
                store.write_task(key, payload, json.loads(msg[4]))
            except Exception as exc:  # disk full, permission denied: fail the task, clearly
                out, meta = dumps_exception(exc)
                meta.update(reason="raised", host=socket.gethostname(), pid=os.getpid())
                _reply(sock, key, "failed", out, meta)
                continue
            try:
                if cores > 1:
                    status, out, meta = run_mpi_task(store, key, cores)
                else:
                    status, out, meta = run_entry(store, key, payload, resources)
            except Exception as exc:  # not even the error could be written (disk full,
                status = "failed"  # read-only): tell the driver why instead of dying
                out, meta = dumps_exception(exc)
                meta.update(reason="raised", host=socket.gethostname(), pid=os.getpid())
            _reply(sock, key, status, out, meta)
            if os.getppid() != parent:  # finished the task in hand; nobody to serve now
                return
    finally:
        sock.close(linger=500)
        ctx.term()


def main() -> None:
    address, cache_directory, dir_mode, file_mode, parent = sys.argv[1:6]
    serve(address, cache_directory, int(dir_mode, 8), int(file_mode, 8), int(parent))


if __name__ == "__main__":
    main()
