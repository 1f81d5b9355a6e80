"""tlog/entrytypes.py in two steps (prepare_proposed, then its check): the
same entries and the same errors, in the same order, as parse_proposed, for
every kind; a hashedrekord's signature is checked by the check alone."""

from __future__ import annotations

import base64

import pytest

from tlog_client.errors import FormatError, SignatureError

from tlog import config as cfgmod
from tlog.entrytypes import EntryTooLargeError, parse_proposed, prepare_proposed
from tlog.records import NewEntry

from ..client.attestation_samples import artifact, ecdsa_key, slsa_v1_github
from .helpers import ecdsa_signer, rsa_signer, unique_data
from .test_attestations import dsse_proposed, intoto_proposed

CONFIG = cfgmod.parse(["--data-dir", "/nonexistent"], {})
SMALL_LEAF = cfgmod.parse(["--data-dir", "/nonexistent", "--max-leaf", "400"], {})


def _flip_signature(entry: dict) -> dict:
    sig = base64.b64decode(entry["spec"]["signature"]["content"])
    entry["spec"]["signature"]["content"] = base64.b64encode(sig[:-1] + bytes([sig[-1] ^ 1])
                                                             ).decode()
    return entry


def _statement() -> dict:
    return slsa_v1_github([artifact(salt=unique_data())])


KINDS = [
    ("hashedrekord P-256", lambda: ecdsa_signer().entry(unique_data())),
    ("hashedrekord RSA", lambda: rsa_signer().entry(unique_data())),
    ("dsse", lambda: dsse_proposed([ecdsa_key()], _statement())),
    ("intoto 0.0.2", lambda: intoto_proposed([ecdsa_key()], _statement())),
]


@pytest.mark.parametrize("name,make", KINDS, ids=[k[0] for k in KINDS])
def test_two_steps_give_what_parse_proposed_gives(name, make):
    obj = make()
    check = prepare_proposed(obj, CONFIG)
    assert callable(check)
    got = check()
    assert isinstance(got, NewEntry) and got == parse_proposed(obj, CONFIG)


def test_a_bad_signature_raises_in_the_check_only():
    obj = _flip_signature(ecdsa_signer().entry(unique_data()))
    check = prepare_proposed(obj, CONFIG)  # parsing alone: no signature check
    with pytest.raises(SignatureError, match="spec.signature.content"):
        check()


@pytest.mark.parametrize("obj,field", [
    ({"kind": "rekord"}, "kind"),
    ({"kind": 7}, "kind"),
    ([], "body"),
    ({"kind": "hashedrekord", "apiVersion": "0.0.1"}, "spec"),
    ({"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": {"data": {}, "signature": {}},
      "extra": 1}, "body.extra"),
])
def test_format_errors_raise_in_the_first_step(obj, field):
    with pytest.raises(FormatError) as info:
        prepare_proposed(obj, CONFIG)
    assert info.value.field == field


def test_size_limit_raises_in_the_check_after_the_signature():
    """Precedence as in parse_proposed: a bad signature is named before the
    size; a good one over the limit is 413 (EntryTooLargeError)."""
    good = ecdsa_signer().entry(unique_data())
    with pytest.raises(EntryTooLargeError):
        prepare_proposed(good, SMALL_LEAF)()
    with pytest.raises(EntryTooLargeError):
        parse_proposed(good, SMALL_LEAF)
    bad = _flip_signature(ecdsa_signer().entry(unique_data()))
    check = prepare_proposed(bad, SMALL_LEAF)
    with pytest.raises(SignatureError):
        check()
    with pytest.raises(SignatureError):
        parse_proposed(bad, SMALL_LEAF)
