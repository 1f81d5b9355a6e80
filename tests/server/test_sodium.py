"""tlog.sodium signs exactly as cryptography does (Ed25519 is deterministic),
and the log identity's SETs verify under the log key with either key type."""

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tlog.identity import LogIdentity
from tlog.sodium import SodiumEd25519Signer
from tlog_client.errors import SignatureError
from tlog_client.rekor import set_payload, verify_set

MESSAGES = [b"", b"\x00", b"a", bytes(range(256)), b"x" * 65_535,
            set_payload("eyJhIjoxfQ==", 1_700_000_000, "ab" * 32, 0),
            set_payload("eyJhIjoxfQ==", 2**40, "cd" * 32, 2**53 - 1)]


@pytest.mark.parametrize("seed", [bytes(32), bytes(range(32)), b"\xff" * 32])
@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: f"{len(m)}B")
def test_same_signature_as_cryptography(seed, message):
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    assert SodiumEd25519Signer(key).sign(message) == key.sign(message)


def test_random_keys_agree():
    for _ in range(50):
        key = ed25519.Ed25519PrivateKey.generate()
        assert SodiumEd25519Signer(key).sign(b"checkpoint") == key.sign(b"checkpoint")


@pytest.mark.parametrize("key", [ec.generate_private_key(ec.SECP256R1()), object(), None])
def test_only_ed25519_keys(key):
    with pytest.raises(TypeError):
        SodiumEd25519Signer(key)


@pytest.mark.parametrize("key", [ed25519.Ed25519PrivateKey.generate(),
                                 ec.generate_private_key(ec.SECP256R1())],
                         ids=["ed25519", "ecdsa-p256"])
def test_identity_sets_verify_under_the_log_key(key):
    identity = LogIdentity("log.example/test", 7, key)
    for message in MESSAGES:
        signature = identity.sign_set(message)
        verify_set(key.public_key(), signature, message)
        with pytest.raises(SignatureError):
            verify_set(key.public_key(), signature, message + b" ")
