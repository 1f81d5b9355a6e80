"""The log client: every value it hands back has been verified (SPEC §7).

:class:`LogClient` talks to a tlog (or Rekor v1) log over HTTP with aiohttp
and trusts nothing the log says until it is verified against the PINNED log
key given at construction (never a key fetched from the log):

- checkpoints are signature-verified, checked for consistency with the trusted
  state (a consistency proof from the last trusted checkpoint) and advance it;
- entries go through the whole recipe of :mod:`tlog_client.entryverify`; a
  search hit is returned only after its entry is fetched, verified and found to
  match the query;
- proofs come from the JSON API or are computed from tiles that are first
  verified against a checkpoint (:mod:`tlog_client.tileverify`); either way
  they are verified before they are returned.

:class:`SyncLogClient` is a small synchronous facade running its own event
loop. HTTP and network failures raise :class:`ClientError` subclasses;
verification failures raise :class:`~tlog_client.errors.VerificationError`
subclasses naming the binding that failed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from .bindings import CheckpointMismatchError, ResponseMismatchError
from .encoding import b64encode_std, hex_decode_lower, parse_decimal
from .entryverify import Expectations, VerifiedEntry, verify_entry
from .errors import FormatError
from .hashing import HASH_SIZE
from .transport import (MAX_RESPONSE, ClientError, EntryNotFoundError, HttpTransport, LogAPIError,
                   LogUnavailableError)
from .jsonstrict import expect_list, expect_object, expect_str, loads_strict
from .match import Watch, entry_facts, normalize_digest
from .proof import consistency_nodes, inclusion_nodes
from .rekor import LogEntry, parse_entry_ref, parse_log_entry
from .submit import Submitter
from .state import StateError, StateStore, check_consistency, proof_sizes
from .tiles import EntryBundle, Tile, tile_path, tile_width
from .tileverify import VerifiedTiles, tiles_to_fetch, verify_entry_bundle, verify_tiles
from .trust import LogPublicKey, PinnedLog, VerifiedCheckpoint
from .verify import verify_inclusion

__all__ = ["ClientError", "ConsistencyResult", "EntryNotFoundError", "InclusionResult",
           "LogAPIError", "LogClient", "LogInfo", "LogUnavailableError", "SearchTooLongError",
           "SyncLogClient"]

RETRIEVE_BATCH = 10
SEARCH_PAGES = 100
"""Most search answers (pages) :meth:`LogClient.search` follows by default."""
NEXT_CURSOR = "x-tlog-next-cursor"
"""The header a tlog search answer names its next page's cursor in."""


class SearchTooLongError(ClientError):
    """A search has more pages than the caller allowed (``max_pages``)."""
TILE_CACHE_BYTES = 32 << 20
API = "/api/v1"


@dataclass(frozen=True)
class LogInfo:
    """``GET /api/v1/log``: the verified signed tree head, and the treeID
    (unsigned: only used to spell EntryIDs)."""

    checkpoint: VerifiedCheckpoint
    tree_id: int


@dataclass(frozen=True)
class InclusionResult:
    """A verified inclusion proof of leaf ``index`` in ``checkpoint``'s tree."""

    index: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: VerifiedCheckpoint
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"logIndex": self.index, "leafHash": self.leaf_hash.hex(),
                "treeSize": self.checkpoint.size, "rootHash": self.checkpoint.root_hash.hex(),
                "hashes": [h.hex() for h in self.hashes], "source": self.source}


@dataclass(frozen=True)
class ConsistencyResult:
    """A verified consistency proof from ``old`` to ``new``."""

    old: VerifiedCheckpoint
    new: VerifiedCheckpoint
    hashes: tuple[bytes, ...]
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"firstSize": self.old.size, "firstRoot": self.old.root_hash.hex(),
                "lastSize": self.new.size, "lastRoot": self.new.root_hash.hex(),
                "hashes": [h.hex() for h in self.hashes], "source": self.source}


class LogClient(Submitter):
    """Async client of one log, pinned to its key.

    ``log_key``: the log's public key (PEM bytes/str or key object).
    ``state_path``: the trusted-state file (None: state kept in memory for
    this client's lifetime). ``origin``: the log's origin, if known; else
    learnt from the first checkpoint verified under the pinned key.
    ``proof_source``: "api" (JSON API) or "tiles" for consistency proofs
    needed to advance the state. Use as ``async with LogClient(...) as c``."""

    def __init__(self, url: str, log_key: bytes | str | LogPublicKey,
                 state_path: str | os.PathLike[str] | None = None, *,
                 origin: str | None = None, proof_source: str = "api",
                 timeout: float = 30.0, concurrency: int = 16, retries: int = 4,
                 session: aiohttp.ClientSession | None = None) -> None:
        if proof_source not in ("api", "tiles"):
            raise ValueError("proof_source is 'api' or 'tiles'")
        self.url = url.rstrip("/")
        self.pinned = PinnedLog(log_key, origin)
        self.store = StateStore(state_path) if state_path is not None else None
        if origin is None and self.store is not None:
            known = self.store.origin_of(self.pinned.log_id)
            if known is not None:
                self.pinned = PinnedLog(self.pinned.public_key, known)
        self.proof_source = proof_source
        self.http = HttpTransport(url, timeout=timeout, concurrency=concurrency,
                                  retries=retries, session=session)
        self._state_lock: asyncio.Lock | None = None
        self._memory: dict[str, VerifiedCheckpoint] = {}
        self._tiles: dict[Tile | EntryBundle, bytes] = {}
        self._tile_bytes = 0

    async def __aenter__(self) -> "LogClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.close()

    # -- HTTP ---------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any
                       ) -> tuple[int, dict[str, str], bytes]:
        return await self.http.request(method, path, **kwargs)

    async def _get_json(self, path: str, params: dict[str, str] | None = None) -> object:
        _, _, payload = await self._request("GET", path, params=params)
        return loads_strict(payload, max_size=MAX_RESPONSE)

    # -- checkpoints and trusted state ------------------------------------------

    def trusted_checkpoint(self) -> VerifiedCheckpoint | None:
        """The trusted checkpoint (re-verified from the state file), or None."""
        if self.pinned.origin is None:
            return None
        if self.store is not None:
            return self.store.get(self.pinned)
        return self._memory.get(self.pinned.origin)

    async def fetch_checkpoint(self) -> VerifiedCheckpoint:
        """``GET /checkpoint``, signature-verified under the pinned key (the
        trusted state is neither checked nor advanced: see :meth:`checkpoint`)."""
        _, _, note = await self._request("GET", "/checkpoint")
        return self.pinned.open_checkpoint(note)

    async def checkpoint(self) -> VerifiedCheckpoint:
        """The log's current checkpoint: fetched, signature-verified with the
        pinned key, proved consistent with the trusted state, which it then
        advances. Raises SplitViewError / InconsistentCheckpointError."""
        cp = await self.fetch_checkpoint()
        await self.accept_checkpoint(cp)
        return cp

    async def log_info(self) -> LogInfo:
        """``GET /api/v1/log``: the signed tree head verified and accepted
        like :meth:`checkpoint`; treeSize and rootHash must be its own."""
        obj = expect_object(await self._get_json(f"{API}/log"), "log",
                            required=("rootHash", "treeSize", "signedTreeHead", "treeID"),
                            optional=("inactiveShards",))
        cp = self.pinned.open_checkpoint(expect_str(obj["signedTreeHead"], "signedTreeHead"))
        root = hex_decode_lower(expect_str(obj["rootHash"], "rootHash"), "rootHash",
                                length=HASH_SIZE)
        if obj["treeSize"] != cp.size or root != cp.root_hash:
            raise CheckpointMismatchError("GET /api/v1/log: treeSize/rootHash are not those of "
                                          "its signed tree head")
        tree_id = parse_decimal(expect_str(obj["treeID"], "treeID"), "treeID")
        await self.accept_checkpoint(cp)
        return LogInfo(cp, tree_id)

    async def accept_checkpoint(self, cp: VerifiedCheckpoint) -> int | None:
        """Check ``cp`` against the trusted state (consistency proof fetched
        as needed) and advance the state to it if it is newer. Returns the
        trusted size it was checked against (None: no state yet, ``cp`` is
        trusted on first use). Compare-and-swap: retried if another process
        moved the state meanwhile; never regresses."""
        if self._state_lock is None:
            self._state_lock = asyncio.Lock()
        async with self._state_lock:
            for _ in range(8):
                trusted = self.trusted_checkpoint()
                checked = None
                if trusted is not None:
                    sizes = proof_sizes(trusted.size, cp.size)
                    proof: Sequence[bytes] = ()
                    if sizes is not None:
                        larger = cp if cp.size > trusted.size else trusted
                        proof = await self._consistency_hashes(*sizes, larger, self.proof_source)
                    check_consistency(trusted, cp, proof, self.pinned.log_id)
                    checked = trusted.size
                    if cp.size <= trusted.size:
                        return checked
                if self.store is None:
                    self._memory[cp.origin] = cp
                    return checked
                if await asyncio.to_thread(self.store.compare_and_swap, self.pinned, trusted, cp):
                    return checked
            raise StateError("the trusted state keeps changing under us; giving up")

    # -- proofs ---------------------------------------------------------------------

    async def _consistency_hashes(self, first: int, second: int, at: VerifiedCheckpoint,
                                  source: str) -> list[bytes]:
        """An (unverified) consistency proof between sizes; ``at`` is the
        verified checkpoint of size ``second`` (tiles are verified against it)."""
        if source == "tiles":
            nodes = consistency_nodes(first, second)
            verified = await self.verified_tiles(at, nodes=nodes.addresses)
            return nodes.read(verified)
        obj = expect_object(await self._get_json(f"{API}/log/proof", {
            "firstSize": str(first), "lastSize": str(second)}), "proof",
            required=("rootHash", "hashes"))
        items = expect_list(obj["hashes"], "hashes", max_items=128)
        return [hex_decode_lower(expect_str(h, f"hashes[{i}]"), f"hashes[{i}]", length=HASH_SIZE)
                for i, h in enumerate(items)]

    async def consistency_proof(self, old: VerifiedCheckpoint | bytes,
                                new: VerifiedCheckpoint | bytes | None = None, *,
                                source: str | None = None) -> ConsistencyResult:
        """A verified consistency proof from ``old`` to ``new`` (default: the
        current checkpoint, accepted into the trusted state). Signed
        checkpoints given as bytes are verified under the pinned key first.
        Raises InconsistentCheckpointError / SplitViewError with evidence."""
        old = old if isinstance(old, VerifiedCheckpoint) else self.pinned.open_checkpoint(old)
        if new is None:
            new = await self.checkpoint()
        elif not isinstance(new, VerifiedCheckpoint):
            new = self.pinned.open_checkpoint(new)
        if old.size > new.size:
            old, new = new, old
        source = source or self.proof_source
        sizes = proof_sizes(old.size, new.size)
        hashes = await self._consistency_hashes(*sizes, new, source) if sizes else []
        check_consistency(old, new, hashes, self.pinned.log_id)
        return ConsistencyResult(old, new, tuple(hashes), source)

    async def inclusion_proof(self, index: int, *, checkpoint: VerifiedCheckpoint | None = None,
                              source: str = "api") -> InclusionResult:
        """A verified inclusion proof of leaf ``index``. "api": the entry's
        own proof from the JSON API (at the log's current checkpoint, after
        the whole entry is verified). "tiles": computed from tiles verified
        against ``checkpoint`` (default: the current one), the leaf hash read
        from the verified level-0 tile."""
        if source == "api":
            verified = await self.get_entry(index)
            proof = verified.entry.inclusion_proof
            assert proof is not None
            return InclusionResult(index, bytes.fromhex(verified.uuid), proof.hashes,
                                   verified.checkpoint, "api")
        if source != "tiles":
            raise ValueError("source is 'api' or 'tiles'")
        cp = checkpoint or await self.checkpoint()
        if not 0 <= index < cp.size:
            raise FormatError("logIndex", f"{index} is not in a tree of size {cp.size}")
        nodes = inclusion_nodes(index, cp.size)
        tiles = await self.verified_tiles(cp, nodes=nodes.addresses, tiles=[Tile(0, index // 256)])
        leaf = tiles.leaf_hashes(index, index + 1)
        hashes = nodes.read(tiles)
        verify_inclusion(index, cp.size, leaf, hashes, cp.root_hash)
        return InclusionResult(index, leaf, tuple(hashes), cp, "tiles")

    # -- tiles ------------------------------------------------------------------------

    async def fetch_tile(self, tile: Tile | EntryBundle, *, cache: bool = True) -> bytes:
        """The raw (unverified) data of a tile or entry bundle. Full ones are
        immutable: kept in a small in-memory cache unless ``cache`` is False."""
        cached = self._tiles.get(tile)
        if cached is not None:
            return cached
        _, _, data = await self._request("GET", "/" + tile_path(tile))
        if cache and tile.is_full:
            if self._tile_bytes + len(data) > TILE_CACHE_BYTES:
                self._tiles.clear()
                self._tile_bytes = 0
            self._tiles[tile] = data
            self._tile_bytes += len(data)
        return data

    async def verified_tiles(self, checkpoint: VerifiedCheckpoint, *, nodes: Iterable = (),
                             tiles: Iterable[Tile] = ()) -> VerifiedTiles:
        """Fetch the tiles needed to read ``nodes`` and ``tiles`` and verify
        them against ``checkpoint``."""
        needed = tiles_to_fetch(checkpoint.size, nodes, tiles)
        data = await asyncio.gather(*(self.fetch_tile(t) for t in needed))
        return verify_tiles(checkpoint, dict(zip(needed, data)))

    async def entries(self, start: int, end: int, checkpoint: VerifiedCheckpoint,
                      chunk: int = 32) -> AsyncIterator[tuple[int, bytes]]:
        """Yield ``(index, canonical body)`` for ``start <= index < end``
        from entry bundles verified against level-0 tiles verified against
        ``checkpoint``."""
        if not 0 <= start <= end <= checkpoint.size:
            raise FormatError("range", f"[{start}, {end}) is not in a tree of size "
                                       f"{checkpoint.size}")
        first, last = start // 256, (end + 255) // 256
        for lo in range(first, last, chunk):
            numbers = range(lo, min(lo + chunk, last))
            verified = await self.verified_tiles(checkpoint, tiles=[Tile(0, n) for n in numbers])
            bundles = [EntryBundle(n, tile_width(0, n, checkpoint.size)) for n in numbers]
            datas = await asyncio.gather(*(self.fetch_tile(b) for b in bundles))
            for bundle, data in zip(bundles, datas):
                for i, body in enumerate(verify_entry_bundle(verified, bundle, data)):
                    index = bundle.index * 256 + i
                    if start <= index < end:
                        yield index, body

    # -- entries --------------------------------------------------------------------

    async def _verify_and_accept(self, entry: LogEntry, expect: Expectations) -> VerifiedEntry:
        verified = verify_entry(entry, self.pinned, expect)
        checked = await self.accept_checkpoint(verified.checkpoint)
        return replace(verified, consistent_with=checked)

    async def get_entry(self, ref: int | str, expect: Expectations = Expectations()
                        ) -> VerifiedEntry:
        """The entry at a log index, or with a UUID / EntryID, fully verified
        (and checked against ``expect``); its checkpoint is accepted into the
        trusted state."""
        if isinstance(ref, int) and not isinstance(ref, bool):
            obj = await self._get_json(f"{API}/log/entries", {"logIndex": str(ref)})
            entry = parse_log_entry(obj)
            if entry.log_index != ref:
                raise ResponseMismatchError(f"asked for entry {ref}, the log answered with "
                                            f"entry {entry.log_index}")
        else:
            wanted = parse_entry_ref(ref)
            entry = parse_log_entry(await self._get_json(f"{API}/log/entries/{wanted.key}"))
            if entry.uuid != wanted.uuid or (wanted.tree_id is not None and
                                             entry.ref.tree_id not in (None, wanted.tree_id)):
                raise ResponseMismatchError(f"asked for entry {wanted.key}, the log answered "
                                            f"with {entry.ref.key}")
        return await self._verify_and_accept(entry, expect)

    async def verify_entry(self, entry: LogEntry | int | str,
                           expect: Expectations = Expectations()) -> VerifiedEntry:
        """Verify an entry (given, or fetched by index / UUID / EntryID)
        against ``expect`` and the trusted state."""
        if isinstance(entry, LogEntry):
            return await self._verify_and_accept(entry, expect)
        return await self.get_entry(entry, expect)

    async def _retrieve(self, refs: Sequence[str]) -> list[VerifiedEntry]:
        """Fetch entries by UUID in batches, verify each (pure), then accept
        their checkpoints (smallest first)."""
        batches = [refs[i:i + RETRIEVE_BATCH] for i in range(0, len(refs), RETRIEVE_BATCH)]

        async def one(batch: Sequence[str]) -> list[object]:
            _, _, payload = await self._request("POST", f"{API}/log/entries/retrieve",
                                                body={"entryUUIDs": list(batch)})
            return expect_list(loads_strict(payload, max_size=MAX_RESPONSE), "entries")

        answers = await asyncio.gather(*(one(b) for b in batches))
        by_uuid: dict[str, VerifiedEntry] = {}
        for answer in answers:
            for obj in answer:
                verified = verify_entry(parse_log_entry(obj), self.pinned)
                by_uuid[verified.uuid] = verified
        out = []
        for ref in refs:
            uuid = parse_entry_ref(ref).uuid
            if uuid not in by_uuid:
                raise ResponseMismatchError(f"the log listed entry {ref} but did not return it")
            out.append(by_uuid[uuid])
        accepted: dict[bytes, int | None] = {}
        for cp in sorted({v.checkpoint.note: v.checkpoint for v in out}.values(),
                         key=lambda c: c.size):
            accepted[cp.note] = await self.accept_checkpoint(cp)
        return [replace(v, consistent_with=accepted[v.checkpoint.note]) for v in out]

    async def search(self, *, digest: str | None = None, public_key: bytes | None = None,
                     email: str | None = None, subject: str | None = None,
                     operator: str | None = None, max_pages: int = SEARCH_PAGES,
                     on_page: Callable[[int, int], None] | None = None
                     ) -> list[VerifiedEntry]:
        """Search the index (``POST /api/v1/index/retrieve``), following the
        log's cursors (the ``X-Tlog-Next-Cursor`` header of a tlog; a Rekor
        answers in one page) through at most ``max_pages`` answers:
        SearchTooLongError if more follow (narrow the query, or allow more).
        ``on_page(pages, hits)`` is called after each answer (progress).
        Every hit is fetched, verified and checked to match the query before
        it is returned (a log answering with other entries raises
        ResponseMismatchError). Sorted by log index."""
        query: dict[str, Any] = {}
        if digest is not None:
            query["hash"] = normalize_digest(digest)
        if public_key is not None:
            query["publicKey"] = {"format": "x509", "content": b64encode_std(public_key)}
        if email is not None:
            query["email"] = email
        if subject is not None:
            query["subject"] = subject
        if not query:
            raise FormatError("query", "give a digest, public key, email or subject")
        if operator is not None:
            if operator not in ("and", "or"):
                raise FormatError("operator", "is 'and' or 'or'")
            query["operator"] = operator
        refs = list(dict.fromkeys(await self._search_refs(query, max_pages, on_page)))
        watch = Watch.build(digests=[digest] if digest else [],
                            keys=[public_key] if public_key else [],
                            emails=[email] if email else [], subjects=[subject] if subject else [])
        hits = await self._retrieve(refs)
        for hit in hits:
            facts = entry_facts(hit.entry.body, hit.entry.attestation)
            if watch.decide(facts, operator or "or") is False:
                raise ResponseMismatchError(f"the log returned entry {hit.log_index} for a "
                                            "search it does not match")
        return sorted(hits, key=lambda v: v.log_index)

    async def _search_refs(self, query: dict[str, Any], max_pages: int,
                           on_page: Callable[[int, int], None] | None) -> list[str]:
        """The EntryIDs (or UUIDs) of every page of ``query``, in order."""
        refs: list[str] = []
        cursor: str | None = None
        for page in range(1, max_pages + 1):
            body = query if cursor is None else {**query, "cursor": cursor}
            _, headers, payload = await self._request("POST", f"{API}/index/retrieve",
                                                      body=body)
            items = expect_list(loads_strict(payload, max_size=MAX_RESPONSE), "search result")
            refs += [parse_entry_ref(expect_str(r, "uuid")).key for r in items]
            cursor = next((v for k, v in headers.items() if k.lower() == NEXT_CURSOR), None)
            if on_page is not None:
                on_page(page, len(refs))
            if cursor is None:
                return refs
        raise SearchTooLongError(f"the search has more than {max_pages} pages "
                                 f"({len(refs)} entries so far): narrow the query or allow "
                                 "more pages")


class SyncLogClient:
    """Synchronous facade of :class:`LogClient` (same arguments and
    methods), running its own event loop. Use as a context manager."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self.client = LogClient(*args, **kwargs)

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def __enter__(self) -> "SyncLogClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._loop.is_closed():
            self._run(self.client.close())
            self._loop.close()

    @property
    def pinned(self) -> PinnedLog:
        return self.client.pinned

    def trusted_checkpoint(self) -> VerifiedCheckpoint | None:
        return self.client.trusted_checkpoint()

    def checkpoint(self) -> VerifiedCheckpoint:
        return self._run(self.client.checkpoint())

    def log_info(self) -> LogInfo:
        return self._run(self.client.log_info())

    def get_entry(self, ref: int | str, expect: Expectations = Expectations()) -> VerifiedEntry:
        return self._run(self.client.get_entry(ref, expect))

    def verify_entry(self, entry: LogEntry | int | str,
                     expect: Expectations = Expectations()) -> VerifiedEntry:
        return self._run(self.client.verify_entry(entry, expect))

    def search(self, **query: Any) -> list[VerifiedEntry]:
        return self._run(self.client.search(**query))

    def submit_hashedrekord(self, *args: Any, **kwargs: Any) -> VerifiedEntry:
        return self._run(self.client.submit_hashedrekord(*args, **kwargs))

    def submit_dsse(self, *args: Any, **kwargs: Any) -> VerifiedEntry:
        return self._run(self.client.submit_dsse(*args, **kwargs))

    def inclusion_proof(self, index: int, **kwargs: Any) -> InclusionResult:
        return self._run(self.client.inclusion_proof(index, **kwargs))

    def consistency_proof(self, old: VerifiedCheckpoint | bytes,
                          new: VerifiedCheckpoint | bytes | None = None,
                          **kwargs: Any) -> ConsistencyResult:
        return self._run(self.client.consistency_proof(old, new, **kwargs))
