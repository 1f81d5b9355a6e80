"""A deployer's release policy, evaluated over VERIFIED log entries.

A policy file (JSON; YAML too when PyYAML is installed: ``pip install
'tlog[yaml]'``) says what must be true of an artifact before it ships::

    {
      "version": 1,
      "signers": [
        {"publicKey": "keys/release-signing.pub"},
        {"keySha256": "53e6…(64 hex)"},
        {"identity": "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
         "issuer": "https://token.actions.githubusercontent.com"}
      ],
      "caRoots": "keys/fulcio-roots.pem",
      "predicateTypes": ["https://slsa.dev/provenance/v1", "https://cyclonedx.org/bom"],
      "builderIds": ["https://github.com/actions/runner/github-hosted"],
      "sourceRepositories": ["https://github.com/acme/app"],
      "maxAge": "30d"
    }

- ``signers`` (required, at least one): who is trusted. A signer is a public
  key (``publicKey``: a PEM file, relative to the policy file, or the PEM
  itself), a key hash (``keySha256``: hex SHA-256 of the DER
  SubjectPublicKeyInfo, as ``tlog-client`` prints it), or a certificate
  identity (``identity``: SAN e-mail or URI, with its OIDC ``issuer``, both
  required), which needs ``caRoots`` (PEM: the CAs trusted to vouch for
  identities). Any one listed signer is enough for an entry to count.
- ``predicateTypes``: for each, an in-toto attestation of that predicate
  type must exist.
- ``builderIds`` / ``sourceRepositories``: SLSA provenance (v0.2 or v1) must
  exist whose builder id is one of ``builderIds`` AND whose source
  repository is one of ``sourceRepositories`` (either list may be left out).
- ``maxAge``: entries logged longer ago than this do not count (seconds, or
  ``"<n>s|m|h|d|w"``), measured from the log's SET-signed integrated time.

Parsing is strict: an unknown field, a wrong type, an empty list, a bad key
or a missing file raise :class:`PolicyFormatError` naming the field.

Semantics (what a deployer expects: the attestation that makes a claim must
itself be trusted). An entry COUNTS only if it (a) is about the artifact: a
hashedrekord signing its digest, or an in-toto statement naming it as a
subject; (b) is signed by a listed signer; (c) is not older than ``maxAge``.
Then each rule needs one counting entry that satisfies it by itself:

- ``signer``: any counting entry (hashedrekord or attestation);
- ``predicateType <T>``: a counting attestation of predicate type T;
- ``provenance``: one counting SLSA provenance attestation naming an allowed
  builder and an allowed source repository together: a builder in one
  provenance and a source in another do not combine.

The policy holds only if every rule is satisfied. :func:`evaluate_policy`
returns a :class:`PolicyReport` saying, per rule, which entry satisfied it or
why each entry did not; :func:`check_policy` raises
:class:`PolicyViolationError` (carrying the report) unless the policy holds.
The entries must already be verified (:mod:`tlog_client.entryverify`,
:mod:`tlog_client.dsseverify`): a policy judges what the log proved, it does
not re-verify proofs. Identity signers are checked against ``caRoots`` here
(the certificate must chain to them at the integrated time).

Pure: no I/O (files named by the policy are read through the ``load``
callback given to :func:`parse_policy`); time is passed in (``now``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from .bindings import BindingError
from .entryverify import Expectations, VerifiedEntry, check_certificate_chain, load_ca_roots
from .errors import FormatError, TlogError, VerificationError
from .intoto import Statement
from .jsonstrict import loads_strict, type_name
from .keys import KeyMaterial, parse_key_material

__all__ = ["Policy", "PolicyError", "PolicyFormatError", "PolicyReport", "PolicyViolationError",
           "RuleResult", "Signer", "check_policy", "evaluate_policy", "parse_policy"]

FIELDS = ("version", "signers", "caRoots", "predicateTypes", "builderIds",
          "sourceRepositories", "maxAge")
SIGNER_FIELDS = ("publicKey", "keySha256", "identity", "issuer")
MAX_ITEMS = 256
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGE = re.compile(r"([1-9][0-9]{0,9})([smhdw])\Z")
_HEX64 = re.compile(r"(?:sha256:)?([0-9a-fA-F]{64})\Z")


class PolicyError(TlogError):
    """Base of the policy errors."""


class PolicyFormatError(PolicyError, FormatError):
    """The policy file is malformed; ``field`` names the offending field."""


class PolicyViolationError(PolicyError, VerificationError):
    """The policy does not hold; ``report`` says which rule failed and why."""

    binding = "policy"

    def __init__(self, report: "PolicyReport") -> None:
        failed = [r.rule for r in report.rules if not r.satisfied]
        super().__init__(f"the policy does not hold: {', '.join(failed)} not satisfied")
        self.report = report


# -- the policy ----------------------------------------------------------------------

@dataclass(frozen=True)
class Signer:
    """A trusted signer: a key (by hash) or a certificate identity + issuer."""

    key_hash: str | None = None
    identity: str | None = None
    issuer: str | None = None

    @property
    def label(self) -> str:
        if self.key_hash is not None:
            return f"key sha256:{self.key_hash[:16]}…"
        return f"identity {self.identity} (issuer {self.issuer})"


@dataclass(frozen=True)
class Policy:
    signers: tuple[Signer, ...]
    ca_roots: tuple[x509.Certificate, ...] = ()
    predicate_types: tuple[str, ...] = ()
    builder_ids: tuple[str, ...] = ()
    source_repositories: tuple[str, ...] = ()
    max_age: int | None = None

    @property
    def wants_provenance(self) -> bool:
        return bool(self.builder_ids or self.source_repositories)


def _load_document(data: bytes, fmt: str) -> object:
    if fmt == "json":
        try:
            return loads_strict(data)
        except FormatError as exc:
            raise PolicyFormatError("policy", f"not valid JSON: {exc.reason}") from None
    if fmt != "yaml":
        raise PolicyFormatError("policy", f"unknown policy format {fmt!r} (json or yaml)")
    try:
        import yaml
    except ImportError:
        raise PolicyFormatError("policy", "YAML policies need PyYAML (pip install "
                                          "'tlog[yaml]'); or write the policy as JSON") from None

    class StrictLoader(yaml.SafeLoader):
        pass

    def mapping(loader: Any, node: Any, deep: bool = False) -> dict:
        out: dict = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in out:
                raise PolicyFormatError(str(key), "appears twice")
            out[key] = loader.construct_object(value_node, deep=deep)
        return out

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(data, Loader=StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise PolicyFormatError("policy", f"not valid YAML: {exc}") from None


def _strings(value: object, field: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise PolicyFormatError(field, f"must be a list of strings, not {type_name(value)}")
    if not value:
        raise PolicyFormatError(field, "must not be empty (leave the field out instead)")
    if len(value) > MAX_ITEMS:
        raise PolicyFormatError(field, f"more than {MAX_ITEMS} items")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise PolicyFormatError(f"{field}[{i}]", "must be a non-empty string")
    return tuple(value)


def _pem(value: object, field: str, load: Callable[[str], bytes] | None) -> bytes:
    if not isinstance(value, str) or not value.strip():
        raise PolicyFormatError(field, "must be a PEM file name or PEM text")
    if "-----BEGIN" in value:
        return value.encode("ascii", "replace")
    if load is None:
        raise PolicyFormatError(field, f"names a file ({value!r:.60}) but no file loader "
                                       "was given")
    try:
        return load(value)
    except OSError as exc:
        raise PolicyFormatError(field, f"cannot read {value}: {exc.strerror or exc}") from None


def _signer(value: object, field: str, load: Callable[[str], bytes] | None) -> Signer:
    if not isinstance(value, dict):
        raise PolicyFormatError(field, f"must be an object, not {type_name(value)}")
    for name in value:
        if name not in SIGNER_FIELDS:
            raise PolicyFormatError(f"{field}.{name}", "unknown field (publicKey, keySha256, "
                                                       "or identity with issuer)")
    kinds = [k for k in ("publicKey", "keySha256", "identity") if k in value]
    if len(kinds) != 1:
        raise PolicyFormatError(field, "give exactly one of publicKey, keySha256 or identity")
    if "issuer" in value and kinds != ["identity"]:
        raise PolicyFormatError(f"{field}.issuer", "only an identity has an issuer")
    if kinds == ["publicKey"]:
        where = f"{field}.publicKey"
        try:
            material = parse_key_material(_pem(value["publicKey"], where, load), where)
        except FormatError as exc:
            raise PolicyFormatError(where, exc.reason) from None
        except TlogError as exc:
            raise PolicyFormatError(where, str(exc)) from None
        return Signer(key_hash=material.key_hash())
    if kinds == ["keySha256"]:
        raw = value["keySha256"]
        match = _HEX64.match(raw) if isinstance(raw, str) else None
        if not match:
            raise PolicyFormatError(f"{field}.keySha256", "must be 64 hex digits (SHA-256 of "
                                                          "the key's DER SubjectPublicKeyInfo)")
        return Signer(key_hash=match.group(1).lower())
    identity, issuer = value["identity"], value.get("issuer")
    if not isinstance(identity, str) or not identity.strip():
        raise PolicyFormatError(f"{field}.identity", "must be a non-empty string (SAN e-mail "
                                                     "or URI)")
    if not isinstance(issuer, str) or not issuer.strip():
        raise PolicyFormatError(f"{field}.issuer", "an identity needs its OIDC issuer (a "
                                                   "non-empty string)")
    return Signer(identity=identity, issuer=issuer)


def parse_max_age(value: object, field: str = "maxAge") -> int:
    """Seconds from an integer or ``"<n>s|m|h|d|w"``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PolicyFormatError(field, f"must be seconds or a string like \"30d\", not "
                                       f"{type_name(value)}")
    if isinstance(value, int):
        if value <= 0:
            raise PolicyFormatError(field, "must be positive")
        return value
    match = _AGE.match(value.strip())
    if not match:
        raise PolicyFormatError(field, f"{value!r:.40} is not <number><s|m|h|d|w>, e.g. \"30d\"")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_policy(data: bytes, *, fmt: str = "json",
                 load: Callable[[str], bytes] | None = None) -> Policy:
    """Parse a policy document (``fmt`` "json" or "yaml"). ``load(name)``
    returns the bytes of a file the policy names (keys, CA roots); raises
    OSError if it cannot. Raises :class:`PolicyFormatError`."""
    doc = _load_document(data, fmt)
    if not isinstance(doc, dict):
        raise PolicyFormatError("policy", f"must be an object, not {type_name(doc)}")
    for name in doc:
        if name not in FIELDS:
            raise PolicyFormatError(str(name), f"unknown field (known: {', '.join(FIELDS)})")
    if "version" in doc and (doc["version"] != 1 or isinstance(doc["version"], bool)):
        raise PolicyFormatError("version", "must be 1")
    if "signers" not in doc:
        raise PolicyFormatError("signers", "required: without a trusted signer anyone can log "
                                           "an attestation about any artifact")
    items = doc["signers"]
    if not isinstance(items, list) or not items:
        raise PolicyFormatError("signers", "must be a non-empty list")
    if len(items) > MAX_ITEMS:
        raise PolicyFormatError("signers", f"more than {MAX_ITEMS} signers")
    signers = tuple(_signer(item, f"signers[{i}]", load) for i, item in enumerate(items))
    roots: tuple[x509.Certificate, ...] = ()
    if "caRoots" in doc:
        try:
            roots = load_ca_roots(_pem(doc["caRoots"], "caRoots", load))
        except PolicyFormatError:
            raise
        except FormatError as exc:
            raise PolicyFormatError("caRoots", exc.reason) from None
    if any(s.identity is not None for s in signers) and not roots:
        raise PolicyFormatError("caRoots", "identity signers need caRoots: without trusted CAs "
                                           "anyone can make a certificate naming any identity")
    optional = {name: _strings(doc[name], name) for name in
                ("predicateTypes", "builderIds", "sourceRepositories") if name in doc}
    return Policy(signers=signers, ca_roots=roots,
                  predicate_types=tuple(dict.fromkeys(optional.get("predicateTypes", ()))),
                  builder_ids=optional.get("builderIds", ()),
                  source_repositories=tuple(normalize_repository(r) for r in
                                            optional.get("sourceRepositories", ())),
                  max_age=parse_max_age(doc["maxAge"]) if "maxAge" in doc else None)


def normalize_repository(uri: str) -> str:
    """A source repository URI without ``git+``, a trailing ``/`` or ``.git``."""
    uri = uri.strip().removeprefix("git+").rstrip("/")
    return uri.removesuffix(".git")


# -- evaluation ------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleResult:
    """One rule: satisfied by ``entry`` (the first qualifying one) or not,
    with ``reasons``: (log index, why that entry does not satisfy it)."""

    rule: str
    description: str
    satisfied: bool
    entry: VerifiedEntry | None = None
    detail: str = ""
    reasons: tuple[tuple[int | None, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "description": self.description,
                "satisfied": self.satisfied, "detail": self.detail,
                "entry": None if self.entry is None else {
                    "logIndex": self.entry.log_index, "uuid": self.entry.uuid,
                    "kind": self.entry.kind},
                "reasons": [{"logIndex": i, "reason": r} for i, r in self.reasons]}


@dataclass(frozen=True)
class PolicyReport:
    artifact: str
    rules: tuple[RuleResult, ...]
    entries: int
    now: int

    @property
    def holds(self) -> bool:
        return all(r.satisfied for r in self.rules)

    def to_json(self) -> dict[str, Any]:
        return {"holds": self.holds, "artifact": self.artifact, "entriesConsidered": self.entries,
                "evaluatedAt": self.now, "rules": [r.to_json() for r in self.rules]}


def _signers_of(v: VerifiedEntry) -> tuple[KeyMaterial, ...]:
    if v.record is not None:
        return (v.record.key,)
    if v.attestation is not None:
        return tuple(v.attestation.verifiers)
    return ()


def _statement_of(v: VerifiedEntry) -> Statement | None:
    return getattr(v.attestation, "statement", None) if v.attestation is not None else None


def _about_artifact(v: VerifiedEntry, digest: tuple[str, str]) -> str | None:
    """None if ``v`` is about the artifact, else why not."""
    if v.record is not None:
        if (v.record.algorithm, v.record.digest.hex()) == digest:
            return None
        return f"signs {v.record.artifact_hash}, not this artifact"
    statement = _statement_of(v)
    if v.attestation is not None and v.attestation.envelope is None:
        return "the log returned no envelope: its subjects are unknown"
    if statement is None:
        return f"a {v.kind} entry that is not an in-toto statement"
    if digest in statement.subject_digests():
        return None
    return "the in-toto statement does not name this artifact as a subject"


def _trusted_signer(policy: Policy, v: VerifiedEntry) -> tuple[str | None, str]:
    """(label of a policy signer that signed ``v``, or None; why not)."""
    keys = _signers_of(v)
    problems = []
    for signer in policy.signers:
        for key in keys:
            if signer.key_hash is not None:
                if key.key_hash() == signer.key_hash:
                    return signer.label, ""
                continue
            ids = key.identities
            if not key.certificates or signer.identity not in (*ids.emails, *ids.uris,
                                                                *ids.other_names):
                continue
            if ids.issuer != signer.issuer:
                problems.append(f"identity {signer.identity} but issuer {ids.issuer!r}")
                continue
            try:
                check_certificate_chain(key, Expectations(identity=signer.identity,
                                                          issuer=signer.issuer,
                                                          ca_roots=policy.ca_roots),
                                        v.integrated_time)
            except BindingError as exc:
                problems.append(str(exc))
                continue
            return signer.label, ""
    signed = []
    for key in keys:
        ids = key.identities
        names = [*ids.emails, *ids.uris, *ids.other_names]
        signed.append(f"identity {names[0]}" if names else f"key sha256:{key.key_hash()[:16]}…")
    why = f"signed by {', '.join(signed) or 'nobody'}: not a signer the policy trusts"
    return None, "; ".join([why, *problems])


def _age(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds}s"


def evaluate_policy(policy: Policy, entries: Sequence[VerifiedEntry],
                    digest: tuple[str, bytes], now: int) -> PolicyReport:
    """Evaluate ``policy`` for the artifact with ``digest`` (algorithm, raw)
    over verified ``entries`` at time ``now`` (Unix seconds). See the module
    doc for the semantics."""
    want = (digest[0], digest[1].hex())
    counting: list[tuple[VerifiedEntry, str]] = []
    excluded: list[tuple[int, str]] = []
    for v in sorted(entries, key=lambda e: e.log_index):
        problems = []
        about = _about_artifact(v, want)
        if about is not None:
            problems.append(about)
        label, why = _trusted_signer(policy, v)
        if label is None:
            problems.append(why)
        age = now - v.integrated_time
        if policy.max_age is not None and age > policy.max_age:
            problems.append(f"logged {_age(age)} ago, older than maxAge {_age(policy.max_age)}")
        if problems:
            excluded.append((v.log_index, "; ".join(problems)))
        else:
            counting.append((v, label or ""))
    none: tuple[tuple[int | None, str], ...] = (
        () if entries else ((None, "no verified entry for this artifact in the log"),))

    def rule(name: str, description: str,
             check: Callable[[VerifiedEntry], str | None],
             detail: Callable[[VerifiedEntry, str], str]) -> RuleResult:
        reasons = list(excluded)
        for v, label in counting:
            why = check(v)
            if why is None:
                return RuleResult(name, description, True, v, detail(v, label))
            reasons.append((v.log_index, why))
        reasons.sort(key=lambda r: r[0])
        return RuleResult(name, description, False, None, "", tuple(reasons) or none)

    results = [rule("signer", "an entry for the artifact signed by a trusted signer"
                    + (f", logged within {_age(policy.max_age)}" if policy.max_age else ""),
                    lambda v: None, lambda v, label: f"signed by {label}")]
    for ptype in policy.predicate_types:
        def has_type(v: VerifiedEntry, ptype: str = ptype) -> str | None:
            st = _statement_of(v)
            if st is None:
                return f"a {v.kind} entry, not an attestation"
            return None if st.predicate_type == ptype else \
                f"predicate type is {st.predicate_type}"
        results.append(rule(f"predicateType {ptype}",
                            f"a trusted attestation of predicate type {ptype}", has_type,
                            lambda v, label: f"signed by {label}"))
    if policy.wants_provenance:
        results.append(rule("provenance", _provenance_description(policy),
                            lambda v: _provenance_problem(policy, v), _provenance_detail))
    return PolicyReport(f"{want[0]}:{want[1]}", tuple(results), len(entries), now)


def _provenance_description(policy: Policy) -> str:
    parts = []
    if policy.builder_ids:
        parts.append(f"builder in [{', '.join(policy.builder_ids)}]")
    if policy.source_repositories:
        parts.append(f"source in [{', '.join(policy.source_repositories)}]")
    return "trusted SLSA provenance with " + " and ".join(parts)


def _provenance_problem(policy: Policy, v: VerifiedEntry) -> str | None:
    st = _statement_of(v)
    if st is None or st.provenance is None:
        kind = f"predicate type {st.predicate_type}" if st is not None else f"a {v.kind} entry"
        return f"not SLSA provenance ({kind})"
    prov, problems = st.provenance, []
    if policy.builder_ids and prov.builder_id not in policy.builder_ids:
        problems.append(f"builder {prov.builder_id} is not allowed")
    if policy.source_repositories:
        source = prov.source_repository
        if source is None:
            problems.append("the provenance names no source repository")
        elif normalize_repository(source) not in policy.source_repositories:
            problems.append(f"source repository {source} is not allowed")
    return "; ".join(problems) or None


def _provenance_detail(v: VerifiedEntry, label: str) -> str:
    prov = _statement_of(v).provenance  # type: ignore[union-attr]
    return (f"builder {prov.builder_id}, source {prov.source_repository}"
            + (f"@{prov.source_revision[:12]}" if prov.source_revision else "")
            + f", signed by {label}")


def check_policy(policy: Policy, entries: Sequence[VerifiedEntry], digest: tuple[str, bytes],
                 now: int) -> PolicyReport:
    """:func:`evaluate_policy`, raising :class:`PolicyViolationError` unless
    the policy holds; returns the report when it does."""
    report = evaluate_policy(policy, entries, digest, now)
    if not report.holds:
        raise PolicyViolationError(report)
    return report
