"""Work the event loop hands to threads of its own, from a bounded queue (SPEC §10 U5).

The event loop answers every client; anything that could hold it for long
(the signature checks of submissions, searches) runs in an :class:`Offload`:
a few daemon threads taking jobs in order from a queue. The queue is
bounded: a job that would take it over its bound is refused at once with
:class:`BusyError` (the API answers 503 with Retry-After, as for a full
pool), never queued without limit. A job's outcome comes back to the event
loop as the result (or exception) of an asyncio future.

Jobs whose caller went away (its future cancelled: aiohttp cancels the
handler of a client that disconnected) are skipped when their turn comes;
a running job can ask :func:`job_cancelled` between its steps and give up.

Why threads help while the interpreter lock is shared: cryptography lets
go of the lock during a signature check, and SQLite during each step, so the
event loop runs meanwhile. Where a job runs Python code (JSON parsing, a
search's merge), the loop gets the lock back within the interpreter's switch
interval (5 ms). Measured with scripts/bench_hostile.py, a shorter interval
(1 or 0.5 ms) and a lower OS priority for these threads (nice 10) made no
difference beyond the run-to-run spread to the unrelated reads, and nice 10
made the write benchmark's p99 latency worse (76-95 ms against 55-67): both
are left as they are. What bounds the loop's waits is the work itself: each
job is bounded, and a pool may be given a ``share`` (searches: half) of its
thread's time while jobs are waiting.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from tlog_client.errors import TlogError


class BusyError(Exception):
    """The queue is full: answer 503 with Retry-After."""


# A queued job: (future, its loop, function, arguments, items, bytes).
_Job = tuple[asyncio.Future, asyncio.AbstractEventLoop, Callable[..., Any], tuple, int, int]

_current = threading.local()


def job_cancelled() -> bool:
    """In a job run by an :class:`Offload`: True once its caller went away
    (a racy read of the future's state, which is enough to stop early).
    False anywhere else."""
    fut = getattr(_current, "future", None)
    return fut is not None and fut.cancelled()


class Offload:
    """Jobs run by ``threads`` threads named ``name``, at most ``max_items``
    items and ``max_bytes`` bytes waiting (a job counts as many items and
    bytes as its caller says: a run of submissions is one job of many).

    Precondition: :meth:`submit` is called on an event loop's thread."""

    def __init__(self, name: str, *, threads: int = 1, max_items: int,
                 max_bytes: int = 0, share: float = 1.0) -> None:
        """``max_bytes`` 0: no bound on bytes. ``share``: the most of the
        time a thread spends running jobs while more are waiting (1: no
        bound); after a job of ``t`` seconds it then pauses
        ``t * (1 - share) / share``, leaving the interpreter lock to the
        event loop (for jobs that hold it: pure-Python work)."""
        self.name = name
        self._threads = threads
        self._pause = (1 - share) / share
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # the waiting counts (loop and threads)
        self._items = 0
        self._bytes = 0
        self._started: list[threading.Thread] = []
        self.skipped = 0  # jobs whose caller had gone when their turn came
        self.refused = 0  # jobs refused because the queue was full

    @property
    def waiting(self) -> int:
        """Items queued and not started yet."""
        return self._items

    def admit(self, items: int = 1, nbytes: int = 0) -> None:
        """Count ``items`` (and ``nbytes``) as waiting, or raise BusyError
        if that would go over the bounds. Whoever admits must then
        :meth:`submit` them (or :meth:`release` them)."""
        with self._lock:
            if self._items + items > self._max_items or \
                    (self._max_bytes and self._bytes + nbytes > self._max_bytes
                     and self._items):
                self.refused += 1
                raise BusyError(f"{self._items} {self.name} jobs are waiting")
            self._items += items
            self._bytes += nbytes

    def release(self, items: int, nbytes: int = 0) -> None:
        """No longer count ``items`` and ``nbytes`` as waiting."""
        with self._lock:
            self._items -= items
            self._bytes -= nbytes

    def submit(self, fn: Callable[..., Any], *args: Any, items: int = 1,
               nbytes: int = 0) -> asyncio.Future:
        """A future of ``fn(*args)`` run in one of the threads, for ``items``
        and ``nbytes`` already admitted (:meth:`admit`)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if len(self._started) < self._threads:
            self._start_threads()
        self._queue.put((fut, loop, fn, args, items, nbytes))
        return fut

    def run(self, fn: Callable[..., Any], *args: Any, items: int = 1,
            nbytes: int = 0) -> asyncio.Future:
        """:meth:`admit` then :meth:`submit`: raises BusyError at once when
        the queue is full."""
        self.admit(items, nbytes)
        return self.submit(fn, *args, items=items, nbytes=nbytes)

    def stop(self) -> None:
        """Let the threads end once the jobs queued before are done."""
        for _ in self._started:
            self._queue.put(None)
        self._started = []

    # -- the threads ---------------------------------------------------------------

    def _start_threads(self) -> None:
        # Started with the first job, in the process that runs them (an
        # HTTP worker is a process of its own).
        while len(self._started) < self._threads:
            thread = threading.Thread(target=self._work, daemon=True,
                                      name=f"tlog-{self.name}-{len(self._started)}")
            thread.start()
            self._started.append(thread)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            fut, loop, fn, args, items, nbytes = job
            self.release(items, nbytes)
            if fut.done():  # its caller went away before its turn
                self.skipped += 1
                continue
            _current.future = fut
            started = time.perf_counter()
            try:
                result, error = fn(*args), None
            except Exception as exc:
                result, error = None, detached(exc)
            finally:
                _current.future = None
            try:
                loop.call_soon_threadsafe(settle, fut, result, error)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return
            # Not kept while waiting for the next job (a body can be 4 MiB).
            job = fut = args = result = error = None
            if self._pause and self._items:
                time.sleep((time.perf_counter() - started) * self._pause)


def detached(exc: Exception) -> Exception:
    """``exc``, caught where a job's work is run, made fit to hand to the
    job's caller without keeping the job's data alive.

    A traceback holds its frames, each frame its locals and its caller
    (``f_back``), up to the frame that caught the exception, which holds the
    exception again (in the list of outcomes): a reference cycle that keeps
    the request body alive until a full garbage collection, which the server
    runs rarely (tlog.app.tune_gc). Measured: a flood of 4 MB bodies that
    each failed to parse took two HTTP workers to 2 GB each. A client's
    error (TlogError: it is answered 4xx, never logged with a traceback)
    therefore loses its traceback and the exceptions it was raised from;
    any other exception (a bug, logged) keeps its traceback's line numbers,
    its frames' locals cleared."""
    if isinstance(exc, TlogError):
        exc.__traceback__ = exc.__context__ = exc.__cause__ = None
        return exc
    seen: set[int] = set()
    chained: BaseException | None = exc
    while chained is not None and id(chained) not in seen:
        seen.add(id(chained))
        if chained.__traceback__ is not None:
            traceback.clear_frames(chained.__traceback__)
        chained = chained.__cause__ or chained.__context__
    return exc


def settle(fut: asyncio.Future, result: Any, error: Exception | None) -> None:
    """On the event loop: the job's outcome to its caller, if still there."""
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)

