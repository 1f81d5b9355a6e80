"""What every ``tlog-client`` command shares: configuration (flags, else
the environment), exit codes, reading files and digests, signer
expectations, and the human / JSON output of a verified entry."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bundle import dumps_bundle
from .client import LogClient
from .encoding import b64decode_std
from .entryverify import Expectations, VerifiedEntry, load_ca_roots
from .errors import FormatError, TlogError
from .keys import CERT_PARSE_ERRORS, parse_key_material
from .match import normalize_digest

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_MATCH = 0, 1, 2, 3


class UsageError(Exception):
    """Bad flags or configuration (exit 2)."""


@dataclass(frozen=True)
class Config:
    url: str
    log_key: bytes
    origin: str | None
    state_path: Path | None
    evidence_dir: Path
    timeout: float
    proof_source: str
    json: bool


def _default_state_dir(env: dict[str, str]) -> Path:
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "tlog-client"


def load_config(ns: argparse.Namespace, env: dict[str, str]) -> Config:
    key_file = ns.log_key or env.get("TLOG_LOG_KEY")
    if not key_file:
        raise UsageError("the log's public key is required: --log-key FILE or TLOG_LOG_KEY "
                         "(obtain it out of band; it is never fetched from the log)")
    try:
        log_key = Path(key_file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the log key {key_file}: {exc.strerror}") from None
    state_dir = Path(ns.state_dir or env.get("TLOG_STATE_DIR") or _default_state_dir(env))
    return Config(url=ns.url or env.get("TLOG_URL") or "http://localhost:3000",
                  log_key=log_key, origin=ns.origin or env.get("TLOG_ORIGIN") or None,
                  state_path=None if ns.no_state else state_dir / "state.json",
                  evidence_dir=Path(ns.evidence_dir) if ns.evidence_dir else state_dir,
                  timeout=ns.timeout, proof_source=ns.proof_source, json=ns.json)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


def _digest_of(path: str, algorithm: str = "sha256") -> bytes:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, algorithm).digest()
    except OSError as exc:
        raise UsageError(f"cannot read the artifact {path}: {exc.strerror}") from None


def _parse_digest(text: str) -> tuple[str, bytes]:
    try:
        algorithm, hexdigest = normalize_digest(text).split(":")
    except FormatError as exc:
        raise UsageError(f"--digest: {exc.reason}") from None
    return algorithm, bytes.fromhex(hexdigest)


def _leaf_only(pem: bytes) -> bytes:
    """The first certificate of a PEM chain (what Sigstore verifiers expect
    in a hashedrekord entry; intermediates belong in their trusted root)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except CERT_PARSE_ERRORS as exc:
        raise UsageError(f"--cert: not a PEM certificate chain: {exc}") from None
    return certs[0].public_bytes(serialization.Encoding.PEM)


def _signature_file(path: str) -> bytes:
    raw = _read(path, "signature")
    text = raw.strip()
    try:
        return b64decode_std(text.decode("ascii"), "signature")
    except (UnicodeDecodeError, FormatError):
        return raw  # raw DER / PKCS#1 bytes


def _expectations(ns: argparse.Namespace, env: dict[str, str],
                  digest: tuple[str, bytes] | None) -> Expectations:
    identity, issuer = ns.cert_identity, ns.cert_oidc_issuer
    if not (ns.key or identity or issuer or ns.any_signer):
        raise UsageError("say who must have signed: --key PEM, or --cert-identity (with "
                         "--cert-oidc-issuer and --ca-roots), or --any-signer")
    roots: tuple = ()
    ca_file = ns.ca_roots or env.get("TLOG_CA_ROOTS")
    if identity or issuer:
        if not ca_file:
            raise UsageError("--cert-identity needs --ca-roots (or TLOG_CA_ROOTS): the CA "
                             "certificates trusted to vouch for identities")
        try:
            roots = load_ca_roots(_read(ca_file, "CA roots"))
        except FormatError as exc:
            raise UsageError(str(exc)) from None
    key = _read(ns.key, "expected key") if ns.key else None
    if key is not None:
        try:
            parse_key_material(key, "--key")
        except TlogError as exc:
            raise UsageError(str(exc)) from None
    return Expectations(digest=digest, key=key, identity=identity, issuer=issuer, ca_roots=roots)


# -- output ---------------------------------------------------------------------

def _emit(cfg: Config, obj: Any, human: str) -> None:
    if cfg.json:
        print(json.dumps(obj, indent=2, sort_keys=True))
    else:
        print(human)


def _emit_logged(cfg: Config, verified: VerifiedEntry, bundle_path: str | None) -> int:
    """Report an entry just submitted (or found already logged), after
    writing its Sigstore bundle to ``bundle_path`` if given; EXIT_OK."""
    out = verified.to_json()
    human = ("logged" if verified.created else "already logged") + ": " + _describe(verified)
    if bundle_path:
        Path(bundle_path).write_bytes(dumps_bundle(verified))
        out["bundle"] = bundle_path
        human += f"\nbundle written to {bundle_path}"
    _emit(cfg, out, human)
    return EXIT_OK


def _describe(v: VerifiedEntry, online: bool = True) -> str:
    lines = [f"entry {v.log_index}  uuid {v.uuid}", f"  kind        {v.kind} {v.api_version}",
             f"  logged      {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(v.integrated_time))}"
             " (signed by the log)"]
    if v.record is not None:
        ids = v.record.key.identities
        lines.append(f"  artifact    {v.record.artifact_hash}")
        lines.append(f"  signer key  sha256:{v.record.key.key_hash()}")
        names = [*ids.emails, *ids.uris, *ids.other_names]
        if names:
            lines.append(f"  identity    {', '.join(names)} (issuer {ids.issuer})")
    if v.attestation is not None:
        lines += _describe_attestation(v)
    lines.append(f"  checkpoint  {v.checkpoint.origin} size {v.checkpoint.size} "
                 f"root {v.checkpoint.root_hash.hex()}")
    if v.consistent_with is not None:
        state = f"consistent with trusted size {v.consistent_with}"
    elif online:
        state = "no earlier trusted checkpoint (this one is now trusted)"
    else:
        state = "not compared with a trusted state"
    what = "leaf, signature, inclusion, checkpoint (pinned key), SET"
    if v.attestation is not None:
        what = ("leaf, envelope" + ("" if v.envelope_hash_checked else " (payload and "
                "signatures; not byte-exact)") + ", signatures, inclusion, checkpoint "
                "(pinned key), SET")
        if v.attestation.envelope is None:
            what = "leaf, inclusion, checkpoint (pinned key), SET; no envelope returned"
    lines.append(f"  verified    {what}; {state}")
    return "\n".join(lines)


def _describe_attestation(v: VerifiedEntry) -> list[str]:
    att = v.attestation
    lines = []
    for key in att.verifiers:
        ids = key.identities
        names = [*ids.emails, *ids.uris, *ids.other_names]
        lines.append(f"  signer key  sha256:{key.key_hash()}"
                     + (f" ({', '.join(names)}, issuer {ids.issuer})" if names else ""))
    st = att.statement
    if att.envelope is not None and st is None:
        lines.append(f"  payload     {att.envelope.payload_type}")
    if st is None:
        return lines
    lines.append(f"  predicate   {st.predicate_type}")
    for s in st.subjects:
        digests = ", ".join(f"{a}:{d}" for a, d in s.digest)
        lines.append(f"  subject     {s.name or '(unnamed)'} {digests}")
    if st.provenance is not None:
        p = st.provenance
        lines.append(f"  builder     {p.builder_id}")
        if p.source_repository:
            lines.append(f"  source      {p.source_repository}"
                         + (f" {p.source_ref}" if p.source_ref else "")
                         + (f" @ {p.source_revision}" if p.source_revision else ""))
    if st.sbom is not None:
        lines.append(f"  sbom        {st.sbom.format} {st.sbom.spec_version}, "
                     f"{st.sbom.component_count} components")
    return lines


def _client(cfg: Config) -> LogClient:
    return LogClient(cfg.url, cfg.log_key, cfg.state_path, origin=cfg.origin,
                     proof_source=cfg.proof_source, timeout=cfg.timeout)
