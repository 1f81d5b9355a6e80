"""Real in-toto statements, signing keys and certificates for the attestation
tests (client and server). Pure: cryptography and the client package only.

The statements follow what real producers write:

- SLSA provenance v1 as GitHub's ``actions/attest-build-provenance`` emits it
  (build type ``https://actions.github.io/buildtypes/workflow/v1``, the
  workflow's repository/ref/path as external parameters, the source commit as
  a ``git+`` resolved dependency, builder id the GitHub-hosted runner);
- SLSA provenance v0.2 as ``slsa-github-generator`` emits it (configSource,
  materials);
- a CycloneDX 1.5 SBOM with nested components;
- an SPDX 2.3 document.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

REPO = "https://github.com/acme/app"
COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b"
GITHUB_BUILDER = "https://github.com/actions/runner/github-hosted"
GENERATOR_BUILDER = ("https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
                     "generator_generic_slsa3.yml@refs/tags/v1.9.0")
WORKFLOW_IDENTITY = f"{REPO}/.github/workflows/release.yml@refs/heads/main"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def artifact(name: str = "app-1.0.tar.gz", salt: bytes = b"") -> tuple[str, str]:
    """A (name, sha256 hex) subject for some artifact bytes."""
    return name, sha256_hex(b"artifact " + name.encode() + salt)


def slsa_v1_github(subjects: list[tuple[str, str]], *, repo: str = REPO,
                   ref: str = "refs/heads/main", commit: str = COMMIT,
                   builder_id: str = GITHUB_BUILDER) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {
                    "ref": ref, "repository": repo, "path": ".github/workflows/release.yml"}},
                "internalParameters": {"github": {
                    "event_name": "push", "repository_id": "706435219",
                    "repository_owner_id": "1234567", "runner_environment": "github-hosted"}},
                "resolvedDependencies": [{"uri": f"git+{repo}@{ref}",
                                          "digest": {"gitCommit": commit}}],
            },
            "runDetails": {
                "builder": {"id": builder_id},
                "metadata": {"invocationId": f"{repo}/actions/runs/9999/attempts/1"},
            },
        },
    }


def slsa_v02_generator(subjects: list[tuple[str, str]], *, repo: str = REPO,
                       ref: str = "refs/tags/v1.0.0", commit: str = COMMIT,
                       builder_id: str = GENERATOR_BUILDER) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects],
        "predicate": {
            "builder": {"id": builder_id},
            "buildType": "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
            "invocation": {
                "configSource": {"uri": f"git+{repo}@{ref}", "digest": {"sha1": commit},
                                 "entryPoint": ".github/workflows/release.yml"},
                "parameters": {},
                "environment": {"github_run_id": "9999", "github_event_name": "push"},
            },
            "metadata": {"buildInvocationID": "9999-1",
                         "completeness": {"parameters": True, "environment": False,
                                          "materials": False},
                         "reproducible": False},
            "materials": [{"uri": f"git+{repo}@{ref}", "digest": {"sha1": commit}}],
        },
    }


def cyclonedx_sbom(subjects: list[tuple[str, str]]) -> dict[str, Any]:
    """A CycloneDX 1.5 SBOM with 4 components (one nested)."""
    return {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://cyclonedx.org/bom",
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects],
        "predicate": {
            "bomFormat": "CycloneDX", "specVersion": "1.5",
            "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79", "version": 1,
            "metadata": {"timestamp": "2025-01-01T00:00:00Z",
                         "component": {"type": "application", "name": "app", "version": "1.0"}},
            "components": [
                {"type": "library", "name": "requests", "version": "2.31.0",
                 "purl": "pkg:pypi/requests@2.31.0",
                 "components": [{"type": "library", "name": "urllib3", "version": "2.2.1",
                                 "purl": "pkg:pypi/urllib3@2.2.1"}]},
                {"type": "library", "name": "cryptography", "version": "42.0.5",
                 "purl": "pkg:pypi/cryptography@42.0.5"},
                {"type": "library", "name": "rfc8785", "version": "0.1.2"},
            ],
        },
    }


def spdx_document(subjects: list[tuple[str, str]]) -> dict[str, Any]:
    """An SPDX 2.3 document with 3 packages."""
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects],
        "predicateType": "https://spdx.dev/Document",
        "predicate": {
            "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
            "name": "app-1.0", "documentNamespace": "https://acme.example/spdx/app-1.0",
            "creationInfo": {"created": "2025-01-01T00:00:00Z",
                             "creators": ["Tool: syft-1.0.0"]},
            "packages": [
                {"name": "app", "SPDXID": "SPDXRef-Package-app", "versionInfo": "1.0",
                 "downloadLocation": "NOASSERTION"},
                {"name": "zlib", "SPDXID": "SPDXRef-Package-zlib", "versionInfo": "1.3",
                 "downloadLocation": "NOASSERTION"},
                {"name": "openssl", "SPDXID": "SPDXRef-Package-openssl",
                 "versionInfo": "3.0.13", "downloadLocation": "NOASSERTION"},
            ],
            "relationships": [{"spdxElementId": "SPDXRef-DOCUMENT",
                               "relationshipType": "DESCRIBES",
                               "relatedSpdxElement": "SPDXRef-Package-app"}],
        },
    }


def payload(statement: dict[str, Any]) -> bytes:
    return json.dumps(statement, separators=(",", ":")).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def dotted(path: tuple, prefix: str = "") -> str:
    """``path`` (keys and list indexes) as the field name an error carries,
    e.g. ``spec.content.envelope.signatures[0].sig``, after ``prefix``."""
    out = prefix
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def mutate(obj: dict[str, Any], path: tuple, value: Any = ..., delete: bool = False) -> dict:
    """A deep copy of ``obj`` with the member at ``path`` (keys and list
    indexes) set to ``value`` or deleted."""
    out = copy.deepcopy(obj)
    node = out
    for step in path[:-1]:
        node = node[step]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


# -- keys ------------------------------------------------------------------------------

@dataclass
class Key:
    """A private key and the PEM a verifier receives (SPKI or certificate chain)."""

    private: Any
    pem: bytes
    label: str

    @property
    def spki_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def key_hash(self) -> str:
        return sha256_hex(self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def _spki(private) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


_RSA: dict[int, rsa.RSAPrivateKey] = {}


def rsa_private(bits: int = 2048) -> rsa.RSAPrivateKey:
    if bits not in _RSA:
        _RSA[bits] = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return _RSA[bits]


def ecdsa_key(curve: ec.EllipticCurve | None = None) -> Key:
    k = ec.generate_private_key(curve or ec.SECP256R1())
    return Key(k, _spki(k), f"ecdsa-{k.curve.name}")


def rsa_key(bits: int = 2048) -> Key:
    k = rsa_private(bits)
    return Key(k, _spki(k), f"rsa{bits}")


def ed25519_key() -> Key:
    k = ed25519.Ed25519PrivateKey.generate()
    return Key(k, _spki(k), "ed25519")


def certificate(private, emails=(), uris=(), issuer_key=None, issuer_name=None,
                cn: str = "tlog attestation test") -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer_name or subject).public_key(private.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650)))
    sans = [*(x509.RFC822Name(e) for e in emails),
            *(x509.UniformResourceIdentifier(u) for u in uris)]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    signer = issuer_key or private
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signer, algorithm)


def cert_key(emails=(), uris=(), private=None, chain: bool = False) -> Key:
    """A key whose verifier is a certificate (or leaf + CA chain) with SANs."""
    private = private or ec.generate_private_key(ec.SECP256R1())
    if chain:
        ca_key = ec.generate_private_key(ec.SECP384R1())
        ca = certificate(ca_key, cn="tlog attestation test CA")
        leaf = certificate(private, emails, uris, issuer_key=ca_key, issuer_name=ca.subject)
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca))
    else:
        pem = certificate(private, emails, uris).public_bytes(serialization.Encoding.PEM)
    return Key(private, pem, "cert-chain" if chain else "cert")


def all_keys() -> list[Key]:
    """One of each allowed kind: ECDSA P-256/P-384/P-521, RSA 2048/3072,
    Ed25519, certificates (e-mail SAN; URI SAN with a CA chain; Ed25519)."""
    return [ecdsa_key(ec.SECP256R1()), ecdsa_key(ec.SECP384R1()), ecdsa_key(ec.SECP521R1()),
            rsa_key(2048), rsa_key(3072), ed25519_key(),
            cert_key(emails=["Builder@Example.com"]),
            cert_key(uris=[WORKFLOW_IDENTITY], chain=True),
            cert_key(emails=["ed@example.com"], private=ed25519.Ed25519PrivateKey.generate())]
