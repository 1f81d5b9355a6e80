"""tlog/seqlink.py: the sequencer process answers a worker's entries from the
writer thread, straight to the link socket, and drops a link it cannot
write to rather than stall."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time

import pytest

from tlog import seqlink
from tlog.records import NewEntry, StoredCheckpoint
from tlog.sequencer import Integrated, SequencerHaltedError
from tlog.storage import Storage, StorageError
from tlog.trustedhead import TrustedHead

CHECKPOINT = StoredCheckpoint(5, b"r" * 32, "origin\n5\ncm9vdA==\n\n\u2014 origin c2ln\n".encode(), 7)
DONE = Integrated(4, 1_700_000_000, CHECKPOINT, (b"a" * 32, b"b" * 32), False, b"s" * 64)


class StubSequencer:
    """Records what the link queues; the test answers from another thread,
    as the writer thread does."""

    def __init__(self) -> None:
        self.queued: list[tuple[NewEntry, object, object]] = []
        self.arrived = threading.Event()
        self.heads = TrustedHead([], "origin")

    def enqueue_to(self, entry, answerer, tag) -> None:
        self.queued.append((entry, answerer, tag))
        self.arrived.set()

    def answer_from_thread(self, outcomes_for) -> None:
        def run() -> None:
            by_answerer: dict = {}
            for _, answerer, tag in self.queued:
                by_answerer.setdefault(answerer, []).append((tag, outcomes_for(tag)))
            for answerer, outcomes in by_answerer.items():
                answerer.answer(outcomes)
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()


def entry(n: int) -> NewEntry:
    return NewEntry(bytes([n]) * 32, b'{"n": %d}' % n, "hashedrekord", (f"hash:{n}",), None)


@pytest.fixture
async def link(tmp_path):
    stub = StubSequencer()
    server = seqlink.SequencerServer(stub, tmp_path / "seq.sock")
    await server.start()
    storage = Storage.open(tmp_path / "t.db")
    remote = seqlink.RemoteSequencer(server.path, storage, TrustedHead([], "origin"))
    await remote.start(timeout=5)
    yield stub, remote
    await remote.stop()
    await server.stop()
    storage.close()


@pytest.mark.parametrize("outcome, raised", [
    (DONE, None),
    (Integrated(2, 1_699_999_999, CHECKPOINT, (), True, b"t" * 64), None),
    (SequencerHaltedError("stopped"), SequencerHaltedError),
    (StorageError("disk full"), StorageError),
    (ValueError("a bug"), seqlink.LinkError),
])
async def test_writer_thread_answers_reach_the_worker(link, outcome, raised):
    stub, remote = link
    waiters = [asyncio.ensure_future(remote.submit(entry(n))) for n in range(3)]
    while len(stub.queued) < 3:
        await asyncio.sleep(0.01)
    assert [e for e, _, _ in stub.queued] == [entry(n) for n in range(3)]
    stub.answer_from_thread(lambda tag: outcome)
    results = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 5)
    for result in results:
        if raised is None:
            assert result == outcome
        else:
            assert isinstance(result, raised)


async def test_answer_after_the_worker_left_drops_the_link(link):
    stub, remote = link
    waiter = asyncio.ensure_future(remote.submit(entry(1)))
    while not stub.queued:
        await asyncio.sleep(0.01)
    await remote.stop()
    await asyncio.sleep(0.05)
    stub.answer_from_thread(lambda tag: DONE)  # must neither raise nor block
    with pytest.raises((seqlink.LinkError, SequencerHaltedError, asyncio.CancelledError)):
        await asyncio.wait_for(waiter, 5)


async def test_a_worker_that_stops_reading_loses_its_link(tmp_path, monkeypatch):
    monkeypatch.setattr(seqlink, "SEND_TIMEOUT_S", 0.3)
    stub = StubSequencer()
    server = seqlink.SequencerServer(stub, tmp_path / "seq.sock")
    await server.start()
    client = socket.socket(socket.AF_UNIX)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(str(server.path))
    try:
        for n in range(2):
            client.sendall(seqlink.encode_request(n, entry(n)))
        while len(stub.queued) < 2:
            await asyncio.sleep(0.01)
        answerer = stub.queued[0][1]
        big = [(n, DONE) for n in range(20_000)]  # far more than the socket buffers hold
        started = time.monotonic()
        await asyncio.to_thread(answerer.answer, big)
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.1)
        assert answerer.closed  # the link was dropped; the worker would exit
        answerer.answer([(0, DONE)])  # later answers are dropped quietly
    finally:
        client.close()
        await server.stop()


# -- the frame codec -------------------------------------------------------------------

@pytest.mark.parametrize("nproof", [0, 1, 2, 17, 63, 255])
@pytest.mark.parametrize("duplicate, set_signature", [(False, b"s" * 64), (True, None)])
def test_reply_round_trip(nproof, duplicate, set_signature):
    proof = tuple(bytes([k]) * 32 for k in range(nproof))
    done = Integrated(9, 1_700_000_001, CHECKPOINT, proof, duplicate, set_signature)
    frame = seqlink.encode_reply(77, seqlink.DUPLICATE if duplicate else seqlink.OK, done)
    req_id, status, decoded, message = seqlink.decode_reply(frame[4:], {})
    assert (req_id, message) == (77, "") and decoded == done
    assert type(decoded.proof) is tuple and all(type(h) is bytes for h in decoded.proof)


@pytest.mark.parametrize("status, message", [(seqlink.POOL_FULL, "full"), (seqlink.HALTED, "x"),
                                             (seqlink.STORAGE, "disk"), (seqlink.ERROR, "é")])
def test_error_reply_round_trip(status, message):
    frame = seqlink.encode_reply(3, status, message=message)
    assert seqlink.decode_reply(frame[4:], {}) == (3, status, None, message)


@pytest.mark.parametrize("cut", [1, 31, 32 * 17 - 1])
def test_a_reply_cut_short_in_its_proof_raises(cut):
    frame = seqlink.encode_reply(1, seqlink.OK, Integrated(
        9, 1, CHECKPOINT, tuple(b"p" * 32 for _ in range(17)), False, None))[4:]
    proof_end = len(frame)  # no SET, no message: the proof ends the frame
    with pytest.raises(struct.error):
        seqlink.decode_reply(frame[:proof_end - cut], {})


@pytest.mark.parametrize("keys, attestation", [((), None), (("hash:1", "key:ab"), b"env"),
                                               (tuple(f"k{i}" for i in range(40)), b"")])
def test_request_round_trip(keys, attestation):
    sent = NewEntry(b"h" * 32, b'{"body": 1}', "dsse", keys, attestation)
    frame = seqlink.encode_request(12, sent)
    assert seqlink.decode_request(frame[4:]) == (12, sent)
