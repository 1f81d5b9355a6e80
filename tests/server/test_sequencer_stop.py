"""Sequencer.stop(): the batch in progress is integrated and its waiter
answered (from the writer thread, through the event loop); what was queued
behind the stop is refused (settled on the event loop itself)."""

from __future__ import annotations

import asyncio
import threading

from tlog_client.hashing import leaf_hash

from tlog.sequencer import SequencerHaltedError
from tlog.storage import NewEntry, Storage

from .inprocess import make_sequencer


def _entry(i: int) -> NewEntry:
    body = b"stop test %d" % i
    return NewEntry(leaf_hash(body), body, "hashedrekord")


async def test_stop_finishes_the_batch_and_refuses_what_came_after(tmp_path):
    storage = Storage.open(tmp_path / "tlog.db")
    entered, gate = threading.Event(), threading.Event()

    def on_publish(head) -> None:  # holds the first batch in the writer thread
        entered.set()
        assert gate.wait(30)

    sequencer = make_sequencer(storage, on_publish=on_publish)
    await sequencer.start()
    first = asyncio.ensure_future(sequencer.submit(_entry(0)))
    assert await asyncio.to_thread(entered.wait, 10)
    stopping = asyncio.ensure_future(sequencer.stop())
    await asyncio.sleep(0)  # stop() has queued its marker
    late = [asyncio.ensure_future(sequencer.submit(_entry(i))) for i in range(1, 4)]
    await asyncio.sleep(0.05)
    assert not first.done() and not any(f.done() for f in late)
    gate.set()
    await stopping
    assert (await first).index == 0
    outcomes = await asyncio.gather(*late, return_exceptions=True)
    assert all(isinstance(o, SequencerHaltedError) and "shutting down" in str(o)
               for o in outcomes), outcomes
    with storage.snapshot() as snap:
        assert snap.head().size == 1
    assert sequencer.halted == "shut down"
    storage.close()
