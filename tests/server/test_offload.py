"""tlog/offload.py: jobs run in threads off the event loop, from a bounded
queue; a job whose caller went away is skipped; a running job can see it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tlog.offload import BusyError, Offload, job_cancelled


async def test_a_job_runs_in_a_thread_and_its_outcome_comes_back():
    offload = Offload("t", max_items=4)
    loop_thread = threading.get_ident()
    assert await offload.run(lambda a, b: (a + b, threading.get_ident()), 2, 3) != \
        (5, loop_thread)
    with pytest.raises(ZeroDivisionError):
        await offload.run(lambda: 1 / 0)
    assert offload.waiting == 0
    offload.stop()


async def test_the_queue_is_bounded_in_items_and_bytes():
    gate = threading.Event()
    offload = Offload("t", max_items=3, max_bytes=100)
    first = offload.run(gate.wait)  # holds the one thread
    await asyncio.sleep(0.05)
    waiting = [offload.run(lambda: 1) for _ in range(3)]
    with pytest.raises(BusyError):
        offload.run(lambda: 1)
    assert offload.refused == 1
    gate.set()
    await asyncio.gather(first, *waiting)
    offload.admit(1, 90)
    with pytest.raises(BusyError):  # bytes: over 100 with one waiting
        offload.admit(1, 20)
    offload.release(1, 90)
    offload.admit(1, 500)  # alone, a larger one is let in
    offload.release(1, 500)
    offload.stop()


async def test_a_job_whose_caller_went_away_is_skipped():
    gate = threading.Event()
    ran: list[int] = []
    offload = Offload("t", max_items=8)
    blocker = offload.run(gate.wait)
    await asyncio.sleep(0.05)
    gone = offload.run(ran.append, 1)
    kept = offload.run(ran.append, 2)
    gone.cancel()
    gate.set()
    await asyncio.gather(blocker, kept)
    assert ran == [2] and offload.skipped == 1
    offload.stop()


async def test_a_running_job_sees_its_caller_leave():
    started, seen = threading.Event(), threading.Event()

    def job() -> None:
        started.set()
        for _ in range(500):
            if job_cancelled():
                seen.set()
                return
            threading.Event().wait(0.01)

    offload = Offload("t", max_items=2)
    fut = offload.run(job)
    await asyncio.to_thread(started.wait, 5)
    fut.cancel()
    assert await asyncio.to_thread(seen.wait, 5)
    assert not job_cancelled()  # outside a job
    offload.stop()


async def test_a_pool_with_a_share_still_runs_every_job_in_order():
    """``share``: a thread pauses after a job while more wait (no timing
    asserted here: what it buys is measured by scripts/bench_hostile.py)."""
    offload = Offload("t", max_items=16, share=0.5)
    done: list[int] = []
    assert await asyncio.gather(*(offload.run(lambda i=i: done.append(i) or i)
                                  for i in range(10))) == list(range(10))
    assert done == list(range(10))
    offload.stop()


def test_a_client_error_is_handed_back_without_its_frames():
    """A 4xx error must not keep a job's data alive through its traceback."""
    from tlog.offload import detached
    from tlog_client.errors import FormatError

    def parse(body: bytes) -> None:
        try:
            int(body)
        except ValueError:
            raise FormatError("body", "not a number") from None

    try:
        parse(b"x" * 100)
    except FormatError as exc:
        error = detached(exc)
    assert error.__traceback__ is None and error.__context__ is None
    try:
        parse(None)  # a bug: TypeError keeps its traceback, frames cleared
    except TypeError as exc:
        bug = detached(exc)
    assert bug.__traceback__ is not None  # below the catching frame: no locals
    assert all(not frame.f_locals for frame, _ in
               __import__("traceback").walk_tb(bug.__traceback__.tb_next))
