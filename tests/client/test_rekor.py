"""Rekor v1 identifiers, SET and the LogEntry shape (SPEC §3.4, §6), with
published vectors from the Sigstore staging log (sigstore-python test assets)."""

from __future__ import annotations

import base64
import copy
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tlog_client import rekor
from tlog_client.encoding import b64encode_std
from tlog_client.errors import FormatError, SignatureError, VerificationError
from tlog_client.hashing import leaf_hash
from tlog_client.keys import load_public_key, spki_der
from tlog_client.rekor import (EntryRef, InclusionProof, LogEntry, canonical_json, entry_id,
                               log_id, parse_entry_ref, parse_inclusion_proof, parse_log_entry,
                               set_payload, set_payload_of_valid, sign_set, uuid_of,
                               verify_entry_set, verify_entry_uuid, verify_set)
from tlog_client.verify import verify_inclusion

# -- published vectors (sigstore/sigstore-python test/assets) -----------------

# The Sigstore staging Rekor key (test/assets/staging-tuf/targets/*.rekor.pub).
STAGING_REKOR_PEM = (
    b"-----BEGIN PUBLIC KEY-----\n"
    b"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEDODRU688UYGuy54mNUlaEBiQdTE9\n"
    b"nYLr0lg6RXowI/QV/RE1azBn4Eg5/2uTOMbhB1/gfcHzijzFi9Tk+g1Prg==\n"
    b"-----END PUBLIC KEY-----\n")
STAGING_LOG_ID = "d32f30a3c32d639c2b762205a21c7bb07788e68283a4ae6f42118723a1bea496"

# test/assets/offline-rekor.txt.bundle: a Rekor v1 LogEntry payload and its SET
# (hashedrekord, Fulcio certificate for william@yossarian.net, ECDSA P-384).
OFFLINE_SET_B64 = ("MEUCIQCjDatq0XZeZDd0KO8rqgAEdoHAyzXREh7vzeSBLcQGdwIgFzZKEXISn/G0BlF7DsLnaH4i"
                   "YCrOWhM1U4OitB16LYs=")
OFFLINE_INTEGRATED_TIME = 1665690514
OFFLINE_LOG_INDEX = 827575
OFFLINE_BODY_B64 = (
    "eyJhcGlWZXJzaW9uIjoiMC4wLjEiLCJraW5kIjoiaGFzaGVkcmVrb3JkIiwic3BlYyI6eyJkYXRhIjp7"
    "Imhhc2giOnsiYWxnb3JpdGhtIjoic2hhMjU2IiwidmFsdWUiOiJkYTk0MGE4MGMxZDdlNTY4YWI0MDk2"
    "ODI4YmE0NThmMDYyOTQ5ZTI2ZTY3OWJhOWFlNDU1YjdkZWI3MjM2YWViIn19LCJzaWduYXR1cmUiOnsi"
    "Y29udGVudCI6Ik1HVUNNUUNrSEMraXV2VG85SDFFNHlncUN2U3ErZEF4YnFPOUdyZzEyR0pEbFJlMGhN"
    "TytUZEUvY24yS1JCN1ZHb25OMEVNQ01CdnRJa2pjSWNiQlNWMEg4cFBtcHNaaUgvT3hXYzVKN2p5RUpM"
    "RVJxL003MUdhbVpPb3I5eHg1eDgzTDhEZzJIQT09IiwicHVibGljS2V5Ijp7ImNvbnRlbnQiOiJMUzB0"
    "TFMxQ1JVZEpUaUJEUlZKVVNVWkpRMEZVUlMwdExTMHRDazFKU1VWbWVrTkRRa0ZYWjBGM1NVSkJaMGxW"
    "VEZZemNXUnpPVm94UVhJeGFFOXdWeXN2T1ZWTWVXd3hUR2QzZDBObldVbExiMXBKZW1vd1JVRjNUWGNL"
    "VG5wRlZrMUNUVWRCTVZWRlEyaE5UV015Ykc1ak0xSjJZMjFWZFZwSFZqSk5ValIzU0VGWlJGWlJVVVJG"
    "ZUZaNllWZGtlbVJIT1hsYVV6RndZbTVTYkFwamJURnNXa2RzYUdSSFZYZElhR05PVFdwSmVFMUVSWHBO"
    "Vkdzd1QwUk5lVmRvWTA1TmFrbDRUVVJGZWsxVWF6RlBSRTE1VjJwQlFVMUlXWGRGUVZsSUNrdHZXa2w2"
    "YWpCRFFWRlpSa3MwUlVWQlEwbEVXV2RCUldabU4waGxZbGhCYTBOSFMyVTRMMUZOYlVvelQwTnFVMDlv"
    "YzFJck0wNUhXVzR4Umt0dE4xSUtOamN5UW5aSVpXczFXbnBoTWtRMVlrWkVSWGRDUlhSTk0wVTVhRTB5"
    "THk5UGQwNHlSVlU0WkVzMlFrRmhWa2QwYkVWSVduWkJla05qVjBOVmQxZEdhZ280VVZSd09XVlJSSFF6"
    "U0hKdGVXZDVjRGx4UWpadFQzSnZORWxFUW5wRFEwRjNUWGRFWjFsRVZsSXdVRUZSU0M5Q1FWRkVRV2Rs"
    "UVUxQ1RVZEJNVlZrQ2twUlVVMU5RVzlIUTBOelIwRlJWVVpDZDAxRVRVSXdSMEV4VldSRVoxRlhRa0pV"
    "ZUdNMFJqa3JNWG93YURSclJ6UXhNRU12WmpCT2VHVnlRV2g2UVdZS1FtZE9Wa2hUVFVWSFJFRlhaMEpT"
    "ZUdocVEyMUdTSGhwWWk5dU16RjJVVVpIYmpsbUx5dDBkbkpFUVdwQ1owNVdTRkpGUWtGbU9FVkhWRUZZ"
    "WjFKV013cGhWM2h6WVZkR2RGRkliSFpqTTA1b1kyMXNhR0pwTlhWYVdGRjNURUZaUzB0M1dVSkNRVWRF"
    "ZG5wQlFrRlJVV1ZoU0ZJd1kwaE5Oa3g1T1c1aFdGSnZDbVJYU1hWWk1qbDBUREo0ZGxveWJIVk1Namxv"
    "WkZoU2IwMUpTVU5TZDFsTFMzZFpRa0pCU0ZkbFVVbEZRV2RUUTBGcVkwVm5aMGw2UVdwRlEweDNRV0lL"
    "WmtKUmNWUndhM0p3T1RobFNEaFdNRXBHVVZSaVFsWTJWRXhOWTFGUmFXeEpZbWw0Y1N0bEwxUkJRVUZC"
    "V1ZCVE5VTXhWa0ZCUVVWQlVVbEJUemwzTUFvMVUzUnpSRnB6U3pJM2RtWnFTREZ1Ylhwb1FqaGtRV05w"
    "Wm5kelEyUjFURGRZVXpBM09VcDZPV2hWWm1OcWNVdE5XazlSWWt3MVpHeDFiR3QwWlhGdENtOVJVRTh5"
    "TnpKMUwwRjRUR05oTjJkTFJFUTBOMmRDZURBdlR6bDVhelpVWVhCSFVYVnhjMDV5YmpKS1VIQm1UV1Iy"
    "ZW5kS2RsaFJTaTgzY2t3Mk1Xd0taRFo2Y3k4emNUQlZVVkYxTkZCeFZrbGtSRkJvVGtZNVkyaFZUVWRw"
    "WVhVMVZVdEJRM05OWVc1WlMzUnRWR2s0Tml0M1kwTlVPRGxGZEdJNVUzRlRhZ29yVVdsVWJGUjZVWEZK"
    "YVRsalMxaGlWV2hQVkhwd2FVdEJUR3AzVG5aemRrSTFjRkUyVlRsWFRpczRUMVp2VVZCeU9URTVhbk1y"
    "VHpCQlpWWm1PRkkyQ2xsTGFGWjFiVTFDY1hWMlZqYzFOa1p2WTBNdmJIaFVhRmxKVkdKdFZVZzVNV0pa"
    "TDI1UlVGbDVOSFJCYUhWMWJYTTJRMk1yT1haNldXRmxVWGMyZVRBS1pGVm1kVzB4V0UwNFlXZEtjMmxv"
    "V1hwMVlVd3ZWVEJUTW00NFNISm1jMHhxVEZVMllUQTJTVkJOUlhnM1YxWkhVMFZhZUZSSU56aFFkWEpZ"
    "UkV0Q09BcHpURXRITWxneWQwbFJjR2w1WjJ4ck5rTlZNSHBuZHpSWFdHSXJjVTlPTjFaR1NVdzBkMDls"
    "TlhSa2NsTklkMUprVmpaNGNVZFBaR1ZUWml0VWVVZzBDamRIVWxCaE1ISmhWREp3VmxkQldtWTJiR2xL"
    "VUVRMGRuRklNbXBLVjBVelYySm9UMWRyWmxsTk9YVnhiMFV4WmxGVFVYSTNSMDQwSzA1S2VtMXpaRTRL"
    "YzJONGMwUXlkR2xGZUd4WVRrbE5TWFp3V0hGVWNtSlhVM2hFUXk5eVpVMVFhbTVpY0U1VlNFSkRkM0ZU"
    "ZVdGTU4waDVWekJ2UWpObE5rcEtUM1ZYYkFwNVJrUktTV2x0V0RKMGNFeFhlVTFXTkhSTVEwMWtMM0F6"
    "UlZwelJUVnZRM014WTBkUGFVUlJhRUZXVlZSM1NrOTBlRWcyYW1zcmRtaEdSRXBUU0RaRENtZHJlVWw1"
    "ZFRoMlVVRjNWa2RoZEVOa1JXeFpTMHMyVWpCcmREZ3ZlVUU1YzNweWMwWk5kM2REWjFsSlMyOWFTWHBx"
    "TUVWQmQwMUVZVUZCZDFwUlNYZ0tRVXBFVjBwVE5ERkZkMU5yT0V4TVdubHhRbXBMTW5KSE56Y3JZMlZD"
    "YWtReVZuZzJhREZ2UjBoV1IxWkNkM05wY1RSRFoxQnpSWGxRU25SV1Z5c3hVUW80ZDBsM1dpOW5UWFZZ"
    "UVhwSmJHeFVTRW8wU0VKR1ZHdFBSRVZRVldOV1dXTjBVa1JyUmpjMVZqSnNkblJUTkdWUE1FcEdZeXRo"
    "WjJKdUwwRm9PVGxXQ21Gd2NtZ0tMUzB0TFMxRlRrUWdRMFZTVkVsR1NVTkJWRVV0TFMwdExRbz0ifX19"
    "fQ=="
)

BUNDLE_BODY_B64 = (
    "eyJhcGlWZXJzaW9uIjoiMC4wLjEiLCJraW5kIjoiaGFzaGVkcmVrb3JkIiwic3BlYyI6eyJkYXRhIjp7"
    "Imhhc2giOnsiYWxnb3JpdGhtIjoic2hhMjU2IiwidmFsdWUiOiI4MDJkZDYwZmY4ODMzMzgwMmYyNTg1"
    "ZTczMDQzYmQyMWMzNDEyODVlMTk5MmZlNWIzMTc1NWUxY2FkZWFlMzBlIn19LCJzaWduYXR1cmUiOnsi"
    "Y29udGVudCI6Ik1HVUNNUUNPT0pxVFk2WFdnQjY0aXpLMldWUDA3YjBTRzlNNVdQQ3dLaGZUUHdNdnRz"
    "Z1VpOEtlUkd3UWt2dkxZYktIZHFVQ01FYk9YRkcwTk1xRVF4V1ZiNnJtR25leGRBRHVHZjZKbDhxQUM4"
    "dG42N3AzUWZWb1h6TXZGQTYxUHp4d1Z3dmI4Zz09IiwicHVibGljS2V5Ijp7ImNvbnRlbnQiOiJMUzB0"
    "TFMxQ1JVZEpUaUJEUlZKVVNVWkpRMEZVUlMwdExTMHRDazFKU1VNMWVrTkRRVzE1WjBGM1NVSkJaMGxW"
    "U2pOMmNHVjNaR1kyWlRreGNtZHFjVU54WVdkemRFWTBjVzQ0ZDBObldVbExiMXBKZW1vd1JVRjNUWGNL"
    "VG5wRlZrMUNUVWRCTVZWRlEyaE5UV015Ykc1ak0xSjJZMjFWZFZwSFZqSk5ValIzU0VGWlJGWlJVVVJG"
    "ZUZaNllWZGtlbVJIT1hsYVV6RndZbTVTYkFwamJURnNXa2RzYUdSSFZYZElhR05PVFdwTmQwNUVTVEpO"
    "UkVGNVRWUkJORmRvWTA1TmFrMTNUa1JKTWsxRVFYcE5WRUUwVjJwQlFVMUlXWGRGUVZsSUNrdHZXa2w2"
    "YWpCRFFWRlpSa3MwUlVWQlEwbEVXV2RCUlRKelpEWXJiRTlDWTI0MVRWaDBibUozWTJFM2VtTjNjSEJ5"
    "YkRkSFZWcHBTMVJQT1VsWGNFRUtWV1pXVkhSNEswSllSMGhSUTFKM2MwWjVMMlEzWkV4c1pqUm9kWEpK"
    "Y1doNlRVUTFlV0ZETW10alZUa3ZPR001UnpVMVNubENXRVk0UkhnMVUxRnRPUXA1TW5KUVYwWkpaRzB5"
    "T1ZGc09VRXpTVE41ZVVWR2VWQnZORWxDWW1wRFEwRlhiM2RFWjFsRVZsSXdVRUZSU0M5Q1FWRkVRV2Rs"
    "UVUxQ1RVZEJNVlZrQ2twUlVVMU5RVzlIUTBOelIwRlJWVVpDZDAxRVRVSXdSMEV4VldSRVoxRlhRa0pV"
    "YkdGVlptcHdhVmhIYUVKUU0yaFBRMWN3U2twYVJGTlFlR2Q2UVdZS1FtZE9Wa2hUVFVWSFJFRlhaMEpT"
    "ZUdocVEyMUdTSGhwWWk5dU16RjJVVVpIYmpsbUx5dDBkbkpFUVZsQ1owNVdTRkpGUWtGbU9FVkVha0ZO"
    "WjFGd2FBcFJTRkoxWlZNMU1HSXpaSFZOUTNkSFEybHpSMEZSVVVKbk56aDNRVkZGUlVodGFEQmtTRUo2"
    "VDJrNGRsb3liREJoU0ZacFRHMU9kbUpUT1hOaU1tUndDbUpwT1haWldGWXdZVVJCZFVKbmIzSkNaMFZG"
    "UVZsUEwwMUJSVWxDUTBGTlNHMW9NR1JJUW5wUGFUaDJXakpzTUdGSVZtbE1iVTUyWWxNNWMySXlaSEFL"
    "WW1rNWRsbFlWakJoUkVOQ2FXZFpTMHQzV1VKQ1FVaFhaVkZKUlVGblVqaENTRzlCWlVGQ01rRkRjM2Qy"
    "VG5odmFVMXVhVFJrWjIxTFZqVXdTREJuTlFwTldsbERPSEIzZW5reE5VUlJVRFo1Y2tsYU5rRkJRVUpv"
    "TjNKMlpVSnpRVUZCVVVSQlJXTjNVbEZKYUVGTFQxcFFUVTQ1VVRseFR6RklXR2xuU0VKUUNuUXJTV014"
    "Tm5sNU1scG5kakpMVVRJemFUVlhUR294TmtGcFFYcHlSbkIxWVhsSFdHUnZTeXRvV1dWUWJEbGtSV1ZZ"
    "YWtjdmRrSXlha3N2UlROelJYTUtTWEpZZEVWVVFVdENaMmR4YUd0cVQxQlJVVVJCZDA1d1FVUkNiVUZx"
    "UlVGbmJXaG5PREJ0U1M5VFkzSXdhWE5DYmtRMVJsbFlXamhYZUVFNGRHNUNRZ3BRYldSbU5HRk9SMFp2"
    "Y2tkaGVrZFlZVVpSVmxCWVowSldVSFlyV1VkSkwwRnFSVUV3VVhwUVF6VmtTRVF2VjFkWVZ6SkhZa1ZE"
    "TkdSd2QwWnJPRTlIQ2xKcmFVVjRUVTk1THl0RGNXRmlZbFpuS3k5c2VERk9PVlpIUWxSc1ZWUm1kRFEx"
    "WkFvdExTMHRMVVZPUkNCRFJWSlVTVVpKUTBGVVJTMHRMUzB0Q2c9PSJ9fX19"
)


# test/assets/bundle.txt.sigstore: a hashedrekord entry (a@tny.town) with SET
# and inclusion proof (shard-local index 7376158, global logIndex 7390977).
BUNDLE_SET_B64 = ("MEUCICSJs5PgN4W3Lku3ybrwfNLAKMWaOvffg2tnqm19VrWEAiEA16MVPsWDoaAljsxGefpQazpvYfs1"
                  "pv8lzdgZQ0I4rH0=")
BUNDLE_INTEGRATED_TIME = 1682468469
BUNDLE_LOG_INDEX = 7390977
BUNDLE_PROOF_INDEX = 7376158
BUNDLE_TREE_SIZE = 7376159
BUNDLE_ROOT_B64 = "LE67t2Zlc0g35az81xMg0cgM2DULj8fNsGGHTcRthcs="
BUNDLE_HASHES_B64 = [
    "zgesNHwk09VvW4IDaPrJMtX59glNyyLPzeJO1Gw1hCI=", "lJiFr9ZP5FO8BjqLAUQ16A/0/LoOOQ0gfeNhdxaxO2w=",
    "sMImd51DBHQnH1tz4sGk8gXB+FjWyusVXbP0GmpFnB4=", "cDU1nEpl0WCRlxLi/gNVzykDzobU4qG/7BQZxn0qDgU=",
    "4CRqWzG3qpxKvlHuZg5O6QjQiwOzerbjwsAh30EVlA8=", "Ru0p3GE/zB2zub2/xR5rY/aM4J+5VJmiIuIl2enF/ws=",
    "2W+NG5yGR68lrLGcw4gn9CSCfeQF98d3LMfdo8tPyok=", "bEs1eYxy9R6hR2veGEwYW4PEdrZKrdqZ7uDlmmNtlas=",
    "sgQMnwcK7VxxAi+fygxq8iJ+zWqShjXm07/AWobWcXU=", "y4BESazXFcefRzxpN1PfJHoqRaKnPJPM5H/jotx0QY8=",
    "xiNEdLOpmGQERCR+DCEFVRK+Ns6G0BLV9M6sQQkRhik="]
BUNDLE_CHECKPOINT = (
    "rekor.sigstage.dev - 8050909264565447525\n7376159\n"
    "LE67t2Zlc0g35az81xMg0cgM2DULj8fNsGGHTcRthcs=\nTimestamp: 1682468469199678948\n\n"
    "\u2014 rekor.sigstage.dev 0y8wozBEAiBbAodz3dBqJjGMhnZEkbaTDVxc8+tBEPKbaWUZoqxFvwIgGtYzFgFaM3U"
    "XBRHmzgmcrCxA145dpQ2YD0yFqiPHO7U=\n")


def hex_of_b64(text: str) -> str:
    return base64.b64decode(text).hex()


def offline_entry_json() -> dict:
    """The offline-rekor vector as a Rekor v1 LogEntry response."""
    body = base64.b64decode(OFFLINE_BODY_B64)
    return {uuid_of(body): {
        "body": OFFLINE_BODY_B64, "integratedTime": OFFLINE_INTEGRATED_TIME,
        "logID": STAGING_LOG_ID, "logIndex": OFFLINE_LOG_INDEX,
        "verification": {"signedEntryTimestamp": OFFLINE_SET_B64}}}


def bundle_entry_json() -> dict:
    """The bundle.txt vector as a Rekor v1 LogEntry response (EntryID key)."""
    body = base64.b64decode(BUNDLE_BODY_B64)
    return {entry_id(8050909264565447525, uuid_of(body)): {
        "body": BUNDLE_BODY_B64, "integratedTime": BUNDLE_INTEGRATED_TIME,
        "logID": STAGING_LOG_ID, "logIndex": BUNDLE_LOG_INDEX,
        "verification": {
            "inclusionProof": {
                "logIndex": BUNDLE_PROOF_INDEX, "rootHash": hex_of_b64(BUNDLE_ROOT_B64),
                "treeSize": BUNDLE_TREE_SIZE, "hashes": [hex_of_b64(h) for h in BUNDLE_HASHES_B64],
                "checkpoint": BUNDLE_CHECKPOINT},
            "signedEntryTimestamp": BUNDLE_SET_B64}}}


def staging_key():
    return load_public_key(STAGING_REKOR_PEM)


def test_staging_log_id():
    assert log_id(staging_key()) == STAGING_LOG_ID


@pytest.mark.parametrize("make", [offline_entry_json, bundle_entry_json])
def test_published_entry_verifies(make):
    entry = parse_log_entry(make())
    verify_entry_uuid(entry)
    verify_entry_set(entry, staging_key())
    assert entry.to_json() == make()


def test_published_set_payload_bytes():
    payload = set_payload(OFFLINE_BODY_B64, OFFLINE_INTEGRATED_TIME, STAGING_LOG_ID,
                          OFFLINE_LOG_INDEX)
    assert payload.startswith(b'{"body":"eyJhcGlWZXJzaW9uIjoiMC4wLjEi')
    assert payload.endswith(b'","integratedTime":1665690514,"logID":"' + STAGING_LOG_ID.encode()
                            + b'","logIndex":827575}')
    verify_set(staging_key(), base64.b64decode(OFFLINE_SET_B64), payload)


def test_published_inclusion_proof():
    entry = parse_log_entry(bundle_entry_json())
    proof = entry.inclusion_proof
    assert proof.checkpoint == BUNDLE_CHECKPOINT and len(proof.hashes) == 11
    verify_inclusion(proof.log_index, proof.tree_size, leaf_hash(entry.body), proof.hashes,
                     proof.root_hash)


@pytest.mark.parametrize("field,value", [
    ("integratedTime", OFFLINE_INTEGRATED_TIME + 1),
    ("logIndex", OFFLINE_LOG_INDEX + 1),
    ("body", b64encode_std(base64.b64decode(OFFLINE_BODY_B64) + b" ")),
])
def test_published_set_rejects_tampering(field, value):
    obj = offline_entry_json()
    (inner,) = obj.values()
    inner[field] = value
    with pytest.raises(SignatureError, match="does not verify"):
        verify_entry_set(parse_log_entry(obj), staging_key())


# -- identifiers -------------------------------------------------------------

def test_canonical_json():
    assert canonical_json({"b": 1, "a": [True, None, "\u00e9"], "c": {"z": 0, "y": 1.5}}) == \
        b'{"a":[true,null,"\xc3\xa9"],"b":1,"c":{"y":1.5,"z":0}}'


@pytest.mark.parametrize("value", [{"a": 2 ** 60}, {1: 2}, {"a": float("nan")}, {"a": "\ud800"},
                                   {"a": b"bytes"}])
def test_canonical_json_rejects(value):
    with pytest.raises(FormatError) as info:
        canonical_json(value)
    assert info.value.field == "body"


def test_uuid_of():
    assert uuid_of(b"body") == hashlib.sha256(b"\x00body").hexdigest()
    assert uuid_of(b"body") == leaf_hash(b"body").hex()


UUID = "ab" * 32


def test_entry_id():
    assert entry_id(1, UUID) == "0000000000000001" + UUID
    assert entry_id((1 << 63) - 1, UUID) == "7fffffffffffffff" + UUID
    assert entry_id(8050909264565447525, UUID) == "6fba935211532b65" + UUID


@pytest.mark.parametrize("tree_id,uuid", [
    (0, UUID), (-1, UUID), (1 << 63, UUID), (True, UUID), ("1", UUID), (1, UUID.upper()),
    (1, UUID[:-2]), (1, UUID + "00"), (1, None)])
def test_entry_id_rejects(tree_id, uuid):
    with pytest.raises(FormatError):
        entry_id(tree_id, uuid)


@pytest.mark.parametrize("text,expected", [
    (UUID, EntryRef(uuid=UUID)),
    (UUID.upper(), EntryRef(uuid=UUID)),
    ("0000000000000001" + UUID, EntryRef(uuid=UUID, tree_id=1)),
    ("6FBA935211532B65" + UUID.upper(), EntryRef(uuid=UUID, tree_id=8050909264565447525)),
    ("7fffffffffffffff" + UUID, EntryRef(uuid=UUID, tree_id=(1 << 63) - 1)),
])
def test_parse_entry_ref(text, expected):
    ref = parse_entry_ref(text)
    assert ref == expected
    assert ref.key == text.lower()


@pytest.mark.parametrize("text", [
    "", UUID[:-1], UUID + "a", "0" * 79, "0" * 81, "g" * 64, " " + UUID[1:], UUID + "\n",
    "0000000000000000" + UUID, "8000000000000000" + UUID, "ffffffffffffffff" + UUID,
    "\uff10" * 64, None, 12])
def test_parse_entry_ref_rejects(text):
    with pytest.raises(FormatError) as info:
        parse_entry_ref(text, "entryUUID")
    assert info.value.field == "entryUUID"


def test_log_id_is_hash_of_spki():
    for key in (ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())):
        pub = key.public_key()
        assert log_id(pub) == hashlib.sha256(spki_der(pub)).hexdigest()


# -- SET ---------------------------------------------------------------------

BODY_B64 = b64encode_std(b'{"apiVersion":"0.0.1"}')
LOG_ID = "cd" * 32


def test_set_payload_exact_bytes():
    assert set_payload(BODY_B64, 1700000000, LOG_ID, 42) == (
        b'{"body":"' + BODY_B64.encode() + b'","integratedTime":1700000000,"logID":"'
        + LOG_ID.encode() + b'","logIndex":42}')


@pytest.mark.parametrize("itime,index", [
    (0, 0), (1700000000, 42), (2**53 - 1, 2**53 - 1), (2**53, 7), (5, 2**53), (2**63 - 1, 0),
])
@pytest.mark.parametrize("body", [b"{}", b'{"apiVersion":"0.0.1"}', bytes(range(256)) * 3])
def test_set_payload_is_rfc8785_of_the_object(itime, index, body):
    """Both the checked payload and the log's own fast path are exactly
    RFC 8785 of the SET object; beyond 2^53 (not exact in RFC 8785) all
    three refuse alike."""
    b64 = b64encode_std(body)
    obj = {"body": b64, "integratedTime": itime, "logID": LOG_ID, "logIndex": index}
    if max(itime, index) > 2**53 - 1:
        for make in (lambda: canonical_json(obj), lambda: set_payload(b64, itime, LOG_ID, index),
                     lambda: set_payload_of_valid(b64, itime, LOG_ID, index)):
            with pytest.raises(FormatError):
                make()
        return
    want = canonical_json(obj)
    assert set_payload_of_valid(b64, itime, LOG_ID, index) == want
    assert set_payload(b64, itime, LOG_ID, index) == want


@pytest.mark.parametrize("args,field", [
    ((BODY_B64.rstrip("="), 1, LOG_ID, 0), "body"),
    (("", 1, LOG_ID, 0), "body"),
    ((b"eyJ9", 1, LOG_ID, 0), "body"),
    ((BODY_B64, -1, LOG_ID, 0), "integratedTime"),
    ((BODY_B64, True, LOG_ID, 0), "integratedTime"),
    ((BODY_B64, 1.0, LOG_ID, 0), "integratedTime"),
    ((BODY_B64, 1, LOG_ID.upper(), 0), "logID"),
    ((BODY_B64, 1, LOG_ID[:-2], 0), "logID"),
    ((BODY_B64, 1, LOG_ID, -1), "logIndex"),
    ((BODY_B64, 1, LOG_ID, "0"), "logIndex"),
])
def test_set_payload_rejects(args, field):
    with pytest.raises(FormatError) as info:
        set_payload(*args)
    assert info.value.field == field


@pytest.mark.parametrize("make", [
    ed25519.Ed25519PrivateKey.generate,
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: ec.generate_private_key(ec.SECP384R1()),
], ids=["Ed25519", "P-256", "P-384"])
def test_sign_and_verify_set(make):
    private = make()
    payload = set_payload(BODY_B64, 1700000000, log_id(private.public_key()), 7)
    sig = sign_set(private, payload)
    verify_set(private.public_key(), sig, payload)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        assert len(sig) == 64
    with pytest.raises(SignatureError):
        verify_set(private.public_key(), sig, payload.replace(b"1700000000", b"1700000001"))
    with pytest.raises(SignatureError):
        verify_set(make().public_key(), sig, payload)
    with pytest.raises(SignatureError):
        verify_set(private.public_key(), b"", payload)
    with pytest.raises(SignatureError):
        verify_set(private.public_key(), sig[:-1], payload)


def test_ecdsa_set_is_der_over_sha256():
    private = ec.generate_private_key(ec.SECP256R1())
    payload = set_payload(BODY_B64, 1, LOG_ID, 0)
    sig = sign_set(private, payload)
    assert sig[0] == 0x30
    from cryptography.hazmat.primitives import hashes
    private.public_key().verify(sig, payload, ec.ECDSA(hashes.SHA256()))


def test_rsa_is_not_a_log_key():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(FormatError):
        sign_set(private, b"payload")
    with pytest.raises(SignatureError, match="not a log key type"):
        verify_set(private.public_key(), b"sig", b"payload")


# -- LogEntry build / parse ---------------------------------------------------

def sample_entry(**changes) -> LogEntry:
    body = b'{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{}}'
    proof = InclusionProof(log_index=3, root_hash=bytes(range(32)), tree_size=5,
                           hashes=(b"\x01" * 32, b"\x02" * 32, b"\x03" * 32),
                           checkpoint="origin\n5\nAAAA\n\n\u2014 origin sig\n")
    fields = dict(ref=EntryRef(uuid=uuid_of(body), tree_id=99), body=body,
                  integrated_time=1700000000, log_id=LOG_ID, log_index=3, inclusion_proof=proof,
                  set_signature=b"\x30\x06sig", attestation=None)
    fields.update(changes)
    return LogEntry(**fields)


def test_log_entry_json_shape():
    entry = sample_entry()
    obj = entry.to_json()
    assert list(obj) == [entry_id(99, entry.uuid)]
    inner = obj[entry_id(99, entry.uuid)]
    assert inner == {
        "body": b64encode_std(entry.body), "integratedTime": 1700000000, "logID": LOG_ID,
        "logIndex": 3,
        "verification": {
            "inclusionProof": {"logIndex": 3, "rootHash": bytes(range(32)).hex(), "treeSize": 5,
                               "hashes": ["01" * 32, "02" * 32, "03" * 32],
                               "checkpoint": "origin\n5\nAAAA\n\n\u2014 origin sig\n"},
            "signedEntryTimestamp": b64encode_std(b"\x30\x06sig")}}


@pytest.mark.parametrize("entry", [
    sample_entry(),
    sample_entry(ref=EntryRef(uuid=sample_entry().uuid)),
    sample_entry(inclusion_proof=None),
    sample_entry(set_signature=None),
    sample_entry(inclusion_proof=None, set_signature=None),
    sample_entry(attestation=b'{"payloadType":"x"}'),
    sample_entry(inclusion_proof=InclusionProof(0, b"\x00" * 32, 1, (), "c")),
], ids=["full", "uuid-key", "no-proof", "no-set", "no-verification", "attestation", "size-1"])
def test_log_entry_round_trip(entry):
    assert parse_log_entry(entry.to_json()) == entry
    assert parse_log_entry(copy.deepcopy(entry.to_json())).to_json() == entry.to_json()


def test_log_entry_key_uppercase_is_normalised():
    obj = sample_entry().to_json()
    ((key, inner),) = obj.items()
    entry = parse_log_entry({key.upper(): inner})
    assert entry.ref == sample_entry().ref


def test_verify_entry_uuid_mismatch():
    entry = sample_entry(ref=EntryRef(uuid=UUID))
    with pytest.raises(VerificationError, match="not the leaf hash"):
        verify_entry_uuid(entry)


def test_verify_entry_set_checks_log_id_and_presence():
    private = ed25519.Ed25519PrivateKey.generate()
    entry = sample_entry(log_id=log_id(private.public_key()))
    signed = sample_entry(log_id=entry.log_id, set_signature=sign_set(private, entry.set_payload()))
    verify_entry_set(signed, private.public_key())
    with pytest.raises(SignatureError, match="not the pinned log key"):
        verify_entry_set(signed, ed25519.Ed25519PrivateKey.generate().public_key())
    with pytest.raises(SignatureError, match="no signedEntryTimestamp"):
        verify_entry_set(sample_entry(log_id=entry.log_id, set_signature=None),
                         private.public_key())


def inner_of(obj: dict) -> dict:
    (inner,) = obj.values()
    return inner


def paths_of(obj: dict, prefix: str = "entry"):
    """Every (path, parent, key) of nested objects, for one-at-a-time mutation."""
    for key, value in obj.items():
        path = f"{prefix}.{key}"
        yield path, obj, key
        if isinstance(value, dict):
            yield from paths_of(value, path)


ALL_PATHS = [p for p, _, _ in paths_of(inner_of(sample_entry(attestation=b"a").to_json()))]
REQUIRED = ["entry.body", "entry.integratedTime", "entry.logID", "entry.logIndex",
            "entry.verification.inclusionProof.logIndex",
            "entry.verification.inclusionProof.rootHash",
            "entry.verification.inclusionProof.treeSize",
            "entry.verification.inclusionProof.hashes",
            "entry.verification.inclusionProof.checkpoint"]


def mutate(path: str, action):
    obj = sample_entry(attestation=b"a").to_json()
    for p, parent, key in paths_of(inner_of(obj)):
        if p == path:
            action(parent, key)
            return obj
    raise AssertionError(path)


@pytest.mark.parametrize("path", REQUIRED)
def test_missing_required_field(path):
    obj = mutate(path, lambda parent, key: parent.pop(key))
    with pytest.raises(FormatError) as info:
        parse_log_entry(obj)
    assert info.value.field == path and "missing" in info.value.reason


@pytest.mark.parametrize("path", ALL_PATHS)
def test_null_field(path):
    obj = mutate(path, lambda parent, key: parent.__setitem__(key, None))
    with pytest.raises(FormatError) as info:
        parse_log_entry(obj)
    assert info.value.field == path and "null" in info.value.reason


@pytest.mark.parametrize("path", ["entry"] + [p for p in ALL_PATHS if p.count(".") < 3
                                              and p.rsplit(".", 1)[1] in
                                              ("verification", "inclusionProof", "attestation")])
def test_unknown_field(path):
    obj = sample_entry(attestation=b"a").to_json()
    target = inner_of(obj)
    for part in path.split(".")[1:]:
        target = target[part]
    target["extra"] = 1
    with pytest.raises(FormatError) as info:
        parse_log_entry(obj)
    assert info.value.field == f"{path}.extra" and "unknown" in info.value.reason


@pytest.mark.parametrize("path", ALL_PATHS)
def test_wrong_type(path):
    def swap(parent, key):
        parent[key] = [] if not isinstance(parent[key], list) else {}
    with pytest.raises(FormatError) as info:
        parse_log_entry(mutate(path, swap))
    assert info.value.field == path


BAD_VALUES = [
    ("entry.body", "eyJ", "base64"),
    ("entry.body", "ey J9", "base64"),
    ("entry.body", "", "empty"),
    ("entry.integratedTime", -1, "minimum"),
    ("entry.integratedTime", 1.5, "integer"),
    ("entry.integratedTime", "1700000000", "integer"),
    ("entry.logIndex", True, "integer"),
    ("entry.logIndex", 1 << 63, "maximum"),
    ("entry.logID", LOG_ID.upper(), "hex"),
    ("entry.logID", LOG_ID + "00", "bytes"),
    ("entry.verification.signedEntryTimestamp", "MEU=\n", "base64"),
    ("entry.verification.signedEntryTimestamp", "MEV=", "non-canonical"),
    ("entry.verification.inclusionProof.treeSize", 0, "minimum"),
    ("entry.verification.inclusionProof.rootHash", "00" * 31, "bytes"),
    ("entry.verification.inclusionProof.checkpoint", "", "empty"),
    ("entry.attestation.data", "a-b_", "base64"),
]


@pytest.mark.parametrize("path,value,needle", BAD_VALUES)
def test_bad_value(path, value, needle):
    obj = mutate(path, lambda parent, key: parent.__setitem__(key, value))
    with pytest.raises(FormatError) as info:
        parse_log_entry(obj)
    assert info.value.field == path and needle in info.value.reason


@pytest.mark.parametrize("hashes,field", [
    (["01" * 32, "AB" * 32], "entry.verification.inclusionProof.hashes[1]"),
    (["01" * 31], "entry.verification.inclusionProof.hashes[0]"),
    ([1], "entry.verification.inclusionProof.hashes[0]"),
    (["01" * 32] * 65, "entry.verification.inclusionProof.hashes"),
])
def test_bad_proof_hashes(hashes, field):
    obj = mutate("entry.verification.inclusionProof.hashes",
                 lambda parent, key: parent.__setitem__(key, hashes))
    with pytest.raises(FormatError) as info:
        parse_log_entry(obj)
    assert info.value.field == field


@pytest.mark.parametrize("obj,field", [
    ({}, "body"),
    ([], "body"),
    ({UUID: {}, "cd" * 32: {}}, "body"),
    ({"not-a-uuid": {}}, "entry key"),
    ({UUID: []}, "entry"),
])
def test_bad_envelope(obj, field):
    with pytest.raises(FormatError) as info:
        parse_log_entry(obj)
    assert info.value.field == field


def test_attestation_without_data_is_none():
    obj = sample_entry().to_json()
    inner_of(obj)["attestation"] = {}
    assert parse_log_entry(obj).attestation is None


def test_parse_inclusion_proof_directly():
    proof = parse_inclusion_proof({"logIndex": 0, "rootHash": "00" * 32, "treeSize": 1,
                                   "hashes": [], "checkpoint": "c"})
    assert proof == InclusionProof(0, b"\x00" * 32, 1, (), "c")
    with pytest.raises(FormatError) as info:
        parse_inclusion_proof({"logIndex": 0})
    assert info.value.field.startswith("inclusionProof.")
