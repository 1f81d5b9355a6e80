"""Interop with Go's golang.org/x/mod/sumdb/note (SPEC §3, §3.2).

Builds tests/go/noteverify (GOPATH mode against the Debian package
golang-golang-x-mod-dev) and checks, both ways, that notes and checkpoints
signed by one implementation open with the other. Skipped only when the
``go`` binary or the x/mod sources are absent (CI installs both).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tlog_client.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from tlog_client.errors import FormatError, SignatureError
from tlog_client.note import append_signatures, open_note, sign_note
from tlog_client.notekeys import (
    CosignatureSigner,
    Ed25519Signer,
    log_signers,
    log_verifiers,
    parse_signer_key,
    parse_verifier_key,
)

GOPATH = Path("/usr/share/gocode")
X_MOD = GOPATH / "src/golang.org/x/mod/sumdb/note"
SOURCE = Path(__file__).resolve().parents[1] / "go" / "noteverify"

pytestmark = pytest.mark.skipif(
    shutil.which("go") is None or not X_MOD.is_dir(),
    reason="needs the go toolchain and golang-golang-x-mod-dev",
)

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ORIGIN = "example.com/log"
ROOT = bytes(range(32))

TEXTS = [
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n",
    "one line\n",
    "\n",
    "blank\n\nlines\n\n\ninside\n",
    "unicode: 日本語 — ünïcødé, DEL \x7f\n",
    "x" * 5000 + "\n",
]


@pytest.fixture(scope="module")
def noteverify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled Go helper."""
    tmp = tmp_path_factory.mktemp("go")
    binary = tmp / "noteverify"
    env = dict(
        os.environ,
        GOPATH=str(GOPATH),
        GO111MODULE="off",
        GOFLAGS="",
        GOCACHE=str(tmp / "cache"),
        CGO_ENABLED="0",
    )
    subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=SOURCE, env=env, check=True, capture_output=True, timeout=300,
    )
    return binary


def go(binary: Path, command: str, arg: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(binary), command, arg], input=stdin, capture_output=True, timeout=60
    )


def go_ok(binary: Path, command: str, arg: str, stdin: bytes) -> bytes:
    result = go(binary, command, arg, stdin)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


# --- ours → Go -------------------------------------------------------------


@pytest.mark.parametrize("text", TEXTS)
def test_our_notes_open_with_go(noteverify, text):
    msg = sign_note(text, [parse_signer_key(PETER_SKEY)])
    assert go_ok(noteverify, "verify", PETER_VKEY, msg) == text.encode()


def test_our_checkpoints_open_with_go(noteverify):
    key = ed25519.Ed25519PrivateKey.generate()
    checkpoint = Checkpoint(ORIGIN, 1234567, ROOT, ("ext line",))
    msg = sign_checkpoint(checkpoint, log_signers(key, ORIGIN))  # SPKI + C2SP lines
    vkey = Ed25519Signer(ORIGIN, key).verifier().verifier_key()
    assert go_ok(noteverify, "verify", vkey, msg) == checkpoint.to_text().encode()


def test_go_rejects_our_tampered_note(noteverify):
    msg = sign_note("size 5\n", [parse_signer_key(PETER_SKEY)])
    result = go(noteverify, "verify", PETER_VKEY, msg.replace(b"size 5", b"size 6"))
    assert result.returncode == 1
    assert b"invalid signature" in result.stderr


def test_our_cosignature_verifies_with_go(noteverify):
    log_key = ed25519.Ed25519PrivateKey.generate()
    checkpoint = Checkpoint(ORIGIN, 42, ROOT)
    signed = sign_checkpoint(checkpoint, log_signers(log_key, ORIGIN))
    _, note = open_checkpoint(signed, log_verifiers(log_key.public_key(), ORIGIN), ORIGIN)
    witness = CosignatureSigner("witness.example/w1", ed25519.Ed25519PrivateKey.generate(),
                                clock=lambda: 1700000000)
    cosigned = append_signatures(note, [witness])
    vkey = witness.verifier().verifier_key()
    assert go_ok(noteverify, "cosignverify", vkey, cosigned) == b"1700000000\n"
    tampered = cosigned.replace(b"\n42\n", b"\n43\n")
    assert go(noteverify, "cosignverify", vkey, tampered).returncode == 1


# --- Go → ours -------------------------------------------------------------


@pytest.mark.parametrize("text", TEXTS)
def test_go_notes_open_with_ours(noteverify, text):
    msg = go_ok(noteverify, "sign", PETER_SKEY, text.encode())
    note = open_note(msg, [parse_verifier_key(PETER_VKEY)])
    assert note.text == text
    # Ed25519 is deterministic: both implementations produce the same bytes.
    assert sign_note(text, [parse_signer_key(PETER_SKEY)]) == msg


def test_go_generated_keys_work_with_ours(noteverify):
    skey, vkey = go_ok(noteverify, "generate", "example.com/witness", b"").decode().split()
    signer = parse_signer_key(skey)
    verifier = parse_verifier_key(vkey)
    assert signer.signer_key() == skey
    assert verifier.verifier_key() == vkey
    checkpoint = Checkpoint("example.com/witness", 7, ROOT)
    msg = go_ok(noteverify, "sign", skey, checkpoint.to_text().encode())
    assert open_checkpoint(msg, [verifier], "example.com/witness")[0] == checkpoint
    assert go_ok(noteverify, "verify", vkey, sign_checkpoint(checkpoint, [signer]))


# --- both reject -------------------------------------------------------------

_GOOD = sign_note("a\nb\n", [parse_signer_key(PETER_SKEY)]).decode()
_SIG_LINE = _GOOD.split("\n\n")[1]

BOTH_REJECT = {
    "no blank line": _GOOD.replace("\n\n", "\n"),
    "no final newline": _GOOD[:-1],
    "control char": "\x01" + _GOOD,
    "CRLF": _GOOD.replace("\n", "\r\n"),
    "name with space": _GOOD.replace("PeterNeumann", "Peter Neumann"),
    "name with plus": _GOOD.replace("PeterNeumann", "Peter+Neumann"),
    "hyphen for em dash": _GOOD.replace("\u2014", "-"),
    "trailing junk line": _GOOD + "junk\n",
    "101 signatures": "a\nb\n\n" + _SIG_LINE * 101,
    "4-byte signature": "a\nb\n\n\u2014 PeterNeumann x08gow==\n",
    "unknown key only": _GOOD.replace("PeterNeumann", "Someone"),
}


@pytest.mark.parametrize("msg", BOTH_REJECT.values(), ids=BOTH_REJECT.keys())
def test_malformed_notes_rejected_by_both(noteverify, msg):
    assert go(noteverify, "verify", PETER_VKEY, msg.encode()).returncode == 1
    with pytest.raises((FormatError, SignatureError)):
        open_note(msg.encode(), [parse_verifier_key(PETER_VKEY)])
