"""The link between HTTP worker processes and the one sequencer (``--workers``).

With ``--workers N`` the server runs N HTTP worker processes in front of a
single sequencer process (SPEC §4: one writer). A worker does everything a
submission costs before it reaches the sequencer (HTTP, strict parsing, the
entry's signature check, canonicalisation) and after (the SET, the
response); reads never leave the worker (they use their own read-only
SQLite snapshots). The canonical entry crosses a Unix socket to the
sequencer process, whose :class:`~tlog.sequencer.Sequencer` batches entries
from every worker as it does in one process; the reply carries the entry's
index, the checkpoint of its batch and the inclusion proof the sequencer
verified (I5). A worker acknowledges nothing the sequencer has not reported
durable. The sequencer process reads requests on its event loop and writes
the replies from its writer thread, one write per worker per batch, the
moment the batch is durable (:class:`_ServerLink`); a worker writes its
requests once per event-loop turn.

The socket lives in a private directory (mode 0700, created by the
sequencer process), since whoever can write to it can log entries without
a signature check.

Frames are length-prefixed and packed with :mod:`struct`:

- request: ``req_id`` u64, leaf hash (32 bytes), body length u32, kind length
  u16, key count u16, attestation length + 1 u32 (0: none); then the kind,
  the body, each search key (u16 length, UTF-8) and the attestation;
- reply: ``req_id`` u64, status u8, index u64, integrated time i64, then the
  checkpoint (size u64, root, timestamp i64, note length u32), proof length
  u8, SET length u8, message length u16; then the note, the proof hashes,
  the SET, the message. A reply with ``req_id`` 0 and status HALTED answers
  no request: the sequencer halted (SPEC §10 U1), and says why.

A worker trusts the checkpoints its sequencer sends (the link is private):
each one is adopted by the worker's :class:`~tlog.trustedhead.TrustedHead`,
so its reads serve it without checking its signature again.

:class:`SequencerServer` serves the link in the sequencer process;
:class:`RemoteSequencer` is the worker's stand-in for the sequencer, with the
interface the API uses (``submit``, ``head``, ``pending``, ``halted``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from .sequencer import Integrated, PoolFullError, Sequencer, SequencerHaltedError
from .storage import NewEntry, Storage, StorageError, StoredCheckpoint
from .trustedhead import TrustedHead

log = logging.getLogger(__name__)

_LEN = struct.Struct(">I")
_REQ = struct.Struct(">Q32sIHHI")
_KEY = struct.Struct(">H")
_REPLY = struct.Struct(">QBQqQ32sqIBBH")
HASH = 32
# A reply's proof as a tuple of hashes, one struct per length (at most 255:
# the count is a u8). A frame shorter than the proof raises struct.error.
_PROOFS = [struct.Struct(f"{HASH}s" * n) for n in range(256)]
MAX_FRAME = 64 << 20
SEND_TIMEOUT_S = 10.0

OK, DUPLICATE, POOL_FULL, HALTED, STORAGE, ERROR = range(6)


class LinkError(Exception):
    """The link is broken or a frame is malformed."""


class WriteFailed(StorageError):
    """The sequencer could not store the batch (it rolled back)."""


# -- codec ---------------------------------------------------------------------------

def encode_request(req_id: int, entry: NewEntry) -> bytes:
    kind = entry.kind.encode()
    keys = [k.encode() for k in entry.index_keys]
    att = entry.attestation
    parts = [_REQ.pack(req_id, entry.leaf_hash, len(entry.body), len(kind), len(keys),
                       0 if att is None else len(att) + 1), kind, entry.body]
    for k in keys:
        parts += [_KEY.pack(len(k)), k]
    if att is not None:
        parts.append(att)
    payload = b"".join(parts)
    return _LEN.pack(len(payload)) + payload


def decode_request(frame: bytes) -> tuple[int, NewEntry]:
    req_id, leaf, body_len, kind_len, nkeys, att_len = _REQ.unpack_from(frame)
    pos = _REQ.size
    kind = frame[pos:pos + kind_len].decode()
    pos += kind_len
    body = frame[pos:pos + body_len]
    pos += body_len
    keys = []
    for _ in range(nkeys):
        (n,) = _KEY.unpack_from(frame, pos)
        keys.append(frame[pos + 2:pos + 2 + n].decode())
        pos += 2 + n
    att = frame[pos:pos + att_len - 1] if att_len else None
    if len(body) != body_len or (att is not None and len(att) != att_len - 1):
        raise LinkError("truncated request frame")
    return req_id, NewEntry(leaf, body, kind, tuple(keys), att)


def encode_reply(req_id: int, status: int, done: Integrated | None = None,
                 message: str = "") -> bytes:
    msg = message.encode()[:4096]
    if done is None:
        payload = _REPLY.pack(req_id, status, 0, 0, 0, bytes(HASH), 0, 0, 0, 0,
                              len(msg)) + msg
    else:
        cp = done.checkpoint
        sig = done.set_signature or b""
        payload = b"".join([
            _REPLY.pack(req_id, status, done.index, done.integrated_time, cp.size, cp.root,
                        cp.timestamp, len(cp.note), len(done.proof), len(sig), len(msg)),
            cp.note, *done.proof, sig, msg])
    return _LEN.pack(len(payload)) + payload


def decode_reply(frame: bytes, checkpoints: dict[int, StoredCheckpoint]
                 ) -> tuple[int, int, Integrated | None, str]:
    """(req_id, status, result or None, message); ``checkpoints`` caches the
    checkpoint objects by size (a batch's replies share one)."""
    (req_id, status, index, itime, size, root, ts, note_len, nproof, set_len,
     msg_len) = _REPLY.unpack_from(frame)
    pos = _REPLY.size
    note = frame[pos:pos + note_len]
    pos += note_len
    proof = _PROOFS[nproof].unpack_from(frame, pos)
    pos += nproof * HASH
    sig = frame[pos:pos + set_len] or None
    pos += set_len
    message = frame[pos:pos + msg_len].decode(errors="replace")
    if status not in (OK, DUPLICATE):
        return req_id, status, None, message
    cp = checkpoints.get(size)
    if cp is None or cp.root != root:
        if len(checkpoints) > 16:
            checkpoints.clear()
        cp = checkpoints[size] = StoredCheckpoint(size, root, note, ts)
    return (req_id, status, Integrated(index, itime, cp, proof, status == DUPLICATE, sig),
            message)


class _Frames(asyncio.Protocol):
    """Length-prefixed frames read from the link (both sides)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if n > MAX_FRAME:
                self.transport.close()
                return
            if len(buf) - pos - 4 < n:
                break
            self.frame_received(bytes(buf[pos + 4:pos + 4 + n]))
            pos += 4 + n
        del buf[:pos]

    def connection_lost(self, exc) -> None:
        self.closed = True

    def frame_received(self, frame: bytes) -> None:
        raise NotImplementedError


# -- the sequencer process's side ---------------------------------------------------------

class _ServerLink(_Frames):
    """One worker's link. Requests are read on the event loop; replies are
    written by the sequencer's writer thread (this is its
    :class:`~tlog.sequencer.Answerer`) straight to the socket, the moment a
    batch is durable, so that they never wait for the event loop's thread.
    Every write, from either thread, goes through one lock and a blocking
    socket with a timeout: a worker that stops reading for
    ``SEND_TIMEOUT_S`` loses its link (and exits) rather than stall the log."""

    def __init__(self, sequencer: Sequencer, links: "set[_ServerLink]") -> None:
        super().__init__()
        self._sequencer = sequencer
        self._links = links  # every open link, for the halt notice
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(fileno=os.dup(transport.get_extra_info("socket").fileno()))
        sock.settimeout(SEND_TIMEOUT_S)
        self._sock = sock
        self._links.add(self)
        halted = self._sequencer.heads.halted
        if halted:  # a worker (re)started after the halt learns it at once
            self.notify_halt(halted)

    def notify_halt(self, reason: str) -> None:
        """Tell the worker the sequencer halted (any thread)."""
        self._write([encode_reply(0, HALTED, message=reason)])

    def connection_lost(self, exc) -> None:
        super().connection_lost(exc)
        self._links.discard(self)
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def frame_received(self, frame: bytes) -> None:
        try:
            req_id, entry = decode_request(frame)
        except (LinkError, struct.error, UnicodeDecodeError) as exc:
            log.error("malformed request on the sequencer link: %s", exc)
            self.transport.close()
            return
        try:
            self._sequencer.enqueue_to(entry, self, req_id)
        except PoolFullError as exc:
            self._write([encode_reply(req_id, POOL_FULL, message=str(exc))])
        except SequencerHaltedError as exc:
            self._write([encode_reply(req_id, HALTED, message=str(exc))])

    def answer(self, outcomes: list[tuple[object, Integrated | Exception]]) -> None:
        """In the writer thread: one batch's replies, in one write."""
        self._write([_reply_frame(req_id, outcome) for req_id, outcome in outcomes])

    def _write(self, frames: list[bytes]) -> None:
        with self._lock:
            if self._sock is None:
                return
            try:
                self._sock.sendall(b"".join(frames))
                return
            except OSError as exc:  # timeout, or the worker went away
                log.error("dropping the link to a worker: %s", exc)
                self._sock.close()
                self._sock = None
        try:
            self._loop.call_soon_threadsafe(self.transport.close)
        except RuntimeError:  # the event loop is closed
            pass


def _reply_frame(req_id: int, outcome: Integrated | Exception) -> bytes:
    if isinstance(outcome, Integrated):
        return encode_reply(req_id, DUPLICATE if outcome.duplicate else OK, outcome)
    if isinstance(outcome, SequencerHaltedError):
        return encode_reply(req_id, HALTED, message=str(outcome))
    if isinstance(outcome, StorageError):
        return encode_reply(req_id, STORAGE, message=str(outcome))
    return encode_reply(req_id, ERROR, message=f"{type(outcome).__name__}: {outcome}")


class SequencerServer:
    """Serves the link at ``path`` (a socket in a private directory)."""

    def __init__(self, sequencer: Sequencer, path: Path) -> None:
        self._sequencer = sequencer
        self.path = Path(path)
        self._server: asyncio.AbstractServer | None = None
        self._links: set[_ServerLink] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(
            lambda: _ServerLink(self._sequencer, self._links), str(self.path))
        self.path.chmod(0o600)
        self._sequencer.heads.on_halt(self._halted)

    def _halted(self, reason: str) -> None:
        """The sequencer halted (in whichever thread found out): tell every worker."""
        for link in list(self._links):
            link.notify_halt(reason)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)


# -- the worker's side ----------------------------------------------------------------------

class _ClientLink(_Frames):
    """A worker's end: :meth:`send` coalesces its requests into one write
    per event-loop turn."""

    def __init__(self, owner: "RemoteSequencer") -> None:
        super().__init__()
        self._owner = owner
        self._out: list[bytes] = []

    def send(self, frame: bytes) -> None:
        if self.closed:
            return
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(frame)

    def _flush(self) -> None:
        if self._out and not self.closed:
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def frame_received(self, frame: bytes) -> None:
        self._owner._reply(frame)

    def connection_lost(self, exc) -> None:
        super().connection_lost(exc)
        self._owner._lost()


class RemoteSequencer:
    """A worker's stand-in for the sequencer (what :class:`~tlog.api.LogApi`
    calls): submissions go over the link; the head is read from storage."""

    def __init__(self, path: Path, storage: Storage, heads: TrustedHead,
                 on_lost: Callable[[], None] | None = None) -> None:
        self._path = Path(path)
        self._storage = storage
        self.heads = heads
        self._on_lost = on_lost
        self._link: _ClientLink | None = None
        self._waiting: dict[int, asyncio.Future] = {}
        self._next = 0
        self._halted: str | None = None
        self._checkpoints: dict[int, StoredCheckpoint] = {}

    async def start(self, timeout: float = 30.0,
                    gone: Callable[[], bool] = lambda: False) -> None:
        """Connect, retrying for ``timeout`` seconds unless ``gone()`` says
        the sequencer process is no more."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                _, self._link = await loop.create_unix_connection(
                    lambda: _ClientLink(self), str(self._path))
                return
            except (FileNotFoundError, ConnectionRefusedError):
                if loop.time() > deadline or gone():
                    raise LinkError(f"no sequencer listening at {self._path}") from None
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._link is not None and self._link.transport is not None:
            self._link.transport.close()
        self._halted = self._halted or "shut down"

    @property
    def head(self) -> StoredCheckpoint:
        """The head as this worker verified it (read from storage first)."""
        with self._storage.snapshot() as snap:
            return self.heads.check(snap.head(), snap)

    @property
    def pending(self) -> int:
        return len(self._waiting)

    @property
    def halted(self) -> str | None:
        return self.heads.halted or self._halted

    async def submit(self, entry: NewEntry) -> Integrated:
        halted = self.heads.halted or self._halted
        if halted:
            raise SequencerHaltedError(halted)
        self._next += 1
        req_id = self._next
        fut = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = fut
        self._link.send(encode_request(req_id, entry))
        # Not shielded: a cancelled caller cancels only this future (the
        # entry is already on its way; _reply then skips it).
        return await fut

    def _reply(self, frame: bytes) -> None:
        req_id, status, done, message = decode_reply(frame, self._checkpoints)
        if req_id == 0 and status == HALTED:  # not an answer: the sequencer halted
            self._halted = message
            self.heads.halt(message)
            return
        if done is not None:
            self.heads.adopt(done.checkpoint)
        fut = self._waiting.pop(req_id, None)
        if fut is None or fut.done():
            return
        if done is not None:
            fut.set_result(done)
        elif status == POOL_FULL:
            fut.set_exception(PoolFullError(message))
        elif status == HALTED:
            self._halted = message  # healthz reports it from now on
            fut.set_exception(SequencerHaltedError(message))
        elif status == STORAGE:
            fut.set_exception(WriteFailed(message))
        else:
            fut.set_exception(LinkError(f"the sequencer failed: {message}"))

    def _lost(self) -> None:
        self._halted = self._halted or "the sequencer process is gone"
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(SequencerHaltedError(self._halted))
        self._waiting.clear()
        if self._on_lost is not None:
            self._on_lost()
