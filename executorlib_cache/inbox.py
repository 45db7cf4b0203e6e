"""The poller's mailbox: messages from any thread, and a pipe that wakes the loop.

The poller thread waits in ``zmq.Poller.poll`` on the local backend's socket and on
the read end of an ``os.pipe``: any thread that posts a message writes one byte
to the pipe (once per idle period), so no zmq socket is ever shared between
threads, and nothing zmq exists before the loop starts (an executor created and
never used holds no socket and no context: garbage collection cannot hang in
zmq's context teardown).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any


class Inbox:
    """A FIFO of ``(kind, item)`` messages, safe from any thread."""

    def __init__(self) -> None:
        self._items: deque[tuple[str, Any]] = deque()
        self._lock = threading.Lock()
        self._read_fd: int | None = None
        self._write_fd: int | None = None
        self._wake_pending = False

    def open(self) -> int:
        """Create the wake-up pipe (before the loop starts); its read end, to poll."""
        with self._lock:
            if self._read_fd is None:
                self._read_fd, self._write_fd = os.pipe()
                os.set_blocking(self._read_fd, False)
                os.set_blocking(self._write_fd, False)
                if self._items:
                    self._wake()
            return self._read_fd

    def close(self) -> None:
        """Close the pipe (the loop ended); later posts only queue."""
        with self._lock:
            for fd in (self._read_fd, self._write_fd):
                if fd is not None:
                    os.close(fd)
            self._read_fd = self._write_fd = None

    def put(self, kind: str, item: Any = None, front: bool = False) -> None:
        """Queue a message (``front``: before every other) and wake the loop."""
        with self._lock:
            if front:
                self._items.appendleft((kind, item))
            else:
                self._items.append((kind, item))
            if not self._wake_pending:
                self._wake()

    def _wake(self) -> None:  # under the lock
        if self._write_fd is None:
            return
        self._wake_pending = True
        try:
            os.write(self._write_fd, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def drain_wake(self) -> None:
        """Empty the pipe (the loop woke up)."""
        with self._lock:
            self._wake_pending = False
            if self._read_fd is None:
                return
            try:
                while os.read(self._read_fd, 4096):
                    pass
            except BlockingIOError:
                pass

    def take(self) -> list[tuple[str, Any]]:
        """Every queued message, oldest first, removing them."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def snapshot(self) -> list[tuple[str, Any]]:
        """The queued messages, without removing them."""
        with self._lock:
            return list(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)


__all__ = ["Inbox"]
