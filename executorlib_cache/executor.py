"""The executors users create.  ``submit()`` is where a call becomes an entry.

    submit(fn, *args, resource_dict=..., **kwargs)
      1. validate resources (unknown keys, bad values, cores>1 without mpi4py)
      2. futures in args -> DependencyRef(key)           (deps)
      3. key = name + stable content hash                (hashing)
      4. result already in the cache? -> done future     (store; no lock, no job)
      5. claim under the entry lock: write the entry, or attach to a live claim
      6. hand the task to the poller                     (poller -> backend)
"""

from __future__ import annotations

import functools
import getpass
import inspect
import os
import platform
import reprlib
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Executor, Future
from typing import Any, Literal

import cloudpickle

from . import claims, deps
from ._version import __version__
from .backends.base import Backend, Task
from .backends.local import LocalBackend
from .deps import foreign_futures, inline_done_futures, inline_futures, replace_futures
from .errors import BrokenExecutor, CorruptEntryError, UpstreamFailedError
from .fileio import HOST
from .future import BatchFuture, CacheFuture, batched
from .graph import GraphRecorder
from .hashing import task_key
from .liveness import Heartbeat
from .options import (
    DISABLED_DEPENDENCIES,
    RESOURCE_DICT_PARAMETER,
    check_interactive_options,
    executor_wide_options,
    positive_int_or_none,
    remembering_init,
    takes_resource_dict,
)
from .poller import Poller
from .progress import ProgressTracker
from .resources import merge_resources
from .serialization import dumps_call, refuse_executor_while_loading_call
from .store import Store
from .workflow import WorkflowRecorder

_live_executors: weakref.WeakSet[BaseExecutor] = weakref.WeakSet()
_exiting = False


def _python_exit() -> None:
    """Like concurrent.futures: at interpreter exit, finish what was submitted.

    A Ctrl-C while it waits is handled by ``shutdown()`` (one line on stderr, what
    runs goes on, the rest is cancelled) and ends the waiting here, without a
    traceback from the exit hook."""
    global _exiting
    _exiting = True
    # the script ended with a Ctrl-C it did not catch: stop, do not wait for more
    interrupted = isinstance(getattr(sys, "last_value", None), KeyboardInterrupt)
    for exe in list(_live_executors):
        try:
            if interrupted:
                exe.__exit__(KeyboardInterrupt, None, None)
            else:
                exe.shutdown(wait=True)
        except KeyboardInterrupt:
            continue


threading._register_atexit(_python_exit)  # type: ignore[attr-defined]

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6


def default_cache_directory() -> str:
    """``$XCACHE_DIR``, else ``.xcache`` (relative to the working directory)."""
    return os.environ.get("XCACHE_DIR") or ".xcache"


class BaseExecutor(Executor):
    """A ``concurrent.futures.Executor`` whose every call is a cache entry.

    The constructor takes executorlib 1.11's parameters, in executorlib's order and
    all positional-or-keyword (``SingleNodeExecutor(4)`` is ``max_workers=4``); this
    package's own options (``secret``, ``dir_mode``, ``file_mode``, ``progress``) are
    keyword-only after them.  ``docs/migration.md`` lists what each option does here.
    """

    _init_call: tuple[tuple[Any, ...], dict[str, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every executor remembers the arguments it was made with (the outermost
        ``__init__`` of its class): a per-call ``cache_directory`` gets an executor of
        the same kind and options on that directory (:meth:`_executor_for`)."""
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        cls.__init__ = remembering_init(cls.__init__)  # type: ignore[method-assign]

    def __init__(
        self,
        max_workers: int | None = None,
        cache_directory: str | os.PathLike[str] | None = None,
        max_cores: int | None = None,
        resource_dict: dict[str, Any] | None = None,
        hostname_localhost: bool | None = None,
        block_allocation: bool = False,
        init_function: Callable[..., Any] | None = None,
        disable_dependencies: bool = False,
        refresh_rate: float = 0.01,
        plot_dependency_graph: bool = False,
        plot_dependency_graph_filename: str | os.PathLike[str] | None = None,
        export_workflow_filename: str | os.PathLike[str] | None = None,
        log_obj_size: bool = False,
        wait: bool = True,
        restart_limit: int = 0,
        openmpi_oversubscribe: bool = False,
        *,
        secret: str | bytes | None = None,
        dir_mode: int | None = None,
        file_mode: int | None = None,
        progress: bool = False,
        recompute: bool = False,
    ) -> None:
        """``max_workers``: worker processes (default: the CPU count, or ``max_cores``).
        ``cache_directory``: where entries live (default ``$XCACHE_DIR``, else ``.xcache``).
        ``max_cores``: a budget of cores over the calls running at once (a call uses
        ``cores * threads_per_core``); a call that needs more than ``max_cores`` (or,
        without it, than an explicit ``max_workers``) raises ``ValueError`` at submit.
        ``resource_dict``: defaults for every call (``resources.RESOURCE_KEYS``).
        ``hostname_localhost``, ``refresh_rate``, ``log_obj_size``: accepted, no effect.
        ``block_allocation=True``, ``init_function``, ``restart_limit != 0``: raise
        :class:`~executorlib_cache.errors.UnsupportedOptionError` saying what to use.
        ``disable_dependencies``: a future argument that is not done fails the call's
        future with ``ValueError`` (nothing runs); a done one is replaced by its value.
        ``plot_dependency_graph``: at shutdown, draw what was submitted (the calls
        still run) into ``plot_dependency_graph_filename`` (.svg/.png/.pdf need Graphviz,
        .dot does not; None: inline in Jupyter, else DOT text on stdout).
        ``export_workflow_filename``: at shutdown, write the submitted graph as Python
        Workflow Definition JSON (``workflow.py``).
        ``wait=False``: every shutdown, also leaving ``with``, is ``shutdown(wait=False)``.
        ``openmpi_oversubscribe``: default of ``resource_dict["openmpi_oversubscribe"]``.
        ``progress``: a live bar of done/cached/failed/running calls (terminal only).
        ``recompute``: run every call again once, even if its result is cached (for
        impure calls; per call: ``resource_dict={"recompute": True}``).
        ``secret``: sign every entry (default: env ``XCACHE_SECRET``/``XCACHE_SECRET_FILE``).
        ``dir_mode``/``file_mode``: permissions of the cache's directories and files
        (default 0o700/0o600, or env ``XCACHE_DIR_MODE``/``XCACHE_FILE_MODE``; the umask
        still applies), e.g. ``dir_mode=0o750, file_mode=0o640`` to let a group read.

        Raises ``ValueError`` for a bad value or ``resource_dict``,
        ``UnsupportedOptionError`` (see above), and what the backend raises for
        resources it cannot honour (``UnsupportedResourceError``).
        """
        del hostname_localhost, refresh_rate, log_obj_size  # documented no-ops
        refuse_executor_while_loading_call()
        positive_int_or_none("max_workers", max_workers)
        positive_int_or_none("max_cores", max_cores)
        check_interactive_options(block_allocation, init_function, restart_limit)
        if isinstance(resource_dict, dict) and "cache_key" in resource_dict:
            raise ValueError("cache_key is per call: pass it in submit(..., resource_dict=...)")
        cache_directory, resource_dict, recompute = executor_wide_options(
            cache_directory, resource_dict, recompute)
        if openmpi_oversubscribe:
            resource_dict = {"openmpi_oversubscribe": True, **(resource_dict or {})}
        self._resources = merge_resources(None, resource_dict)
        # nothing is created on disk before every check passed (a refused path or
        # configuration leaves no empty cache directory behind)
        self._store = Store(cache_directory or default_cache_directory(), secret=secret,
                            dir_mode=_mode("dir_mode", dir_mode, 0o700),
                            file_mode=_mode("file_mode", file_mode, 0o600), create=None)
        self._backend = self._make_backend(max_workers, max_cores)
        self._backend.validate(self._resources)
        self._store.prepare()
        # no thread, socket or file until the first submit(): an executor that is
        # created and dropped (a re-run notebook cell) holds nothing to clean up
        self._poller = Poller(self._store, self._backend)
        self._heartbeat = Heartbeat(self._store.root, self._store.file_mode)
        self._shutdown_lock = threading.Lock()
        self._hits: list[str] = []  # keys read from the cache, logged at shutdown (LRU)
        self._recompute = bool(recompute)
        self._max_workers = max_workers
        self._recomputed: set[str] = set()  # once per key and executor
        self._others: dict[str, BaseExecutor] = {}  # per-call cache_directory
        self._closed = False
        self._observers_closed = False
        self._wait = bool(wait)
        self._disable_dependencies = bool(disable_dependencies)
        self._progress = ProgressTracker(type(self).__name__) if progress else None
        self._graph_file = plot_dependency_graph_filename
        draw = plot_dependency_graph or plot_dependency_graph_filename is not None
        self._graph = GraphRecorder() if draw else None
        self._workflow_file = export_workflow_filename
        self._workflow = WorkflowRecorder() if export_workflow_filename is not None else None
        _live_executors.add(self)

    def _make_backend(self, max_workers: int | None, max_cores: int | None) -> Backend:
        return LocalBackend(self._store, max_workers, max_cores)

    @property
    def cache_directory(self) -> str:
        """Absolute path of the cache directory (a str)."""
        return str(self._store.root)

    # ------------------------------------------------------------------ submit
    def submit(  # type: ignore[override]
        self, fn: Callable[..., Any], /, *args: Any,
        resource_dict: dict[str, Any] | None = None, **kwargs: Any,
    ) -> CacheFuture:
        """Schedule ``fn(*args, **kwargs)``; a :class:`CacheFuture` for its result.

        Futures of this package anywhere in ``args``/``kwargs`` (also inside lists,
        tuples and dicts) are dependencies: the call runs once they are done, with their
        values.  A call whose result is in the cache returns a future that is already
        done (no job, no lock).  ``resource_dict`` overrides the executor's per call
        (see ``resources.RESOURCE_KEYS``; ``cache_key`` names the entry instead of the
        content hash).

        Raises ``RuntimeError`` after ``shutdown()``, ``TypeError`` when ``fn`` is not
        callable, ``ValueError``/``TypeError`` for a bad ``resource_dict`` (naming the key
        and what is valid), :class:`SerializationError` for an argument that cannot be
        pickled, ``ImportError`` for MPI without mpi4py, and
        :class:`ClaimTimeoutError` when another live process holds the entry's lock.
        """
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}: {fn!r:.80}")
        if takes_resource_dict(fn):
            raise ValueError(RESOURCE_DICT_PARAMETER)
        resources = merge_resources(self._resources, resource_dict)
        directory = resources.pop("cache_directory", None)
        if directory is not None and directory != str(self._store.root):
            other = self._executor_for(directory)
            return other.submit(fn, *args, resource_dict={
                **(resource_dict or {}), "cache_directory": directory}, **kwargs)
        recompute = resources.pop("recompute", False) or self._recompute
        self._backend.validate(resources)
        foreign = foreign_futures((args, kwargs), self._is_foreign)
        if foreign:  # futures of an executor on another cache: their values, once done
            pending = [f for f in foreign if not f.done()]
            if pending:
                return self._after(pending, fn, args, kwargs, resource_dict)
            try:
                args, kwargs = inline_futures((args, kwargs), foreign)
            except BaseException as e:
                failed = CacheFuture("", str(self._store.root))  # never an entry here
                failed.set_exception(UpstreamFailedError.because(deps.failed_key(foreign), e))
                return failed
        passed = (args, kwargs)  # as given, futures included (the exported workflow)
        if self._disable_dependencies:
            try:
                args = inline_done_futures(args, DISABLED_DEPENDENCIES)
                kwargs = inline_done_futures(kwargs, DISABLED_DEPENDENCIES)
            except BaseException as e:  # as executorlib: set on the future, not raised
                rejected = CacheFuture("", str(self._store.root))
                rejected.set_exception(e)
                return rejected
        upstreams: dict[str, Any] = {}
        args = replace_futures(args, upstreams)
        kwargs = replace_futures(kwargs, upstreams)
        key = resources.pop("cache_key", None) or _key_of(fn, args, kwargs)
        future = CacheFuture(key)
        future.cache_root = str(self._store.root)
        self._observe(future, fn, upstreams)
        if self._workflow is not None:
            self._workflow.add(future, fn, *passed)
        recompute = recompute and key not in self._recomputed
        if not recompute and self._resolve_from_cache(future):
            return future
        payload = dumps_call(fn, args, kwargs)
        meta = self._task_meta(key, fn, args, kwargs, resources, list(upstreams), len(payload))
        try:
            mode = claims.claim(self._store, key, self._backend, payload, meta,
                                recompute=recompute)
            self._recomputed.update([key] if recompute else [])
            if mode == "hit" and self._resolve_from_cache(future):
                return future
            future._on_cancel = self._poller.cancel
            if not self._poller.started:
                self._heartbeat.start()
            self._poller.put(Task(key, [future], payload, resources, upstreams,
                                  attached=(mode == "attached"), meta=meta))
        except BaseException:
            # a Ctrl-C (or any error) between the claim and the hand-over: give the
            # claim back, or this live process would own an entry nobody runs
            if not future.done():
                claims.release_if_mine(self._store, key)
            raise
        return future

    def map(self, fn: Callable[..., Any], *iterables: Any,  # type: ignore[override]
            timeout: float | None = None, chunksize: int = 1) -> Iterator[Any]:
        """``concurrent.futures.Executor.map``; an iterable that is a future is
        resolved first (a blocking ``result()``, as executorlib does), so
        ``exe.map(f, exe.submit(range, 3))`` maps over its result.  ``chunksize`` is
        ignored."""
        resolved = [it.result() if isinstance(it, Future) else it for it in iterables]
        return super().map(fn, *resolved, timeout=timeout)

    def batched(self, iterable: list[Future], n: int) -> list[BatchFuture]:
        """Group futures into batches of ``n``: ``ceil(len(iterable)/n)`` futures, each
        resolving to the list of its members' results.  Batch ``i`` holds
        ``iterable[i*n:(i+1)*n]`` in input order (executorlib's interactive executors
        fill batches in order of completion; here a batch is an argument of later
        calls, and its cache key must not depend on which call finished first).  A
        batch passed to :meth:`submit` is the list of its members' references: no
        extra cache entry, no waiting.  Raises ``ValueError`` for a bad ``n``,
        ``TypeError`` for an element that is not a future."""
        return batched(iterable, n)

    def _resolve_from_cache(self, future: CacheFuture) -> bool:
        """Cache hit: resolve before anyone sees the future.  Failures are not hits."""
        key = future.key
        try:
            outcome = self._store.read_hit(key)  # one open: the whole file, parsed in memory
        except CorruptEntryError as e:  # unreadable: moved aside and computed again
            with self._store.claim(key):
                try:
                    self._store.read_hit(key)
                except CorruptEntryError:
                    self._store.quarantine(key, str(e))
            return False
        if outcome is None:
            return False
        self._hits.append(key)  # "recently used", for `xcache prune` (one write at shutdown)
        if len(self._hits) >= 10_000:
            self._store.record_use(self._hits)
            self._hits = []
        return future.set_outcome(outcome.status, outcome.payload, outcome.meta, cached=True)

    def __len__(self) -> int:
        """Calls submitted and not resolved yet (executorlib: not yet taken from its
        queue)."""
        return len(self._poller.unresolved_futures()) if self._poller.started else 0

    def __bool__(self) -> bool:
        """Always true (as executorlib's: ``if exe:`` does not depend on ``len``)."""
        return True

    @property
    def max_workers(self) -> int | None:
        """The ``max_workers`` it was made with; setting it raises executorlib's
        ``NotImplementedError``."""
        return self._max_workers

    @max_workers.setter
    def max_workers(self, value: int | None) -> None:
        """Not supported, as in executorlib (raises ``NotImplementedError``)."""
        raise NotImplementedError("The max_workers setter is not implemented.")

    @property
    def info(self) -> dict[str, Any] | None:
        """The executor's configuration (cache directory, backend, defaults); None
        after shutdown, as executorlib's."""
        if self._closed:
            return None
        return {"cache_directory": str(self._store.root), "backend": self._backend.name,
                "max_workers": self._max_workers, "resource_dict": dict(self._resources),
                "disable_dependencies": self._disable_dependencies, "wait": self._wait,
                "recompute": self._recompute}

    def _is_foreign(self, f: Any) -> bool:  # passed as its value: not an entry here
        root = getattr(f, "cache_root", None)
        return root is not None and (root != str(self._store.root) or f.key == "")

    def _executor_for(self, directory: str) -> BaseExecutor:
        """An executor like this one on ``directory`` (``resource_dict["cache_directory"]``),
        made on first use with this one's options and shut down with it."""
        other = self._others.get(directory)
        if other is None:
            bound = inspect.signature(type(self).__init__).bind(
                self, *self._init_call[0], **self._init_call[1])
            options = {k: v for k, v in bound.arguments.items() if k != "self"}
            if isinstance(options.get("resource_dict"), dict):  # its own directory wins
                options["resource_dict"] = {k: v for k, v in options["resource_dict"].items()
                                            if k != "cache_directory"}
            options.update(cache_directory=directory, plot_dependency_graph=False,
                           plot_dependency_graph_filename=None, export_workflow_filename=None,
                           progress=False)
            other = self._others[directory] = type(self)(**options)
        return other

    def _after(self, pending: list[Future], fn: Callable[..., Any], args: tuple,
               kwargs: dict, resource_dict: dict[str, Any] | None) -> CacheFuture:
        """Submit once ``pending`` (futures of another cache) are done: a future that
        follows the call submitted then (its ``key`` is set at that moment)."""
        proxy = CacheFuture("", str(self._store.root))
        left = [len(pending)]
        lock = threading.Lock()

        def ready(_: Future) -> None:
            with lock:
                left[0] -= 1
                if left[0]:
                    return
            try:
                real = self.submit(fn, *args, resource_dict=resource_dict, **kwargs)
            except BaseException as e:
                if proxy.set_running_or_notify_cancel():
                    proxy.set_exception(e)
                return
            proxy.key = real.key

            def done(r: Future) -> None:
                if not proxy.set_running_or_notify_cancel():
                    return
                if r.cancelled():
                    proxy.set_exception(CancelledError())
                elif r.exception() is not None:
                    proxy.set_exception(r.exception())
                else:
                    proxy.set_result(r.result())

            real.add_done_callback(done)

        for f in pending:
            f.add_done_callback(ready)
        return proxy

    def _observe(self, future: CacheFuture, fn: Any, deps: dict[str, Any]) -> None:
        if self._progress is not None:
            self._progress.add(future)
        if self._graph is not None:
            self._graph.add(future, fn, deps)

    def _task_meta(self, key: str, fn: Any, args: tuple, kwargs: dict,
                   resources: dict[str, Any], deps: list[str], size: int) -> dict[str, Any]:
        return {
            "key": key,
            "function": getattr(fn, "__name__", type(fn).__name__),
            "module": getattr(fn, "__module__", None),
            "qualname": getattr(fn, "__qualname__", None),
            "submitted": time.time(),
            "host": HOST,
            "user": _user(),
            "pid": os.getpid(),
            "python": platform.python_version(),
            "version": __version__,
            "cloudpickle": cloudpickle.__version__,
            "resource_dict": resources,
            "dependencies": deps,
            "args": _repr.repr(args)[:300],
            "kwargs": _repr.repr(kwargs)[:300],
            "payload_size": size,
            "argv": list(sys.argv),  # the call sees the driver's sys.argv (not part of the key)
        }

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting calls and release the resources when the calls are done.

        ``wait=True`` blocks until every submitted call is resolved (unless the
        executor was created with ``wait=False``); ``wait=False`` returns at once
        (local workers finish what they hold; cluster jobs stay queued).
        ``cancel_futures=True`` cancels every call that has not started.  Safe to call
        again (the interpreter's exit hook does).  Raises :class:`BrokenExecutor` when
        the management thread crashed.
        """
        wait = wait and self._wait  # wait=False in the constructor: never wait
        for other in list(getattr(self, "_others", {}).values()):
            other.shutdown(wait, cancel_futures=cancel_futures)
        with self._shutdown_lock:
            first = not self._closed
            self._closed = True
        if self._poller.started:
            if cancel_futures:
                for f in self._poller.unresolved_futures():
                    f.cancel()
            if first:
                self._poller.stop(detach=not wait)
            if wait or self._backend.detach_on_shutdown:
                # (cluster: wait=False still waits until every call is in the queue)
                try:
                    self._poller.wait()
                except KeyboardInterrupt:
                    self._interrupted()
                    raise
                self._heartbeat.stop()
        if first:
            self._close_observers()
        _live_executors.discard(self)  # first: the exit hook must not raise it again
        if wait and self._poller.error is not None:
            raise BrokenExecutor("executorlib_cache poller failed") from self._poller.error

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        """``with`` ends with ``shutdown(wait=True)``, as in ``concurrent.futures``
        (``wait=False`` in the constructor makes it ``shutdown(wait=False)``);
        ended by a Ctrl-C (KeyboardInterrupt), it stops at once instead (see
        :meth:`shutdown`) and the interrupt goes on to the caller."""
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            with self._shutdown_lock:
                self._closed = True
            if self._poller.started and not self._poller.done.is_set():
                self._interrupted()
            self._close_observers()
            _live_executors.discard(self)
            return False
        self.shutdown(wait=True)
        return False

    def _interrupted(self) -> None:
        """Ctrl-C while waiting: stop now and say, in one line, what was left.

        Calls that had not started are cancelled and local calls are stopped (their
        workers are killed: nothing keeps running on this machine); SLURM/flux jobs
        and pool workers go on and write their results into the cache.  Every future
        is resolved (cancelled, CancelledError, or DetachedError saying where the
        call goes on).  Settling takes milliseconds; another Ctrl-C meanwhile only
        stops the waiting for it.
        """
        self._poller.interrupt()
        try:
            self._poller.wait(timeout=INTERRUPT_SETTLE)
        except KeyboardInterrupt:
            pass
        self._heartbeat.stop()
        if self._poller.interrupted is not None:
            sys.stderr.write(self._poller.interrupted.line() + "\n")
            sys.stderr.flush()

    def _close_observers(self) -> None:
        """Final progress counts; the graph of what was submitted (a failure to draw
        is a warning: every result is in the cache already).  Runs once."""
        if self._observers_closed:
            return
        self._observers_closed = True
        hits, self._hits = self._hits, []
        self._store.record_use(hits)
        if self._progress is not None:
            self._progress.close()
        if self._graph is not None:
            try:
                self._graph.draw(self._graph_file)
            except Exception as e:
                warnings.warn(f"executorlib_cache: dependency graph not drawn: {e}",
                              stacklevel=3)
        if self._workflow is not None and self._workflow_file is not None:
            try:
                self._workflow.write(self._workflow_file)
            except Exception as e:
                warnings.warn(f"executorlib_cache: workflow not exported: {e}", stacklevel=3)


#: seconds a Ctrl-C waits for the poller to settle what is left (it takes milliseconds)
INTERRUPT_SETTLE = 5.0


def _mode(name: str, mode: int | None, owner: int) -> int | None:
    """Check a permission option: 9 bits, and the owner keeps what the cache needs."""
    if mode is None:
        return None
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777 \
            or mode & owner != owner:
        raise ValueError(f"{name} must be an int in 0o000..0o777 granting the owner at least "
                         f"{owner:#o}, got {mode!r}")
    return mode


def _key_of(fn: Callable[..., Any], args: tuple, kwargs: dict) -> str:
    try:
        return task_key(fn, args, kwargs)
    except Exception:
        dumps_call(fn, args, kwargs)  # an unpicklable argument: raise the error naming it
        raise


@functools.lru_cache(maxsize=1)
def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


BaseExecutor.__init__ = remembering_init(BaseExecutor.__init__)  # type: ignore[method-assign]


class SingleNodeExecutor(BaseExecutor):
    """Run calls on this machine in persistent worker processes (MPI via mpiexec);
    every call is a cache entry.  The constructor is :class:`BaseExecutor`'s:
    executorlib's ``SingleNodeExecutor`` parameters in executorlib's order."""
