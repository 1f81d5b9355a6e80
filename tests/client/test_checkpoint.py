"""Checkpoints (c2sp.org/tlog-checkpoint; SPEC §3.2): strict parse, exact format."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tlog_client.checkpoint import (
    Checkpoint,
    CheckpointOriginError,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from tlog_client.errors import FormatError, SignatureError, VerificationError
from tlog_client.note import InvalidNoteSignatureError, UnverifiedNoteError, sign_note
from tlog_client.notekeys import ECDSAVerifier, Ed25519Signer, log_signers, log_verifiers

ROOT_B64 = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
ROOT = base64.b64decode(ROOT_B64)
SPEC_BODY = f"example.com/behind-the-sofa\n20852163\n{ROOT_B64}\n"  # c2sp.org/tlog-checkpoint
ORIGIN = "example.com/behind-the-sofa"

VALID = {
    "spec example": (SPEC_BODY, Checkpoint(ORIGIN, 20852163, ROOT)),
    "empty tree": (
        f"o\n0\n{base64.b64encode(bytes(32)).decode()}\n",
        Checkpoint("o", 0, bytes(32)),
    ),
    "max size": (f"o\n9223372036854775807\n{ROOT_B64}\n", Checkpoint("o", (1 << 63) - 1, ROOT)),
    "extensions": (
        SPEC_BODY + "Timestamp: 1691781533798160174\nanother ext\n",
        Checkpoint(ORIGIN, 20852163, ROOT, ("Timestamp: 1691781533798160174", "another ext")),
    ),
    "rekor v1 origin with spaces": (
        f"rekor.sigstore.dev - 1193050959916656506\n71405647\n{ROOT_B64}\n",
        Checkpoint("rekor.sigstore.dev - 1193050959916656506", 71405647, ROOT),
    ),
    "unicode origin": (f"日本.example/log\n1\n{ROOT_B64}\n", Checkpoint("日本.example/log", 1, ROOT)),
}


@pytest.mark.parametrize("text,expected", VALID.values(), ids=VALID.keys())
def test_valid_checkpoints_round_trip(text, expected):
    checkpoint = parse_checkpoint(text)
    assert checkpoint == expected
    assert checkpoint.to_text() == text
    assert parse_checkpoint(expected.to_text()) == expected


def _with_size(size: str) -> str:
    return f"{ORIGIN}\n{size}\n{ROOT_B64}\n"


def _with_root(root: str) -> str:
    return f"{ORIGIN}\n5\n{root}\n"


BAD_SIZES = {
    "leading zero": "020852163",
    "double zero": "00",
    "plus sign": "+5",
    "minus sign": "-5",
    "minus zero": "-0",
    "leading space": " 5",
    "trailing space": "5 ",
    "underscore": "5_000",
    "arabic-indic digit": "\u0665",
    "fullwidth digit": "\uff15",
    "superscript": "\u00b2",
    "hex": "0x10",
    "exponent": "1e3",
    "decimal point": "5.0",
    "empty": "",
    "2^63": "9223372036854775808",
    "huge": "1" * 30,
}


@pytest.mark.parametrize("size", BAD_SIZES.values(), ids=BAD_SIZES.keys())
def test_bad_size_rejected(size):
    with pytest.raises(FormatError) as info:
        parse_checkpoint(_with_size(size))
    assert info.value.field == "size"


BAD_ROOTS = {
    "31 bytes": base64.b64encode(bytes(31)).decode(),
    "33 bytes": base64.b64encode(bytes(33)).decode(),
    "empty": "",
    "no padding": ROOT_B64.rstrip("="),
    "extra padding": ROOT_B64 + "=",
    "url-safe alphabet": base64.b64encode(b"\xff" * 32).decode().replace("/", "_"),
    "bad character": "*" + ROOT_B64[1:],
    "inner space": ROOT_B64[:10] + " " + ROOT_B64[11:],
    "trailing space": ROOT_B64 + " ",
    "non-zero padding bits": ROOT_B64[:-2] + "j=",
    "hex": ROOT.hex(),
    "non-ascii": ROOT_B64[:-2] + "é=",
}


@pytest.mark.parametrize("root", BAD_ROOTS.values(), ids=BAD_ROOTS.keys())
def test_bad_root_rejected(root):
    with pytest.raises(FormatError) as info:
        parse_checkpoint(_with_root(root))
    assert info.value.field == "root_hash"


BAD_BODIES = {
    "missing final newline": SPEC_BODY[:-1],
    "two lines": f"{ORIGIN}\n5\n",
    "one line": f"{ORIGIN}\n",
    "empty": "",
    "just newline": "\n",
    "empty origin": f"\n5\n{ROOT_B64}\n",
    "empty extension line": SPEC_BODY + "\n",
    "empty extension between": SPEC_BODY + "a\n\nb\n",
    "CRLF": SPEC_BODY.replace("\n", "\r\n"),
    "CR in origin": f"ex\rample\n5\n{ROOT_B64}\n",
    "tab in extension": SPEC_BODY + "a\tb\n",
    "NUL": SPEC_BODY + "\x00\n",
    "lone surrogate": SPEC_BODY + "\ud800\n",
}


@pytest.mark.parametrize("text", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_bodies_rejected(text):
    with pytest.raises(FormatError):
        parse_checkpoint(text)


def test_parse_requires_str():
    with pytest.raises(FormatError):
        parse_checkpoint(SPEC_BODY.encode())  # type: ignore[arg-type]


BAD_FIELDS = {
    "empty origin": dict(origin=""),
    "origin with newline": dict(origin="a\nb"),
    "origin with control": dict(origin="a\x01"),
    "negative size": dict(size=-1),
    "size 2^63": dict(size=1 << 63),
    "bool size": dict(size=True),
    "str size": dict(size="5"),
    "31-byte root": dict(root_hash=bytes(31)),
    "33-byte root": dict(root_hash=bytes(33)),
    "str root": dict(root_hash=ROOT_B64),
    "empty extension": dict(extensions=("",)),
    "multi-line extension": dict(extensions=("a\nb",)),
    "extensions as str": dict(extensions="abc"),
}


@pytest.mark.parametrize("change", BAD_FIELDS.values(), ids=BAD_FIELDS.keys())
def test_constructor_validates(change):
    fields = dict(origin=ORIGIN, size=5, root_hash=ROOT, extensions=())
    fields.update(change)
    with pytest.raises(FormatError):
        Checkpoint(**fields)


def test_extensions_become_a_tuple():
    checkpoint = Checkpoint(ORIGIN, 1, ROOT, ["x"])  # type: ignore[arg-type]
    assert checkpoint.extensions == ("x",)
    assert hash(checkpoint) == hash(Checkpoint(ORIGIN, 1, ROOT, ("x",)))


# --- signed checkpoints ----------------------------------------------------


def ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_open_checkpoint_signed_by_log_key(kind):
    key = ed25519_key() if kind == "ed25519" else ec.generate_private_key(ec.SECP256R1())
    checkpoint = Checkpoint(ORIGIN, 20852163, ROOT, ("ext",))
    msg = sign_checkpoint(checkpoint, log_signers(key, ORIGIN))
    opened, note = open_checkpoint(msg, log_verifiers(key.public_key(), ORIGIN), ORIGIN)
    assert opened == checkpoint
    assert note.to_bytes() == msg
    assert len(note.verified) == (2 if kind == "ed25519" else 1)


def test_ed25519_checkpoint_exact_bytes():
    # Ed25519 is deterministic: the signed checkpoint is a fixed byte string.
    msg = sign_checkpoint(Checkpoint(ORIGIN, 20852163, ROOT), log_signers(ed25519_key(), ORIGIN))
    text, sigs = msg.decode().split("\n\n")
    assert text + "\n" == SPEC_BODY
    lines = sigs.splitlines()
    assert [line.split(" ")[1] for line in lines] == [ORIGIN, ORIGIN]
    assert msg == sign_checkpoint(parse_checkpoint(SPEC_BODY), log_signers(ed25519_key(), ORIGIN))


def test_wrong_origin_rejected():
    key = ed25519_key()
    msg = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), log_signers(key, ORIGIN))
    with pytest.raises(CheckpointOriginError) as info:
        open_checkpoint(msg, log_verifiers(key.public_key(), ORIGIN), "example.com/other")
    assert isinstance(info.value, VerificationError)
    assert info.value.found == ORIGIN


def test_unknown_key_rejected():
    msg = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), log_signers(ed25519_key(), ORIGIN))
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(msg, log_verifiers(other, ORIGIN), ORIGIN)


def test_tampered_checkpoint_rejected():
    key = ed25519_key()
    msg = sign_checkpoint(Checkpoint(ORIGIN, 20852163, ROOT), log_signers(key, ORIGIN))
    tampered = msg.replace(b"20852163", b"20852164")
    with pytest.raises(InvalidNoteSignatureError):
        open_checkpoint(tampered, log_verifiers(key.public_key(), ORIGIN), ORIGIN)


def test_signed_malformed_body_rejected():
    signer = Ed25519Signer(ORIGIN, ed25519_key())
    msg = sign_note(_with_size("05"), [signer])
    with pytest.raises(FormatError):
        open_checkpoint(msg, [signer.verifier()], ORIGIN)


def test_signature_checked_before_body():
    # An unsigned, malformed checkpoint fails on its signature, not its body.
    signer = Ed25519Signer(ORIGIN, ed25519_key())
    msg = sign_note(_with_size("05"), [signer])
    with pytest.raises(SignatureError):
        open_checkpoint(msg, [], ORIGIN)


REKOR_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwr
kBbmLSGtks4L3qX6yYY0zufBnhC8Ur/iy55GhWP/9A/bY2LhC30M9+RYtw==
-----END PUBLIC KEY-----
"""
# Checkpoints of the public rekor.sigstore.dev log, as found in Sigstore bundles.
REKOR_CHECKPOINTS = [
    (
        "rekor.sigstore.dev - 2605736670972794746\n26792039\n"
        "cQcl3UjHWft0wEVP9BBGd+dKOcmUlaEMIYdC64mNONc=\nTimestamp: 1691781533798160174\n\n"
        "— rekor.sigstore.dev wNI9ajBEAiAq6zQXfHpGZ9D4aVzzCNt1vUwxQMMpnbfsC0LawPzkpwIgfDHE3XjN4N7"
        "zXG6vpN8eXDGqY30jTLojMOjHGFtySuk=\n",
        ("Timestamp: 1691781533798160174",),
    ),
    (
        "rekor.sigstore.dev - 2605736670972794746\n75408393\n"
        "Fnnj13Uu1jdksPc4HZLapKX329dVlD5+MGNsiqBq1XM=\n\n"
        "— rekor.sigstore.dev wNI9ajBFAiBTyiBM9WtyOTgohje6QZ5rFGJUdMq7Wk3A6oThE98SUgIhAMvxDwa7FyqRq"
        "g+YV3rdPPrfS23w19iK+piMSGVOmP5w\n",
        (),
    ),
]


@pytest.mark.parametrize("msg,extensions", REKOR_CHECKPOINTS)
def test_rekor_production_checkpoints(msg, extensions):
    verifier = ECDSAVerifier("rekor.sigstore.dev", load_pem_public_key(REKOR_PUBLIC_PEM))
    origin = msg.split("\n", 1)[0]
    checkpoint, note = open_checkpoint(msg.encode(), [verifier], origin)
    assert checkpoint.extensions == extensions
    assert note.to_bytes() == msg.encode()
