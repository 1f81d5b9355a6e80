"""Fuzz the dsse, intoto 0.0.2 and in-toto parsers (SPEC §9): any JSON value
at any position, and any bytes as an envelope or statement, ends in a
FormatError or SignatureError (a typed TlogError), never another exception."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from tlog_client import dsse, intoto, intoto002

from .attestation_samples import (artifact, cyclonedx_sbom, ecdsa_key, payload,
                                  slsa_v02_generator, slsa_v1_github)
from .fuzzing import fuzz_settings, json_values, mutated, replaced, typed_or_valid

KEY = ecdsa_key()
STATEMENTS = [slsa_v1_github([artifact()]), slsa_v02_generator([artifact()]),
              cyclonedx_sbom([artifact()])]
ENVELOPE = dsse.sign_envelope(intoto.PAYLOAD_TYPE, payload(STATEMENTS[0]), [KEY.private])
DSSE = dsse.build_proposed(ENVELOPE, [KEY.pem])
INTOTO = intoto002.build_proposed(ENVELOPE, [KEY.pem])

FAST = fuzz_settings(150)


@FAST
@given(st.data(), json_values(), st.booleans())
def test_dsse_entry_fuzz(data, value, delete):
    typed_or_valid(dsse.parse_proposed, mutated(data, DSSE, value, delete))


@FAST
@given(st.data(), json_values(), st.booleans())
def test_intoto_entry_fuzz(data, value, delete):
    typed_or_valid(intoto002.parse_proposed, mutated(data, INTOTO, value, delete))


@FAST
@given(st.data(), json_values(), st.booleans())
def test_envelope_fuzz(data, value, delete):
    env = json.loads(ENVELOPE)
    text = json.dumps(mutated(data, env, value, delete))
    proposed = replaced(DSSE, ("spec", "proposedContent", "envelope"), text, False)
    typed_or_valid(dsse.parse_proposed, proposed)


@FAST
@given(st.data(), json_values(), st.booleans())
def test_statement_fuzz(data, value, delete):
    stmt = data.draw(st.sampled_from(STATEMENTS))
    typed_or_valid(intoto.parse_statement, payload(mutated(data, stmt, value, delete)))


@FAST
@given(st.binary(max_size=300))
def test_raw_bytes_fuzz(raw):
    typed_or_valid(dsse.parse_envelope, raw)
    typed_or_valid(intoto.parse_statement, raw)
    typed_or_valid(dsse.parse_canonical, raw)
    typed_or_valid(intoto002.parse_canonical, raw)
