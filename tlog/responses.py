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
from collections.abc import Sequence

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
    if proof is None or sig is None or proof.log_index != entry.log_index:
        return json.dumps(entry.to_json()).encode()
    return render_log_entry(entry.ref.key, body_b64 or b64encode_std(entry.body),
                            entry.integrated_time, entry.log_id, entry.log_index,
                            proof.root_hash, proof.tree_size, proof.hashes, proof.checkpoint,
                            sig, entry.attestation)


def render_log_entry(key: str, body_b64: str, integrated_time: int, log_id: str,
                     log_index: int, root: bytes, tree_size: int, hashes: Sequence[bytes],
                     checkpoint: str, set_signature: bytes,
                     attestation: bytes | None) -> bytes:
    """The JSON of a LogEntry with its inclusion proof (of ``log_index``
    in the tree of ``tree_size`` and ``root``) and SET, from its parts: what
    a submission answers, without building the :class:`LogEntry` first.
    Preconditions: ``key`` is the entry's EntryID or UUID (lowercase hex),
    ``body_b64`` the standard base64 of its body, ``log_id`` lowercase hex."""
    joined = '", "'.join([h.hex() for h in hashes])
    parts = [
        '{"', key, '": {"body": "', body_b64,
        '", "integratedTime": ', str(integrated_time),
        ', "logID": "', log_id, '", "logIndex": ', str(log_index),
        ', "verification": {"inclusionProof": {"logIndex": ', str(log_index),
        ', "rootHash": "', root.hex(), '", "treeSize": ', str(tree_size),
        ', "hashes": ', f'["{joined}"]' if joined else "[]",
        ', "checkpoint": ', _escape_note(checkpoint),
        '}, "signedEntryTimestamp": "', b64encode_std(set_signature), '"}',
    ]
    if attestation is not None:
        parts += [', "attestation": {"data": "', b64encode_std(attestation), '"}']
    parts.append("}}")
    return "".join(parts).encode("ascii")
