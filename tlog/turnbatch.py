"""Work that arrives during one event-loop turn, run back to back at its end.

A submission's parsing is mostly its signature check (ECDSA P-256: OpenSSL's
nistz256 code reads precomputed tables of about 150 KB) and strict parsing.
Run inside each request, between aiohttp's own work for that request, the
same check costs half as much again as in a loop (about 120 against 77 µs
here; by all appearances those tables and that code are evicted from the CPU
caches each time). :class:`TurnBatch` collects the items handed to it while the
event loop runs one turn's callbacks (a burst of requests arrives together)
and runs them one after another in a callback at the end of that turn.

Measured with the real app, the benchmark's signed entries and wrk, server
on one core and a stand-in sequencer that answers at once (a throwaway
harness, to see the HTTP path alone): about 350 µs of CPU per submission
parsed inside each request, about 303 µs in turn batches.

A run can be two passes (``then``): ``fn`` over every item, then ``then``
over each of their results, so that each step runs back to back over the
whole run. The API parses every submission of a run first and checks their
signatures after, rather than alternating the parser's code and data with
OpenSSL's. Measured in the server (``--workers 2``, 128 clients, the
benchmark's entries), CPU per submission of a run: 137-142 µs in one pass,
126-131 µs in two (the signature check itself measured 82-86 µs either
way: the parsing got cheaper); 4 interleaved pairs of 6 s: 4,326 ->
4,412 entries/s on average.

``max_items`` bounds a run: with ``--workers``, each item's caller goes on
to forward the entry to the sequencer, and a burst of 30 parsed before any
is forwarded leaves the sequencer waiting. The API sets the bound, and why
(measured), at :data:`tlog.api.PARSE_RUN`.

An item waits for at most the rest of its turn (or the runs queued before
it). Its exceptions reach the caller that handed over the item, and only
that caller; an item whose caller was cancelled before its turn is skipped.

Where the run happens: on the event loop (the default), or, with an
``offload`` (:class:`tlog.offload.Offload`), in its thread, a whole run per
job, both passes back to back there as they would be on the loop (SPEC §10
U5: no submission's checks hold the loop, which meanwhile answers other
clients). The offload's queue is bounded: :meth:`TurnBatch.run` raises
:class:`tlog.offload.BusyError` at once when the items waiting for a thread
(or their bytes) are at its bound.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Generic, TypeVar

from .offload import Offload, settle, detached

T = TypeVar("T")
R = TypeVar("R")


class TurnBatch(Generic[T, R]):
    """``await batch.run(item)`` is ``fn(item)`` (or ``then(fn(item))``), run
    together with the other items handed over in the same event-loop turn.

    Precondition: used from one event loop (the one running when ``run`` is
    called); ``fn`` must not await and must not call ``run``; with an
    ``offload``, ``fn`` and ``then`` must be safe to run in another thread."""

    def __init__(self, fn: Callable[[T], R], max_items: int = 0,
                 then: Callable[[R], object] | None = None, *,
                 offload: Offload | None = None,
                 size_of: Callable[[T], int] | None = None) -> None:
        """``max_items``: run at most that many per callback (0: all); the
        rest wait for another callback, queued behind what the first ones'
        callers queue when they resume. ``then``: a second pass; a caller
        gets ``then(fn(item))`` (``then`` must not await or call ``run``
        either). ``offload``: run there instead of on the loop, each run one
        job (the next run is queued at once: the thread goes on while the
        callers of the last one resume); ``size_of``: an item's bytes, as
        counted against the offload's bound."""
        self._fn = fn
        self._then = then
        self._max = max_items
        self._offload = offload
        self._size_of = size_of
        self._items: list[tuple[T, asyncio.Future[R]]] = []
        self._bytes = 0  # of the items collected this turn (with an offload)
        self.turns = 0  # runs so far
        self.items = 0  # items run so far

    def run(self, item: T) -> asyncio.Future[R]:
        """A future of ``fn(item)`` (or of its exception). With an offload,
        raises BusyError at once when its queue is full."""
        if self._offload is not None:
            size = self._size_of(item) if self._size_of is not None else 0
            self._offload.admit(1, size)
            self._bytes += size
        loop = asyncio.get_running_loop()
        if not self._items:
            loop.call_soon(self._flush)
        fut: asyncio.Future[R] = loop.create_future()
        self._items.append((item, fut))
        return fut

    def _flush(self) -> None:
        if self._offload is not None:
            self._flush_to_offload()
            return
        if self._max and len(self._items) > self._max:
            items, self._items = self._items[:self._max], self._items[self._max:]
        else:
            items, self._items = self._items, []
        self.turns += 1
        self.items += len(items)
        _settle(self._run(items))
        if self._items:
            # The callers of this run resume first (queued by set_result),
            # then what they queue (the link's write to the sequencer), then
            # the next run: hence one more hop before scheduling it.
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.call_soon, self._flush)

    def _flush_to_offload(self) -> None:
        items, self._items = self._items, []
        nbytes, self._bytes = self._bytes, 0
        step = self._max or len(items)
        for start in range(0, len(items), step):
            run = items[start:start + step]
            self.turns += 1
            self.items += len(run)
            # The bytes are counted with the first run: the bound is loose by
            # at most a turn's runs, and all of them are released together.
            job = self._offload.submit(self._run, run, items=len(run),
                                       nbytes=nbytes if start == 0 else 0)
            job.add_done_callback(functools.partial(_settle_job, run))

    def _run(self, items: list[tuple[T, asyncio.Future[R]]]) -> list[_Outcome]:
        """Both passes over a run (here or in the offload's thread): each
        future's outcome, to be settled on the event loop."""
        outcomes: list[_Outcome] = []
        done = _run_pass(self._fn, items, outcomes)
        if self._then is not None:
            done = _run_pass(self._then, done, outcomes)
        outcomes += [(fut, result, None) for result, fut in done]
        return outcomes


# (future, result, exception or None): settled on the loop, if still waited for.
_Outcome = tuple[asyncio.Future, object, Exception | None]


def _run_pass(fn: Callable, items: list[tuple[object, asyncio.Future]],
              failed: list[_Outcome]) -> list[tuple[object, asyncio.Future]]:
    """``fn`` over each value whose caller still waits, in order (in a
    thread, a racy read of the future's state: at worst one more item runs
    for nobody); an exception goes to ``failed``, for that caller alone.
    Returns the (result, future) pairs of the values that succeeded."""
    out = []
    for value, fut in items:
        if fut.done():  # its caller was cancelled: nobody waits for it
            continue
        try:
            out.append((fn(value), fut))
        except Exception as exc:
            failed.append((fut, None, detached(exc)))
    return out


def _settle(outcomes: list[_Outcome]) -> None:
    for fut, result, exc in outcomes:
        settle(fut, result, exc)


def _settle_job(run: list[tuple[object, asyncio.Future]], job: asyncio.Future) -> None:
    """A run's outcomes, on the event loop. The run itself does not raise
    (each item's exception is in its outcome): if it did (a bug), every
    caller of the run gets that exception rather than wait forever."""
    error = job.exception()
    if error is None:
        _settle(job.result())
    else:
        _settle([(fut, None, error) for _, fut in run])
