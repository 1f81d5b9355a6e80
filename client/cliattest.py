"""``tlog-client attest``: wrap an in-toto statement in a DSSE envelope, sign
it with key files, log it as a dsse 0.0.1 entry and keep a Sigstore bundle.

The statement is a file (``--statement``: sent byte for byte), or generated
for the ARTIFACT files (subjects: their names and sha256 digests) from
``--predicate-type`` and ``--predicate`` (a JSON file). The answer is
verified in full (the leaf is the entry proposed, the log kept this very
envelope, proofs, checkpoint, SET) before the command succeeds.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from . import intoto
from .clicommon import Config, UsageError, _client, _digest_of, _emit_logged, _leaf_only, _read
from .errors import FormatError, TlogError
from .jsonstrict import loads_strict
from .keys import parse_key_material
from .signing import load_private_key, public_pem

__all__ = ["add_parser", "cmd_attest"]


def _statement(ns: argparse.Namespace) -> bytes | dict[str, Any]:
    if ns.statement and (ns.predicate_type or ns.predicate):
        raise UsageError("give --statement FILE, or --predicate-type (and --predicate), "
                         "not both")
    subjects = {}
    for path in ns.artifact:
        subjects[os.path.basename(path)] = _digest_of(path).hex()
    if ns.statement:
        raw = _read(ns.statement, "statement")
        try:
            statement = intoto.parse_statement(raw, "statement")
        except FormatError as exc:
            raise UsageError(f"--statement {ns.statement}: {exc}") from None
        named = {value for alg, value in statement.subject_digests() if alg == "sha256"}
        for name, digest in subjects.items():
            if digest not in named:
                raise UsageError(f"{name} (sha256:{digest}) is not a subject of the statement "
                                 f"{ns.statement}")
        return raw
    if not ns.predicate_type:
        raise UsageError("give --statement FILE, or --predicate-type URI with the ARTIFACT "
                         "files it is about")
    if not subjects:
        raise UsageError("--predicate-type: name the ARTIFACT file(s) the statement is about")
    predicate = None
    if ns.predicate:
        try:
            predicate = loads_strict(_read(ns.predicate, "predicate"))
        except FormatError as exc:
            raise UsageError(f"--predicate {ns.predicate}: not JSON: {exc.reason}") from None
        if not isinstance(predicate, dict):
            raise UsageError(f"--predicate {ns.predicate}: must be a JSON object")
    try:
        return intoto.build_statement([(name, {"sha256": digest})
                                       for name, digest in subjects.items()],
                                      ns.predicate_type, predicate)
    except FormatError as exc:
        raise UsageError(f"the statement would be invalid: {exc}") from None


async def cmd_attest(cfg: Config, ns: argparse.Namespace, env: dict[str, str]) -> int:
    statement = _statement(ns)
    if not ns.key:
        raise UsageError("sign with --key PRIVATE_KEY (repeat for several signatures)")
    password = None
    if ns.password_env:
        if not env.get(ns.password_env):
            raise UsageError(f"--password-env: ${ns.password_env} is not set")
        password = env[ns.password_env].encode()
    keys = []
    for path in ns.key:
        try:
            keys.append(load_private_key(_read(path, "private key"), password,
                                         allow_ed25519=True))
        except FormatError as exc:
            raise UsageError(f"--key {path}: {exc.reason}") from None
    verifiers = []
    signing = {parse_key_material(public_pem(k), "--key").key_hash() for k in keys}
    for path in ns.cert:
        pem = _read(path, "certificate")
        pem = pem if ns.full_chain else _leaf_only(pem)
        try:
            cert_key = parse_key_material(pem, "--cert").key_hash()
        except TlogError as exc:
            raise UsageError(f"--cert {path}: {exc}") from None
        if cert_key not in signing:
            raise UsageError(f"--cert {path} is not the certificate of a --key")
        verifiers.append(pem)
    async with _client(cfg) as client:
        verified = await client.submit_dsse(statement, private_keys=keys, verifiers=verifiers)
    return _emit_logged(cfg, verified, ns.bundle)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("attest", help="sign an in-toto statement (DSSE) and log it (dsse)",
                       description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("artifact", nargs="*", help="the artifact file(s) the statement is about")
    g = p.add_argument_group("the statement")
    g.add_argument("--statement", help="an in-toto statement (JSON file), signed as it is")
    g.add_argument("--predicate-type", help="generate a statement with this predicate type "
                                            "(e.g. https://slsa.dev/provenance/v1)")
    g.add_argument("--predicate", help="the predicate of the generated statement (JSON file)")
    g = p.add_argument_group("signing")
    g.add_argument("--key", action="append", default=[],
                   help="sign with this private key (PEM; ECDSA, RSA or Ed25519); repeatable")
    g.add_argument("--password-env", help="environment variable holding the keys' password")
    g.add_argument("--cert", action="append", default=[],
                   help="certificate of a signing key (PEM; of a chain only the leaf is logged)")
    g.add_argument("--full-chain", action="store_true",
                   help="log the whole --cert chain (Sigstore verifiers expect the leaf alone)")
    p.add_argument("--bundle", help="write the Sigstore bundle (v0.3 JSON, dsseEnvelope) here")
    p.set_defaults(func=cmd_attest)
    return p
