"""A Fulcio-like test certificate authority, a test CT log and a Sigstore
trusted root naming this log's key, all offline (for the sigstore-python
interop tests).

What sigstore-python 4.x checks of a signing certificate, and how this module
satisfies it (see sigstore/verify/verifier.py ``_verify_common_signing_cert``):

- the chain to a ``certificateAuthorities`` root, at the log's integrated
  time, with pyca/cryptography's web-PKI client verifier (EKU relaxed): the
  root is a v3 CA (BasicConstraints critical ca=True, KeyUsage keyCertSign,
  SKI); the leaf has an AKI, a critical SAN and an empty subject (as Fulcio's);
- exactly one embedded SCT (sigstore/_internal/sct.py ``verify_sct``): an RFC
  6962 precertificate SCT whose signature covers the issuer key hash and the
  TBSCertificate without the SCT list extension, signed by a ``ctlogs`` key;
- KeyUsage digitalSignature and ExtendedKeyUsage codeSigning;
- the identity policy: the e-mail SAN and the OIDC issuer extension
  1.3.6.1.4.1.57264.1.1 (raw string; 1.3.6.1.4.1.57264.1.8 carries the same as
  a DER UTF8String, as Fulcio writes both).

The fake Fulcio HTTP endpoint (:class:`FakeFulcioServer`) answers
``POST /api/v2/signingCert`` like Fulcio, so sigstore-python's own
``Signer`` can be used unchanged; it binds to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"


# -- tiny DER / TLS encoders -------------------------------------------------

def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def der_tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(content)) + content


def der_utf8(text: str) -> bytes:
    return der_tlv(0x0C, text.encode())


def der_octets(data: bytes) -> bytes:
    return der_tlv(0x04, data)


def tls_vec(length_bytes: int, data: bytes) -> bytes:
    """A TLS opaque vector: big-endian length prefix of ``length_bytes`` bytes."""
    return len(data).to_bytes(length_bytes, "big") + data


def spki_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the CT log ----------------------------------------------------------------

class FakeCTLog:
    """A CT log key that signs RFC 6962 v1 precertificate SCTs."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.log_id = hashlib.sha256(spki_der(self.key.public_key())).digest()

    def precert_sct(self, precert_tbs: bytes, issuer_key_hash: bytes,
                    timestamp_ms: int) -> bytes:
        """One serialized SCT (RFC 6962 §3.2) over a precertificate entry."""
        extensions = b""
        signed_entry = issuer_key_hash + tls_vec(3, precert_tbs)
        digitally_signed = (struct.pack("!BBQH", 0, 0, timestamp_ms, 1)  # v1, cert ts, precert
                            + signed_entry + tls_vec(2, extensions))
        signature = self.key.sign(digitally_signed, ec.ECDSA(hashes.SHA256()))
        return (struct.pack("!B", 0) + self.log_id + struct.pack("!Q", timestamp_ms)
                + tls_vec(2, extensions)
                + bytes([4, 3])  # hash sha256, signature ecdsa
                + tls_vec(2, signature))


# -- the CA --------------------------------------------------------------------

@dataclass(frozen=True)
class Identity:
    email: str
    issuer: str


class FakeFulcio:
    """A root CA issuing Fulcio-profile code-signing certificates with an
    embedded SCT from :class:`FakeCTLog`."""

    def __init__(self, now: dt.datetime | None = None) -> None:
        now = now or utc_now()
        self.ct = FakeCTLog()
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlog-test"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "tlog-test fulcio root")])
        public = self.key.public_key()
        self.not_before = now - dt.timedelta(days=1)
        self.root = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, public_key, identity: Identity, *,
              not_before: dt.datetime | None = None,
              lifetime: dt.timedelta = dt.timedelta(minutes=10)) -> x509.Certificate:
        """A leaf certificate for ``public_key`` as Fulcio issues it: empty
        subject, critical e-mail SAN, codeSigning, OIDC issuer extensions and
        one embedded precertificate SCT (the SCT list is the last extension,
        so the precertificate TBS is this TBS without it)."""
        not_before = not_before or utc_now() - dt.timedelta(minutes=1)
        issuer_public = self.key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.root.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + lifetime)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(identity.email)]),
                           critical=True)
            .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V1, identity.issuer.encode()),
                           critical=False)
            .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V2, der_utf8(identity.issuer)),
                           critical=False)
        )
        precert_tbs = builder.sign(self.key, hashes.SHA256()).tbs_certificate_bytes
        issuer_key_hash = hashlib.sha256(spki_der(issuer_public)).digest()
        timestamp_ms = int(not_before.timestamp()) * 1000  # whole seconds: exact in a float
        sct = self.ct.precert_sct(precert_tbs, issuer_key_hash, timestamp_ms)
        sct_list = tls_vec(2, tls_vec(2, sct))
        cert = builder.add_extension(
            x509.UnrecognizedExtension(SCT_LIST, der_octets(sct_list)), critical=False,
        ).sign(self.key, hashes.SHA256())
        if cert.tbs_precertificate_bytes != precert_tbs:
            raise AssertionError("precertificate TBS does not match the signed one")
        return cert

    # -- trusted root ------------------------------------------------------------

    def trusted_root(self, log_public_key, log_url: str, *,
                     log_valid_from: dt.datetime | None = None) -> dict:
        """A trusted root (media type ...trustedroot+json;version=0.1) with
        this CA, this CT log and the given Rekor log key (logId =
        SHA-256(DER SPKI))."""
        start = rfc3339(log_valid_from or self.not_before)
        return {
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": [tlog_instance(log_public_key, log_url, start)],
            "certificateAuthorities": [{
                "subject": {"organization": "tlog-test", "commonName": "tlog-test fulcio root"},
                "uri": "http://127.0.0.1/fake-fulcio",
                "certChain": {"certificates": [{"rawBytes": _b64(
                    self.root.public_bytes(serialization.Encoding.DER))}]},
                "validFor": {"start": rfc3339(self.not_before)},
            }],
            "ctlogs": [tlog_instance(self.ct.key.public_key(), "http://127.0.0.1/fake-ct",
                                     rfc3339(self.not_before))],
            "timestampAuthorities": [],
        }


def key_details(public_key) -> str:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "PKIX_ED25519"
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve,
                                                                          ec.SECP256R1):
        return "PKIX_ECDSA_P256_SHA_256"
    raise ValueError(f"no trusted-root key details for {type(public_key).__name__}")


def tlog_instance(public_key, base_url: str, valid_from: str) -> dict:
    der = spki_der(public_key)
    return {
        "baseUrl": base_url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {"rawBytes": _b64(der), "keyDetails": key_details(public_key),
                      "validFor": {"start": valid_from}},
        "logId": {"keyId": _b64(hashlib.sha256(der).digest())},
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- Fulcio's HTTP endpoint -------------------------------------------------------

def unsigned_identity_token(identity: Identity, *, audience: str = "sigstore",
                            lifetime: int = 600) -> str:
    """A JWT with the claims sigstore-python reads (it never verifies the
    signature: that is Fulcio's job). The signature part is empty."""
    now = int(utc_now().timestamp())
    header = {"alg": "none", "typ": "JWT"}
    claims = {"iss": identity.issuer, "sub": identity.email, "email": identity.email,
              "email_verified": True, "aud": audience, "iat": now, "nbf": now,
              "exp": now + lifetime}

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part(header)}.{part(claims)}."


class FakeFulcioServer:
    """``POST /api/v2/signingCert`` on 127.0.0.1: issues a certificate for the
    CSR's key to the identity of the bearer token (claims read unverified,
    this being a test), answering Fulcio's JSON shape."""

    def __init__(self, ca: FakeFulcio) -> None:
        self.ca = ca
        self.issued: list[x509.Certificate] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                if self.path != "/api/v2/signingCert":
                    return self._reply(404, {"code": 404, "message": "not found"})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                csr = x509.load_pem_x509_csr(base64.b64decode(body["certificateSigningRequest"]))
                token = self.headers["Authorization"].removeprefix("Bearer ")
                claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
                cert = outer.ca.issue(csr.public_key(),
                                      Identity(claims["email"], claims["iss"]))
                outer.issued.append(cert)
                pems = [c.public_bytes(serialization.Encoding.PEM).decode()
                        for c in (cert, outer.ca.root)]
                self._reply(201, {"signedCertificateEmbeddedSct": {
                    "chain": {"certificates": pems}}})

            def _reply(self, status: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeFulcioServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
