"""Signed notes, key strings and note signature types (SPEC §3.2).

Vectors: golang.org/x/mod/sumdb/note (note_test.go, example_test.go) and
c2sp.org/signed-note. Ed25519 is deterministic, so signatures are exact.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tlog_client.errors import FormatError, SignatureError
from tlog_client.note import (
    InvalidNoteSignatureError,
    Note,
    NoteSignature,
    UnverifiedNoteError,
    append_signatures,
    format_note,
    open_note,
    sign_note,
)
from tlog_client.notekeys import (
    CosignatureSigner,
    CosignatureVerifier,
    ECDSASigner,
    ECDSAVerifier,
    Ed25519Signer,
    Ed25519Verifier,
    SPKIEd25519Signer,
    SPKIEd25519Verifier,
    c2sp_key_id,
    check_key_name,
    cosignature_message,
    generate_signer_key,
    log_signers,
    log_verifiers,
    parse_signer_key,
    parse_verifier_key,
    spki_key_id,
)

# --- Go sumdb/note vectors ------------------------------------------------

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
ENOCH_SEED = bytes(32)  # example_test.go generates EnochRoot from a zero reader
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_B64 = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
ENOCH_B64 = (
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="
)
PETER_SIG = f"— PeterNeumann {PETER_B64}\n"
ENOCH_SIG = f"— EnochRoot {ENOCH_B64}\n"
PETER_NOTE = (TEXT + "\n" + PETER_SIG).encode()

SPKI_ED25519_PREFIX = bytes.fromhex("302a300506032b6570032100")  # RFC 8410 SPKI


def peter() -> Ed25519Verifier:
    return parse_verifier_key(PETER_VKEY)


def enoch() -> Ed25519Verifier:
    return parse_verifier_key(ENOCH_VKEY)


def enoch_private() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(ENOCH_SEED)


# --- key strings ----------------------------------------------------------


def test_verifier_key_vector_parses_and_reformats():
    verifier = parse_verifier_key(PETER_VKEY)
    assert isinstance(verifier, Ed25519Verifier)
    assert verifier.name == "PeterNeumann"
    assert verifier.key_id == bytes.fromhex("c74f20a3")
    assert verifier.verifier_key() == PETER_VKEY


def test_signer_key_vector_parses_and_reformats():
    signer = parse_signer_key(PETER_SKEY)
    assert signer.key_id == bytes.fromhex("c74f20a3")
    assert signer.signer_key() == PETER_SKEY
    assert signer.verifier().verifier_key() == PETER_VKEY


def test_zero_seed_key_is_enoch_root():
    signer = Ed25519Signer("EnochRoot", enoch_private())
    assert signer.verifier().verifier_key() == ENOCH_VKEY


def test_key_id_is_c2sp_hash():
    raw = base64.b64decode(PETER_VKEY.split("+", 2)[2])
    expected = hashlib.sha256(b"PeterNeumann\n" + raw).digest()[:4]
    assert c2sp_key_id("PeterNeumann", raw[0], raw[1:]) == expected == bytes.fromhex("c74f20a3")


def _manglings(key: str) -> list[str]:
    """Every proper substring and every one-byte increment (note_test.go)."""
    out = {key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1)}
    out.discard(key)
    for i in range(len(key)):
        out.add(key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :])
    return sorted(out)


@pytest.mark.parametrize("bad", _manglings(PETER_VKEY))
def test_mangled_verifier_key_rejected(bad):
    with pytest.raises(FormatError):
        parse_verifier_key(bad)


@pytest.mark.parametrize("bad", _manglings(PETER_SKEY))
def test_mangled_signer_key_rejected(bad):
    with pytest.raises(FormatError):
        parse_signer_key(bad)


@pytest.mark.parametrize(
    "bad",
    [
        # note_test.go: wrong-length key and unknown algorithm, key IDs adjusted.
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        # stricter than Go: uppercase hex, whitespace, non-canonical base64.
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        PETER_VKEY + "\n",
        " " + PETER_VKEY,
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW",
        "PeterNeumann+c74f20a3+",
        "PeterNeumann+c74f20a3",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        PETER_SKEY,  # a signer key is not a verifier key
    ],
)
def test_bad_verifier_keys_rejected(bad):
    with pytest.raises(FormatError):
        parse_verifier_key(bad)


@pytest.mark.parametrize(
    "bad",
    [
        PETER_VKEY,
        "private+key+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+Peter+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        # type 0x04 is not a Go signer key type
        "PRIVATE+KEY+PeterNeumann+c74f20a3+BIEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    ],
)
def test_bad_signer_keys_rejected(bad):
    with pytest.raises(FormatError):
        parse_signer_key(bad)


def test_generated_keys_round_trip():
    skey, vkey = generate_signer_key("example.com/log")
    signer = parse_signer_key(skey)
    verifier = parse_verifier_key(vkey)
    assert signer.key_id == verifier.key_id
    msg = sign_note("hello\n", [signer])
    assert open_note(msg, [verifier]).text == "hello\n"


# --- key names ------------------------------------------------------------


@pytest.mark.parametrize("name", ["PeterNeumann", "example.com/log42", "ünïcødé", "a"])
def test_valid_key_names(name):
    assert check_key_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "a b", "a+b", "+", "a\tb", "a\nb", "a\x01b", "a\u00a0b", "a\u0085b", "a\u1680b",
     "a\u2003b", "a\u2028b", "a\u2029b", "a\u202fb", "a\u205fb", "a\u3000b", "a\ud800b"],
)
def test_invalid_key_names(name):
    with pytest.raises(FormatError):
        check_key_name(name)


# --- signing: Go vectors ---------------------------------------------------


def test_sign_reproduces_go_vector():
    assert sign_note(TEXT, [parse_signer_key(PETER_SKEY)]) == PETER_NOTE


def test_sign_with_two_keys_reproduces_go_example():
    signers = [parse_signer_key(PETER_SKEY), Ed25519Signer("EnochRoot", enoch_private())]
    assert sign_note(TEXT, signers) == (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()


def test_append_signature_reproduces_go_example():
    note = open_note(PETER_NOTE, [peter()])
    out = append_signatures(note, [Ed25519Signer("EnochRoot", enoch_private())])
    assert out == (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()


def test_append_replaces_same_key_line():
    bad = NoteSignature("PeterNeumann", bytes.fromhex("c74f20a3"), b"BAD")
    note = Note(TEXT, (bad,))
    assert append_signatures(note, [parse_signer_key(PETER_SKEY)]) == PETER_NOTE


@pytest.mark.parametrize(
    "text", ["abc", "", "a\n\x01\n", "a\r\n", "tab\there\n", "lone \ud800 surrogate\n"]
)
def test_sign_rejects_bad_text(text):
    with pytest.raises(FormatError):
        sign_note(text, [parse_signer_key(PETER_SKEY)])


def test_sign_needs_a_signer():
    with pytest.raises(FormatError):
        sign_note(TEXT, [])


def test_sign_rejects_duplicate_signers():
    signer = parse_signer_key(PETER_SKEY)
    with pytest.raises(FormatError):
        sign_note(TEXT, [signer, signer])


def test_format_needs_a_signature():
    with pytest.raises(FormatError):
        format_note(TEXT, [])


# --- opening: Go's TestOpen ------------------------------------------------


def test_open_go_vector():
    verifier = peter()
    note = open_note(PETER_NOTE, [verifier])
    assert note.text == TEXT
    assert [v.verifier for v in note.verified] == [verifier]
    assert note.verified[0].signature.key_id == bytes.fromhex("c74f20a3")
    assert note.verified[0].timestamp is None
    assert note.unverified == ()
    assert note.verification_by(verifier).signature.name == "PeterNeumann"


def test_open_round_trips_bytes():
    msg = (TEXT + "\n" + PETER_SIG + ENOCH_SIG + PETER_SIG).encode()
    assert open_note(msg, [peter()]).to_bytes() == msg


def test_one_verified_one_unknown():
    note = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [peter()])
    assert [s.signature.name for s in note.verified] == ["PeterNeumann"]
    assert [s.name for s in note.unverified] == ["EnochRoot"]
    assert note.unverified[0].key_id == bytes.fromhex("af0cfe78")
    with pytest.raises(SignatureError):
        note.verification_by(enoch())


def test_both_verified():
    note = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [peter(), enoch()])
    assert [s.signature.name for s in note.verified] == ["PeterNeumann", "EnochRoot"]
    assert note.unverified == ()


def test_no_known_key_is_rejected_with_the_unverified_note():
    with pytest.raises(UnverifiedNoteError) as info:
        open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [])
    assert [s.name for s in info.value.note.unverified] == ["PeterNeumann", "EnochRoot"]
    assert isinstance(info.value, SignatureError)


def test_ambiguous_verifiers_rejected():
    with pytest.raises(FormatError):
        open_note(PETER_NOTE, [enoch(), peter(), enoch()])


def test_known_key_bad_signature_rejected():
    msg = (TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]).encode()
    with pytest.raises(InvalidNoteSignatureError) as info:
        open_note(msg, [peter()])
    assert info.value.name == "PeterNeumann"
    assert info.value.key_id == bytes.fromhex("c74f20a3")


def test_bad_duplicate_of_known_key_rejected():
    # Stricter than Go, which skips repeated lines of a key unverified.
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(InvalidNoteSignatureError):
        open_note((TEXT + "\n" + PETER_SIG + bad).encode(), [peter()])


def test_duplicates_and_unknown_bad_signatures():
    enoch_bad = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    msg = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_bad
    note = open_note(msg.encode(), [peter()])
    assert len(note.verified) == 1
    assert len(note.unverified) == 3  # kept as-is, so the note round-trips
    assert note.to_bytes() == msg.encode()


def _line(name: str, key_id: bytes, sig: bytes = bytes(64)) -> str:
    return f"— {name} {base64.b64encode(key_id + sig).decode()}\n"


@pytest.mark.parametrize(
    "line",
    [
        _line("PeterNeumann", bytes.fromhex("c74f20a4")),  # same name, other key ID
        _line("PeterNeumanm", bytes.fromhex("c74f20a3")),  # same key ID, other name
        _line("EnochRoot", bytes.fromhex("c74f20a3"), b"\x01"),
    ],
)
def test_unknown_keys_are_ignored(line):
    note = open_note((TEXT + "\n" + line + PETER_SIG).encode(), [peter()])
    assert len(note.verified) == 1 and len(note.unverified) == 1


def test_known_key_short_signature_rejected():
    msg = TEXT + "\n" + _line("PeterNeumann", bytes.fromhex("c74f20a3"), b"\x01")
    with pytest.raises(InvalidNoteSignatureError):
        open_note(msg.encode(), [peter()])


def test_signature_counts():
    unknown = _line("other", b"\0\0\0\0")
    ok_16 = TEXT + "\n" + unknown * 15 + PETER_SIG
    assert open_note(ok_16.encode(), [peter()]).text == TEXT
    ok_100 = TEXT + "\n" + unknown * 99 + PETER_SIG
    assert len(open_note(ok_100.encode(), [peter()]).unverified) == 99
    too_many = TEXT + "\n" + PETER_SIG * 101
    with pytest.raises(FormatError):
        open_note(too_many.encode(), [peter()])
    with pytest.raises(FormatError):
        open_note(ok_100.encode(), [peter()], max_signatures=50)
    with pytest.raises(ValueError):
        open_note(PETER_NOTE, [peter()], max_signatures=15)


def test_size_cap():
    assert open_note(PETER_NOTE, [peter()], max_size=len(PETER_NOTE)).text == TEXT
    with pytest.raises(FormatError):
        open_note(PETER_NOTE, [peter()], max_size=len(PETER_NOTE) - 1)
    big = ("x" * 80 + "\n") * 13000 + "\n" + PETER_SIG  # > 1 MiB default
    with pytest.raises(FormatError):
        open_note(big.encode(), [peter()])


def test_text_may_contain_blank_lines():
    # c2sp.org/signed-note: the signatures follow the *last* blank line.
    signer = parse_signer_key(PETER_SKEY)
    for text in ["a\n\nb\n", "a\n\n\nb\n", "\n", "a\n\n"]:
        msg = sign_note(text, [signer])
        assert open_note(msg, [peter()]).text == text


BAD_NOTES = {
    # Go note_test.go badMsgs
    "text only": TEXT,
    "blank line, no signatures": TEXT + "\n",
    "no final newline": TEXT + "\n" + PETER_SIG[:-1],
    "control char": "\x01" + TEXT + "\n" + PETER_SIG,
    "name with space": TEXT + "\n— Bad Name " + PETER_B64,
    "trailing non-signature line": TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    # SPEC §3.2
    "missing blank line": TEXT + PETER_SIG,
    "CR LF": TEXT.replace("\n", "\r\n") + "\r\n" + PETER_SIG,
    "tab": "a\tb\n\n" + PETER_SIG,
    "NUL": "a\x00\n\n" + PETER_SIG,
    "escape": "a\x1b\n\n" + PETER_SIG,
    "CR in signature": TEXT + "\n" + PETER_SIG[:-1] + "\r\n",
    "hyphen, not em dash": TEXT + "\n- PeterNeumann " + PETER_B64 + "\n",
    "en dash": TEXT + "\n\u2013 PeterNeumann " + PETER_B64 + "\n",
    "em dash without space": TEXT + "\n—PeterNeumann " + PETER_B64 + "\n",
    "two spaces after dash": TEXT + "\n—  PeterNeumann " + PETER_B64 + "\n",
    "two spaces before signature": TEXT + "\n— PeterNeumann  " + PETER_B64 + "\n",
    "trailing space": TEXT + "\n— PeterNeumann " + PETER_B64 + " \n",
    "no signature": TEXT + "\n— PeterNeumann\n",
    "empty signature": TEXT + "\n— PeterNeumann \n",
    "name with plus": TEXT + "\n— Peter+Neumann " + PETER_B64 + "\n",
    "name with NBSP": TEXT + "\n— Peter\u00a0Neumann " + PETER_B64 + "\n",
    "base64 without padding": TEXT + "\n— PeterNeumann " + PETER_B64.rstrip("=") + "\n",
    "base64 bad character": TEXT + "\n— PeterNeumann *" + PETER_B64[1:] + "\n",
    "base64 url alphabet": TEXT + "\n— PeterNeumann " + PETER_B64.replace("/", "_") + "\n",
    "base64 non-zero pad bits": TEXT + "\n— PeterNeumann " + PETER_B64[:-2] + "N=\n",
    "4-byte signature": TEXT + "\n— PeterNeumann x08gow==\n",
    "3-byte signature": TEXT + "\n— PeterNeumann x08g\n",
    "empty message": "",
}


@pytest.mark.parametrize("msg", BAD_NOTES.values(), ids=BAD_NOTES.keys())
def test_malformed_notes_rejected(msg):
    with pytest.raises(FormatError):
        open_note(msg.encode("utf-8"), [peter()])


@pytest.mark.parametrize(
    "prefix",
    [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x80", b"\xf8\x88\x80\x80\x80"],
    ids=["ff", "overlong", "surrogate", "truncated", "5-byte"],
)
def test_invalid_utf8_rejected(prefix):
    with pytest.raises(FormatError):
        open_note(prefix + PETER_NOTE, [peter()])


def test_blank_line_between_signatures_makes_text():
    # The last blank line splits: the first "signature" is part of the text.
    msg = (TEXT + "\n" + PETER_SIG + "\n" + ENOCH_SIG).encode()
    with pytest.raises(UnverifiedNoteError) as info:
        open_note(msg, [peter()])
    assert info.value.note.text == TEXT + "\n" + PETER_SIG
    with pytest.raises(InvalidNoteSignatureError):
        open_note(msg, [enoch()])


def test_str_message_rejected():
    with pytest.raises(FormatError):
        open_note(PETER_NOTE.decode(), [peter()])  # type: ignore[arg-type]


def test_del_and_non_ascii_text_allowed():
    # Only controls below U+0020 other than newline are forbidden.
    signer = parse_signer_key(PETER_SKEY)
    text = "del \x7f, em dash — and 日本語\n"
    assert open_note(sign_note(text, [signer]), [peter()]).text == text


# --- Rekor style (SPKI key ID), ECDSA -------------------------------------

REKOR_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwr
kBbmLSGtks4L3qX6yYY0zufBnhC8Ur/iy55GhWP/9A/bY2LhC30M9+RYtw==
-----END PUBLIC KEY-----
"""
# Checkpoint of the public rekor.sigstore.dev log, as found in Sigstore bundles.
REKOR_CHECKPOINT = (
    "rekor.sigstore.dev - 1193050959916656506\n71405647\n"
    "jwMQYpmhU5+mbAeaB0yVuQhQHFkaeWhCYU42jnHmFR4=\n\n"
    "— rekor.sigstore.dev wNI9ajBEAiBCCYVFyRZ69qtPv/89MC+XfjWrkIJMwyIQSna3Q0AkIQIgGkdu1OAq7DwQpw"
    "HkKjvyNFZnWBAewMerU2o78pt5ehE=\n"
).encode()


def rekor_key() -> ec.EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(REKOR_PUBLIC_PEM)  # type: ignore[return-value]


def test_rekor_production_checkpoint_verifies():
    verifier = ECDSAVerifier("rekor.sigstore.dev", rekor_key())
    # logID of rekor.sigstore.dev is c0d23d6ad406973f...: the key ID is its prefix.
    assert verifier.key_id == bytes.fromhex("c0d23d6a")
    note = open_note(REKOR_CHECKPOINT, [verifier])
    assert note.text.startswith("rekor.sigstore.dev - 1193050959916656506\n")


def test_rekor_checkpoint_tampered_text_rejected():
    tampered = REKOR_CHECKPOINT.replace(b"71405647", b"71405648")
    with pytest.raises(InvalidNoteSignatureError):
        open_note(tampered, [ECDSAVerifier("rekor.sigstore.dev", rekor_key())])


def test_ecdsa_sign_verify_and_non_der_rejected():
    key = ec.generate_private_key(ec.SECP256R1())
    signer = ECDSASigner("example.com/log", key)
    verifier = ECDSAVerifier("example.com/log", key.public_key())
    assert signer.key_id == verifier.key_id == spki_key_id(key.public_key())
    msg = sign_note("hello\n", [signer])
    open_note(msg, [verifier])
    sig = open_note(msg, [verifier]).signatures[0]
    for bad in (sig.signature + b"\x00", sig.signature[:-1], bytes(8)):
        forged = format_note("hello\n", [NoteSignature(sig.name, sig.key_id, bad)])
        with pytest.raises(InvalidNoteSignatureError):
            open_note(forged, [verifier])


def test_ecdsa_other_curves_rejected():
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(TypeError):
        ECDSASigner("n", key)
    with pytest.raises(TypeError):
        ECDSAVerifier("n", key.public_key())


def test_spki_ed25519_key_id():
    verifier = peter()
    raw = base64.b64decode(PETER_VKEY.split("+", 2)[2])[1:]
    expected = hashlib.sha256(SPKI_ED25519_PREFIX + raw).digest()[:4]
    assert SPKIEd25519Verifier("PeterNeumann", verifier.public_key).key_id == expected
    assert spki_key_id(verifier.public_key) == expected


def test_ed25519_log_key_signs_two_lines():
    key = enoch_private()
    signers = log_signers(key, "example.com/log")
    assert [type(s) for s in signers] == [SPKIEd25519Signer, Ed25519Signer]
    msg = sign_note("body\n", signers)
    lines = msg.decode().split("\n\n", 1)[1].splitlines()
    assert len(lines) == 2
    spki_line = base64.b64decode(lines[0].split(" ")[2])
    c2sp_line = base64.b64decode(lines[1].split(" ")[2])
    assert spki_line[:4] == spki_key_id(key.public_key())
    assert c2sp_line[:4] == c2sp_key_id("example.com/log", 1, key.public_key().public_bytes_raw())
    assert spki_line[4:] == c2sp_line[4:]  # same deterministic signature over the text
    note = open_note(msg, log_verifiers(key.public_key(), "example.com/log"))
    assert len(note.verified) == 2
    # each line alone verifies for a client knowing only one key ID
    for verifier in log_verifiers(key.public_key(), "example.com/log"):
        assert len(open_note(msg, [verifier]).verified) == 1


def test_ed25519_log_key_signs_each_text_once():
    """Both lines come from one signing call per text, through the signing
    function given (the server passes libsodium's), and never a signature
    of another text (texts taken in turn, repeated)."""
    key = enoch_private()
    calls = []

    def sign(text: bytes) -> bytes:
        calls.append(text)
        return key.sign(text)

    signers = log_signers(key, "example.com/log", sign)
    texts = ["a\n", "b\n", "a\n", "a\n", "c\n", "b\n"]
    for text in texts:
        msg = sign_note(text, signers)
        assert len(open_note(msg, log_verifiers(key.public_key(), "example.com/log")
                             ).verified) == 2
        assert msg == sign_note(text, log_signers(key, "example.com/log"))
    assert calls == [t.encode() for t in ["a\n", "b\n", "a\n", "c\n", "b\n"]]


def test_ecdsa_log_key_signs_one_line():
    key = ec.generate_private_key(ec.SECP256R1())
    signers = log_signers(key, "example.com/log")
    assert [type(s) for s in signers] == [ECDSASigner]
    msg = sign_note("body\n", signers)
    assert len(open_note(msg, log_verifiers(key.public_key(), "example.com/log")).verified) == 1


@pytest.mark.parametrize("origin", ["", "has space", "a+b", "rekor.sigstore.dev - 123"])
def test_log_key_name_must_be_valid(origin):
    with pytest.raises(FormatError):
        log_signers(enoch_private(), origin)


def test_log_key_types():
    from cryptography.hazmat.primitives.asymmetric import rsa

    with pytest.raises(TypeError):
        log_signers(rsa.generate_private_key(65537, 1024), "n")  # type: ignore[arg-type]


# --- cosignatures (c2sp.org/tlog-cosignature) ------------------------------

CHECKPOINT_BODY = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
WITNESS = "witness.example.com/w1"
COSIGN_TIME = 1679315147


def witness_signer(clock=lambda: COSIGN_TIME) -> CosignatureSigner:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    return CosignatureSigner(WITNESS, key, clock)


def test_cosignature_message():
    assert cosignature_message(COSIGN_TIME, CHECKPOINT_BODY.encode()) == (
        b"cosignature/v1\ntime 1679315147\n" + CHECKPOINT_BODY.encode()
    )
    assert cosignature_message(0, b"x\n") == b"cosignature/v1\ntime 0\nx\n"
    for bad in (-1, 1 << 63, True, 1.0):
        with pytest.raises(FormatError):
            cosignature_message(bad, b"x\n")  # type: ignore[arg-type]


def test_cosignature_bytes_layout():
    signer = witness_signer()
    raw_pub = signer.private_key.public_key().public_bytes_raw()
    assert signer.key_id == hashlib.sha256(WITNESS.encode() + b"\n\x04" + raw_pub).digest()[:4]
    assert signer.key_id != c2sp_key_id(WITNESS, 1, raw_pub)
    msg = sign_note(CHECKPOINT_BODY, [signer])
    raw = base64.b64decode(msg.decode().split("\n\n")[1].split(" ")[2])
    assert len(raw) == 4 + 8 + 64
    assert raw[:4] == signer.key_id
    assert struct.unpack(">Q", raw[4:12])[0] == COSIGN_TIME
    expected_msg = b"cosignature/v1\ntime 1679315147\n" + CHECKPOINT_BODY.encode()
    signer.private_key.public_key().verify(raw[12:], expected_msg)  # raises if wrong


def test_cosignature_verifies_and_exposes_time():
    signer = witness_signer()
    verifier = signer.verifier()
    log = Ed25519Signer("example.com/behind-the-sofa", enoch_private())
    msg = sign_note(CHECKPOINT_BODY, [log, signer])
    log_verifier = log.verifier()
    note = open_note(msg, [log_verifier, verifier])
    assert note.verification_by(verifier).timestamp == COSIGN_TIME
    assert note.verification_by(log_verifier).timestamp is None
    with pytest.raises(SignatureError):  # only the very verifier objects count
        note.verification_by(log.verifier())


def test_cosignature_appended_to_log_note():
    log = Ed25519Signer("example.com/behind-the-sofa", enoch_private())
    signed = open_note(sign_note(CHECKPOINT_BODY, [log]), [log.verifier()])
    cosigned = append_signatures(signed, [witness_signer()])
    note = open_note(cosigned, [witness_signer().verifier()])
    assert [v.timestamp for v in note.verified] == [COSIGN_TIME]
    assert len(note.unverified) == 1


def test_cosignature_verifier_key_string():
    verifier = witness_signer().verifier()
    vkey = verifier.verifier_key()
    assert vkey.startswith(f"{WITNESS}+{verifier.key_id.hex()}+BA")  # 0x04 → "BA"
    parsed = parse_verifier_key(vkey)
    assert isinstance(parsed, CosignatureVerifier) and parsed.key_id == verifier.key_id


def _cosigned(signature: bytes) -> bytes:
    signer = witness_signer()
    return format_note(CHECKPOINT_BODY, [NoteSignature(WITNESS, signer.key_id, signature)])


def test_cosignature_tampering_rejected():
    signer = witness_signer()
    good = signer.sign(CHECKPOINT_BODY.encode())
    other_time = struct.pack(">Q", COSIGN_TIME + 1) + good[8:]
    huge_time = struct.pack(">Q", 1 << 63) + good[8:]
    for bad in (other_time, huge_time, good[:-1], good + b"\0", good[8:]):
        with pytest.raises(InvalidNoteSignatureError):
            open_note(_cosigned(bad), [signer.verifier()])
    open_note(_cosigned(good), [signer.verifier()])


def test_cosignature_signer_clock_checked():
    with pytest.raises(FormatError):
        witness_signer(clock=lambda: -1).sign(b"x\n")
    max_time = (1 << 63) - 1
    signer = witness_signer(clock=lambda: max_time)
    note = open_note(sign_note("x\n", [signer]), [signer.verifier()])
    assert note.verified[0].timestamp == max_time


def test_cosignature_over_other_body_rejected():
    signer = witness_signer()
    sig = signer.sign(CHECKPOINT_BODY.encode())
    forged = format_note("other\n", [NoteSignature(WITNESS, signer.key_id, sig)])
    with pytest.raises(InvalidNoteSignatureError):
        open_note(forged, [signer.verifier()])


# --- types ------------------------------------------------------------------


def test_wrong_key_types():
    ec_key = ec.generate_private_key(ec.SECP256R1())
    for cls in (Ed25519Signer, SPKIEd25519Signer):
        with pytest.raises(TypeError):
            cls("n", ec_key)  # type: ignore[arg-type]
    for cls in (Ed25519Verifier, SPKIEd25519Verifier, CosignatureVerifier):
        with pytest.raises(TypeError):
            cls("n", ec_key.public_key())  # type: ignore[arg-type]


def test_note_signature_validates():
    with pytest.raises(FormatError):
        NoteSignature("a b", b"1234", b"x")
    with pytest.raises(FormatError):
        NoteSignature("a", b"123", b"x")
    with pytest.raises(FormatError):
        NoteSignature("a", b"1234", b"")
