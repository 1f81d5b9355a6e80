"""Key material of entries: PEM framing, allow-list, chains, identities and
signature verification (SPEC §5)."""

from __future__ import annotations

import datetime
import hashlib
from functools import lru_cache

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID

from tlog_client.errors import FormatError, SignatureError
from tlog_client.keys import (OID_FULCIO_ISSUER_V1, OID_FULCIO_ISSUER_V2, OID_FULCIO_OTHERNAME,
                              KeyMaterial, certificate_identities, check_allowed, hash_algorithm,
                              key_hash, load_public_key, parse_key_material, split_pem,
                              spki_der, verify_signature)

HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


# -- helpers shared with test_hashedrekord -----------------------------------

@lru_cache(maxsize=None)
def ec_key(curve_name: str = "secp256r1", n: int = 0) -> ec.EllipticCurvePrivateKey:
    """A cached EC key (``n`` tells apart several keys on one curve)."""
    curve = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1,
             "secp521r1": ec.SECP521R1, "secp256k1": ec.SECP256K1}[curve_name]
    return ec.generate_private_key(curve())


@lru_cache(maxsize=None)
def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@lru_cache(maxsize=None)
def ed_key(n: int = 0) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def spki_pem(private_key) -> bytes:
    return private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(subject_key, issuer_key, subject: str = "leaf", issuer: str = "ca", *,
              ca: bool = False, sans: list[x509.GeneralName] | None = None,
              extensions: list[x509.ExtensionType] = ()) -> x509.Certificate:
    """A certificate for ``subject_key`` signed by ``issuer_key``."""
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(name(subject)).issuer_name(name(issuer))
               .public_key(subject_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(minutes=10))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


def cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def make_chain(length: int, leaf_key=None) -> list[x509.Certificate]:
    """A chain of ``length`` certificates, leaf first, each issued by the next."""
    keys = [leaf_key or ec_key()] + [ec_key("secp256r1", i + 1) for i in range(length - 1)]
    chain = []
    for i in range(length):
        issuer = i + 1 if i + 1 < length else i
        chain.append(make_cert(keys[i], keys[issuer], f"c{i}", f"c{issuer}", ca=i > 0))
    return chain


def der_utf8(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return b"\x0c" + bytes([len(raw)]) + raw


def sign_digest(private_key, digest: bytes, alg: str, scheme: str = "pkcs1") -> bytes:
    """Sign a digest as hashedrekord clients do."""
    pre = Prehashed(HASHES[alg])
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(digest, ec.ECDSA(pre))
    if scheme == "pss":
        pad = padding.PSS(mgf=padding.MGF1(HASHES[alg]), salt_length=padding.PSS.DIGEST_LENGTH)
    else:
        pad = padding.PKCS1v15()
    return private_key.sign(digest, pad, pre)


# -- PEM framing -------------------------------------------------------------

def test_parse_spki_pem():
    km = parse_key_material(spki_pem(ec_key()))
    assert isinstance(km.public_key, ec.EllipticCurvePublicKey)
    assert km.certificates == () and km.leaf is None
    assert km.canonical_pem() == spki_pem(ec_key())
    assert km.identities.emails == () and km.identities.issuer is None


def reflow(pem: bytes, width: int, eol: bytes) -> bytes:
    lines = pem.decode().strip().splitlines()
    body = "".join(lines[1:-1])
    chunks = [body[i:i + width] for i in range(0, len(body), width)]
    return eol.join(x.encode() for x in [lines[0], *chunks, lines[-1]]) + eol


@pytest.mark.parametrize("variant", [
    lambda p: reflow(p, 76, b"\r\n"),
    lambda p: reflow(p, 20, b"\n"),
    lambda p: b"\n\n  " + p + b"\n\n",
    lambda p: p.rstrip(b"\n"),
])
def test_non_canonical_pem_is_re_encoded(variant):
    pem = spki_pem(ec_key())
    km = parse_key_material(variant(pem))
    assert km.canonical_pem() == pem


BAD_PEM = [
    ("empty", b"", "no PEM block"),
    ("whitespace", b" \n ", "no PEM block"),
    ("text before", b"hello\n" + spki_pem(ec_key()), "outside PEM"),
    ("text after", spki_pem(ec_key()) + b"trailing", "outside PEM"),
    ("no end line", spki_pem(ec_key()).replace(b"-----END PUBLIC KEY-----\n", b""), "no END"),
    ("mismatched end", spki_pem(ec_key()).replace(b"END PUBLIC KEY", b"END CERTIFICATE"), "no END"),
    ("two keys", spki_pem(ec_key()) + spki_pem(ec_key("secp384r1")), "exactly one"),
    ("key and cert", spki_pem(ec_key()) + cert_pem(make_chain(1)[0]), "not"),
    ("non-ascii", spki_pem(ec_key()).replace(b"PUBLIC KEY-----\n", b"PUBLIC KEY-----\n\xc3\xa9", 1),
     "non-ASCII"),
    ("private key", ec_key().private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()), "PRIVATE KEY"),
    ("pkcs1 rsa public key", rsa_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1), "RSA PUBLIC KEY"),
    ("garbage base64", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
     "invalid public key"),
    ("garbage certificate", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
     "certificate 0"),
    ("oversized", b" " * (64 * 1024 + 1), "over the limit"),
    ("not bytes", "-----BEGIN PUBLIC KEY-----", "bytes"),
]


@pytest.mark.parametrize("name_,pem,needle", BAD_PEM, ids=[b[0] for b in BAD_PEM])
def test_bad_pem_rejected(name_, pem, needle):
    with pytest.raises(FormatError) as info:
        parse_key_material(pem, "spec.key")
    assert info.value.field == "spec.key"
    assert needle in info.value.reason


def test_split_pem_blocks():
    pem = cert_pem(*make_chain(2))
    blocks = split_pem(pem, "f")
    assert [kind for kind, _ in blocks] == ["CERTIFICATE", "CERTIFICATE"]
    assert b"".join(body for _, body in blocks) == pem


def test_load_public_key():
    assert isinstance(load_public_key(spki_pem(ed_key())), ed25519.Ed25519PublicKey)
    with pytest.raises(FormatError, match="exactly one PEM PUBLIC KEY"):
        load_public_key(cert_pem(make_chain(1)[0]))
    with pytest.raises(FormatError, match="not allowed"):
        load_public_key(spki_pem(rsa_key(1024)))


# -- allow-list --------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: ec_key("secp256r1"), lambda: ec_key("secp384r1"), lambda: ec_key("secp521r1"),
    lambda: rsa_key(2048), lambda: rsa_key(3072), lambda: rsa_key(4096), lambda: ed_key(),
], ids=["P-256", "P-384", "P-521", "RSA-2048", "RSA-3072", "RSA-4096", "Ed25519"])
def test_allowed_keys(make):
    km = parse_key_material(spki_pem(make()))
    assert km.key_hash() == hashlib.sha256(spki_der(km.public_key)).hexdigest()


@pytest.mark.parametrize("make,needle", [
    (lambda: ec_key("secp256k1"), "curve secp256k1"),
    (lambda: rsa_key(1024), "1024 bits"),
    (lambda: rsa_key(2560), "2560 bits"),
    (lambda: ed448.Ed448PrivateKey.generate(), "Ed448PublicKey"),
    (lambda: dsa.generate_private_key(1024), "DSAPublicKey"),
    (lambda: x25519.X25519PrivateKey.generate(), "X25519PublicKey"),
], ids=["secp256k1", "RSA-1024", "RSA-2560", "Ed448", "DSA", "X25519"])
def test_disallowed_keys(make, needle):
    with pytest.raises(FormatError) as info:
        parse_key_material(spki_pem(make()), "k")
    assert needle in info.value.reason and "not allowed" in info.value.reason
    with pytest.raises(FormatError):
        check_allowed(make().public_key(), "k")


def test_disallowed_key_in_certificate():
    cert = make_cert(rsa_key(1024), ec_key("secp256r1", 1))
    with pytest.raises(FormatError, match="1024 bits"):
        parse_key_material(cert_pem(cert))


# -- RSA public exponent 65537 only (SPEC §10 U5) -------------------------------------

@lru_cache(maxsize=None)
def rsa_with_exponent(exponent: int, bits: int = 3072) -> rsa.RSAPublicKey:
    """A public key of another key's modulus with ``exponent`` (no private
    key exists for it: the check refuses it before any signature)."""
    n = rsa_key(bits).public_key().public_numbers().n
    return rsa.RSAPublicNumbers(exponent, n).public_key()


class PublicOnly:
    """Stands for a private key in make_cert's subject (only its public key is used)."""

    def __init__(self, public: rsa.RSAPublicKey) -> None:
        self._public = public

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public


def public_pem(public) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("exponent, shown", [
    (3, "exponent 3 "), (17, "exponent 17 "), (65539, "exponent 65539 "),
    ((1 << 3000) + 1, "exponent of 3001 bits"), ((1 << 64) + 1, "exponent of 65 bits")],
    ids=["3", "17", "65539", "2^3000+1", "2^64+1"])
def test_rsa_exponent_other_than_65537_is_refused(exponent, shown):
    """A large exponent makes each check cost thousands of multiplications (a
    3,000-bit one on a 3,072-bit key: about 14 ms per check instead of 0.1)."""
    public = rsa_with_exponent(exponent)
    with pytest.raises(FormatError) as info:
        parse_key_material(public_pem(public), "spec.signature.publicKey.content")
    assert info.value.field == "spec.signature.publicKey.content"
    assert shown in info.value.reason and "only 65537" in info.value.reason
    with pytest.raises(FormatError, match="only 65537"):
        check_allowed(public, "k")
    with pytest.raises(FormatError, match="only 65537"):
        load_public_key(public_pem(public), "log key")


def test_rsa_exponent_3_from_a_real_key_pair_is_refused():
    key = rsa.generate_private_key(public_exponent=3, key_size=2048)
    with pytest.raises(FormatError, match="exponent 3 is not allowed"):
        parse_key_material(spki_pem(key), "k")


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_rsa_exponent_65537_is_allowed(bits):
    assert parse_key_material(spki_pem(rsa_key(bits))).public_key.public_numbers().e == 65537


def test_certificate_key_with_a_large_exponent_is_refused():
    cert = make_cert(PublicOnly(rsa_with_exponent((1 << 3000) + 1)), ec_key("secp256r1", 1))
    with pytest.raises(FormatError, match="exponent of 3001 bits") as info:
        parse_key_material(cert_pem(cert), "verifiers[0]")
    assert info.value.field == "verifiers[0]"


@pytest.mark.parametrize("exponent", [3, (1 << 3000) + 1], ids=["3", "2^3000+1"])
def test_chain_issuer_key_is_checked_before_its_signature(exponent):
    """An issuer key outside the allow-list (here its RSA exponent) is
    refused naming the certificate, before the link's signature is checked:
    the leaf below is not even signed by it."""
    issuer = make_cert(PublicOnly(rsa_with_exponent(exponent)), ec_key("secp256r1", 3),
                       "ca", "root", ca=True)
    leaf = make_cert(ec_key(), ec_key("secp256r1", 2), "leaf", "ca")
    with pytest.raises(FormatError) as info:
        parse_key_material(cert_pem(leaf, issuer), "k")
    assert info.value.field == "k"
    assert info.value.reason.startswith("certificate 1: RSA public exponent")


def test_chain_issuer_key_outside_the_allow_list_is_refused():
    issuer_key = rsa_key(1024)
    issuer = make_cert(issuer_key, issuer_key, "ca", "ca", ca=True)
    leaf = make_cert(ec_key(), issuer_key, "leaf", "ca")
    with pytest.raises(FormatError, match="certificate 1: RSA key of 1024 bits"):
        parse_key_material(cert_pem(leaf, issuer), "k")


# -- certificates, chains, identities -----------------------------------------

FULCIO_EXTS = [
    x509.UnrecognizedExtension(OID_FULCIO_ISSUER_V2, der_utf8("https://token.example")),
    x509.UnrecognizedExtension(OID_FULCIO_ISSUER_V1, b"https://legacy.example"),
]
WORKFLOW = "https://github.com/org/repo/.github/workflows/r.yml@refs/heads/main"
SANS = [x509.RFC822Name("Alice@Example.com"),
        x509.UniformResourceIdentifier(WORKFLOW),
        x509.DNSName("ignored.example"),
        x509.OtherName(OID_FULCIO_OTHERNAME, der_utf8("alice-user")),
        x509.OtherName(x509.ObjectIdentifier("1.2.3.4"), der_utf8("not-fulcio"))]


def test_certificate_identities():
    cert = make_cert(ec_key(), ec_key("secp256r1", 1), sans=SANS, extensions=FULCIO_EXTS)
    km = parse_key_material(cert_pem(cert))
    ids = km.identities
    assert ids.emails == ("Alice@Example.com",)
    assert ids.uris == (WORKFLOW,)
    assert ids.other_names == ("alice-user",)
    assert ids.issuer == "https://token.example"    # the .8 form wins over .1
    assert km.leaf == cert
    assert km.canonical_pem() == cert_pem(cert)


def test_legacy_issuer_extension():
    cert = make_cert(ec_key(), ec_key("secp256r1", 1), extensions=FULCIO_EXTS[1:])
    assert certificate_identities(cert).issuer == "https://legacy.example"


@pytest.mark.parametrize("raw", [b"https://x", b"\x0c\x05abc", b"\x0c\x81", b"\x0c\x01\xff"])
def test_bad_issuer_extension(raw):
    cert = make_cert(ec_key(), ec_key("secp256r1", 1),
                     extensions=[x509.UnrecognizedExtension(OID_FULCIO_ISSUER_V2, raw)])
    with pytest.raises(FormatError, match="OIDC issuer"):
        parse_key_material(cert_pem(cert))


def test_long_form_der_issuer():
    text = "https://" + "a" * 200
    raw = b"\x0c\x81" + bytes([len(text)]) + text.encode()
    cert = make_cert(ec_key(), ec_key("secp256r1", 1),
                     extensions=[x509.UnrecognizedExtension(OID_FULCIO_ISSUER_V2, raw)])
    assert certificate_identities(cert).issuer == text


def test_certificate_without_san():
    km = parse_key_material(cert_pem(make_chain(1)[0]))
    assert km.identities.emails == () and km.identities.uris == ()


@pytest.mark.parametrize("length", [1, 2, 3, 10])
def test_chain_accepted(length):
    chain = make_chain(length)
    km = parse_key_material(cert_pem(*chain))
    assert km.certificates == tuple(chain)
    assert km.public_key.public_numbers() == chain[0].public_key().public_numbers()
    assert km.canonical_pem() == cert_pem(*chain)


def test_chain_of_eleven_rejected():
    with pytest.raises(FormatError, match="11 certificates, more than 10"):
        parse_key_material(cert_pem(*make_chain(11)), "spec.key")


def test_chain_limit_is_configurable():
    with pytest.raises(FormatError, match="more than 2"):
        parse_key_material(cert_pem(*make_chain(3)), max_chain=2)


def test_chain_name_mismatch_rejected():
    leaf = make_cert(ec_key(), ec_key("secp256r1", 1), "leaf", "somebody-else")
    ca = make_cert(ec_key("secp256r1", 1), ec_key("secp256r1", 1), "ca", "ca", ca=True)
    with pytest.raises(FormatError, match="certificate 0 is not issued by certificate 1"):
        parse_key_material(cert_pem(leaf, ca))


def test_chain_bad_signature_rejected():
    leaf = make_cert(ec_key(), ec_key("secp256r1", 2), "leaf", "ca")   # signed by another key
    ca = make_cert(ec_key("secp256r1", 1), ec_key("secp256r1", 1), "ca", "ca", ca=True)
    with pytest.raises(SignatureError, match="certificate 0 is not signed by certificate 1"):
        parse_key_material(cert_pem(leaf, ca))


def test_key_hash_same_for_key_and_certificate():
    cert = make_chain(1)[0]
    bare = parse_key_material(spki_pem(ec_key()))
    in_cert = parse_key_material(cert_pem(cert))
    expected = hashlib.sha256(spki_der(ec_key().public_key())).hexdigest()
    assert bare.key_hash() == in_cert.key_hash() == expected
    assert key_hash(bare) == key_hash(ec_key().public_key()) == expected


# -- signature verification --------------------------------------------------

DIGEST_CASES = [(curve, alg) for curve in ("secp256r1", "secp384r1", "secp521r1")
                for alg in ("sha256", "sha384", "sha512")]


@pytest.mark.parametrize("curve,alg", DIGEST_CASES)
def test_ecdsa_prehashed(curve, alg):
    digest = hashlib.new(alg, b"artifact").digest()
    sig = sign_digest(ec_key(curve), digest, alg)
    km = KeyMaterial(public_key=ec_key(curve).public_key())
    verify_signature(km, sig, digest, alg, prehashed=True)
    verify_signature(km.public_key, sig, b"artifact", alg, prehashed=False)
    with pytest.raises(SignatureError, match="ECDSA"):
        verify_signature(km, sig, hashlib.new(alg, b"other").digest(), alg, prehashed=True)


@pytest.mark.parametrize("bits", [2048, 3072])
@pytest.mark.parametrize("scheme", ["pkcs1", "pss"])
@pytest.mark.parametrize("alg", ["sha256", "sha512"])
def test_rsa_prehashed(bits, scheme, alg):
    digest = hashlib.new(alg, b"artifact").digest()
    sig = sign_digest(rsa_key(bits), digest, alg, scheme)
    verify_signature(rsa_key(bits).public_key(), sig, digest, alg, prehashed=True)
    with pytest.raises(SignatureError, match="RSA"):
        verify_signature(rsa_key(bits).public_key(), sig, hashlib.new(alg, b"x").digest(), alg,
                         prehashed=True)


def test_rsa_pss_max_salt_length():
    digest = hashlib.sha256(b"a").digest()
    pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    sig = rsa_key().sign(digest, pad, Prehashed(hashes.SHA256()))
    verify_signature(rsa_key().public_key(), sig, digest, "sha256", prehashed=True)


def test_rsa_message():
    sig = rsa_key().sign(b"message", padding.PKCS1v15(), hashes.SHA384())
    verify_signature(rsa_key().public_key(), sig, b"message", "sha384", prehashed=False)


def test_ed25519_raw_message():
    sig = ed_key().sign(b"message")
    verify_signature(ed_key().public_key(), sig, b"message", None, prehashed=False)
    with pytest.raises(SignatureError, match="Ed25519 signature does not verify"):
        verify_signature(ed_key().public_key(), sig, b"messagf", None, prehashed=False)


def test_ed25519_refuses_prehashed():
    digest = hashlib.sha256(b"m").digest()
    with pytest.raises(SignatureError, match="prehashed"):
        verify_signature(ed_key().public_key(), ed_key().sign(digest), digest, "sha256",
                         prehashed=True)


@pytest.mark.parametrize("sig", [b"", b"\x30\x00", b"not a der signature", b"\x00" * 64, "text"])
def test_garbage_signature(sig):
    digest = hashlib.sha256(b"m").digest()
    with pytest.raises(SignatureError):
        verify_signature(ec_key().public_key(), sig, digest, "sha256", prehashed=True)
    with pytest.raises(SignatureError):
        verify_signature(rsa_key().public_key(), sig, digest, "sha256", prehashed=True)


def test_wrong_key_fails():
    digest = hashlib.sha256(b"m").digest()
    sig = sign_digest(ec_key(), digest, "sha256")
    with pytest.raises(SignatureError):
        verify_signature(ec_key("secp256r1", 1).public_key(), sig, digest, "sha256", prehashed=True)


def test_digest_length_must_match_algorithm():
    digest = hashlib.sha256(b"m").digest()
    sig = sign_digest(ec_key(), digest, "sha256")
    with pytest.raises(FormatError, match="sha384 digest is 48"):
        verify_signature(ec_key().public_key(), sig, digest, "sha384", prehashed=True)


@pytest.mark.parametrize("alg", ["sha1", "md5", "SHA256", "", None, "sha3-256"])
def test_unknown_hash_algorithm(alg):
    with pytest.raises(FormatError, match="hash algorithm"):
        verify_signature(ec_key().public_key(), b"sig", b"m", alg, prehashed=False)
    if alg is not None:
        with pytest.raises(FormatError):
            hash_algorithm(alg)
