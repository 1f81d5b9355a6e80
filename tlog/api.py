"""HTTP API: Rekor v1 routes, C2SP tiles, health and metrics (SPEC §3.3, §6).

Thin: each handler parses the request strictly, calls storage or the
sequencer, and maps the result (or a typed error) to a response. Every
malformed request is a 4xx whose message names the field; a 5xx means a bug or
an unavailable log, never bad input.

Storage is untrusted (SPEC §10). Every coordinate (index, size, tile) is
checked against the verified tree before storage is asked (U3), and nothing
is answered 200 that a client would reject (U2): the head served is one this
process verified (:class:`~tlog.trustedhead.TrustedHead`); inclusion and
consistency proofs are verified against the root they are served with; an
entry's SET, time and attestation are checked against the row's seal
(tlog/seal.py); every tile and entry bundle is proved part of the verified
tree before it is served or cached. A row that fails is a 500 naming it
(:class:`~tlog.storage.DamagedStorageError`), counted in /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tlog_client import hashedrekord
from tlog_client.encoding import MAX_INT64, b64encode_std, parse_decimal
from tlog_client.errors import FormatError, TlogError, VerificationError
from tlog_client.hashing import leaf_hash, sha256
from tlog_client.jsonstrict import expect_list, expect_object, loads_strict
from tlog_client.compact import CompactRange
from tlog_client.bulk import leaf_hashes, root_of_level
from tlog_client.proof import consistency_nodes, inclusion_nodes, right_edge
from tlog_client.rekor import (EntryRef, InclusionProof, LogEntry,
                               entry_id_prefix, parse_entry_ref, set_payload, verify_set)
from tlog_client.tiles import (EntryBundle, Tile, encode_entry_bundle, parse_tile_path,
                               require_tile_in_tree, tile_path)
from tlog_client.tileverify import VerifiedLevel, verify_tile_in_tree
from tlog_client.verify import verify_consistency, verify_inclusion

from . import entrytypes, search
from .config import Config
from .connguard import ConnectionGuard
from .identity import LogIdentity
from .metrics import Metrics
from .ratelimit import WriteRateLimiter
from .hashcache import TileCache
from .responses import log_entry_json, render_log_entry
from .seal import entry_seal
from .sequencer import Integrated, PoolFullError, Sequencer, SequencerHaltedError
from .storage import (DamagedStorageError, NewEntry, ReadTxn, Storage, StorageAccessError,
                      StorageError, StoredCheckpoint, StoredEntry)
from .trustedhead import TrustedHead
from .offload import BusyError, Offload, job_cancelled
from .turnbatch import TurnBatch

log = logging.getLogger(__name__)

API = "/api/v1"
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT_LIVED = "public, max-age=2"
# Submissions parsed back to back in an HTTP worker process (tlog.turnbatch):
# each run's entries go to the sequencer process before the next run, so it
# gets them in a steady stream (both cores, --workers 2: the machine 11 % idle
# with unbounded runs, 7 % with runs of 16). In one process, where the writer
# thread shares the interpreter lock, unbounded runs make the larger batches
# (one core, 128 clients: 2,440-2,570/s against 2,130 with runs of 16).
PARSE_RUN = 16
# A hashedrekord entry of at most SMALL_ENTRY bytes is parsed and checked
# on the event loop, in runs of at most SMALL_RUN (tlog.turnbatch; with
# --workers, PARSE_RUN): its key (an SPKI, or one certificate: a chain does
# not fit) costs at most one chain link and one signature check, under 0.8 ms
# (P-521) here, so a run holds the loop at most about 25 ms. Handing those to a thread cost 12 % more CPU
# per entry and 13 % of the writes (--workers 2, both cores, 128 clients,
# 4 interleaved runs: 3,722/s against 4,304/s): each check there trades the
# interpreter lock with the loop. Every other submission goes to the thread.
SMALL_ENTRY = 2048
SMALL_RUN = 32
# Off the event loop (SPEC §10 U5, tlog.offload): one thread checks
# submissions (cryptography lets go of the interpreter lock while it
# verifies, so a second would buy little and contend for it while parsing),
# one runs searches, at most half of its time while more are waiting (a
# search's merge is Python, holding the lock: measured under 1,000
# concurrent searches, the unrelated reads' worst latency 63-78 ms against
# 52-170 ms with two threads unbounded, in 25 s phases; 230 MiB against
# 300). Their queues are bounded: above, 503 with Retry-After. Submissions
# waiting for the check thread hold their bodies: at most CHECK_QUEUE of
# them, CHECK_QUEUE_BYTES in all (one larger body is let in when none waits).
CHECK_THREADS = 1
CHECK_QUEUE = 1024
CHECK_QUEUE_BYTES = 64 << 20
SEARCH_THREADS = 1
SEARCH_SHARE = 0.5
SEARCH_QUEUE = 64
NEXT_CURSOR = "X-Tlog-Next-Cursor"
# A JSON body's values become Python objects of about 300 bytes each: 4 MiB
# of `{"a":1},` is 400,000 dicts, 130 MiB at once (0.9 s to parse) and kept
# by the allocator after. No submission or search needs more than a few
# dozen values; their bodies may hold at most this many (SPEC §10 U5).
MAX_JSON_VALUES = 10_000


class ApiError(Exception):
    """An error answered with ``{"code", "message"}`` and the given status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None):
    response = web.json_response({"code": status, "message": message}, status=status,
                                 headers=headers)
    if status in (408, 413, 429):
        # The body was not (fully) read: do not reuse the connection.
        response.force_close()
    return response


class LogApi:
    """The handlers, bound to one log."""

    def __init__(self, config: Config, storage: Storage, identity: LogIdentity,
                 sequencer: Sequencer, metrics: Metrics, heads: TrustedHead,
                 clock: Callable[[], float] = time.time, *, parse_run: int = 0) -> None:
        """``heads``: what this process verified (shared with its sequencer,
        or fed by the link in a worker); ``parse_run``: submissions parsed
        back to back at most (0: all that arrived in the turn); see
        :data:`PARSE_RUN`."""
        self.config = config
        self.storage = storage
        self.identity = identity
        self.sequencer = sequencer
        self.metrics = metrics
        self.heads = heads
        self._seal_key = identity.seal_key
        # Tiles proved part of the verified tree (full ones never change;
        # partial ones are the same at every later size for their width).
        self._tiles = TileCache()
        # The tree's level-8 nodes, proved against verified roots: a full
        # tile or bundle is then checked by hashing it alone (_verify_tile).
        self._level8 = VerifiedLevel()
        self._level8_failed = -1  # a head size at which they could not be proved
        self.clock = clock
        self.log_id = identity.log_id
        self._id_prefix = entry_id_prefix(identity.tree_id)
        self.write_limiter = WriteRateLimiter(config.write_rate, config.write_burst)
        # Submissions that arrive together are parsed and verified together,
        # collected until the end of the event-loop turn (see tlog.turnbatch:
        # the CPU caches), in the check thread (U5: off the loop), each run one
        # job; except small hashedrekord entries (below), whose bounded runs
        # stay on the loop. Two passes: every submission of a run parsed, then
        # their signatures checked back to back (tlog.turnbatch).
        self.checks = Offload("check", threads=CHECK_THREADS, max_items=CHECK_QUEUE,
                              max_bytes=CHECK_QUEUE_BYTES)
        self.searches = Offload("search", threads=SEARCH_THREADS, max_items=SEARCH_QUEUE,
                                share=SEARCH_SHARE)
        self.entry_parsing: TurnBatch[bytes, entrytypes.Check] = TurnBatch(
            self._prepare_entry, max_items=parse_run, then=_run_check, offload=self.checks,
            size_of=len)
        # Small hashedrekord entries (the bulk of a build system's writes)
        # stay on the loop, where their checks cost least; see SMALL_ENTRY.
        metrics.watch_queues(self.checks, self.searches)
        self.small_entries: TurnBatch[object, entrytypes.Check] = TurnBatch(
            self._prepare_parsed, max_items=min(parse_run or SMALL_RUN, SMALL_RUN),
            then=_run_check)

    # -- entries -----------------------------------------------------------------

    async def create_entry(self, request: web.Request) -> web.Response:
        self._check_write_rate(request)
        # Cancelled here (the client went away: aiohttp cancels the handler),
        # the check is skipped if it has not run yet. From submit() on the
        # entry is the sequencer's: queued before the first await, it is
        # integrated whatever happens to this handler. (No local holds the
        # body or the future: see _off_loop.)
        entry = await self._checked(await self._body(request))
        # No pre-check for a duplicate here: the batch asks the database
        # once for all its entries (I4), and a repeat comes back as one.
        started = time.perf_counter()
        try:
            done = await self.sequencer.submit(entry)
        except PoolFullError:
            raise ApiError(503, "the log is busy: too many pending submissions",
                           {"Retry-After": "1"}) from None
        except SequencerHaltedError as exc:
            raise ApiError(503, f"the log is not accepting entries: {exc}",
                           {"Retry-After": "30"}) from None
        except StorageError:
            # The batch was rolled back (disk full, I/O error): not logged.
            raise ApiError(503, "the log could not store the entry (storage failure); "
                                "it is not logged: try again later",
                           {"Retry-After": "5"}) from None
        if done.duplicate:
            raise self._conflict(entry.leaf_hash)
        self.metrics.observe_submission(time.perf_counter() - started)
        uuid = entry.leaf_hash.hex()
        return web.Response(body=self._submission_json(entry, done, uuid), status=201,
                            content_type="application/json", headers={
            "Location": f"{API}/log/entries/{uuid}", "ETag": f'"{uuid}"'})

    def _checked(self, body: bytes) -> asyncio.Future:
        """The future of ``body`` parsed and checked as a proposed entry
        (tlog.turnbatch): a small hashedrekord entry on the loop, any other
        in the check thread; 503 at once when its queue is full."""
        if len(body) <= SMALL_ENTRY:
            obj = self._loads(body)
            if isinstance(obj, dict) and obj.get("kind") == hashedrekord.KIND:
                return self.small_entries.run(obj)
        try:
            return self.entry_parsing.run(body)
        except BusyError:
            raise ApiError(503, "the log is busy: too many submissions are waiting for their "
                                "signature check", {"Retry-After": "1"}) from None

    def _prepare_entry(self, data: bytes) -> entrytypes.Check:
        """A request body parsed as a proposed entry; its check (the
        signature) still to run (:func:`_run_check`)."""
        return entrytypes.prepare_proposed(self._loads(data), self.config)

    def _prepare_parsed(self, obj: object) -> entrytypes.Check:
        """:meth:`_prepare_entry` of a body already parsed."""
        return entrytypes.prepare_proposed(obj, self.config)

    def _submission_json(self, entry: NewEntry, done: Integrated, uuid: str) -> bytes:
        """The LogEntry answering a submission, rendered from its parts (the
        hot path: no LogEntry or proof objects are built for it). ``uuid``
        is ``entry.leaf_hash.hex()``, so the EntryID needs no check."""
        cp = done.checkpoint
        body_b64 = b64encode_std(entry.body)
        return render_log_entry(
            self._id_prefix + uuid, body_b64, done.integrated_time,
            self.log_id, done.index, cp.root, cp.size, done.proof, cp.note.decode(),
            self._set_signature(done.set_signature, body_b64, done.integrated_time,
                                done.index), entry.attestation)

    def _check_write_rate(self, request: web.Request) -> None:
        if not self.write_limiter.enabled:  # the default: no peer address lookup
            return
        wait = self.write_limiter.take(request.remote)
        if wait is not None:
            raise ApiError(429, f"too many entries from this client: the limit is "
                                f"{self.config.write_rate:g} per second (bursts of "
                                f"{self.config.write_burst}); retry after {wait} s",
                           {"Retry-After": str(wait)})

    def _conflict(self, leaf_hash: bytes) -> ApiError:
        uuid = leaf_hash.hex()
        return ApiError(409, f"an equivalent entry already exists in the log with UUID {uuid}",
                        {"Location": f"{API}/log/entries/{uuid}"})

    def _head(self, snap: ReadTxn) -> StoredCheckpoint:
        """The head to answer with in ``snap``: one this process verified."""
        return self.heads.check(snap.head(), snap)

    async def get_entry_by_index(self, request: web.Request) -> web.Response:
        index = _query_int(request, "logIndex", required=True)
        with self.storage.snapshot() as snap:
            head = self._head(snap)
            if index >= head.size:  # U3: storage is not asked beyond the tree
                raise ApiError(404, f"logIndex {index} is not in the log")
            body = self._entry_json(snap, head, snap.entry(index), f"logIndex {index}")
        return web.Response(body=body, content_type="application/json")

    async def get_entry_by_uuid(self, request: web.Request) -> web.Response:
        ref = parse_entry_ref(request.match_info["uuid"], "entryUUID")
        with self.storage.snapshot() as snap:
            head = self._head(snap)
            body = self._entry_json(snap, head, self._lookup_ref(snap, ref),
                                    f"entry {ref.uuid}")
        return web.Response(body=body, content_type="application/json")

    async def retrieve_entries(self, request: web.Request) -> web.Response:
        obj = expect_object(await self._json_body(request), "body",
                            optional=("entryUUIDs", "logIndexes", "entries"))
        # .get(name, []), not `or []`: false, 0, "" and {} are type errors.
        uuids = expect_list(obj.get("entryUUIDs", []), "entryUUIDs")
        indexes = expect_list(obj.get("logIndexes", []), "logIndexes")
        proposed = expect_list(obj.get("entries", []), "entries")
        if len(uuids) + len(indexes) + len(proposed) > self.config.max_retrieve:
            raise ApiError(422, f"at most {self.config.max_retrieve} entryUUIDs, logIndexes "
                                "and entries in all")
        refs = [parse_entry_ref(u, f"entryUUIDs[{i}]") for i, u in enumerate(uuids)]
        idxs = [_json_index(v, f"logIndexes[{i}]") for i, v in enumerate(indexes)]
        hashes = [e.leaf_hash for e in await self._off_loop(
            self.checks, _proposed_list, proposed, self.config, items=len(proposed))
                  ] if proposed else []
        out = []
        with self.storage.snapshot() as snap:
            head = self._head(snap)
            found = [self._lookup_ref(snap, r) for r in refs]
            found += [snap.entry(i) for i in idxs if i < head.size]
            found += [_entry_by_hash(snap, h) for h in hashes]
            for stored in found:
                if stored is not None and stored.index < head.size:
                    out.append(self._log_entry_in(snap, head, stored).to_json())
        return web.json_response(out)

    def _lookup_ref(self, snap: ReadTxn, ref: EntryRef) -> StoredEntry | None:
        if ref.tree_id is not None and ref.tree_id != self.identity.tree_id:
            return None
        return _entry_by_hash(snap, bytes.fromhex(ref.uuid))

    def _entry_json(self, snap: ReadTxn, head: StoredCheckpoint, stored: StoredEntry | None,
                    what: str) -> bytes:
        if stored is None or stored.index >= head.size:
            raise ApiError(404, f"{what} is not in the log")
        return log_entry_json(self._log_entry_in(snap, head, stored))

    def _log_entry_in(self, snap: ReadTxn, head: StoredCheckpoint,
                      stored: StoredEntry) -> LogEntry:
        """The entry with an inclusion proof at ``head``, from one snapshot (I8).

        Checked before it is served, as it is cheap (one leaf hash, O(log n)
        node hashes, one keyed hash): the stored body hashes to the stored
        leaf hash (I3), the proof leads to the verified root, and the SET,
        time and attestation are the ones the log stored (the seal; a row
        without one has its SET verified). Damaged storage is a 500 naming
        the entry, never a proof or SET that does not verify (U2)."""
        index = stored.index
        what = f"stored entry {index}"
        try:
            hashes = snap.proof(inclusion_nodes(index, head.size))
        except StorageError as exc:
            raise DamagedStorageError(what, f"a node of its inclusion proof: {exc}") from None
        body_b64 = b64encode_std(stored.body)
        try:
            if leaf_hash(stored.body) != stored.leaf_hash:
                raise VerificationError("the stored body does not hash to its leaf hash (I3)")
            verify_inclusion(index, head.size, stored.leaf_hash, hashes, head.root)
        except VerificationError as exc:
            raise DamagedStorageError(what, str(exc)) from None
        signature = self._checked_set(stored, body_b64, what)
        proof = InclusionProof(index, head.root, head.size, tuple(hashes), head.note.decode())
        ref = EntryRef(stored.leaf_hash.hex(), self.identity.tree_id)
        return LogEntry(ref, stored.body, stored.integrated_time, self.log_id, index,
                        proof, signature, stored.attestation)

    def _checked_set(self, stored: StoredEntry, body_b64: str, what: str) -> bytes:
        """The entry's SET, once its row is known to be the one the log wrote
        (U2): the seal matches (about 1.5 us), or, for a row stored before
        seals (schema 3), the SET verifies under the log key; a row stored
        before SETs (schema 2) gets one signed now."""
        if stored.seal is not None:
            if entry_seal(self._seal_key, stored.index, stored.integrated_time,
                          stored.leaf_hash, stored.kind, stored.set_signature,
                          stored.attestation) != stored.seal:
                raise DamagedStorageError(what, "its SET, integrated time, kind or attestation "
                                                "is not what the log stored (the row's seal "
                                                "does not match)")
            if stored.set_signature is not None:
                return stored.set_signature
        _check_unsealed_attestation(stored, what)
        if stored.set_signature is not None:
            try:
                verify_set(self.identity.public_key, stored.set_signature,
                           set_payload(body_b64, stored.integrated_time, self.log_id,
                                       stored.index))
            except TlogError as exc:
                raise DamagedStorageError(what, f"its stored SET does not verify: {exc}"
                                          ) from None
            return stored.set_signature
        return self._set_signature(None, body_b64, stored.integrated_time, stored.index)

    def _set_signature(self, stored: bytes | None, body_b64: str, integrated_time: int,
                       index: int) -> bytes:
        """The SET signed at integration (fsck verifies stored ones); for an
        entry of a log older than schema 2 (none stored), signed now."""
        if stored is not None:
            return stored
        return self.identity.sign_set(set_payload(body_b64, integrated_time, self.log_id, index))

    # -- log info and proofs ----------------------------------------------------------

    async def log_info(self, request: web.Request) -> web.Response:
        with self.storage.snapshot() as snap:
            head = self._head(snap)
        return web.json_response({
            "rootHash": head.root.hex(), "treeSize": head.size,
            "signedTreeHead": head.note.decode(), "treeID": str(self.identity.tree_id)})

    async def consistency_proof(self, request: web.Request) -> web.Response:
        first = _query_int(request, "firstSize", required=False)
        last = _query_int(request, "lastSize", required=True)
        first = 1 if first is None else first
        if last < 1:
            raise ApiError(400, "lastSize: must be at least 1")
        with self.storage.snapshot() as snap:
            head = self._head(snap)
            if last > head.size:
                raise ApiError(400, f"lastSize {last} is beyond the tree size {head.size}")
            if first < 1 or first > last:
                raise ApiError(400, f"firstSize {first} must be in [1, lastSize={last}]")
            root, hashes = _checked_consistency(snap, head, first, last)
        return web.json_response({"rootHash": root.hex(), "hashes": [h.hex() for h in hashes]})

    async def public_key(self, request: web.Request) -> web.Response:
        return web.Response(text=self.identity.public_pem, content_type="application/x-pem-file")

    # -- search -------------------------------------------------------------------

    async def search_index(self, request: web.Request) -> web.Response:
        """One page of EntryIDs (Rekor's answer: a JSON array) and, when
        more may follow, the cursor of the next in the X-Tlog-Next-Cursor
        header (and a Link header naming it). Parsed and run in a search
        thread (the body's JSON and a publicKey's chain too): cancelled,
        the search stops at its next index query, or never starts."""
        ids, after, query = await self._off_loop(self.searches, self._search_page,
                                                 await self._body(request))
        headers = {}
        if after is not None:
            cursor = search.cursor(query, after)
            headers[NEXT_CURSOR] = cursor
            headers["Link"] = f'<{API}/index/retrieve>; rel="next"; cursor="{cursor}"'
        return web.Response(body=ids, content_type="application/json", headers=headers)

    def _search_page(self, data: bytes) -> tuple[bytes, int | None, search.Query]:
        """In a search thread: the page ``data`` asks for, as the JSON array
        of its EntryIDs, the index the next page starts after (None: the
        last page) and the query."""
        request = search.parse_request(self._loads(data), self.config)
        with self.storage.snapshot() as snap:
            head = self._head(snap)
            page = search.run(snap, request.query, request.after, self.config.search_page,
                              head.size, job_cancelled)
            if job_cancelled():  # the client left while the index was read
                raise search.SearchAbandoned()
            leaves = _leaf_hashes(snap, page.indexes)
        # EntryIDs are hex: the JSON array needs no escaping.
        prefix = self._id_prefix
        ids = ('["' + '","'.join([prefix + h.hex() for h in leaves]) + '"]' if leaves
               else "[]").encode()
        return ids, page.next_after, request.query

    def _off_loop(self, offload: Offload, fn: Callable, *args: object,
                  items: int = 1) -> asyncio.Future:
        """The future of ``fn(*args)`` run by ``offload``; 503 with
        Retry-After at once when its queue is full.

        Await it in the expression that makes it, with no local holding it
        or the request body: the exception it may raise holds the awaiting
        frame in its traceback, and a frame holding the future (which holds
        the exception) is a reference cycle that keeps the body alive until
        a full garbage collection (measured: 4 MB bodies refused one after
        another grew two HTTP workers to 2 GB each)."""
        try:
            return offload.run(fn, *args, items=items)
        except BusyError:
            raise ApiError(503, f"the log is busy: too many {offload.name} requests are "
                                "waiting; try again", {"Retry-After": "1"}) from None

    # -- tiles (c2sp.org/tlog-tiles) -------------------------------------------------

    async def checkpoint(self, request: web.Request) -> web.Response:
        with self.storage.snapshot() as snap:
            head = self._head(snap)
        return web.Response(body=head.note, content_type="text/plain", charset="utf-8",
                            headers={"Cache-Control": SHORT_LIVED})

    async def tile(self, request: web.Request) -> web.Response:
        try:
            tile = parse_tile_path("tile/" + request.match_info["path"])
        except FormatError as exc:
            raise ApiError(404, f"no such tile: {exc}") from None
        cache = IMMUTABLE if tile.width == 256 else SHORT_LIVED
        if isinstance(tile, Tile):  # one verified before needs no snapshot
            key = (tile.level, tile.index, tile.width)
            data = self._tiles.get(key) or self._stored_full_tile(tile)
            if data is not None:
                return web.Response(body=data, content_type="application/octet-stream",
                                    headers={"Cache-Control": cache})
        with self.storage.snapshot() as snap:
            head = self._head(snap)
            try:  # U3: the coordinates before storage is asked
                require_tile_in_tree(tile, head.size)
            except FormatError as exc:
                raise ApiError(404, f"tile is beyond the tree: {exc}") from None
            if isinstance(tile, EntryBundle):
                bodies = snap.bodies(tile.index * 256, tile.width)
                self._verify_tile(snap, head, tile, leaf_hashes(bodies)
                                  if len(bodies) == tile.width else b"")
                data = encode_entry_bundle(bodies)
            else:
                data = snap.hash_tile(tile.level, tile.index, tile.width)
                self._verify_tile(snap, head, tile, data)
                self._tiles.put(key, data)
        return web.Response(body=data, content_type="application/octet-stream",
                            headers={"Cache-Control": cache})

    def _stored_full_tile(self, tile: Tile) -> bytes | None:
        """A full level-0 or level-1 tile whose level-8 nodes are already
        proved (so it is in the tree: U3), read as stored, without a
        snapshot (a full tile never changes), and checked against them; None
        when it is not such a tile, or is not stored whole (then the
        snapshot path reads and checks it)."""
        level8 = self._level8
        if tile.width != 256 or tile.level > 1 or \
                level8.count < (tile.index + 1) * (256 if tile.level else 1):
            return None
        data = self.storage.stored_full_tile(tile.level, tile.index)
        if data is None:
            return None
        proved = level8.nodes(tile.index * 256, 256) if tile.level else level8.node(tile.index)
        if (data if tile.level else root_of_level(data)) != proved:
            raise DamagedStorageError(f"stored tile {tile_path(tile)}",
                                      "it does not hash to the tree's proved level-8 nodes")
        self._tiles.put((tile.level, tile.index, 256), data)
        return data

    def _verify_tile(self, snap: ReadTxn, head: StoredCheckpoint, tile: Tile | EntryBundle,
                     hashes: bytes) -> None:
        """U2: ``hashes`` (the tile's, or the bundle entries' leaf hashes)
        belong to the verified tree: a full level-0 tile or bundle hashes
        to its proved level-8 node, a level-1 tile is a run of them
        (:class:`VerifiedLevel`, about 30 us); anything else, or while the
        level cannot be proved, folds with the snapshot's other nodes into
        the verified root (:func:`verify_tile_in_tree`, about 190 us)."""
        level = 0 if isinstance(tile, EntryBundle) else tile.level
        if level <= 1 and (level == 1 or tile.width == 256):
            first, count = (tile.index, 1) if level == 0 else (tile.index * 256, tile.width)
            if self._prove_level8(snap, head, first + count):
                proved = self._level8.nodes(first, count)
                if (root_of_level(hashes) if level == 0 else hashes) == proved:
                    return
                what = "entry bundle" if isinstance(tile, EntryBundle) else "tile"
                raise DamagedStorageError(f"stored {what} {tile_path(tile)}",
                                          "it does not hash to the tree's proved level-8 "
                                          "nodes")
        try:
            verify_tile_in_tree(tile, hashes, head.size, head.root, snap)
        except (TlogError, StorageError) as exc:
            what = "entry bundle" if isinstance(tile, EntryBundle) else "tile"
            raise DamagedStorageError(f"stored {what} {tile_path(tile)}", str(exc)) from None

    def _prove_level8(self, snap: ReadTxn, head: StoredCheckpoint, count: int) -> bool:
        """Whether the level-8 nodes ``0 .. count-1`` are proved, proving
        the new ones of ``head`` (read in ``snap``) if need be: one range
        read and about one hash per node (256 leaves), once. False when
        ``head`` does not have them, or its nodes do not prove (damaged:
        each tile is then checked on its own, and only what is damaged
        fails)."""
        level8 = self._level8
        if level8.count >= count:
            return True
        if head.size >> 8 < count or head.size <= level8.size \
                or head.size == self._level8_failed:
            return False
        first, end, lower = level8.needed(head.size)
        try:
            level8.extend(head.size, head.root, snap.level_hashes(8, first, end - first),
                          snap.read_hashes(lower))
        except (TlogError, StorageError) as exc:
            self._level8_failed = head.size
            log.error("damaged storage: the stored level-8 nodes do not prove against the "
                      "checkpoint of size %d (%s); tiles are checked one by one; run tlog fsck",
                      head.size, exc)
            return False
        return True

    # -- operations -----------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        halted = self.heads.halted or self.sequencer.halted
        if halted:
            return web.json_response({"status": "halted", "reason": halted}, status=503)
        return web.json_response({"status": "ok", "treeSize": self._verified_size()})

    def _verified_size(self) -> int:
        """The size of the largest checkpoint this process verified (read
        from storage, verified, if it has none yet)."""
        if self.heads.latest is None:
            with self.storage.snapshot() as snap:
                self._head(snap)
        return self.heads.latest.size

    async def metrics_handler(self, request: web.Request) -> web.Response:
        self.metrics.set_state(self._verified_size(), self.sequencer.pending)
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    # -- request parsing ---------------------------------------------------------------

    async def _json_body(self, request: web.Request) -> object:
        return self._loads(await self._body(request))

    def _loads(self, data: bytes) -> object:
        """A request body parsed strictly, bounded in values (every JSON
        body the API reads: submissions, retrieve, search)."""
        _check_json_values(data)
        return loads_strict(data, max_depth=self.config.max_json_depth,
                            max_size=self.config.max_body)

    async def _body(self, request: web.Request) -> bytes:
        """The body of a JSON request (SPEC §6: its Content-Type, no
        Content-Encoding, at most the size limit, within the read timeout)."""
        if request.headers.get("Content-Encoding", "identity").lower() != "identity":
            raise ApiError(415, "Content-Encoding: compressed request bodies are refused")
        if request.content_type != "application/json":
            raise ApiError(415, f"Content-Type: expected application/json, "
                                f"got {request.content_type}")
        if request.content_length is not None and request.content_length > self.config.max_body:
            raise ApiError(413, f"body: Content-Length {request.content_length} is over the "
                                f"limit of {self.config.max_body} bytes")
        try:
            if request.content.is_eof():  # the whole body came with the headers
                return await request.read()
            async with asyncio.timeout(self.config.read_timeout_s):
                return await request.read()
        except TimeoutError:
            raise ApiError(408, f"body: not received within {self.config.read_timeout_s:g} s"
                           ) from None


def _entry_by_hash(snap: ReadTxn, leaf_hash: bytes) -> StoredEntry | None:
    index = snap.index_of(leaf_hash)
    return None if index is None else snap.entry(index)


# Where the leaf of each attestation-carrying kind records SHA-256 of its envelope.
_ENVELOPE_HASH = {"dsse": ("spec", "envelopeHash", "value"),
                  "intoto": ("spec", "content", "hash", "value")}


def _check_unsealed_attestation(stored: StoredEntry, what: str) -> None:
    """For a row stored before seals (schema 3): its attestation is the
    envelope its leaf names by hash (SHA-256), or there is none; else
    DamagedStorageError. Parses the body: only such older rows pay for it."""
    path = _ENVELOPE_HASH.get(stored.kind)
    if stored.attestation is None and path is None:
        return
    try:
        value: object = loads_strict(stored.body)
        for name in path or ():
            value = value[name]  # type: ignore[index]
    except (TlogError, KeyError, TypeError):
        value = None
    if stored.attestation is None or value != sha256(stored.attestation).hex():
        raise DamagedStorageError(what, "its attestation is not the envelope its leaf names")


def _root_from_nodes(snap: ReadTxn, size: int) -> bytes:
    """The root of the tree of ``size`` leaves folded from the stored nodes
    (unchecked: the caller proves it against a verified root)."""
    return CompactRange.from_hashes(0, size, snap.read_hashes(right_edge(size))).root()


def _checked_consistency(snap: ReadTxn, head: StoredCheckpoint, first: int, last: int
                         ) -> tuple[bytes, list[bytes]]:
    """The root at ``last`` and the consistency proof ``first -> last``,
    both proved before they are served (U2): the root at ``last`` is the
    verified head's, or is proved consistent with it; the proof verifies
    between the stored roots at ``first`` and ``last`` (any wrong node makes
    one of them fail: the head's root binds them all). DamagedStorageError
    otherwise. Preconditions: 1 <= first <= last <= head.size."""
    try:
        root = head.root
        if last < head.size:
            root = _root_from_nodes(snap, last)
            up = snap.proof(consistency_nodes(last, head.size))
            verify_consistency(last, head.size, root, head.root, up)
        hashes = snap.proof(consistency_nodes(first, last))
        if first < last:
            verify_consistency(first, last, _root_from_nodes(snap, first), root, hashes)
    except (TlogError, StorageError) as exc:
        raise DamagedStorageError(f"the stored tree between sizes {first} and {last}",
                                  f"its consistency proof does not verify: {exc}") from None
    return root, hashes


def _query_int(request: web.Request, name: str, *, required: bool) -> int | None:
    values = request.query.getall(name, [])
    if not values:
        if required:
            raise ApiError(400, f"{name}: query parameter is required")
        return None
    if len(values) > 1:
        raise ApiError(400, f"{name}: given more than once")
    return parse_decimal(values[0], name)


def _json_index(value: object, field: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_INT64:
        raise FormatError(field, "must be an integer in [0, 2^63-1]")
    return value


def _leaf_hashes(snap: ReadTxn, indexes: list[int]) -> list[bytes]:
    """The leaf hashes of entries ``indexes`` (ascending), from the tree's
    own level-0 nodes: no entry body (a dsse entry's attestation can be
    megabytes) is read. Close together (a page of a common key), one range
    read of the span; else one lookup per node."""
    if not indexes:
        return []
    first, span = indexes[0], indexes[-1] - indexes[0] + 1
    if span <= 4 * len(indexes):
        data = snap.level_hashes(0, first, span)
        if len(data) == 32 * span:
            return [data[32 * (i - first):32 * (i - first + 1)] for i in indexes]
    return snap.read_hashes([(0, i) for i in indexes])


def _check_json_values(data: bytes) -> None:
    """FormatError naming ``body`` if ``data`` may hold more than
    MAX_JSON_VALUES JSON values, before it is parsed. Each value but the
    first follows a comma or opens a container, so commas, braces and
    brackets bound them (those inside strings counted too: a safe excess)."""
    count = data.count(b",") + data.count(b"{") + data.count(b"[")
    if count > MAX_JSON_VALUES:
        raise FormatError("body", f"holds {count:,} commas, braces and brackets; a request "
                                  f"may hold at most {MAX_JSON_VALUES:,} JSON values")


def _run_check(check: entrytypes.Check) -> NewEntry:
    """The second pass of a parsing run: the entry, its signature verified."""
    return check()


def _proposed_list(items: list[object], config: Config) -> list[NewEntry]:
    """The proposed entries of a retrieve request, parsed and verified (in
    the check thread)."""
    return [_proposed_in_list(p, f"entries[{i}]", config) for i, p in enumerate(items)]


def _proposed_in_list(obj: object, where: str, config: Config) -> NewEntry:
    """Parse a proposed entry that is an element of a request list; errors
    name the element (``entries[3].spec.signature.content``)."""
    try:
        return entrytypes.parse_proposed(obj, config)
    except FormatError as exc:
        field = where if exc.field in ("", "body") else f"{where}.{exc.field}"
        raise type(exc)(field, exc.reason) from None
    except VerificationError as exc:
        raise type(exc)(f"{where}: {exc}") from None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_request_middleware(metrics: Metrics, guard: ConnectionGuard):
    """The one middleware: tells the slow-client ``guard`` when a request
    starts and ends, answers errors in JSON and counts the request. One
    coroutine rather than one per concern: each middleware is a frame more
    on every request (canned responses: about 3 us less per request than
    with two, 5 interleaved pairs)."""
    @web.middleware
    async def serve(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        guard.request_started(transport)
        try:
            response = await handler(request)
        except Exception as exc:
            response = _error_answer(request, exc, metrics)
        finally:
            guard.request_finished(transport)
        resource = request.match_info.route.resource
        metrics.count_request(request.method, resource.canonical if resource else "none",
                              response.status)
        return response
    return serve


def _error_answer(request: web.Request, exc: Exception, metrics: Metrics) -> web.Response:
    """The JSON answer to a handler's exception (called in its ``except``
    block): 4xx for bad requests, 500 naming damaged storage (counted), 500
    for a bug (logged). Re-raises an HTTPException below 400 (a redirect),
    which aiohttp answers itself."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.message, exc.headers)
    if isinstance(exc, StorageAccessError):  # the file went away or is locked: not damage
        log.error("storage unavailable on %s %s: %s", request.method, request.path[:200], exc)
        return error_response(503, f"{exc}; try again later", {"Retry-After": "5"})
    if isinstance(exc, DamagedStorageError):
        metrics.count_damage(exc.what)
        log.error("damaged storage on %s %s: %s; run tlog fsck", request.method,
                  request.path[:200], exc)
        return error_response(500, f"{exc}; the log's storage is damaged (the operator must "
                                   "run tlog fsck)")
    if isinstance(exc, entrytypes.EntryTooLargeError):
        return error_response(413, str(exc))
    if isinstance(exc, TlogError):  # FormatError, VerificationError and the rest
        return error_response(400, str(exc))
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        # Keep headers such as Allow (405); the body is our JSON, so the
        # exception's own Content-Type/Length must not be copied.
        headers = {k: v for k, v in exc.headers.items()
                   if k.lower() not in ("content-type", "content-length")}
        message = {404: f"no route {request.method} {request.path[:200]}",
                   405: f"method {request.method} is not allowed on "
                        f"{request.path[:200]}"}.get(exc.status, exc.reason)
        return error_response(exc.status, message, headers)
    log.exception("internal error on %s %s", request.method, request.path)
    return error_response(500, "internal error")


def add_routes(app: web.Application, api: LogApi) -> None:
    """Every route with and without a trailing slash (SPEC §6)."""
    routes = [
        ("POST", f"{API}/log/entries", api.create_entry),
        ("GET", f"{API}/log/entries", api.get_entry_by_index),
        ("POST", f"{API}/log/entries/retrieve", api.retrieve_entries),
        ("GET", f"{API}/log/entries/{{uuid}}", api.get_entry_by_uuid),
        ("GET", f"{API}/log", api.log_info),
        ("GET", f"{API}/log/proof", api.consistency_proof),
        ("GET", f"{API}/log/publicKey", api.public_key),
        ("POST", f"{API}/index/retrieve", api.search_index),
        ("GET", "/checkpoint", api.checkpoint),
        ("GET", "/healthz", api.healthz),
        ("GET", "/metrics", api.metrics_handler),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, path + "/", handler)
    app.router.add_route("GET", "/tile/{path:.+}", api.tile)
