"""``tlog-client verify ARTIFACT --policy FILE``: the deployer's release gate.

Finds every entry for the artifact's digest (a search of the log; or, with
``--bundle`` given one or more times, the bundles alone, offline), verifies
each fully (every binding, the in-toto subject against the artifact),
evaluates the policy (:mod:`tlog_client.policy`) over the verified entries and
prints, per rule, the entry that satisfied it or why each entry did not.
Exit 0 only when the policy holds; 1 when it does not (or an entry fails
verification in a way that is the log's fault); 2 on usage, policy file or
network errors.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path
from typing import Any

from .bundle import parse_bundle, verify_bundle
from .clicommon import (EXIT_FAILED, EXIT_OK, Config, UsageError, _client, _describe,
                        _digest_of, _emit, _parse_digest, _read)
from .entryverify import Expectations, VerifiedEntry
from .errors import FormatError, VerificationError
from .policy import Policy, PolicyFormatError, PolicyReport, evaluate_policy, parse_policy
from .trust import PinnedLog

__all__ = ["cmd_verify_policy", "load_policy_file"]


def load_policy_file(path: str) -> Policy:
    """Read and parse a policy file: YAML for .yaml / .yml, else JSON; files
    it names are read relative to its directory. Errors are UsageErrors."""
    data = _read(path, "policy")
    base = Path(path).parent
    fmt = "yaml" if Path(path).suffix.lower() in (".yaml", ".yml") else "json"
    try:
        return parse_policy(data, fmt=fmt, load=lambda name: (base / name).read_bytes())
    except PolicyFormatError as exc:
        raise UsageError(f"policy {path}: {exc}") from None


def _instant(text: str | None) -> int:
    if text is None:
        return int(time.time())
    if text.isdigit():
        return int(text)
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at: {text!r} is not Unix seconds or an ISO 8601 time") from None
    if when.tzinfo is None:
        raise UsageError("--at: give a time zone (e.g. 2026-01-31T12:00:00Z)")
    return int(when.timestamp())


def _rejected(where: Any, exc: Exception) -> dict[str, Any]:
    return {"entry": where, "error": str(exc), "binding": getattr(exc, "binding", "format")}


async def _from_log(cfg: Config, digest: tuple[str, bytes]
                    ) -> tuple[list[VerifiedEntry], list[dict[str, Any]]]:
    good, rejected = [], []
    expect = Expectations(digest=digest)
    async with _client(cfg) as client:
        hits = await client.search(digest=f"{digest[0]}:{digest[1].hex()}")
        for hit in hits:
            try:
                good.append(await client.verify_entry(hit.entry, expect))
            except VerificationError as exc:
                rejected.append(_rejected(hit.log_index, exc))
    return good, rejected


def _from_bundles(cfg: Config, paths: list[str], digest: tuple[str, bytes]
                  ) -> tuple[list[VerifiedEntry], list[dict[str, Any]]]:
    pinned = PinnedLog(cfg.log_key, cfg.origin)
    good, rejected = [], []
    for path in paths:
        try:
            good.append(verify_bundle(parse_bundle(_read(path, "bundle")), pinned,
                                      Expectations(digest=digest)))
        except (VerificationError, FormatError) as exc:
            rejected.append(_rejected(path, exc))
    return good, rejected


def _render(report: PolicyReport, name: str, policy_path: str, good: list[VerifiedEntry],
            rejected: list[dict[str, Any]], verbose: bool, source: str) -> str:
    verdict = "HOLDS" if report.holds else "DOES NOT HOLD"
    lines = [f"policy {policy_path} for {name} ({report.artifact}): {verdict}",
             f"  {len(good)} verified entr{'y' if len(good) == 1 else 'ies'}"
             + (f", {len(rejected)} rejected" if rejected else "") + f" ({source})"]
    for r in rejected:
        lines.append(f"  rejected {r['entry']}: [{r['binding']}] {r['error']}")
    for rule in report.rules:
        if rule.satisfied:
            assert rule.entry is not None
            lines.append(f"  [ok]   {rule.rule}: entry {rule.entry.log_index} "
                         f"({rule.entry.kind}), {rule.detail}")
            continue
        lines.append(f"  [FAIL] {rule.rule}: no entry satisfies it ({rule.description})")
        for index, reason in rule.reasons:
            where = "" if index is None else f"entry {index}: "
            lines.append(f"           {where}{reason}")
    if verbose:
        lines += ["", *(_describe(v) for v in good)]
    lines.append("OK: the policy holds" if report.holds else
                 "FAILED: the policy does not hold; do not release")
    return "\n".join(lines)


async def cmd_verify_policy(cfg: Config, ns: argparse.Namespace, env: dict[str, str]) -> int:
    if ns.key or ns.cert_identity or ns.cert_oidc_issuer or ns.any_signer or ns.entry:
        raise UsageError("--policy names the trusted signers: do not combine it with --key, "
                         "--cert-identity, --cert-oidc-issuer, --any-signer or --entry")
    if (ns.artifact is None) == (ns.digest is None):
        raise UsageError("give the ARTIFACT (or --digest)")
    policy = load_policy_file(ns.policy)
    digest = _parse_digest(ns.digest) if ns.digest else \
        (ns.algorithm, _digest_of(ns.artifact, ns.algorithm))
    now = _instant(ns.at)
    if ns.bundle:
        good, rejected = _from_bundles(cfg, ns.bundle, digest)
    else:
        good, rejected = await _from_log(cfg, digest)
    report = evaluate_policy(policy, good, digest, now)
    out = {"ok": report.holds, "mode": "bundle" if ns.bundle else "online",
           "policy": ns.policy, **report.to_json(),
           "entries": [v.to_json() for v in good], "rejected": rejected}
    source = (f"from {len(ns.bundle)} bundle(s), offline" if ns.bundle else
              "found in the log by the artifact's digest")
    _emit(cfg, out, _render(report, ns.artifact or ns.digest, ns.policy, good, rejected,
                            ns.verbose, source))
    return EXIT_OK if report.holds else EXIT_FAILED
