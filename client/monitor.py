"""Monitor: follow a log from the trusted state and report entries of interest.

Each poll fetches the log's checkpoint through the client (signature verified
with the pinned key, consistency-proved from the trusted checkpoint, state
advanced: a log that rewrote history raises a split-view error with evidence),
then reads every entry added since the last poll from entry bundles verified
against tiles verified against that checkpoint, and reports those matching the
:class:`~tlog_client.match.Watch` (digests, keys, identities). The position is
a cursor in the state file, so a cron job resumes where the last run stopped.
An entry the log accepted whose body does not parse or whose signature fails
is reported as an anomaly: the log should never have accepted it. For dsse
and intoto entries watched digests are also looked for among the in-toto
subjects of the attestation (fetched and checked against the leaf).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import FormatError, VerificationError
from .match import EntryFacts, Watch, entry_facts
from .rekor import uuid_of
from .trust import VerifiedCheckpoint

if TYPE_CHECKING:
    from .client import LogClient

__all__ = ["Monitor", "MonitorMatch", "MonitorReport"]

CURSOR = "monitor"


@dataclass(frozen=True)
class MonitorMatch:
    index: int
    uuid: str
    facts: EntryFacts
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"logIndex": self.index, "uuid": self.uuid, "reasons": list(self.reasons),
                **self.facts.to_json()}


@dataclass(frozen=True)
class MonitorReport:
    """One poll: entries ``[start, checkpoint.size)`` were read and verified."""

    checkpoint: VerifiedCheckpoint
    start: int
    consistent_with: int | None
    matches: tuple[MonitorMatch, ...] = ()
    anomalies: tuple[tuple[int, str], ...] = field(default=())

    @property
    def scanned(self) -> int:
        return self.checkpoint.size - self.start

    def to_json(self) -> dict[str, object]:
        return {"origin": self.checkpoint.origin, "treeSize": self.checkpoint.size,
                "rootHash": self.checkpoint.root_hash.hex(),
                "consistentWithTrustedSize": self.consistent_with,
                "scannedFrom": self.start, "scanned": self.scanned,
                "matches": [m.to_json() for m in self.matches],
                "anomalies": [{"logIndex": i, "problem": p} for i, p in self.anomalies]}


class Monitor:
    """Polls ``client`` for new entries matching ``watch``. The cursor lives
    in the client's state file (``cursor`` names it), or in memory."""

    def __init__(self, client: "LogClient", watch: Watch, cursor: str = CURSOR) -> None:
        self.client = client
        self.watch = watch
        self.cursor = cursor
        self._memory: int | None = None

    def position(self) -> int | None:
        """How far previous polls have read (None: never polled)."""
        store, origin = self.client.store, self.client.pinned.origin
        if store is not None and origin is not None:
            return store.cursor(origin, self.cursor)
        return self._memory

    async def poll(self, start: int | None = None) -> MonitorReport:
        """Verify the current checkpoint against the trusted state, read and
        verify every entry from the cursor (or ``start``; default 0 on the
        first poll) to it, and return what matched."""
        before = self.client.trusted_checkpoint()
        fetched = await self.client.checkpoint()
        target = self.client.trusted_checkpoint() or fetched
        if start is None:
            start = self.position() or 0
        start = min(start, target.size)
        matches: list[MonitorMatch] = []
        anomalies: list[tuple[int, str]] = []
        async for index, body in self.client.entries(start, target.size, target):
            try:
                facts = entry_facts(body)
            except (FormatError, VerificationError) as exc:
                anomalies.append((index, f"logged entry does not verify: {exc}"))
                continue
            if facts.known and not facts.complete and self.watch.digests:
                # dsse / intoto: the subjects are in the attestation, served with
                # the entry (itself verified) and checked against the leaf
                logged = await self.client.get_entry(uuid_of(body))
                try:
                    facts = entry_facts(body, logged.entry.attestation)
                except (FormatError, VerificationError) as exc:
                    anomalies.append((index, f"attestation does not verify: {exc}"))
            reasons = self.watch.reasons(facts)
            if reasons:
                matches.append(MonitorMatch(index, uuid_of(body), facts, tuple(reasons)))
        self._save(target)
        return MonitorReport(target, start, before.size if before is not None else None,
                             tuple(matches), tuple(anomalies))

    def _save(self, target: VerifiedCheckpoint) -> None:
        store = self.client.store
        if store is not None:
            store.set_cursor(self.client.pinned, target.origin, self.cursor, target.size)
        else:
            self._memory = target.size
