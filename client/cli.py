"""``tlog-client``: submit, look up, verify, follow and audit a tlog log.

Every answer of the log is verified against the pinned log key (``--log-key``
or ``TLOG_LOG_KEY``, a PEM file obtained out of band) before it is printed or
used. Exit codes: 0 verified / done; 1 verification failed (the output names
the binding that failed); 2 usage, configuration or network error; 3 (monitor
``--fail-on-match`` only) a watched entry was found. Split-view evidence (two
contradicting signed checkpoints and the proof) is saved as a JSON file in
the evidence directory and its path printed.

Commands: upload (hashedrekord), attest (an in-toto statement in a DSSE
envelope: :mod:`tlog_client.cliattest`), get, search, verify (one signer; with
``--policy FILE`` the release gate: :mod:`tlog_client.cligate`, exit 0 only
when the policy holds), loginfo, consistency, monitor, audit, sigstore-tlog.

Configuration: flags, else environment: ``TLOG_URL`` (default
http://localhost:3000), ``TLOG_LOG_KEY``, ``TLOG_ORIGIN``, ``TLOG_STATE_DIR``
(default ``$XDG_STATE_HOME/tlog-client``), ``TLOG_CA_ROOTS``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .audit import Progress, audit
from .cliattest import add_parser as add_attest_parser
from .cligate import cmd_verify_policy
from .bundle import dumps_bundle, parse_bundle, trusted_root_tlog, verify_bundle
from .client import ClientError, EntryNotFoundError
from .clicommon import (EXIT_ERROR, EXIT_FAILED, EXIT_MATCH, EXIT_OK, Config, UsageError,
                        _client, _describe, _digest_of, _emit, _emit_logged, _expectations,
                        _leaf_only, _parse_digest, _read, _signature_file, load_config)
from .errors import FormatError, TlogError, VerificationError
from .match import Watch
from .monitor import Monitor
from .signing import load_private_key
from .state import StateConsistencyError, StateError, StateStore, check_consistency
from .trust import PinnedLog


def _progress_printer(enabled: bool):
    if not enabled:
        return None
    last = [0.0, False]

    def show(p: Progress) -> None:
        now = time.monotonic()
        if last[1] or (now - last[0] < 0.1 and p.done < p.total):
            return
        last[0], last[1] = now, p.done >= p.total
        width = 30
        filled = int(width * p.fraction)
        eta = "--:--" if p.eta is None else time.strftime("%H:%M:%S", time.gmtime(p.eta))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {100 * p.fraction:5.1f}% "
                         f"{p.done:,}/{p.total:,} entries  {p.rate:,.0f}/s  ETA {eta} ")
        if p.done >= p.total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


def _page_printer():
    """Progress of a paged search on stderr: answers read, entries found."""
    def show(pages: int, hits: int) -> None:
        sys.stderr.write(f"\rsearch: {pages:,} pages read, {hits:,} entries found ")
        sys.stderr.flush()
    return show


# -- commands -------------------------------------------------------------------

async def cmd_upload(cfg: Config, ns: argparse.Namespace, env: dict[str, str]) -> int:
    if (ns.artifact is None) == (ns.digest is None):
        raise UsageError("give an ARTIFACT or --digest")
    if ns.digest:
        algorithm, digest = _parse_digest(ns.digest)
    else:
        algorithm = ns.algorithm
        digest = _digest_of(ns.artifact, algorithm)
    kwargs: dict[str, Any] = {"digest": digest, "algorithm": algorithm}
    cert = _read(ns.cert, "certificate") if ns.cert else None
    if cert is not None and not ns.full_chain:
        cert = _leaf_only(cert)
    if ns.key:
        password = env.get(ns.password_env).encode() if ns.password_env and \
            env.get(ns.password_env) else None
        try:
            private_key = load_private_key(_read(ns.key, "private key"), password)
        except FormatError as exc:
            raise UsageError(str(exc)) from None
        kwargs.update(private_key=private_key, public_key=cert)
    elif ns.signature and (ns.public_key or cert):
        kwargs.update(signature=_signature_file(ns.signature),
                      public_key=cert or _read(ns.public_key, "public key"))
    else:
        raise UsageError("sign with --key PRIVATE_KEY [--cert CERT], or give --signature with "
                         "--public-key or --cert")
    async with _client(cfg) as client:
        verified = await client.submit_hashedrekord(**kwargs)
    return _emit_logged(cfg, verified, ns.bundle)


async def cmd_get(cfg: Config, ns: argparse.Namespace, env: dict[str, str]) -> int:
    ref: int | str = int(ns.ref) if ns.ref.isdigit() and len(ns.ref) < 20 else ns.ref
    async with _client(cfg) as client:
        verified = await client.get_entry(ref)
    out = verified.to_json()
    if ns.bundle:
        Path(ns.bundle).write_bytes(dumps_bundle(verified))
        out["bundle"] = ns.bundle
    if ns.body:
        out["body"] = json.loads(verified.entry.body)
    human = _describe(verified)
    if ns.body:
        human += "\n" + json.dumps(out["body"], indent=2)
    _emit(cfg, out, human)
    return EXIT_OK


async def cmd_search(cfg: Config, ns: argparse.Namespace, env: dict[str, str]) -> int:
    digest = ns.digest
    if ns.artifact:
        digest = "sha256:" + _digest_of(ns.artifact).hex()
    elif digest:
        digest = ":".join((_parse_digest(digest)[0], _parse_digest(digest)[1].hex()))
    public_key = _read(ns.public_key, "public key") if ns.public_key else None
    if not (digest or public_key or ns.email or ns.subject):
        raise UsageError("search needs --artifact, --digest, --public-key, --email or --subject")
    if ns.max_pages < 1:
        raise UsageError("--max-pages must be at least 1")
    show = ns.progress if ns.progress is not None else sys.stderr.isatty()
    async with _client(cfg) as client:
        hits = await client.search(digest=digest, public_key=public_key, email=ns.email,
                                   subject=ns.subject, operator=ns.operator,
                                   max_pages=ns.max_pages,
                                   on_page=_page_printer() if show else None)
    if show:
        sys.stderr.write("\n")
    human = "\n".join(_describe(h) for h in hits) or "no entries found"
    _emit(cfg, {"entries": [h.to_json() for h in hits]}, human)
    return EXIT_OK


async def cmd_verify(cfg: Config, ns: argparse.Namespace, env: dict[str, str]) -> int:
    if ns.policy:
        return await cmd_verify_policy(cfg, ns, env)
    if ns.at or ns.verbose:
        raise UsageError("--at and --verbose go with --policy")
    if ns.bundle and len(ns.bundle) > 1:
        raise UsageError("one --bundle (several go with --policy)")
    if ns.bundle:
        bundle = parse_bundle(_read(ns.bundle[0], "bundle"))
        algorithm = bundle.digest[0] if bundle.digest else "sha256"
        if ns.artifact is None and ns.digest is None:
            raise UsageError("give the ARTIFACT (or --digest) the bundle is for")
        digest = _parse_digest(ns.digest) if ns.digest else \
            (algorithm, _digest_of(ns.artifact, algorithm))
        pinned = PinnedLog(cfg.log_key, cfg.origin)
        verified = verify_bundle(bundle, pinned, _expectations(ns, env, digest))
        note = "offline; not compared with a trusted state"
        if cfg.state_path is not None:
            trusted = StateStore(cfg.state_path).get(pinned)
            if trusted is not None and trusted.size == verified.checkpoint.size:
                check_consistency(trusted, verified.checkpoint, (), pinned.log_id)
                note = f"offline; same checkpoint as the trusted state (size {trusted.size})"
            elif trusted is not None:
                note = (f"offline; checkpoint size {verified.checkpoint.size}, trusted size "
                        f"{trusted.size}: consistency needs the log (run consistency)")
        _emit(cfg, {"ok": True, "mode": "bundle", "note": note, "entries": [verified.to_json()]},
              f"OK: {ns.artifact or ns.digest} verified against the bundle ({note})\n"
              + _describe(verified, online=False))
        return EXIT_OK
    if ns.artifact is None and ns.digest is None:
        raise UsageError("give the ARTIFACT (or --digest)")
    digest = _parse_digest(ns.digest) if ns.digest else \
        (ns.algorithm, _digest_of(ns.artifact, ns.algorithm))
    expect = _expectations(ns, env, digest)
    async with _client(cfg) as client:
        if ns.entry:
            ref: int | str = int(ns.entry) if ns.entry.isdigit() and len(ns.entry) < 20 \
                else ns.entry
            good, failures = [await client.get_entry(ref, expect)], []
        else:
            hits = await client.search(digest=f"{digest[0]}:{digest[1].hex()}")
            good, failures = [], []
            for hit in hits:
                try:
                    good.append(await client.verify_entry(hit.entry, expect))
                except VerificationError as exc:
                    failures.append({"logIndex": hit.log_index, "error": str(exc),
                                     "binding": getattr(exc, "binding", "unknown")})
    if not good:
        reason = "no entry for this artifact in the log" if not failures else \
            "no entry for this artifact matches the expected signer"
        _emit(cfg, {"ok": False, "error": reason, "rejected": failures},
              f"FAILED: {reason}" + "".join(f"\n  entry {f['logIndex']}: {f['error']}"
                                            for f in failures))
        return EXIT_FAILED
    _emit(cfg, {"ok": True, "mode": "online", "entries": [g.to_json() for g in good],
                "rejected": failures},
          f"OK: {ns.artifact or ns.digest} verified in the log\n"
          + "\n".join(_describe(g) for g in good))
    return EXIT_OK


async def cmd_loginfo(cfg: Config, ns: argparse.Namespace, env: dict[str, str]) -> int:
    async with _client(cfg) as client:
        before = client.trusted_checkpoint()
        info = await client.log_info()
    cp = info.checkpoint
    out = {**cp.to_json(), "treeID": str(info.tree_id), "logID": client.pinned.log_id,
           "trustedBefore": before.size if before else None}
    human = (f"log         {cp.origin}\nlogID       {client.pinned.log_id}\n"
             f"tree size   {cp.size}\nroot hash   {cp.root_hash.hex()}\n"
             f"verified    signed by the pinned key; "
             + ("consistent with the trusted state" if cfg.state_path else "no state kept"))
    _emit(cfg, out, human)
    return EXIT_OK


async def cmd_consistency(cfg: Config, ns: argparse.Namespace, env: dict[str, str]) -> int:
    async with _client(cfg) as client:
        old: Any = _read(ns.old, "checkpoint") if ns.old else None
        new: Any = _read(ns.new, "checkpoint") if ns.new else None
        if old is None:
            if cfg.origin is None:
                await client.fetch_checkpoint()  # learn the origin (signature verified)
            old = client.trusted_checkpoint()
            if old is None:
                raise UsageError("no trusted checkpoint yet: run `loginfo` first, or give --old")
        result = await client.consistency_proof(old, new, source=ns.source)
    _emit(cfg, {"ok": True, **result.to_json()},
          f"consistent: size {result.old.size} ({result.old.root_hash.hex()[:16]}…) -> "
          f"size {result.new.size} ({result.new.root_hash.hex()[:16]}…), "
          f"{len(result.hashes)} proof hashes from {result.source}")
    return EXIT_OK


async def cmd_audit(cfg: Config, ns: argparse.Namespace, env: dict[str, str]) -> int:
    show = ns.progress if ns.progress is not None else sys.stderr.isatty()
    async with _client(cfg) as client:
        report = await audit(client, progress=_progress_printer(show), window=ns.window)
    _emit(cfg, report.to_json(),
          f"OK: rebuilt the whole tree of {report.size:,} entries from {report.bundles:,} entry "
          f"bundle(s); {report.tiles:,} tile(s) and the root {report.root_hash.hex()} match the "
          f"verified checkpoint ({report.elapsed:.1f} s)")
    return EXIT_OK


async def cmd_monitor(cfg: Config, ns: argparse.Namespace, env: dict[str, str]) -> int:
    digests = list(ns.digest) + ["sha256:" + _digest_of(a).hex() for a in ns.artifact]
    try:
        watch = Watch.build(digests=digests, keys=[_read(k, "key") for k in ns.key],
                            emails=ns.email, subjects=ns.subject, issuer=ns.issuer)
    except FormatError as exc:
        raise UsageError(str(exc)) from None
    found = False
    async with _client(cfg) as client:
        monitor = Monitor(client, watch)
        start = ns.start
        if ns.from_now and monitor.position() is None:
            start = (await client.checkpoint()).size
        while True:
            report = await monitor.poll(start)
            start = None
            found = found or bool(report.matches) or bool(report.anomalies)
            human = (f"checkpoint {report.checkpoint.origin} size {report.checkpoint.size} "
                     f"verified, consistent with the trusted state; scanned {report.scanned} "
                     f"new entries ({report.start}..{report.checkpoint.size})")
            for m in report.matches:
                human += f"\nMATCH entry {m.index} uuid {m.uuid}: {', '.join(m.reasons)}"
            for index, problem in report.anomalies:
                human += f"\nANOMALY entry {index}: {problem}"
            if cfg.json:
                print(json.dumps(report.to_json(), sort_keys=True), flush=True)
            else:
                print(human, flush=True)
            if ns.once:
                break
            await asyncio.sleep(ns.interval)
    return EXIT_MATCH if (found and ns.fail_on_match) else EXIT_OK


async def cmd_sigstore_tlog(cfg: Config, ns: argparse.Namespace, env: dict[str, str]) -> int:
    print(json.dumps(trusted_root_tlog(PinnedLog(cfg.log_key), cfg.url, ns.valid_from),
                     indent=2))
    return EXIT_OK


# -- parser and main ---------------------------------------------------------------

def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("log and state (flags override the environment)")
    g.add_argument("--url", help="log URL (env TLOG_URL; default http://localhost:3000)")
    g.add_argument("--log-key", help="the log's public key, PEM file (env TLOG_LOG_KEY)")
    g.add_argument("--origin", help="the log's origin (env TLOG_ORIGIN; default: learnt from "
                                    "the first checkpoint verified with the log key)")
    g.add_argument("--state-dir", help="trusted state and evidence directory (env "
                                       "TLOG_STATE_DIR; default $XDG_STATE_HOME/tlog-client)")
    g.add_argument("--no-state", action="store_true", help="keep no trusted state")
    g.add_argument("--evidence-dir", help="where split-view evidence is saved "
                                          "(default: the state directory)")
    g.add_argument("--proof-source", choices=("api", "tiles"), default="api",
                   help="where consistency proofs come from (default api)")
    g.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
    g.add_argument("--json", action="store_true", help="machine-readable output")


def _signer_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("who must have signed")
    g.add_argument("--key", help="expected signer's public key (PEM)")
    g.add_argument("--cert-identity", help="expected certificate identity (SAN e-mail or URI)")
    g.add_argument("--cert-oidc-issuer", help="expected OIDC issuer of the certificate")
    g.add_argument("--ca-roots", help="PEM file of CA certificates trusted for identities "
                                      "(env TLOG_CA_ROOTS)")
    g.add_argument("--any-signer", action="store_true",
                   help="accept any signer (prints who signed; not for release gates)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tlog-client", description=__doc__.split("\n\n")[0]
                                     .replace("``", ""),
                                     epilog="exit codes: 0 verified, 1 verification failed, "
                                            "2 usage or network error, 3 monitor match "
                                            "(--fail-on-match)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("upload", help="log a signed artifact (hashedrekord)")
    p.add_argument("artifact", nargs="?", help="the artifact file")
    p.add_argument("--digest", help="the artifact's digest instead: [sha256:]<hex>")
    p.add_argument("--algorithm", choices=("sha256", "sha384", "sha512"), default="sha256")
    p.add_argument("--key", help="sign with this private key (PEM; ECDSA or RSA)")
    p.add_argument("--password-env", help="environment variable holding the key's password")
    p.add_argument("--cert", help="certificate of the signing key (PEM; of a chain, leaf "
                                  "first, only the leaf is logged)")
    p.add_argument("--full-chain", action="store_true",
                   help="log the whole --cert chain (Sigstore verifiers expect the leaf alone)")
    p.add_argument("--signature", help="an existing signature over the digest (raw or base64)")
    p.add_argument("--public-key", help="the public key of --signature (PEM)")
    p.add_argument("--bundle", help="write the Sigstore bundle (v0.3 JSON) here")
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser("get", help="fetch and verify an entry by index, UUID or EntryID")
    p.add_argument("ref")
    p.add_argument("--bundle", help="write the Sigstore bundle (v0.3 JSON) here")
    p.add_argument("--body", action="store_true", help="also print the entry body")
    p.set_defaults(func=cmd_get)

    p = sub.add_parser("search", help="find entries; every hit is fetched and verified")
    p.add_argument("--artifact", help="an artifact file (searched by its sha256)")
    p.add_argument("--digest", help="[sha256:|sha384:|sha512:]<hex>")
    p.add_argument("--public-key", help="PEM public key or certificate")
    p.add_argument("--email")
    p.add_argument("--subject", help="certificate SAN URI")
    p.add_argument("--operator", choices=("and", "or"))
    p.add_argument("--max-pages", type=int, default=100,
                   help="most search answers to follow (each up to the log's page size); "
                        "more is an error: narrow the query (default 100)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", action="store_true", default=None,
                   help="pages and entries found on stderr (default: when it is a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("verify", help="verify an artifact: offline with --bundle, else online; "
                                      "--policy: the release gate")
    p.add_argument("artifact", nargs="?")
    p.add_argument("--digest", help="the artifact's digest instead of the file")
    p.add_argument("--algorithm", choices=("sha256", "sha384", "sha512"), default="sha256")
    p.add_argument("--bundle", action="append",
                   help="Sigstore bundle: verify offline, no network (with --policy: "
                        "repeatable, the bundles are the only evidence)")
    p.add_argument("--entry", help="online: verify this entry (index, UUID or EntryID) "
                                   "instead of searching by digest")
    g = p.add_argument_group("release gate")
    g.add_argument("--policy", help="policy file (JSON, or YAML with PyYAML): find every entry "
                                    "for the artifact, verify each, evaluate; exit 0 only if "
                                    "the policy holds")
    g.add_argument("--at", help="evaluate the policy's maxAge as of this time (Unix seconds "
                                "or ISO 8601; default now)")
    g.add_argument("--verbose", action="store_true", help="also describe every entry")
    _signer_flags(p)
    p.set_defaults(func=cmd_verify)

    add_attest_parser(sub)

    p = sub.add_parser("loginfo", help="verify the log's tree head and advance the trusted state")
    p.set_defaults(func=cmd_loginfo)

    p = sub.add_parser("consistency", help="prove the log extends a checkpoint")
    p.add_argument("--old", help="a signed checkpoint file (default: the trusted state)")
    p.add_argument("--new", help="a later signed checkpoint file (default: the log's current)")
    p.add_argument("--source", choices=("api", "tiles"), help="proof from the JSON API or tiles")
    p.set_defaults(func=cmd_consistency)

    p = sub.add_parser("audit", help="download every tile and entry, rebuild the tree, compare")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", action="store_true", default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--window", type=int, default=64, help="concurrent tile downloads")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("monitor", help="follow the log; report entries matching watches")
    p.add_argument("--digest", action="append", default=[], help="watch an artifact digest")
    p.add_argument("--artifact", action="append", default=[], help="watch an artifact file")
    p.add_argument("--key", action="append", default=[], help="watch a public key (PEM)")
    p.add_argument("--email", action="append", default=[], help="watch a certificate e-mail")
    p.add_argument("--subject", action="append", default=[], help="watch a certificate URI")
    p.add_argument("--issuer", help="only identities from this OIDC issuer")
    p.add_argument("--once", action="store_true", help="one poll, then exit (cron, CI)")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between polls")
    p.add_argument("--from", dest="start", type=int, help="start at this index (first run)")
    p.add_argument("--from-now", action="store_true", help="first run: skip existing entries")
    p.add_argument("--fail-on-match", action="store_true", help="exit 3 if anything matched")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("sigstore-tlog", help="print the tlogs[] item of a Sigstore trusted "
                                             "root naming this log (pinned key and URL)")
    p.add_argument("--valid-from", default="2020-01-01T00:00:00Z")
    p.set_defaults(func=cmd_sigstore_tlog)

    for name, p in sub.choices.items():
        _common(p)
    return parser


def _fail(cfg: Config | None, exc: BaseException, code: int, extra: dict | None = None) -> int:
    info = {"ok": False, "error": str(exc), "type": type(exc).__name__, **(extra or {})}
    binding = getattr(exc, "binding", None)
    if binding:
        info["binding"] = binding
    if cfg is not None and cfg.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    label = "VERIFICATION FAILED" if code == EXIT_FAILED else "error"
    where = f" [{binding}]" if binding else ""
    print(f"tlog-client: {label}{where}: {exc}", file=sys.stderr)
    if extra and "evidence" in extra:
        print(f"tlog-client: split-view evidence saved to {extra['evidence']}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    ns = build_parser().parse_args(argv)
    cfg: Config | None = None
    try:
        cfg = load_config(ns, env)
        return asyncio.run(ns.func(cfg, ns, env))
    except UsageError as exc:
        return _fail(cfg, exc, EXIT_ERROR)
    except StateConsistencyError as exc:
        path = exc.write_evidence(cfg.evidence_dir if cfg else Path.cwd())
        return _fail(cfg, exc, EXIT_FAILED, {"evidence": str(path)})
    except EntryNotFoundError as exc:
        return _fail(cfg, exc, EXIT_FAILED if ns.command == "verify" else EXIT_ERROR)
    except (ClientError, StateError) as exc:
        return _fail(cfg, exc, EXIT_ERROR)
    except (VerificationError, FormatError, TlogError) as exc:
        return _fail(cfg, exc, EXIT_FAILED)
    except BrokenPipeError:
        return EXIT_OK  # the reader went away (e.g. `| head`)
    except KeyboardInterrupt:
        return _fail(cfg, KeyboardInterrupt("interrupted"), EXIT_ERROR)


if __name__ == "__main__":
    sys.exit(main())
