"""Property-based fuzzing of every parser a request or a response passes
through (SPEC §9): each ends in a typed error (``TlogError``: FormatError,
VerificationError) or a valid result, never another exception, and the
non-canonical encodings are all rejected.

Already fuzzed elsewhere: dsse and intoto entries, DSSE envelopes and in-toto
statements (test_attestation_fuzz.py), tile paths over their own alphabet
(test_tiles.py). Here: decimals, base64 and hex; strict JSON; PEM keys and
certificate chains; hashedrekord entries and canonical bodies; checkpoints
and signed notes; note verifier keys; tile paths (any text) and entry
bundles; LogEntry responses, entry references and inclusion proofs; Sigstore
bundles; tiles checked against a checkpoint. Client-only: no server import.
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st

from tlog_client import (bundle, checkpoint, dsse, encoding, hashedrekord, jsonstrict, keys,
                         note, notekeys, rekor, tiles)
from tlog_client.errors import FormatError, TlogError, VerificationError
from tlog_client.tileverify import verify_entry_bundle, verify_tiles
from tlog_client.trust import PinnedLog

from .attestation_samples import cert_key, ecdsa_key, ed25519_key, rsa_key
from .fakelog import FakeLog, hashedrekord_body, make_ca, make_leaf, signer
from .fuzzing import fuzz_settings, json_values, mutated, paths, replaced, typed_or_valid

FUZZ = fuzz_settings(150, HealthCheck.filter_too_much)
SOME = fuzz_settings(60, HealthCheck.filter_too_much)


def rejects(fn, *args, **kwargs) -> TlogError:
    with pytest.raises(TlogError) as info:
        fn(*args, **kwargs)
    return info.value


def flip_bytes(data: bytes, draw_positions: list[int], xor: int) -> bytes:
    out = bytearray(data)
    for p in draw_positions:
        out[p % len(out)] ^= xor or 1
    return bytes(out)


# -- integers, base64, hex ----------------------------------------------------------

NON_CANONICAL_INTS = ["", "+5", "-5", "05", "00", "1_0", " 5", "5 ", "\t5", "5\n", "٥", "５",
                      "𝟓", "0x5", "5.0", "1e3", "9223372036854775808",
                      "18446744073709551616", "9" * 30, "1,000", "½", "²"]


@pytest.mark.parametrize("text", NON_CANONICAL_INTS)
def test_non_canonical_integers_rejected(text):
    with pytest.raises(FormatError) as exc:
        encoding.parse_decimal(text, "n")
    assert exc.value.field == "n"


@FUZZ
@given(st.text(max_size=25) | st.text(alphabet="0123456789+-_ ٥５\n", max_size=22))
def test_decimal_fuzz(text):
    value = typed_or_valid(encoding.parse_decimal, text, "n")
    if value is not None:
        assert str(value) == text and 0 <= value <= encoding.MAX_INT64


@FUZZ
@given(st.integers(0, encoding.MAX_INT64))
def test_decimal_round_trip(n):
    assert encoding.parse_decimal(str(n), "n") == n


@pytest.mark.parametrize("text", [
    "QR==", "QUJ=", "QQ", "QQ=", "QQ===", "Q===", "QUJD\n", "QU JD", "QUJD ", "-_8=", "QUJD=",
    "=QUJ", "QU=D", "Q\u0661==", "ＱＵＪＤ", "QUJDRA", "QUJDRA=", "QUJDRA==\n", "\x00",
])
def test_non_canonical_base64_rejected(text):
    with pytest.raises(FormatError):
        encoding.b64decode_std(text, "b")
    with pytest.raises(FormatError):
        encoding.b64decode_std(text.encode("utf-8"), "b")


@FUZZ
@given(st.text(alphabet="ABCDQRSTUVWXYZabcd0123+/=-_ \n", max_size=16) | st.text(max_size=12)
       | st.binary(max_size=12))
def test_base64_fuzz(text):
    raw = typed_or_valid(encoding.b64decode_std, text, "b")
    if raw is not None:
        encoded = base64.b64encode(raw)
        assert encoded == (text if isinstance(text, bytes) else text.encode())


@FUZZ
@given(st.binary(max_size=64))
def test_base64_round_trip(data):
    assert encoding.b64decode_std(encoding.b64encode_std(data), "b") == data


@FUZZ
@given(st.text(alphabet="0123456789abcdefABCDEFgx \n", max_size=20) | st.text(max_size=10))
def test_hex_fuzz(text):
    raw = typed_or_valid(encoding.hex_decode_lower, text, "h")
    if raw is not None:
        assert raw.hex() == text


# -- strict JSON --------------------------------------------------------------------

plain_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=10),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
                      children, max_size=3),
    max_leaves=10)


def depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


@FUZZ
@given(st.binary(max_size=80))
def test_json_bytes_fuzz(data):
    typed_or_valid(jsonstrict.loads_strict, data)


@FUZZ
@given(plain_json, st.booleans())
def test_json_round_trip(value, ascii_only):
    data = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert jsonstrict.loads_strict(data) == value


@FUZZ
@given(st.dictionaries(st.text(max_size=5), plain_json, min_size=1, max_size=4), st.data())
def test_json_duplicate_keys_rejected(obj, data):
    key = data.draw(st.sampled_from(sorted(obj)))
    members = [json.dumps(k) + ":" + json.dumps(v) for k, v in obj.items()]
    members.insert(data.draw(st.integers(0, len(members))),
                   json.dumps(key) + ":" + json.dumps(obj[key]))
    doc = "{" + ",".join(members) + "}"
    nested = data.draw(st.sampled_from(["%s", "[%s]", '{"a": %s}', '[1, {"b": [%s]}]']))
    err = rejects(jsonstrict.loads_strict, (nested % doc).encode())
    assert "duplicate" in str(err)


@FUZZ
@given(plain_json, st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400",
                                    "nan", "inf"]))
def test_json_non_finite_numbers_rejected(value, token):
    for doc in (f"[{json.dumps(value)}, {token}]", f'{{"x": {token}}}', token):
        rejects(jsonstrict.loads_strict, doc.encode())


@FUZZ
@given(st.integers(1, 200), st.booleans(), st.integers(1, 40))
def test_json_depth(n, arrays, limit):
    doc = "[" * n + "]" * n if arrays else '{"a":' * n + "0" + "}" * n
    if n > limit:
        rejects(jsonstrict.loads_strict, doc.encode(), max_depth=limit)
    else:
        assert depth(jsonstrict.loads_strict(doc.encode(), max_depth=limit)) == n


@FUZZ
@given(st.integers(0xD800, 0xDFFF), st.sampled_from(['"%s"', '{"%s": 1}', '["a%sb"]',
                                                      '{"k": ["%s"]}']),
       st.booleans())
def test_json_lone_surrogates_rejected(code, shape, upper):
    escape = f"\\u{code:04X}" if upper else f"\\u{code:04x}"
    rejects(jsonstrict.loads_strict, (shape % escape).encode())
    # A raw (UTF-8-encoded) surrogate is not UTF-8 at all.
    raw = (shape % "X").encode().replace(b"X", b"\xed" + bytes([0xa0 | (code >> 6) & 0x1f,
                                                               0x80 | code & 0x3f]))
    rejects(jsonstrict.loads_strict, raw)


def test_json_surrogate_pair_accepted():
    assert jsonstrict.loads_strict(b'"\\ud83d\\ude00"') == "\U0001f600"


# -- PEM keys and certificate chains ----------------------------------------------------

CA = make_ca()
_LEAF_KEY = signer()
PEMS = [ecdsa_key().pem, rsa_key().pem, ed25519_key().pem, cert_key(["a@example.com"]).pem,
        cert_key(chain=True).pem, make_leaf(CA, _LEAF_KEY) + CA.pem]


@FUZZ
@given(st.sampled_from(PEMS), st.lists(st.integers(0, 10_000), min_size=1, max_size=4),
       st.integers(0, 255))
def test_pem_bit_flips(pem, positions, xor):
    typed_or_valid(keys.parse_key_material, flip_bytes(pem, positions, xor))
    typed_or_valid(keys.load_public_key, flip_bytes(pem, positions, xor))


@FUZZ
@given(st.sampled_from(PEMS), st.data())
def test_pem_line_edits(pem, data):
    lines = pem.split(b"\n")
    op = data.draw(st.sampled_from(["drop", "dup", "swap", "truncate", "insert"]))
    i = data.draw(st.integers(0, len(lines) - 1))
    j = data.draw(st.integers(0, len(lines) - 1))
    if op == "drop":
        del lines[i]
    elif op == "dup":
        lines.insert(i, lines[j])
    elif op == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "truncate":
        lines[i] = lines[i][:data.draw(st.integers(0, max(0, len(lines[i]) - 1)))]
    else:
        lines.insert(i, data.draw(st.binary(max_size=30)))
    typed_or_valid(keys.parse_key_material, b"\n".join(lines))


@FUZZ
@given(st.binary(max_size=200) | st.builds(
    lambda kind, body: b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (kind, body, kind),
    st.sampled_from([b"PUBLIC KEY", b"CERTIFICATE", b"PRIVATE KEY", b"EC PRIVATE KEY", b"X"]),
    st.binary(max_size=120).map(base64.b64encode)))
def test_pem_arbitrary(data):
    typed_or_valid(keys.parse_key_material, data)


# -- hashedrekord ------------------------------------------------------------------------

HR_KEY = signer()
HR_BODY = hashedrekord_body(b"fuzzed artifact", HR_KEY)
HR_PROPOSED = json.loads(HR_BODY)


@FUZZ
@given(st.data(), json_values(), st.booleans())
def test_hashedrekord_proposed_fuzz(data, value, delete):
    typed_or_valid(hashedrekord.parse_proposed, mutated(data, HR_PROPOSED, value, delete))


@FUZZ
@given(st.data(), st.sampled_from(["spec.data.hash.value", "spec.signature.content",
                                   "spec.signature.publicKey.content"]),
       st.lists(st.integers(0, 10_000), min_size=1, max_size=3), st.integers(0, 255))
def test_hashedrekord_encoded_fields_fuzz(data, field, positions, xor):
    path = tuple(field.split("."))
    node = HR_PROPOSED
    for step in path:
        node = node[step]
    mutated = flip_bytes(node.encode(), positions, xor).decode("latin-1")
    typed_or_valid(hashedrekord.parse_proposed, replaced(HR_PROPOSED, path, mutated))


@FUZZ
@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=3), st.integers(0, 255))
def test_hashedrekord_canonical_fuzz(positions, xor):
    typed_or_valid(hashedrekord.parse_canonical, flip_bytes(HR_BODY, positions, xor))


def test_hashedrekord_canonical_only():
    assert hashedrekord.parse_canonical(HR_BODY).canonical_body() == HR_BODY
    rejects(hashedrekord.parse_canonical, json.dumps(HR_PROPOSED, indent=1).encode())


# -- checkpoints, signed notes, note keys ------------------------------------------------

LOG = FakeLog()
for _i in range(5):
    LOG.add(b"entry %d" % _i)
NOTE = LOG.checkpoint()
PINNED = PinnedLog(LOG.public_pem, LOG.origin)
VERIFIERS = notekeys.log_verifiers(LOG.public_key, LOG.origin)


@FUZZ
@given(st.text(max_size=80) | st.builds(
    lambda o, n, r, ext: f"{o}\n{n}\n{r}\n" + "".join(e + "\n" for e in ext),
    st.text(max_size=10), st.text(alphabet="0123456789+-_ ", max_size=5),
    st.sampled_from(["", "AAAA", base64.b64encode(b"\0" * 32).decode(),
                     base64.b64encode(b"\0" * 31).decode(), base64.b64encode(b"\1" * 33).decode()]),
    st.lists(st.text(max_size=5), max_size=2)))
def test_checkpoint_text_fuzz(text):
    cp = typed_or_valid(checkpoint.parse_checkpoint, text)
    if cp is not None:
        assert cp.to_text() == text


@FUZZ
@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=3), st.integers(0, 255))
@example([0], 0x20)
def test_signed_checkpoint_bit_flips(positions, xor):
    mutated = flip_bytes(NOTE, positions, xor)
    opened = typed_or_valid(checkpoint.open_checkpoint, mutated, VERIFIERS, LOG.origin)
    if opened is not None:  # only an unchanged (or equivalent) note opens
        assert opened[0] == checkpoint.open_checkpoint(NOTE, VERIFIERS, LOG.origin)[0]
    typed_or_valid(PINNED.open_checkpoint, mutated)
    typed_or_valid(PINNED.open_checkpoint, mutated.decode("latin-1"))


@FUZZ
@given(st.binary(max_size=300))
def test_signed_note_arbitrary(data):
    typed_or_valid(note.open_note, data, VERIFIERS)
    typed_or_valid(PINNED.open_checkpoint, data)


@FUZZ
@given(st.data())
def test_signed_note_line_edits(data):
    lines = NOTE.split(b"\n")
    i = data.draw(st.integers(0, len(lines) - 1))
    new = data.draw(st.sampled_from([b"", b"\xe2\x80\x94 x AAAA", lines[i] + b" ", b"\t",
                                     lines[i].replace(b"\xe2\x80\x94", b"-")]))
    lines[i] = new
    typed_or_valid(note.open_note, b"\n".join(lines), VERIFIERS)


@FUZZ
@given(st.text(max_size=60) | st.builds(
    lambda n, h, k: f"{n}+{h}+{k}", st.text(max_size=8),
    st.text(alphabet="0123456789abcdef", min_size=8, max_size=8),
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())))
def test_note_verifier_key_fuzz(vkey):
    typed_or_valid(notekeys.parse_verifier_key, vkey)


# -- tile paths and entry bundles --------------------------------------------------------

@FUZZ
@given(st.text(max_size=40) | st.builds(
    lambda parts: "tile/" + "/".join(parts),
    st.lists(st.text(alphabet="0123456789x.pe+-ntris\u0661", max_size=5), max_size=6)))
def test_tile_path_any_text(text):
    tile = typed_or_valid(tiles.parse_tile_path, text)
    if tile is not None:
        assert tiles.tile_path(tile) == text


@FUZZ
@given(st.binary(max_size=600), st.none() | st.integers(-2, 300))
def test_entry_bundle_fuzz(data, count):
    entries = typed_or_valid(tiles.decode_entry_bundle, data, count)
    if entries is not None:
        assert tiles.encode_entry_bundle(entries) == data


# -- LogEntry responses, entry refs, inclusion proofs -------------------------------------

ENTRY_JSON = LOG.entry(3).to_json()
PROOF_JSON = next(iter(ENTRY_JSON.values()))["verification"]["inclusionProof"]


@FUZZ
@given(st.data(), json_values(), st.booleans())
def test_log_entry_fuzz(data, value, delete):
    entry = typed_or_valid(rekor.parse_log_entry, mutated(data, ENTRY_JSON, value, delete))
    if entry is not None:
        typed_or_valid(rekor.verify_entry_uuid, entry)
        typed_or_valid(rekor.verify_entry_set, entry, LOG.public_key)


@FUZZ
@given(st.data(), st.lists(st.integers(0, 10_000), min_size=1, max_size=2),
       st.integers(0, 255))
def test_log_entry_string_fields_fuzz(data, positions, xor):
    strings = [p for p in paths(ENTRY_JSON) if p and isinstance(_get(ENTRY_JSON, p), str)]
    path = data.draw(st.sampled_from(strings))
    mutated = flip_bytes(_get(ENTRY_JSON, path).encode(), positions, xor).decode("latin-1")
    typed_or_valid(rekor.parse_log_entry, replaced(ENTRY_JSON, path, mutated))


def _get(obj, path):
    for step in path:
        obj = obj[step]
    return obj


@FUZZ
@given(st.data(), json_values(), st.booleans())
def test_inclusion_proof_fuzz(data, value, delete):
    typed_or_valid(rekor.parse_inclusion_proof, mutated(data, PROOF_JSON, value, delete))


@FUZZ
@given(st.text(max_size=90) | st.text(alphabet="0123456789abcdefABCDEF-x", max_size=82))
def test_entry_ref_fuzz(text):
    ref = typed_or_valid(rekor.parse_entry_ref, text)
    if ref is not None:
        assert text in (ref.uuid, ref.key)


# -- Sigstore bundles -----------------------------------------------------------------------

def _bundle_bytes() -> bytes:
    from tlog_client.entryverify import verify_hashedrekord_entry
    log = FakeLog()
    key = signer()
    cert = make_leaf(CA, key, "ci@example.com", "https://ci.example")
    for i in range(3):
        log.add(hashedrekord_body(b"x%d" % i, signer()))
    index = log.add(hashedrekord_body(b"bundled", key, cert))
    verified = verify_hashedrekord_entry(log.entry(index), PinnedLog(log.public_pem))
    return bundle.dumps_bundle(verified)


BUNDLE = _bundle_bytes()
BUNDLE_JSON = json.loads(BUNDLE)


def test_bundle_sample_parses():
    assert bundle.parse_bundle(BUNDLE).kind == "hashedrekord"


@FUZZ
@given(st.data(), json_values(), st.booleans())
def test_bundle_fuzz(data, value, delete):
    typed_or_valid(bundle.parse_bundle,
                   json.dumps(mutated(data, BUNDLE_JSON, value, delete)).encode())


@SOME
@given(st.lists(st.integers(0, 100_000), min_size=1, max_size=3), st.integers(0, 255))
def test_bundle_bit_flips(positions, xor):
    typed_or_valid(bundle.parse_bundle, flip_bytes(BUNDLE, positions, xor))


@FUZZ
@given(st.binary(max_size=200))
def test_bundle_arbitrary(data):
    typed_or_valid(bundle.parse_bundle, data)


# -- tiles and entry bundles checked against a checkpoint -------------------------------------

BIG = FakeLog()
for _i in range(300):
    BIG.add(b"leaf %d" % _i)
BIG_CP = PinnedLog(BIG.public_pem, BIG.origin).open_checkpoint(BIG.checkpoint())
BIG_TREE = BIG.tree()


def _tile_data(tile: tiles.Tile) -> bytes:
    """The true contents of ``tile`` in BIG's tree (from its stored nodes)."""
    first = tile.index * 256
    return b"".join(BIG_TREE.read_hashes([(8 * tile.level, first + i)
                                          for i in range(tile.width)]))


@SOME
@given(st.data(), st.lists(st.integers(0, 10_000), max_size=2), st.integers(0, 255),
       st.integers(-40, 40))
def test_tiles_checked_against_checkpoint(data, positions, xor, cut):
    from tlog_client.tileverify import tiles_to_fetch
    needed = tiles_to_fetch(300, tiles=[tiles.Tile(0, 0), tiles.Tile(0, 1)])
    good = {t: _tile_data(t) for t in needed}
    assert verify_tiles(BIG_CP, good)  # the true tiles verify
    tile = data.draw(st.sampled_from(needed))
    mutated = flip_bytes(good[tile], positions, xor) if positions else good[tile]
    mutated = mutated[:cut] if cut < 0 else mutated + b"\1" * cut
    verified = typed_or_valid(verify_tiles, BIG_CP, {**good, tile: mutated})
    if verified is not None:
        assert mutated == good[tile]  # only the true tile verifies
    verified = verify_tiles(BIG_CP, good)
    bodies = typed_or_valid(verify_entry_bundle, verified, tiles.EntryBundle(1, 44),
                            flip_bytes(tiles.encode_entry_bundle(BIG.bodies[256:]),
                                       positions or [0], xor))
    if bodies is not None:
        assert bodies == BIG.bodies[256:]


# -- DSSE envelopes: bytes-level mutations of a real one ----------------------------------

ENV_KEY = ecdsa_key()
ENVELOPE = dsse.sign_envelope("application/vnd.in-toto+json", b'{"a": 1}', [ENV_KEY.private])


@FUZZ
@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=3), st.integers(0, 255))
def test_envelope_bit_flips(positions, xor):
    mutated = flip_bytes(ENVELOPE, positions, xor)
    env = typed_or_valid(dsse.parse_envelope, mutated)
    if env is not None:
        typed_or_valid(dsse.verify_envelope, env, [keys.parse_key_material(ENV_KEY.pem)])


def test_typed_errors_are_the_documented_ones():
    assert issubclass(FormatError, TlogError) and issubclass(VerificationError, TlogError)
