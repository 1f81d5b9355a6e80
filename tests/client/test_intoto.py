"""in-toto Statements: SLSA provenance v1/v0.2, CycloneDX, SPDX summaries and
every malformed field rejected with a FormatError naming its path."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tlog_client import intoto
from tlog_client.errors import FormatError

from .attestation_samples import (COMMIT, GENERATOR_BUILDER, GITHUB_BUILDER, REPO, artifact,
                                  cyclonedx_sbom, dotted, mutate, payload, slsa_v02_generator,
                                  slsa_v1_github, spdx_document)

SUBJECTS = [artifact("app-1.0.tar.gz"), artifact("app-1.0.whl")]


def parse(statement: dict) -> intoto.Statement:
    return intoto.parse_statement(payload(statement))


def rejected(statement: dict) -> FormatError:
    with pytest.raises(FormatError) as info:
        parse(statement)
    return info.value


# -- summaries -----------------------------------------------------------------------

def test_slsa_v1_from_github_actions():
    st = parse(slsa_v1_github(SUBJECTS))
    assert st.statement_type == intoto.STATEMENT_V1
    assert st.predicate_type == intoto.SLSA_PROVENANCE_V1
    assert [s.name for s in st.subjects] == ["app-1.0.tar.gz", "app-1.0.whl"]
    assert st.artifact_hashes() == tuple(("sha256", d) for _, d in SUBJECTS)
    p = st.provenance
    assert p == intoto.Provenance(
        slsa_version="1", builder_id=GITHUB_BUILDER,
        build_type="https://actions.github.io/buildtypes/workflow/v1",
        source_repository=REPO, source_ref="refs/heads/main", source_revision=COMMIT,
        materials=(intoto.Material(f"git+{REPO}@refs/heads/main", (("gitCommit", COMMIT),)),))
    assert st.sbom is None


def test_slsa_v1_source_from_resolved_dependencies_without_workflow():
    stmt = slsa_v1_github(SUBJECTS)
    stmt["predicate"]["buildDefinition"]["externalParameters"] = {"source": "elsewhere"}
    p = parse(stmt).provenance
    assert (p.source_repository, p.source_ref, p.source_revision) == \
        (REPO, "refs/heads/main", COMMIT)


def test_slsa_v1_without_any_source():
    stmt = slsa_v1_github(SUBJECTS)
    stmt["predicate"]["buildDefinition"]["externalParameters"] = {}
    del stmt["predicate"]["buildDefinition"]["resolvedDependencies"]
    p = parse(stmt).provenance
    assert (p.source_repository, p.source_ref, p.source_revision, p.materials) == \
        (None, None, None, ())


def test_slsa_v02_from_slsa_github_generator():
    st = parse(slsa_v02_generator(SUBJECTS))
    assert st.statement_type == intoto.STATEMENT_V01
    p = st.provenance
    assert (p.slsa_version, p.builder_id, p.source_repository, p.source_ref,
            p.source_revision) == ("0.2", GENERATOR_BUILDER, REPO, "refs/tags/v1.0.0", COMMIT)
    assert p.build_type == "https://github.com/slsa-framework/slsa-github-generator/generic@v1"
    assert p.materials == (intoto.Material(f"git+{REPO}@refs/tags/v1.0.0", (("sha1", COMMIT),)),)


def test_slsa_v02_source_from_materials_without_invocation():
    stmt = slsa_v02_generator(SUBJECTS)
    del stmt["predicate"]["invocation"]
    p = parse(stmt).provenance
    assert (p.source_repository, p.source_ref, p.source_revision) == \
        (REPO, "refs/tags/v1.0.0", COMMIT)


def test_slsa_v02_optional_nulls_are_absent():
    """Go's in-toto structs write null for empty optional members."""
    stmt = slsa_v02_generator(SUBJECTS)
    stmt["predicate"]["materials"] = None
    stmt["predicate"]["invocation"] = {"configSource": None, "parameters": None,
                                       "environment": None}
    p = parse(stmt).provenance
    assert (p.materials, p.source_repository) == ((), None)


def test_cyclonedx_sbom_counts_nested_components():
    st = parse(cyclonedx_sbom(SUBJECTS))
    assert st.sbom == intoto.Sbom("CycloneDX", "1.5", 4)
    assert st.provenance is None


@pytest.mark.parametrize("ptype", ["https://cyclonedx.org/bom", "https://cyclonedx.org/bom/v1.5"])
def test_cyclonedx_predicate_type_spellings(ptype):
    stmt = cyclonedx_sbom(SUBJECTS)
    stmt["predicateType"] = ptype
    assert parse(stmt).sbom.format == "CycloneDX"


def test_cyclonedx_without_components():
    stmt = cyclonedx_sbom(SUBJECTS)
    del stmt["predicate"]["components"]
    assert parse(stmt).sbom.component_count == 0


def test_spdx_document():
    st = parse(spdx_document(SUBJECTS))
    assert st.sbom == intoto.Sbom("SPDX", "SPDX-2.3", 3)
    stmt = spdx_document(SUBJECTS)
    stmt["predicateType"] = "https://spdx.dev/Document/v2.3"
    assert parse(stmt).sbom.component_count == 3


def test_other_predicates_are_kept_by_type_only():
    stmt = slsa_v1_github(SUBJECTS)
    stmt["predicateType"] = "https://in-toto.io/attestation/vulns/v0.1"
    stmt["predicate"] = {"scanner": {"uri": "pkg:github/aquasecurity/trivy@0.50"}}
    st = parse(stmt)
    assert (st.predicate_type, st.provenance, st.sbom) == \
        ("https://in-toto.io/attestation/vulns/v0.1", None, None)
    del stmt["predicate"]
    assert parse(stmt).predicate_type.endswith("vulns/v0.1")


def test_unknown_fields_are_ignored_as_in_toto_requires():
    stmt = slsa_v1_github(SUBJECTS)
    stmt["extra"] = {"anything": [1, 2]}
    stmt["subject"][0]["annotations"] = {"note": "x"}
    stmt["predicate"]["runDetails"]["byproducts"] = [{"name": "log"}]
    assert parse(stmt).provenance.builder_id == GITHUB_BUILDER


def test_v1_subject_name_is_optional_v01_is_not():
    stmt = slsa_v1_github(SUBJECTS)
    del stmt["subject"][0]["name"]
    assert parse(stmt).subjects[0].name == ""
    stmt = slsa_v02_generator(SUBJECTS)
    del stmt["subject"][0]["name"]
    assert rejected(stmt).field == "payload.subject[0].name"


def test_digests_normalised_and_other_algorithms_kept():
    name, digest = SUBJECTS[0]
    stmt = slsa_v1_github(SUBJECTS)
    stmt["subject"][0]["digest"] = {"sha256": digest.upper(), "sha512": "ab" * 64,
                                    "gitCommit": COMMIT, "dirHash": "h1:abc="}
    st = parse(stmt)
    assert st.subjects[0].digests() == {"sha256": digest, "sha512": "ab" * 64,
                                        "gitCommit": COMMIT, "dirHash": "h1:abc="}
    assert set(st.artifact_hashes()) == {("sha256", digest), ("sha512", "ab" * 64),
                                         ("sha256", SUBJECTS[1][1])}


def test_summary_is_frozen():
    st = parse(slsa_v1_github(SUBJECTS))
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.predicate_type = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.provenance.builder_id = "x"  # type: ignore[misc]


def test_build_statement_round_trip():
    obj = intoto.build_statement([(n, {"sha256": d}) for n, d in SUBJECTS],
                                 "https://example.com/predicate/v1", {"k": "v"})
    assert parse(obj).subjects[1].name == "app-1.0.whl"
    with pytest.raises(FormatError):
        intoto.build_statement([], "https://example.com/p", None)


# -- every required field missing or null --------------------------------------------

STATEMENTS = {
    "slsa-v1": slsa_v1_github(SUBJECTS),
    "slsa-v0.2": slsa_v02_generator(SUBJECTS),
    "cyclonedx": cyclonedx_sbom(SUBJECTS),
    "spdx": spdx_document(SUBJECTS),
}

REQUIRED = {
    "slsa-v1": [("_type",), ("subject",), ("subject", 0, "digest"), ("predicateType",),
                ("predicate",), ("predicate", "buildDefinition"),
                ("predicate", "buildDefinition", "buildType"),
                ("predicate", "buildDefinition", "externalParameters"),
                ("predicate", "runDetails"), ("predicate", "runDetails", "builder"),
                ("predicate", "runDetails", "builder", "id")],
    "slsa-v0.2": [("_type",), ("subject",), ("subject", 0, "name"), ("subject", 0, "digest"),
                  ("predicateType",), ("predicate",), ("predicate", "builder"),
                  ("predicate", "builder", "id"), ("predicate", "buildType"),
                  ("predicate", "materials", 0, "uri")],
    "cyclonedx": [("predicate",), ("predicate", "bomFormat"), ("predicate", "specVersion"),
                  ("predicate", "components", 0, "type"), ("predicate", "components", 0, "name"),
                  ("predicate", "components", 0, "components", 0, "name")],
    "spdx": [("predicate",), ("predicate", "spdxVersion"), ("predicate", "packages", 0, "name")],
}


CASES = [(kind, path, how) for kind, paths in REQUIRED.items() for path in paths
         for how in ("missing", "null")]


@pytest.mark.parametrize("kind,path,how", CASES,
                         ids=[f"{k}-{dotted(p, 'payload')}-{h}" for k, p, h in CASES])
def test_required_field_missing_or_null(kind, path, how):
    stmt = mutate(STATEMENTS[kind], path, None, delete=(how == "missing"))
    err = rejected(stmt)
    assert err.field == dotted(path, "payload"), err
    assert ("missing" in str(err)) if how == "missing" else ("null" in str(err)), err


# -- malformed values ------------------------------------------------------------------

MALFORMED = [
    ("not-object", [1, 2], "payload", "object"),
    ("bad-type", mutate(STATEMENTS["slsa-v1"], ("_type",), "https://in-toto.io/Statement/v9"),
     "payload._type", "unsupported"),
    ("empty-subjects", mutate(STATEMENTS["slsa-v1"], ("subject",), []), "payload.subject",
     "at least one"),
    ("subject-not-list", mutate(STATEMENTS["slsa-v1"], ("subject",), {"name": "x"}),
     "payload.subject", "array"),
    ("empty-digest", mutate(STATEMENTS["slsa-v1"], ("subject", 0, "digest"), {}),
     "payload.subject[0].digest", "empty"),
    ("short-sha256", mutate(STATEMENTS["slsa-v1"], ("subject", 0, "digest"), {"sha256": "abcd"}),
     "payload.subject[0].digest.sha256", "64 hex"),
    ("non-hex-sha256", mutate(STATEMENTS["slsa-v1"], ("subject", 0, "digest"),
                              {"sha256": "g" * 64}), "payload.subject[0].digest.sha256", "hex"),
    ("digest-number", mutate(STATEMENTS["slsa-v1"], ("subject", 0, "digest"), {"sha256": 5}),
     "payload.subject[0].digest.sha256", "string"),
    ("empty-digest-value", mutate(STATEMENTS["slsa-v1"], ("subject", 0, "digest"), {"x": ""}),
     "payload.subject[0].digest.x", "empty"),
    ("predicate-type-number", mutate(STATEMENTS["slsa-v1"], ("predicateType",), 7),
     "payload.predicateType", "string"),
    ("predicate-type-empty", mutate(STATEMENTS["slsa-v1"], ("predicateType",), ""),
     "payload.predicateType", "empty"),
    ("predicate-list", mutate(STATEMENTS["slsa-v1"], ("predicate",), []),
     "payload.predicate", "object"),
    ("builder-id-number", mutate(STATEMENTS["slsa-v1"], ("predicate", "runDetails", "builder",
                                                         "id"), 1),
     "payload.predicate.runDetails.builder.id", "string"),
    ("deps-not-list", mutate(STATEMENTS["slsa-v1"], ("predicate", "buildDefinition",
                                                     "resolvedDependencies"), {}),
     "payload.predicate.buildDefinition.resolvedDependencies", "array"),
    ("dep-empty", mutate(STATEMENTS["slsa-v1"], ("predicate", "buildDefinition",
                                                 "resolvedDependencies", 0), {}),
     "payload.predicate.buildDefinition.resolvedDependencies[0]", "uri"),
    ("external-not-object", mutate(STATEMENTS["slsa-v1"], ("predicate", "buildDefinition",
                                                           "externalParameters"), "x"),
     "payload.predicate.buildDefinition.externalParameters", "object"),
    ("material-digest-bad", mutate(STATEMENTS["slsa-v0.2"], ("predicate", "materials", 0,
                                                             "digest"), {"sha1": "xyz"}),
     "payload.predicate.materials[0].digest.sha1", "hex"),
    ("config-source-list", mutate(STATEMENTS["slsa-v0.2"], ("predicate", "invocation",
                                                            "configSource"), []),
     "payload.predicate.invocation.configSource", "object"),
    ("bom-format", mutate(STATEMENTS["cyclonedx"], ("predicate", "bomFormat"), "SPDX"),
     "payload.predicate.bomFormat", "CycloneDX"),
    ("components-object", mutate(STATEMENTS["cyclonedx"], ("predicate", "components"), {}),
     "payload.predicate.components", "array"),
    ("spdx-3", mutate(STATEMENTS["spdx"], ("predicate", "spdxVersion"), "SPDX-3.0"),
     "payload.predicate.spdxVersion", "2.x"),
    ("packages-string", mutate(STATEMENTS["spdx"], ("predicate", "packages"), "x"),
     "payload.predicate.packages", "array"),
]


@pytest.mark.parametrize("name,stmt,field,words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_statement(name, stmt, field, words):
    with pytest.raises(FormatError) as info:
        intoto.parse_statement(json.dumps(stmt).encode())
    assert info.value.field == field, info.value
    assert words in str(info.value), info.value


@pytest.mark.parametrize("raw,words", [
    (b"not json", "invalid JSON"),
    (b'{"_type": "a", "_type": "b"}', "duplicate"),
    (b'{"x": NaN}', "NaN"),
    (b"\xff", "UTF-8"),
])
def test_not_strict_json(raw, words):
    with pytest.raises(FormatError) as info:
        intoto.parse_statement(raw, "spec.x.payload")
    assert info.value.field == "spec.x.payload"
    assert words in str(info.value)


def test_subject_cap():
    stmt = mutate(STATEMENTS["slsa-v1"], ("subject",),
                  [{"name": str(i), "digest": {"sha256": "ab" * 32}}
                   for i in range(intoto.MAX_SUBJECTS + 1)])
    assert "more than" in str(rejected(stmt))
