"""in-toto Statements: subjects, predicate type, SLSA provenance and SBOM
summaries (SPEC §5; in-toto attestation framework, SLSA provenance v0.2/v1).

A DSSE envelope whose ``payloadType`` is ``application/vnd.in-toto+json``
carries an in-toto Statement::

    {"_type": "https://in-toto.io/Statement/v1",          (or .../v0.1)
     "subject": [{"name": "app.tar.gz", "digest": {"sha256": "<hex>"}}, ...],
     "predicateType": "https://slsa.dev/provenance/v1",
     "predicate": {...}}

:func:`parse_statement` reads one and returns a frozen :class:`Statement`
summary: the subjects and their digests, the predicate type and, for the
predicates a release gate cares about,

- SLSA provenance v0.2 (``https://slsa.dev/provenance/v0.2``): ``builder.id``,
  ``buildType``, the source from ``invocation.configSource`` (else the first
  ``git+`` material) and the ``materials``;
- SLSA provenance v1 (``https://slsa.dev/provenance/v1``):
  ``runDetails.builder.id``, ``buildDefinition.buildType``, the source from
  ``buildDefinition.externalParameters.workflow.repository``/``ref`` where
  present (GitHub Actions), else the first ``git+`` resolved dependency, and
  the ``resolvedDependencies``;
- CycloneDX (``https://cyclonedx.org/bom``, also ``.../bom/v1.x``) and SPDX 2
  (``https://spdx.dev/Document``, also ``.../Document/v2.x``): the format, its
  version and the component count (CycloneDX components, nested ones
  included; SPDX packages).

Rules. The in-toto specification says consumers ignore fields they do not
know, so unknown members are ignored (the payload is signed and hashed as
bytes; nothing here re-serialises it). Every field that is read must have the
right type: a required field missing or null, a wrong type, an empty subject
list, an empty digest set or a malformed digest value is a FormatError naming
the JSON path (``payload.subject[0].digest.sha256``). An optional field that
is null counts as absent (Go's encoders write ``null`` for empty
interfaces). Either the whole statement parses or nothing is returned.

Digest values of the algorithms the in-toto DigestSet specification defines
as hex (sha256, sha512, sha1, gitCommit, ...) must be hex of the right length;
they are normalised to lowercase. Values of other algorithms must be non-empty
strings. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import FormatError
from .jsonstrict import MAX_DEPTH, MAX_SIZE, index_path, join_path, loads_strict, type_name

PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""The DSSE payload type of an in-toto Statement."""

STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_TYPES = (STATEMENT_V01, STATEMENT_V1)

SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
CYCLONEDX_BOM = "https://cyclonedx.org/bom"
SPDX_DOCUMENT = "https://spdx.dev/Document"

MAX_SUBJECTS = 4096
"""Most subjects accepted in one statement (each becomes search-index rows)."""

MAX_DIGESTS = 16
"""Most algorithms in one digest set."""

MAX_TEXT = 4096
"""Longest name, URI, type or identifier string kept in a summary."""

# in-toto attestation spec, DigestSet: algorithms whose values are hex, by
# their hex length(s).
HEX_DIGESTS: dict[str, tuple[int, ...]] = {
    "sha256": (64,), "sha224": (56,), "sha384": (96,), "sha512": (128,),
    "sha512_224": (56,), "sha512_256": (64,), "sha3_224": (56,), "sha3_256": (64,),
    "sha3_384": (96,), "sha3_512": (128,), "shake128": (64,), "shake256": (128,),
    "sha1": (40,), "md5": (32,), "gitCommit": (40, 64), "gitTree": (40, 64),
    "gitBlob": (40, 64),
}

ARTIFACT_HASHES = {"sha256": 64, "sha384": 96, "sha512": 128}
"""Digest algorithms a Rekor search by ``hash`` can name (with hex length)."""

_HEX = re.compile(r"[0-9a-fA-F]+\Z")
_REVISION_ALGS = ("gitCommit", "sha1", "sha256")


# -- the summary ---------------------------------------------------------------

@dataclass(frozen=True)
class Subject:
    """One subject: its name ("" when a v1 subject has none) and its digest
    set as sorted (algorithm, value) pairs, hex values lowercased."""

    name: str
    digest: tuple[tuple[str, str], ...]

    def digests(self) -> dict[str, str]:
        return dict(self.digest)


@dataclass(frozen=True)
class Material:
    """A SLSA material (v0.2) or resolved dependency (v1)."""

    uri: str | None
    digest: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Provenance:
    """What a release gate asks of SLSA provenance.

    ``slsa_version`` is "0.2" or "1"; ``source_repository`` is the source URI
    without its ``git+`` prefix and ``@ref`` suffix, ``source_ref`` that ref
    (e.g. "refs/heads/main") and ``source_revision`` the commit digest, each
    None when the provenance does not say."""

    slsa_version: str
    builder_id: str
    build_type: str
    source_repository: str | None
    source_ref: str | None
    source_revision: str | None
    materials: tuple[Material, ...]


@dataclass(frozen=True)
class Sbom:
    """An SBOM predicate: ``format`` "CycloneDX" or "SPDX", its
    ``spec_version`` ("1.5", "SPDX-2.3") and ``component_count``."""

    format: str
    spec_version: str
    component_count: int


@dataclass(frozen=True)
class Statement:
    """A parsed in-toto Statement (v0.1 or v1)."""

    statement_type: str
    subjects: tuple[Subject, ...]
    predicate_type: str
    provenance: Provenance | None = None
    sbom: Sbom | None = None

    def subject_digests(self) -> tuple[tuple[str, str], ...]:
        """Every (algorithm, value) of every subject, without duplicates."""
        return tuple(dict.fromkeys(d for s in self.subjects for d in s.digest))

    def artifact_hashes(self) -> tuple[tuple[str, str], ...]:
        """The subject digests a Rekor ``hash`` search can name: sha256,
        sha384 and sha512, as (algorithm, lowercase hex)."""
        return tuple((alg, value) for alg, value in self.subject_digests()
                     if alg in ARTIFACT_HASHES)


# -- parsing -------------------------------------------------------------------

def parse_statement(payload: bytes, field: str = "payload", *, max_size: int = MAX_SIZE,
                    max_depth: int = MAX_DEPTH) -> Statement:
    """Parse an in-toto Statement from its JSON bytes (strict JSON: no
    duplicate keys, NaN, lone surrogates; at most ``max_size`` bytes and
    ``max_depth`` levels). Raises FormatError naming ``field`` and the path."""
    try:
        obj = loads_strict(payload, max_size=max_size, max_depth=max_depth)
    except FormatError as exc:
        where = field if exc.field == "body" else f"{field}.{exc.field}"
        raise FormatError(where, f"not a JSON in-toto statement: {exc.reason}") from None
    return parse_statement_obj(obj, field)


def parse_statement_obj(obj: object, field: str = "payload") -> Statement:
    """Parse an already decoded in-toto Statement (see :func:`parse_statement`)."""
    top = _object(obj, field)
    statement_type = _str(top, "_type", field)
    if statement_type not in STATEMENT_TYPES:
        raise FormatError(join_path(field, "_type"),
                          f"unsupported statement type {statement_type!r:.80} "
                          f"(supported: {', '.join(STATEMENT_TYPES)})")
    v1 = statement_type == STATEMENT_V1
    subjects = _subjects(_required(top, "subject", field), join_path(field, "subject"), v1)
    predicate_type = _str(top, "predicateType", field)
    predicate_path = join_path(field, "predicate")
    predicate = _optional(top, "predicate")
    if predicate is not None:
        predicate = _object(predicate, predicate_path)
    provenance = sbom = None
    if predicate_type == SLSA_PROVENANCE_V02:
        provenance = _slsa_v02(_need_predicate(predicate, predicate_path), predicate_path)
    elif predicate_type == SLSA_PROVENANCE_V1:
        provenance = _slsa_v1(_need_predicate(predicate, predicate_path), predicate_path)
    elif _is_type(predicate_type, CYCLONEDX_BOM):
        sbom = _cyclonedx(_need_predicate(predicate, predicate_path), predicate_path)
    elif _is_type(predicate_type, SPDX_DOCUMENT):
        sbom = _spdx(_need_predicate(predicate, predicate_path), predicate_path)
    return Statement(statement_type, subjects, predicate_type, provenance, sbom)


def _is_type(predicate_type: str, base: str) -> bool:
    """``base`` itself or a versioned form ``base/v<version>``."""
    return predicate_type == base or re.fullmatch(
        re.escape(base) + r"/v[0-9][0-9.]*", predicate_type) is not None


def _need_predicate(predicate: dict | None, path: str) -> dict:
    if predicate is None:
        raise FormatError(path, "required for this predicateType (missing or null)")
    return predicate


def _subjects(value: object, path: str, v1: bool) -> tuple[Subject, ...]:
    items = _list(value, path)
    if not items:
        raise FormatError(path, "must name at least one subject")
    if len(items) > MAX_SUBJECTS:
        raise FormatError(path, f"has {len(items)} subjects, more than {MAX_SUBJECTS}")
    subjects = []
    for i, item in enumerate(items):
        where = index_path(path, i)
        obj = _object(item, where)
        name = _opt_str(obj, "name", where) if v1 else _str(obj, "name", where)
        digest = _digest_set(_required(obj, "digest", where), join_path(where, "digest"))
        subjects.append(Subject(name or "", digest))
    return tuple(subjects)


def _digest_set(value: object, path: str, *,
                allow_empty: bool = False) -> tuple[tuple[str, str], ...]:
    obj = _object(value, path)
    if not obj and not allow_empty:
        raise FormatError(path, "digest set must not be empty")
    if len(obj) > MAX_DIGESTS:
        raise FormatError(path, f"has {len(obj)} algorithms, more than {MAX_DIGESTS}")
    out = []
    for alg, digest in obj.items():
        where = join_path(path, alg)
        if not alg:
            raise FormatError(where, "digest algorithm name must not be empty")
        if not isinstance(digest, str):
            raise FormatError(where, f"must be a string, not {type_name(digest)}")
        if not digest:
            raise FormatError(where, "digest value must not be empty")
        lengths = HEX_DIGESTS.get(alg)
        if lengths is not None:
            if not _HEX.match(digest) or len(digest) not in lengths:
                raise FormatError(where, f"a {alg} digest must be "
                                         f"{' or '.join(map(str, lengths))} hex digits")
            digest = digest.lower()
        elif len(digest) > MAX_TEXT:
            raise FormatError(where, f"longer than {MAX_TEXT} characters")
        out.append((alg, digest))
    return tuple(sorted(out))


# -- SLSA provenance -----------------------------------------------------------

def _slsa_v02(pred: dict, path: str) -> Provenance:
    builder_path = join_path(path, "builder")
    builder = _object(_required(pred, "builder", path), builder_path)
    builder_id = _str(builder, "id", builder_path)
    build_type = _str(pred, "buildType", path)
    materials = _materials(_optional(pred, "materials"), join_path(path, "materials"),
                           uri_required=True)
    repo = ref = revision = None
    invocation = _optional(pred, "invocation")
    inv_path = join_path(path, "invocation")
    if invocation is not None:
        invocation = _object(invocation, inv_path)
        for name in ("parameters", "environment"):
            if _optional(invocation, name) is not None:
                _object(invocation[name], join_path(inv_path, name))
        source = _optional(invocation, "configSource")
        src_path = join_path(inv_path, "configSource")
        if source is not None:
            source = _object(source, src_path)
            uri = _opt_str(source, "uri", src_path)
            digest = ()
            if _optional(source, "digest") is not None:
                digest = _digest_set(source["digest"], join_path(src_path, "digest"),
                                     allow_empty=True)
            _opt_str(source, "entryPoint", src_path, allow_empty=True)
            if uri:
                repo, ref = _split_source(uri)
                revision = _revision(digest)
    if repo is None:
        repo, ref, revision = _source_from_materials(materials)
    return Provenance("0.2", builder_id, build_type, repo, ref, revision, materials)


def _slsa_v1(pred: dict, path: str) -> Provenance:
    bd_path = join_path(path, "buildDefinition")
    build_def = _object(_required(pred, "buildDefinition", path), bd_path)
    build_type = _str(build_def, "buildType", bd_path)
    ext_path = join_path(bd_path, "externalParameters")
    external = _object(_required(build_def, "externalParameters", bd_path), ext_path)
    if _optional(build_def, "internalParameters") is not None:
        _object(build_def["internalParameters"], join_path(bd_path, "internalParameters"))
    deps = _materials(_optional(build_def, "resolvedDependencies"),
                      join_path(bd_path, "resolvedDependencies"), uri_required=False)
    rd_path = join_path(path, "runDetails")
    run_details = _object(_required(pred, "runDetails", path), rd_path)
    builder_path = join_path(rd_path, "builder")
    builder = _object(_required(run_details, "builder", rd_path), builder_path)
    builder_id = _str(builder, "id", builder_path)
    if _optional(run_details, "metadata") is not None:
        _object(run_details["metadata"], join_path(rd_path, "metadata"))

    repo = ref = revision = None
    workflow = _optional(external, "workflow")
    wf_path = join_path(ext_path, "workflow")
    if isinstance(workflow, dict):  # GitHub Actions build types
        repo = _opt_str(workflow, "repository", wf_path)
        ref = _opt_str(workflow, "ref", wf_path)
        _opt_str(workflow, "path", wf_path)
    if repo:
        repo = _split_source(repo)[0]
        revision = _revision_for(repo, deps)
    else:
        dep_repo, dep_ref, revision = _source_from_materials(deps)
        repo, ref = dep_repo, ref or dep_ref
    return Provenance("1", builder_id, build_type, repo, ref, revision, deps)


def _materials(value: object, path: str, *, uri_required: bool) -> tuple[Material, ...]:
    if value is None:
        return ()
    items = _list(value, path)
    if len(items) > MAX_SUBJECTS:
        raise FormatError(path, f"has {len(items)} items, more than {MAX_SUBJECTS}")
    out = []
    for i, item in enumerate(items):
        where = index_path(path, i)
        obj = _object(item, where)
        uri = _str(obj, "uri", where) if uri_required else _opt_str(obj, "uri", where)
        digest: tuple[tuple[str, str], ...] = ()
        if _optional(obj, "digest") is not None:
            digest = _digest_set(obj["digest"], join_path(where, "digest"), allow_empty=True)
        if not uri_required and uri is None and not digest and _optional(obj, "name") is None:
            raise FormatError(where, "a resource descriptor needs a uri, a digest or a name")
        out.append(Material(uri, digest))
    return tuple(out)


def _split_source(uri: str) -> tuple[str, str | None]:
    """``git+https://host/org/repo@refs/heads/main`` → (``https://host/org/repo``,
    ``refs/heads/main``)."""
    uri = uri.removeprefix("git+")
    scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest:
        base, _, ref = rest.rpartition("@")
        # "user@host/..." (no "/" before the "@") is userinfo, not a ref
        if "/" in base:
            return f"{scheme}://{base}", ref or None
    return uri, None


def _revision(digest: Iterable[tuple[str, str]]) -> str | None:
    values = dict(digest)
    return next((values[a] for a in _REVISION_ALGS if a in values), None)


def _source_from_materials(materials: tuple[Material, ...]) -> tuple[str | None, str | None,
                                                                     str | None]:
    for m in materials:
        if m.uri and m.uri.startswith("git+"):
            repo, ref = _split_source(m.uri)
            return repo, ref, _revision(m.digest)
    return None, None, None


def _revision_for(repo: str, deps: tuple[Material, ...]) -> str | None:
    for m in deps:
        if m.uri and m.uri.startswith("git+") and _split_source(m.uri)[0] == repo:
            return _revision(m.digest)
    for m in deps:
        if m.uri and m.uri.startswith("git+"):
            return _revision(m.digest)
    return None


# -- SBOMs ---------------------------------------------------------------------

def _cyclonedx(bom: dict, path: str) -> Sbom:
    fmt = _str(bom, "bomFormat", path)
    if fmt != "CycloneDX":
        raise FormatError(join_path(path, "bomFormat"), f"expected 'CycloneDX', got {fmt!r:.40}")
    version = _str(bom, "specVersion", path)
    count = 0
    stack = [(_optional(bom, "components"), join_path(path, "components"))]
    metadata = _optional(bom, "metadata")
    if metadata is not None:
        _object(metadata, join_path(path, "metadata"))
    while stack:
        value, where = stack.pop()
        if value is None:
            continue
        for i, item in enumerate(_list(value, where)):
            comp_path = index_path(where, i)
            comp = _object(item, comp_path)
            _str(comp, "type", comp_path)
            _str(comp, "name", comp_path)
            count += 1
            stack.append((_optional(comp, "components"), join_path(comp_path, "components")))
    return Sbom("CycloneDX", version, count)


def _spdx(doc: dict, path: str) -> Sbom:
    version = _str(doc, "spdxVersion", path)
    if not version.startswith("SPDX-2."):
        raise FormatError(join_path(path, "spdxVersion"),
                          f"expected an SPDX 2.x document, got {version!r:.40}")
    packages = _optional(doc, "packages")
    pk_path = join_path(path, "packages")
    count = 0
    if packages is not None:
        for i, item in enumerate(_list(packages, pk_path)):
            where = index_path(pk_path, i)
            _str(_object(item, where), "name", where)
            count += 1
    return Sbom("SPDX", version, count)


# -- field helpers (open objects: unknown members are ignored) ------------------

def _object(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(path, f"must be a JSON object, not {type_name(value)}")
    return value


def _list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise FormatError(path, f"must be an array, not {type_name(value)}")
    return value


def _required(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise FormatError(join_path(path, key), "required field is missing")
    if obj[key] is None:
        raise FormatError(join_path(path, key), "must not be null")
    return obj[key]


def _optional(obj: Mapping[str, Any], key: str) -> Any:
    return obj.get(key)


def _check_text(value: object, where: str, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise FormatError(where, f"must be a string, not {type_name(value)}")
    if not value and not allow_empty:
        raise FormatError(where, "must not be empty")
    if len(value) > MAX_TEXT:
        raise FormatError(where, f"longer than {MAX_TEXT} characters")
    return value


def _str(obj: Mapping[str, Any], key: str, path: str) -> str:
    return _check_text(_required(obj, key, path), join_path(path, key), False)


def _opt_str(obj: Mapping[str, Any], key: str, path: str, *,
             allow_empty: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    return _check_text(value, join_path(path, key), allow_empty) or None


# -- building (for clients that attest) -----------------------------------------

def build_statement(subjects: Iterable[tuple[str, Mapping[str, str]]], predicate_type: str,
                    predicate: Mapping[str, Any] | None, *,
                    statement_type: str = STATEMENT_V1) -> dict[str, Any]:
    """A Statement as a JSON-ready dict from (name, {algorithm: digest})
    pairs; checked with :func:`parse_statement_obj` before it is returned."""
    statement: dict[str, Any] = {
        "_type": statement_type,
        "subject": [{"name": name, "digest": dict(digest)} for name, digest in subjects],
        "predicateType": predicate_type,
    }
    if predicate is not None:
        statement["predicate"] = dict(predicate)
    parse_statement_obj(statement, "statement")
    return statement
