"""LogEntry responses rendered straight to JSON bytes (SPEC §6).

Every submission is answered with a LogEntry and every entry read serves one;
building the nested dict and running ``json.dumps`` over it cost more than
anything else in those handlers bar the signatures. :func:`log_entry_json`
writes exactly the bytes of ``json.dumps(entry.to_json())`` (a test compares
them on many entries) from a template: every value but the checkpoint note is
base64, lowercase hex or an integer, none of which JSON escapes, and the note
(newlines, the em dash of its signature lines) is escaped once per checkpoint.
"""

from __future__ import annotations

import json

from tlog_client.encoding import b64encode_std
from tlog_client.rekor import LogEntry

_NOTES = 8  # escaped checkpoint notes kept (the head changes once per batch)
_escaped: dict[str, str] = {}


def _escape_note(note: str) -> str:
    text = _escaped.get(note)
    if text is None:
        text = json.dumps(note)
        if len(_escaped) >= _NOTES:
            _escaped.clear()
        _escaped[note] = text
    return text


def log_entry_json(entry: LogEntry, body_b64: str | None = None) -> bytes:
    """``json.dumps(entry.to_json()).encode()``, faster; ``body_b64`` is the
    body's base64 if the caller has it already."""
    proof, sig = entry.inclusion_proof, entry.set_signature
    if proof is None or sig is None:
        return json.dumps(entry.to_json()).encode()
    hashes = '", "'.join([h.hex() for h in proof.hashes])
    parts = [
        '{"', entry.ref.key, '": {"body": "', body_b64 or b64encode_std(entry.body),
        '", "integratedTime": ', str(entry.integrated_time),
        ', "logID": "', entry.log_id, '", "logIndex": ', str(entry.log_index),
        ', "verification": {"inclusionProof": {"logIndex": ', str(proof.log_index),
        ', "rootHash": "', proof.root_hash.hex(), '", "treeSize": ', str(proof.tree_size),
        ', "hashes": ', f'["{hashes}"]' if hashes else "[]",
        ', "checkpoint": ', _escape_note(proof.checkpoint),
        '}, "signedEntryTimestamp": "', b64encode_std(sig), '"}',
    ]
    if entry.attestation is not None:
        parts += [', "attestation": {"data": "', b64encode_std(entry.attestation), '"}']
    parts.append("}}")
    return "".join(parts).encode("ascii")
