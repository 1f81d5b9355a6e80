"""An HTTP fuzzer against a running server (SPEC §6, §9): generated
requests (any method, route-shaped and arbitrary paths, query strings with
non-canonical integers, header variants, JSON bodies of every entry type and
request mutated at any position, raw bytes) never get a 5xx; every error is
the Rekor error shape. Raw byte streams never get a 5xx either and never
stop the server. Bounded example counts keep it to a few seconds; the
shared server's log must show no internal error (tests/server/conftest.py)."""

from __future__ import annotations

import json
import socket
import urllib.parse

from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from tlog_client import dsse, intoto002

from ..client.attestation_samples import artifact, ecdsa_key, payload, slsa_v1_github
from ..client.fuzzing import fuzz_settings, json_values, mutated
from .helpers import ecdsa_signer, error_message, get, request

SETTINGS = fuzz_settings(120, HealthCheck.function_scoped_fixture, derandomize=False)

SIGNER = ecdsa_signer()
KEY = ecdsa_key()
ENVELOPE = dsse.sign_envelope("application/vnd.in-toto+json",
                              payload(slsa_v1_github([artifact()])), [KEY.private])
BODIES = {
    "/api/v1/log/entries": [SIGNER.entry(b"fuzz base"), dsse.build_proposed(ENVELOPE, [KEY.pem]),
                            intoto002.build_proposed(ENVELOPE, [KEY.pem])],
    "/api/v1/log/entries/retrieve": [{"entryUUIDs": ["ab" * 32], "logIndexes": [0, 1],
                                      "entries": [SIGNER.entry(b"fuzz base")]}],
    "/api/v1/index/retrieve": [{"hash": "sha256:" + "ab" * 32, "email": "a@example.com",
                                "subject": "https://x", "operator": "or",
                                "publicKey": {"format": "x509",
                                              "content": SIGNER.entry()["spec"]["signature"][
                                                  "publicKey"]["content"]}}],
}
GET_ROUTES = ["/api/v1/log", "/api/v1/log/publicKey", "/checkpoint", "/healthz",
              "/api/v1/log/entries", "/api/v1/log/proof", "/metrics"]
INTS = st.sampled_from(["0", "1", "2", "+5", "05", "1_0", "\u0665", "\uff15", "-1",
                        str(2**63), str(2**63 - 1), str(2**64), "1e3", " 1", "0x1", ""]) \
    | st.integers(-3, 10**20).map(str)

JSON_VALUES = json_values(max_leaves=6)


def quoted(text: str) -> str:
    """Any text as a request-target piece (``%`` kept: bad escapes too)."""
    return urllib.parse.quote(text, safe="/%+=&?")


def check(r, what) -> None:
    """No 5xx; an error from the API has the Rekor shape (a request aiohttp
    refuses before it reaches the app, a malformed HTTP message, is a plain
    4xx)."""
    assert r.status < 500, (what, r.status, r.body[:300])
    if r.status >= 400 and r.body and r.content_type.startswith("application/json"):
        error_message(r, r.status)


@SETTINGS
@given(route=st.sampled_from(sorted(BODIES)), data=st.data(), value=JSON_VALUES,
       delete=st.booleans())
def test_json_bodies(module_server, route, data, value, delete):
    base = data.draw(st.sampled_from(BODIES[route]))
    body = mutated(data, base, value, delete)
    r = request(module_server.url, "POST", route, json.dumps(body).encode(),
                {"Content-Type": "application/json"})
    check(r, body)


@SETTINGS
@given(route=st.sampled_from(sorted(BODIES)), raw=st.binary(max_size=200)
       | st.sampled_from([b'{"a":1,"a":2}', b"[NaN]", b'{"x":"\\udc00"}', b"[" * 40 + b"]" * 40,
                          b'{"kind": 1e999}', b"\xef\xbb\xbf{}", b"{}" * 3]),
       content_type=st.sampled_from(["application/json", "application/json; charset=utf-8",
                                     "text/plain", "application/json; charset=latin-1", ""]),
       encoding=st.sampled_from([None, "identity", "gzip", "br", "x"]))
def test_raw_bodies(module_server, route, raw, content_type, encoding):
    headers = {"Content-Type": content_type} if content_type else {}
    if encoding:
        headers["Content-Encoding"] = encoding
    check(request(module_server.url, "POST", route, raw, headers), raw)


@SETTINGS
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]),
       base=st.sampled_from(GET_ROUTES + sorted(BODIES) + ["/tile/", "/api/v1/log/entries/",
                                                           "/api/v1/", "/"]),
       tail=st.text(max_size=30) | st.text(alphabet="0123456789abcdefx./-", max_size=90),
       query=st.dictionaries(st.sampled_from(["logIndex", "firstSize", "lastSize", "x", "url"]),
                             INTS, max_size=3),
       repeat=st.booleans())
def test_paths_and_queries(module_server, method, base, tail, query, repeat):
    target = quoted(base + tail)
    if query:
        pairs = list(query.items()) * (2 if repeat else 1)
        target += "?" + "&".join(f"{k}={quoted(v)}" for k, v in pairs)
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    r = request(module_server.url, method, target, body,
                {"Content-Type": "application/json"} if body else None)
    check(r, (method, target))


@SETTINGS
@given(path=st.sampled_from(["/api/v1/log/entries", "/api/v1/log/proof"]),
       a=INTS, b=INTS)
def test_query_integers(module_server, path, a, b):
    query = (f"logIndex={quoted(a)}" if path.endswith("entries")
             else f"firstSize={quoted(a)}&lastSize={quoted(b)}")
    r = get(module_server.url, f"{path}?{query}")
    check(r, query)
    if r.status == 200:  # only canonical decimals in range are ever accepted
        for v in ([a] if path.endswith("entries") else [a, b]):
            assert v == str(int(v)) and not v.startswith("+") and int(v) >= 0, v


@SETTINGS
@given(headers=st.dictionaries(
    st.sampled_from(["Content-Type", "Content-Encoding", "Content-Length", "Transfer-Encoding",
                     "Accept", "Accept-Encoding", "Expect", "Connection", "X-Forwarded-For",
                     "Range", "If-None-Match", "X-Fuzz"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40),
    max_size=4))
def test_header_variants(module_server, headers):
    body = json.dumps({"logIndexes": [0]}).encode()
    headers = {k: v.strip() for k, v in headers.items()}
    try:
        r = request(module_server.url, "POST", "/api/v1/log/entries/retrieve", body, headers,
                    timeout=10)
    except (ConnectionError, OSError, ValueError):
        # The server may close on a framing error (bad Content-Length,
        # Transfer-Encoding); http.client refuses some values itself.
        return
    check(r, headers)


PIECES = [b"GET ", b"POST ", b"/api/v1/log", b"/tile/0/000", b" HTTP/1.1\r\n", b"HTTP/1.0\r\n",
          b"Host: x\r\n", b"Content-Length: 5\r\n", b"Content-Length: -1\r\n",
          b"Transfer-Encoding: chunked\r\n", b"Content-Type: application/json\r\n",
          b"\r\n", b"\n", b"\x00", b"\xff", b"0\r\n\r\n", b"{}", b" ", b"\t", b"%", b"?a=b"]


def _exchange(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (ConnectionError, TimeoutError, OSError):
            pass
        return out


@fuzz_settings(80, HealthCheck.function_scoped_fixture)
@given(st.lists(st.sampled_from(PIECES) | st.binary(max_size=12), max_size=12))
def test_raw_streams(module_server, pieces):
    out = _exchange(module_server.url, b"".join(pieces))
    for line in out.split(b"\r\n"):
        if line.startswith(b"HTTP/1."):
            status = int(line.split(b" ", 2)[1])
            assert status < 500, out[:300]


def test_still_serving_after_the_fuzz(module_server, pinned):
    assert get(module_server.url, "/healthz").status == 200
    r, entry = pinned.submit(SIGNER.entry())
    assert r.status == 201 and entry is not None
