"""Interop: sigstore-python 4.x signs an in-toto statement as a dsse entry
against the real server (its own Rekor v1 client, its own request with
explicit nulls) and verifies the bundle offline with ``Verifier.verify_dsse``
(which compares our canonical dsse body with the envelope: payload hash,
signatures, verifier = base64 of the signing certificate's PEM).

Everything on loopback, as in test_sigstore_python.py (fake Fulcio, no TUF)."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("sigstore", minversion="4")

from cryptography.hazmat.primitives import serialization  # noqa: E402
from sigstore import dsse as sigstore_dsse  # noqa: E402
from sigstore._internal.fulcio.client import FulcioClient  # noqa: E402
from sigstore._internal.rekor.client import RekorClient  # noqa: E402
from sigstore.errors import Error as SigstoreError  # noqa: E402
from sigstore.models import Bundle  # noqa: E402
from sigstore.oidc import IdentityToken  # noqa: E402
from sigstore.sign import SigningContext  # noqa: E402
from sigstore.verify import Verifier  # noqa: E402
from sigstore.verify.policy import Identity as IdentityPolicy  # noqa: E402

from tlog_client import dsse  # noqa: E402

from ..client.attestation_samples import GITHUB_BUILDER, slsa_v1_github  # noqa: E402
from ..serverproc import ServerProcess  # noqa: E402
from .fakefulcio import (FakeFulcio, FakeFulcioServer, Identity,  # noqa: E402
                         unsigned_identity_token)
from .test_sigstore_python import no_network, trusted_root  # noqa: E402,F401

SIGNER = Identity("builder@example.com", "https://issuer.example.com")
DIGEST = "5e1f" * 16


def post(url: str, obj: dict) -> list:
    req = urllib.request.Request(url, json.dumps(obj).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-p256"])
def test_sigstore_python_signs_dsse_and_verifies_offline(tmp_path, no_network, key_type):
    data_dir = tmp_path / "log"
    server = ServerProcess(data_dir, "--key-type", key_type).start()
    try:
        private = serialization.load_pem_private_key(
            (Path(data_dir) / "log-key.pem").read_bytes(), password=None)
        ca = FakeFulcio()
        trust = ca.trusted_root(private.public_key(), server.url)
        predicate = slsa_v1_github([("app.tar.gz", DIGEST)])["predicate"]
        statement = (sigstore_dsse.StatementBuilder()
                     .subjects([sigstore_dsse.Subject(name="app.tar.gz",
                                                      digest={"sha256": DIGEST})])
                     .predicate_type("https://slsa.dev/provenance/v1")
                     .predicate(predicate).build())
        with FakeFulcioServer(ca) as fulcio:
            context = SigningContext(fulcio=FulcioClient(fulcio.url),
                                     rekor=RekorClient(server.url),
                                     trusted_root=trusted_root(trust))
            with context.signer(IdentityToken(unsigned_identity_token(SIGNER))) as signer:
                bundle = signer.sign_dsse(statement)
        bundle = Bundle.from_json(bundle.to_json())
        entry = bundle.log_entry._inner
        assert (entry.kind_version.kind, entry.kind_version.version) == ("dsse", "0.0.1")

        verifier = Verifier(trusted_root=trusted_root(trust))
        payload_type, payload = verifier.verify_dsse(
            bundle, IdentityPolicy(identity=SIGNER.email, issuer=SIGNER.issuer))
        assert payload_type == "application/vnd.in-toto+json"
        assert json.loads(payload)["predicate"]["runDetails"]["builder"]["id"] == GITHUB_BUILDER
        with pytest.raises(SigstoreError):
            verifier.verify_dsse(bundle, IdentityPolicy(identity="other@example.com",
                                                        issuer=SIGNER.issuer))

        # Our leaf is the body sigstore-python checked; the log kept the envelope.
        leaf = dsse.parse_canonical(entry.canonicalized_body)
        (uuid,) = post(server.url + "/api/v1/index/retrieve",
                       {"hash": f"sha256:{DIGEST}", "email": SIGNER.email, "operator": "and"})
        with urllib.request.urlopen(f"{server.url}/api/v1/log/entries/{uuid}", timeout=10) as r:
            (obj,) = json.loads(r.read()).values()
        full = dsse.verify_attestation(leaf, base64.b64decode(obj["attestation"]["data"]))
        assert full.statement.provenance.builder_id == GITHUB_BUILDER
        assert post(server.url + "/api/v1/index/retrieve",
                    {"builderId": GITHUB_BUILDER}) == [uuid]
    finally:
        server.kill()
    assert "Traceback" not in server.output()
