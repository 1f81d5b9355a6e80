"""Fuzz the dsse, intoto 0.0.2 and in-toto parsers (SPEC §9): any JSON value
at any position, and any bytes as an envelope or statement, ends in a
FormatError or SignatureError (a typed TlogError), never another exception."""

from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlog_client import dsse, intoto, intoto002
from tlog_client.errors import TlogError

from .attestation_samples import (artifact, cyclonedx_sbom, ecdsa_key, payload,
                                  slsa_v02_generator, slsa_v1_github)

KEY = ecdsa_key()
STATEMENTS = [slsa_v1_github([artifact()]), slsa_v02_generator([artifact()]),
              cyclonedx_sbom([artifact()])]
ENVELOPE = dsse.sign_envelope(intoto.PAYLOAD_TYPE, payload(STATEMENTS[0]), [KEY.private])
DSSE = dsse.build_proposed(ENVELOPE, [KEY.pem])
INTOTO = intoto002.build_proposed(ENVELOPE, [KEY.pem])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)


def paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, prefix + (i,))


def replaced(obj, path, value, delete):
    out = copy.deepcopy(obj)
    if not path:
        return value
    node = out
    for step in path[:-1]:
        node = node[step]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def must_fail_typed(fn, *args):
    try:
        fn(*args)
    except TlogError:
        pass


FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.data(), json_values, st.booleans())
def test_dsse_entry_fuzz(data, value, delete):
    path = data.draw(st.sampled_from(list(paths(DSSE))))
    must_fail_typed(dsse.parse_proposed, replaced(DSSE, path, value, delete))


@FAST
@given(st.data(), json_values, st.booleans())
def test_intoto_entry_fuzz(data, value, delete):
    path = data.draw(st.sampled_from(list(paths(INTOTO))))
    must_fail_typed(intoto002.parse_proposed, replaced(INTOTO, path, value, delete))


@FAST
@given(st.data(), json_values, st.booleans())
def test_envelope_fuzz(data, value, delete):
    env = json.loads(ENVELOPE)
    path = data.draw(st.sampled_from(list(paths(env))))
    text = json.dumps(replaced(env, path, value, delete))
    proposed = replaced(DSSE, ("spec", "proposedContent", "envelope"), text, False)
    must_fail_typed(dsse.parse_proposed, proposed)


@FAST
@given(st.data(), json_values, st.booleans())
def test_statement_fuzz(data, value, delete):
    stmt = data.draw(st.sampled_from(STATEMENTS))
    path = data.draw(st.sampled_from(list(paths(stmt))))
    must_fail_typed(intoto.parse_statement, payload(replaced(stmt, path, value, delete)))


@FAST
@given(st.binary(max_size=300))
def test_raw_bytes_fuzz(raw):
    must_fail_typed(dsse.parse_envelope, raw)
    must_fail_typed(intoto.parse_statement, raw)
    must_fail_typed(dsse.parse_canonical, raw)
    must_fail_typed(intoto002.parse_canonical, raw)
