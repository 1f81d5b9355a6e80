"""Interop: sigstore-python 4.x signs against this log and verifies offline.

Issue 3 ("Must show"): sigstore-python (the `sigstore` package, 4.x) can submit
a hashedrekord entry to this server and verify the resulting bundle offline
against a trusted root naming this log's key.

Everything runs on loopback: the real ``tlog serve`` process, a fake Fulcio
(tests/interop/fakefulcio.py: a test root CA, a test CT log, Fulcio's
``/api/v2/signingCert``). sigstore-python's own ``Signer`` submits through its
own Rekor v1 client (``sigstore._internal.rekor.client.RekorClient``), so its
request shape and its parsing of our LogEntry (``TransparencyLogEntry.
_from_v1_response``) are exercised, and it assembles the bundle itself. The
bundle is then verified with ``sigstore.verify.Verifier`` built from a
``TrustedRoot`` constructed in memory (no TUF: a socket guard fails any
non-loopback connection).

What sigstore-python's offline verification checks (sigstore/verify/verifier.py
``Verifier._verify_common_signing_cert`` and ``verify_artifact``; sigstore/
models.py ``TransparencyLogEntry._verify``), each exercised here:

- the certificate chains to the trusted CA at the entry's ``integratedTime``
  (time source: Rekor v1 integrated time, used only with an inclusion promise);
- one embedded SCT verifies under a trusted CT log key;
- KeyUsage digitalSignature, EKU codeSigning, the identity policy;
- the Merkle inclusion proof (exact length inner + border, RFC 6962 hashing of
  the canonicalized body) reaches the proof's rootHash
  (sigstore/_internal/merkle.py ``verify_merkle_inclusion``);
- the checkpoint: a signed note with exactly one blank line, a signature line
  whose 4-byte key hint is SHA-256(DER SPKI)[:4] of the trusted log key
  (``logId.keyId``), verifying over the note text, and a root equal to the
  proof's rootHash (sigstore/_internal/rekor/checkpoint.py ``verify_checkpoint``);
- the SET over RFC 8785 JSON of {body, integratedTime, logID, logIndex}
  (models.py ``TransparencyLogEntry._verify_set``), Ed25519 raw or ECDSA DER
  over SHA-256 (sigstore/_internal/trust.py ``Key.verify``);
- integratedTime within the certificate's validity;
- the signature over the artifact digest and the entry body equal to the
  hashedrekord sigstore would have written for these materials (key as base64
  of the certificate PEM).

Both log key types are covered. sigstore-python accepts an Ed25519 Rekor key
(trust.py ``Key.__init__`` maps PKIX_ED25519 to a raw Ed25519 verifier) and
matches checkpoint signatures on SHA-256(DER SPKI)[:4] only, which is why an
Ed25519 log writes a second signature line under that key ID (SPEC §3.2).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("sigstore", minversion="4")

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: E402
from sigstore._internal.fulcio.client import FulcioClient  # noqa: E402
from sigstore._internal.rekor import _hashedrekord_from_parts  # noqa: E402
from sigstore._internal.rekor.client import RekorClient  # noqa: E402
from sigstore.errors import Error as SigstoreError  # noqa: E402
from sigstore.hashes import Hashed  # noqa: E402
from sigstore.models import Bundle, TrustedRoot  # noqa: E402
from sigstore.oidc import IdentityToken  # noqa: E402
from sigstore.sign import SigningContext  # noqa: E402
from sigstore.verify import Verifier  # noqa: E402
from sigstore.verify.policy import Identity as IdentityPolicy  # noqa: E402
from sigstore_models.common.v1 import HashAlgorithm  # noqa: E402
from sigstore_models.trustroot import v1 as trustroot_v1  # noqa: E402

from ..serverproc import ServerProcess  # noqa: E402
from .fakefulcio import (FakeFulcio, FakeFulcioServer, Identity,  # noqa: E402
                         unsigned_identity_token)

SIGNER = Identity("builder@example.com", "https://issuer.example.com")
ARTIFACTS = [b"release-1.0.tar.gz contents", b"release-1.1.tar.gz contents",
             b"release-1.2.tar.gz contents"]
KEY_TYPES = ["ed25519", "ecdsa-p256"]


# -- no network: every connection this process makes must be to loopback --------

_real_connect = socket.socket.connect


def _loopback_only_connect(sock, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"test tried to reach the network: {address!r}")
    return _real_connect(sock, address)


@pytest.fixture(scope="module", autouse=True)
def no_network():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _loopback_only_connect)
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
                    "https_proxy", "all_proxy"):
            mp.delenv(var, raising=False)
        yield


# -- one log per key type, three artifacts signed by sigstore-python's Signer -----

@dataclass
class Signed:
    key_type: str
    server: ServerProcess
    log_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
    ca: FakeFulcio
    trust: dict
    bundles: list[Bundle]

    @property
    def trusted_root(self) -> TrustedRoot:
        return trusted_root(self.trust)


def trusted_root(obj: dict) -> TrustedRoot:
    return TrustedRoot(trustroot_v1.TrustedRoot.from_json(json.dumps(obj)))


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@pytest.fixture(scope="module", params=KEY_TYPES)
def signed(request, tmp_path_factory, no_network) -> Signed:
    key_type = request.param
    data_dir = tmp_path_factory.mktemp(f"sigstore-{key_type}") / "log"
    server = ServerProcess(data_dir, "--key-type", key_type).start()
    try:
        # The log key, pinned out of band: read from the log's own key file,
        # then checked against what the server publishes.
        private = serialization.load_pem_private_key(
            (Path(data_dir) / "log-key.pem").read_bytes(), password=None)
        log_key = private.public_key()
        pem = log_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        assert http_get(server.url + "/api/v1/log/publicKey") == pem
        ca = FakeFulcio()
        trust = ca.trusted_root(log_key, server.url)
        with FakeFulcioServer(ca) as fulcio:
            context = SigningContext(fulcio=FulcioClient(fulcio.url),
                                     rekor=RekorClient(server.url),
                                     trusted_root=trusted_root(trust))
            token = IdentityToken(unsigned_identity_token(SIGNER))
            with context.signer(token) as signer:
                bundles = [signer.sign_artifact(a) for a in ARTIFACTS]
        # A bundle is kept as JSON; verify what a user would read back.
        bundles = [Bundle.from_json(b.to_json()) for b in bundles]
        yield Signed(key_type, server, log_key, ca, trust, bundles)
    finally:
        server.kill()


def verify(signed: Signed, bundle: Bundle, artifact: bytes, *,
           trust: dict | None = None, policy: IdentityPolicy | None = None) -> None:
    verifier = Verifier(trusted_root=trusted_root(trust or signed.trust))
    verifier.verify_artifact(artifact, bundle,
                             policy or IdentityPolicy(identity=SIGNER.email,
                                                      issuer=SIGNER.issuer))


def log_id_hex(key) -> str:
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


# -- acceptance ----------------------------------------------------------------

def test_sigstore_signer_bundles_verify_offline(signed: Signed):
    for index, (artifact, bundle) in enumerate(zip(ARTIFACTS, signed.bundles)):
        entry = bundle.log_entry._inner
        assert entry.log_index == index
        assert entry.log_id.key_id.hex() == log_id_hex(signed.log_key)
        assert (entry.kind_version.kind, entry.kind_version.version) == ("hashedrekord",
                                                                         "0.0.1")
        assert entry.inclusion_proof.tree_size == index + 1  # the checkpoint of its batch
        verify(signed, bundle, artifact)


def test_bundle_is_v03_with_checkpoint_and_set(signed: Signed):
    obj = json.loads(signed.bundles[2].to_json())
    assert obj["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    (tlog,) = obj["verificationMaterial"]["tlogEntries"]
    assert tlog["inclusionPromise"]["signedEntryTimestamp"]
    note = tlog["inclusionProof"]["checkpoint"]["envelope"]
    origin, size, root = note.split("\n")[:3]
    assert size == tlog["inclusionProof"]["treeSize"] == "3"
    assert base64.b64decode(root) == base64.b64decode(tlog["inclusionProof"]["rootHash"])
    # The checkpoint carries a signature under sigstore-python's key hint.
    hint = bytes.fromhex(log_id_hex(signed.log_key))[:4]
    sig_lines = note.split("\n\n", 1)[1].splitlines()
    assert any(base64.b64decode(line.rsplit(" ", 1)[1])[:4] == hint for line in sig_lines)
    if signed.key_type == "ed25519":
        assert len(sig_lines) == 2  # C2SP key ID line + SPKI-hash line (SPEC §3.2)


def test_entries_read_back_through_sigstore_rekor_client_verify(signed: Signed):
    """The read routes sigstore-python uses (GET by UUID, GET by logIndex,
    POST retrieve for detached materials) give entries whose proofs are at
    the current checkpoint and verify offline."""
    rekor = RekorClient(signed.server.url)
    bundle = signed.bundles[1]
    cert, signature = bundle.signing_certificate, bundle.signature
    uuid = hashlib.sha256(b"\x00" + bundle.log_entry._inner.canonicalized_body).hexdigest()
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256,
                    digest=hashlib.sha256(ARTIFACTS[1]).digest())
    entries = [
        rekor.log.entries.get(uuid=uuid),
        rekor.log.entries.get(log_index=1),
        rekor.log.entries.retrieve.post(_hashedrekord_from_parts(cert, signature, hashed)),
    ]
    for entry in entries:
        assert entry is not None
        assert entry._inner.log_index == 1
        assert entry._inner.inclusion_proof.tree_size == len(ARTIFACTS)
        assert entry._inner.canonicalized_body == bundle.log_entry._inner.canonicalized_body
        verify(signed, Bundle.from_parts(cert, signature, entry), ARTIFACTS[1])


def test_log_info_is_read_by_sigstore_rekor_client(signed: Signed):
    info = RekorClient(signed.server.url).log.get()
    assert info.tree_size == len(ARTIFACTS)
    assert int(info.tree_id) > 0


# -- rejection -------------------------------------------------------------------

def flip(b64: str, at: int = 0) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def sign_note(text: str, key, hint: bytes) -> str:
    """``text`` (a checkpoint body ending in ``\\n``) signed by ``key`` under
    the 4-byte ``hint``, in signed-note form, with the origin as key name."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        sig = key.sign(text.encode())
    else:
        sig = key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
    name = text.split("\n", 1)[0]
    return f"{text}\n\u2014 {name} {base64.b64encode(hint + sig).decode()}\n"


def other_key(key_type: str):
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def _tlog(obj: dict) -> dict:
    return obj["verificationMaterial"]["tlogEntries"][0]


def _proof(obj: dict) -> dict:
    return _tlog(obj)["inclusionProof"]


def _note_body(obj: dict) -> str:
    note = _proof(obj)["checkpoint"]["envelope"]
    return note[:note.index("\n\n") + 1]


def tamper_set(obj, signed):
    p = _tlog(obj)["inclusionPromise"]
    p["signedEntryTimestamp"] = flip(p["signedEntryTimestamp"], 8)


def tamper_proof_hash(obj, signed):
    _proof(obj)["hashes"][0] = flip(_proof(obj)["hashes"][0])


def tamper_proof_root(obj, signed):
    _proof(obj)["rootHash"] = flip(_proof(obj)["rootHash"])


def tamper_body(obj, signed):
    body = json.loads(base64.b64decode(_tlog(obj)["canonicalizedBody"]))
    body["spec"]["data"]["hash"]["value"] = hashlib.sha256(b"other").hexdigest()
    _tlog(obj)["canonicalizedBody"] = base64.b64encode(
        json.dumps(body, separators=(",", ":"), sort_keys=True).encode()).decode()


def tamper_log_index(obj, signed):
    _tlog(obj)["logIndex"] = str(int(_tlog(obj)["logIndex"]) - 1)


def tamper_proof_log_index(obj, signed):
    _proof(obj)["logIndex"] = str(int(_proof(obj)["logIndex"]) - 1)


def tamper_integrated_time(obj, signed):
    _tlog(obj)["integratedTime"] = str(int(_tlog(obj)["integratedTime"]) - 1)


def tamper_checkpoint_other_key_same_hint(obj, signed):
    """Another key signs the same checkpoint under the log key's hint."""
    hint = bytes.fromhex(log_id_hex(signed.log_key))[:4]
    _proof(obj)["checkpoint"]["envelope"] = sign_note(_note_body(obj),
                                                      other_key(signed.key_type), hint)


def tamper_checkpoint_other_key(obj, signed):
    """Another key signs the same checkpoint under its own hint."""
    key = other_key(signed.key_type)
    hint = bytes.fromhex(log_id_hex(key.public_key()))[:4]
    _proof(obj)["checkpoint"]["envelope"] = sign_note(_note_body(obj), key, hint)


def tamper_checkpoint_later(obj, signed):
    """A genuine, later checkpoint of the same log: its root is not the
    proof's."""
    _proof(obj)["checkpoint"]["envelope"] = http_get(signed.server.url + "/checkpoint").decode()


def tamper_message_signature(obj, signed):
    sig = obj["messageSignature"]
    sig["signature"] = flip(sig["signature"], 10)


TAMPERS = {
    "set-byte-flipped": (tamper_set, "SET: invalid inclusion promise"),
    "proof-hash-flipped": (tamper_proof_hash, "inclusion proof contains invalid root hash"),
    "proof-root-flipped": (tamper_proof_root, "inclusion proof contains invalid root hash"),
    "body-changed": (tamper_body, "inclusion proof contains invalid root hash"),
    "log-index-changed": (tamper_log_index, "SET: invalid inclusion promise"),
    "proof-log-index-changed": (tamper_proof_log_index,
                                "inclusion proof contains invalid root hash"),
    "integrated-time-changed": (tamper_integrated_time, "SET: invalid inclusion promise"),
    "checkpoint-other-key-same-hint": (tamper_checkpoint_other_key_same_hint,
                                       "checkpoint: invalid signature"),
    "checkpoint-other-key": (tamper_checkpoint_other_key, "checkpoint: Signature not found"),
    "checkpoint-later-size": (tamper_checkpoint_later, "invalid root hash"),
    "message-signature-flipped": (tamper_message_signature, "Signature is invalid"),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_tampered_bundle_rejected(signed: Signed, name: str):
    tamper, expected = TAMPERS[name]
    bundle = signed.bundles[1]  # index 1 in a tree of 2: a one-hash proof
    obj = json.loads(bundle.to_json())
    tamper(obj, signed)
    with pytest.raises(SigstoreError) as info:
        verify(signed, Bundle.from_json(json.dumps(obj)), ARTIFACTS[1])
    assert expected in str(info.value)


def test_other_artifact_rejected(signed: Signed):
    with pytest.raises(SigstoreError, match="digest mismatch"):
        verify(signed, signed.bundles[1], ARTIFACTS[0])
    # Without the (unsigned) digest in the bundle, the signature check catches it.
    obj = json.loads(signed.bundles[1].to_json())
    del obj["messageSignature"]["messageDigest"]
    with pytest.raises(SigstoreError, match="Signature is invalid"):
        verify(signed, Bundle.from_json(json.dumps(obj)), ARTIFACTS[0])


def test_trusted_root_naming_another_log_key_rejects(signed: Signed):
    trust = signed.ca.trusted_root(other_key(signed.key_type).public_key(), signed.server.url)
    with pytest.raises(SigstoreError, match="invalid log entry"):
        verify(signed, signed.bundles[1], ARTIFACTS[1], trust=trust)


def test_other_identity_rejected(signed: Signed):
    with pytest.raises(SigstoreError, match="SANs do not match"):
        verify(signed, signed.bundles[1], ARTIFACTS[1],
               policy=IdentityPolicy(identity="mallory@example.com", issuer=SIGNER.issuer))
    with pytest.raises(SigstoreError, match="does not match"):
        verify(signed, signed.bundles[1], ARTIFACTS[1],
               policy=IdentityPolicy(identity=SIGNER.email, issuer="https://other.example"))


def test_log_key_validity_must_cover_now(signed: Signed):
    """A trusted-root log key whose validity starts in the future is not
    used (sigstore/_utils.py ``is_timerange_valid``)."""
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    trust = signed.ca.trusted_root(signed.log_key, signed.server.url, log_valid_from=later)
    with pytest.raises(SigstoreError):
        verify(signed, signed.bundles[1], ARTIFACTS[1], trust=trust)


# -- the `sigstore` command line, as a user would run it -------------------------

SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
CLIENT_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"


def client_trust_config(trust: dict, fulcio_url: str, rekor_url: str) -> dict:
    """A ClientTrustConfig (what ``sigstore --trust-config`` reads): the
    trusted root plus a signing config naming the fake Fulcio and this log as
    a Rekor v1 instance."""
    return {
        "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
        "trustedRoot": trust,
        "signingConfig": {
            "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
            "caUrls": [{"url": fulcio_url, "majorApiVersion": 1, "operator": "tlog-test"}],
            "oidcUrls": [],
            "rekorTlogUrls": [{"url": rekor_url, "majorApiVersion": 1,
                               "operator": "tlog-test"}],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaUrls": [],
            "tsaConfig": {"selector": "ANY"},
        },
    }


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_sigstore_cli_signs_and_verifies_offline(make_server, tmp_path, dead_proxy, key_type):
    """``sigstore sign`` then ``sigstore verify identity --offline`` in a
    subprocess, configured only by ``--trust-config``. Any attempt to leave
    loopback is sent to a dead proxy (NO_PROXY covers 127.0.0.1)."""
    server = make_server("--key-type", key_type)
    private = serialization.load_pem_private_key(
        (server.data_dir / "log-key.pem").read_bytes(), password=None)
    ca = FakeFulcio()
    artifact = tmp_path / "artifact.bin"
    artifact.write_bytes(b"built by CI")
    bundle_path = tmp_path / "artifact.bin.sigstore.json"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(HTTP_PROXY=dead_proxy, HTTPS_PROXY=dead_proxy, ALL_PROXY=dead_proxy,
               NO_PROXY="127.0.0.1",
               SIGSTORE_OFFLINE="1", HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "c"),
               XDG_DATA_HOME=str(tmp_path / "d"))
    cli = [sys.executable, "-m", "sigstore", "--trust-config", str(tmp_path / "trust.json")]
    with FakeFulcioServer(ca) as fulcio:
        (tmp_path / "trust.json").write_text(json.dumps(client_trust_config(
            ca.trusted_root(private.public_key(), server.url), fulcio.url, server.url)))
        sign = subprocess.run(
            [*cli, "sign", "--identity-token", unsigned_identity_token(SIGNER),
             "--bundle", str(bundle_path), str(artifact)],
            env=env, capture_output=True, text=True, timeout=60)
        assert sign.returncode == 0, sign.stdout + sign.stderr
    assert len(fulcio.issued) == 1

    def verify_cli(identity: str, path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*cli, "verify", "identity", "--offline", "--bundle", str(bundle_path),
             "--cert-identity", identity, "--cert-oidc-issuer", SIGNER.issuer, str(path)],
            env=env, capture_output=True, text=True, timeout=60)

    ok = verify_cli(SIGNER.email, artifact)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stderr + ok.stdout
    # A flipped SET byte in the stored bundle is caught by the CLI too (the
    # other rejections are covered in-process above, where they are cheaper).
    obj = json.loads(bundle_path.read_text())
    tamper_set(obj, None)
    bundle_path.write_text(json.dumps(obj))
    bad = verify_cli(SIGNER.email, artifact)
    assert bad.returncode != 0 and "SET" in bad.stdout + bad.stderr


@pytest.fixture
def dead_proxy():
    """The URL of a loopback port nothing listens on (bound, never listened)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_network_guard_is_active():
    with pytest.raises(AssertionError, match="reach the network"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1
