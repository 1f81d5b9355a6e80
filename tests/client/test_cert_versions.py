"""A certificate whose version field is not v1-v3 makes cryptography raise
InvalidVersion, which is not a ValueError: every place that parses a
certificate must still answer with a typed FormatError naming its field
(found by tests/client/test_fuzz_parsers.py::test_pem_bit_flips)."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tlog_client import bundle, keys
from tlog_client.entryverify import load_ca_roots
from tlog_client.errors import FormatError

from .attestation_samples import certificate

V3 = b"\xa0\x03\x02\x01\x02"  # tbsCertificate's [0] EXPLICIT INTEGER 2 (v3)


def _der_with_version(version: int) -> bytes:
    der = certificate(ec.generate_private_key(ec.SECP256R1())).public_bytes(
        serialization.Encoding.DER)
    assert der.count(V3) == 1
    return der.replace(V3, V3[:-1] + bytes([version]))


def _pem(der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module", params=[3, 5, 127])
def bad_der(request) -> bytes:
    der = _der_with_version(request.param)
    with pytest.raises(x509.InvalidVersion):  # the premise of this test
        x509.load_der_x509_certificate(der)
    return der


def test_key_material(bad_der):
    with pytest.raises(FormatError) as exc:
        keys.parse_key_material(_pem(bad_der), "spec.signature.publicKey.content")
    assert exc.value.field == "spec.signature.publicKey.content"


def test_ca_roots(bad_der):
    with pytest.raises(FormatError) as exc:
        load_ca_roots(_pem(bad_der))
    assert exc.value.field == "ca roots"


def test_bundle_certificate(bad_der):
    material = {"certificate": {"rawBytes": base64.b64encode(bad_der).decode()}}
    with pytest.raises(FormatError) as exc:
        bundle._parse_material(material)
    assert exc.value.field == "verificationMaterial.certificate.rawBytes"
