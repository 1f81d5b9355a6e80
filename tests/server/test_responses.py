"""The LogEntry fast renderer writes exactly json.dumps(entry.to_json())."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tlog.responses import log_entry_json
from tlog_client.rekor import EntryRef, InclusionProof, LogEntry

notes = st.one_of(
    st.just("tlog.test/1\n5\nq83vEjRWeJCrze8SNFZ4kA==\n\n— tlog.test/1 AAAA\n"),
    st.text(max_size=200))
hashes = st.lists(st.binary(min_size=32, max_size=32), max_size=40).map(tuple)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=700), t=st.integers(0, 2**40), index=st.integers(0, 2**48),
       size=st.integers(1, 2**48), path=hashes, note=notes, sig=st.binary(min_size=1,
                                                                          max_size=80),
       tree_id=st.one_of(st.none(), st.integers(1, 2**63 - 1)),
       attestation=st.one_of(st.none(), st.binary(max_size=100)), pass_b64=st.booleans())
def test_same_bytes_as_json_dumps(body, t, index, size, path, note, sig, tree_id,
                                  attestation, pass_b64):
    entry = LogEntry(EntryRef("ab" * 32, tree_id), body, t, "cd" * 32, index,
                     InclusionProof(index, b"\x01" * 32, size, path, note), sig, attestation)
    b64 = entry.body_b64 if pass_b64 else None
    assert log_entry_json(entry, b64) == json.dumps(entry.to_json()).encode()


def test_without_verification_falls_back():
    entry = LogEntry(EntryRef("ab" * 32), b"{}", 1, "cd" * 32, 0)
    assert log_entry_json(entry) == json.dumps(entry.to_json()).encode()
