"""The server's configuration: one frozen object built in one place (SPEC §2).

Every setting is a command-line flag with a ``TLOG_*`` environment variable
of the same name as fallback and a documented default (docs/operator.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

KEY_TYPES = ("ed25519", "ecdsa-p256")
MAX_SEARCH_PAGE = 10_000  # bounds a search answer's memory and work (SPEC §10 U5)
MAX_VERIFY_TRIALS = 256  # every pair of a dsse entry's 16 signatures and 16 verifiers


@dataclass(frozen=True, slots=True)
class Config:
    """Server settings. Sizes in bytes, times in milliseconds unless named."""

    data_dir: Path = Path("tlog-data")
    host: str = "127.0.0.1"
    port: int = 3000
    origin: str | None = None  # default at creation: "<hostname>/<treeID>"
    key_type: str = "ed25519"
    batch_size: int = 256  # most entries integrated per batch/checkpoint
    batch_delay_ms: int = 0  # extra wait to fill a batch; 0 = adaptive only
    pool_size: int = 4096  # pending submissions before 503
    max_body: int = 4 << 20  # request body (attestations)
    max_leaf: int = 65535  # canonical leaf: tile entry bundles hold uint16 lengths
    max_attestation: int = 4 << 20  # DSSE envelope kept with its entry (413 above)
    max_json_depth: int = 32
    max_chain: int = 10  # certificates per chain
    max_retrieve: int = 10  # items per retrieve/search request
    search_page: int = 1000  # most EntryIDs per search answer (a cursor gives the next page)
    max_verify_trials: int = 16  # signature x key checks one entry may need
    read_timeout_s: float = 30.0  # a request body must arrive within this (else 408)
    header_timeout_s: float = 20.0  # request line and headers within this, else closed
    max_headers: int = 100  # header lines per request (400 above)
    write_rate: float = 0.0  # sustained writes per second per client address; 0: unlimited
    write_burst: int = 20  # writes a client may make at once before write_rate applies
    workers: int = 0  # HTTP worker processes in front of the sequencer; 0: one process

    @property
    def db_path(self) -> Path:
        return self.data_dir / "tlog.db"

    @property
    def key_path(self) -> Path:
        return self.data_dir / "log-key.pem"


_HELP = {
    "data_dir": "directory holding tlog.db and log-key.pem",
    "host": "address to listen on",
    "port": "TCP port",
    "origin": "checkpoint origin (= key name) for a NEW log; must match an existing one",
    "key_type": "signing key type for a NEW log: ed25519 or ecdsa-p256",
    "batch_size": "most entries integrated per batch (one checkpoint per batch)",
    "batch_delay_ms": "extra milliseconds to wait to fill a batch (0: integrate at once)",
    "pool_size": "pending submissions before answering 503",
    "max_body": "largest request body in bytes",
    "max_leaf": "largest canonical entry in bytes (<= 65535)",
    "max_attestation": "largest attestation (DSSE envelope) kept with an entry, in bytes",
    "max_json_depth": "deepest JSON nesting accepted",
    "max_chain": "most certificates in a chain",
    "max_retrieve": "most items in one retrieve or search request",
    "search_page": "most EntryIDs in one search answer; more follow with the cursor it "
                   "gives (each answer reads at most 10 times this many index rows)",
    "max_verify_trials": "most signature checks one entry may need (a dsse entry tries each "
                         "signature under each verifier: signatures x verifiers; 400 above)",
    "read_timeout_s": "seconds a client has to send a request body (408 after)",
    "header_timeout_s": "seconds a connection has to send a request's line and headers, from "
                        "connecting or from the previous response (then it is closed)",
    "max_headers": "most header lines in one request",
    "write_rate": "entries per second each client address may submit, sustained (token "
                  "bucket; 429 with Retry-After above; 0: no limit)",
    "write_burst": "entries a client address may submit at once before --write-rate applies",
    "workers": "HTTP worker processes (sharing the port) in front of the one sequencer "
               "process; 0: everything in one process",
}


def build_parser(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Add one flag per :class:`Config` field, defaulting to ``TLOG_<FIELD>``."""
    defaults = Config()
    for f in fields(Config):
        env = "TLOG_" + f.name.upper()
        default = environ.get(env, getattr(defaults, f.name))
        kind = {int: int, float: float}.get(type(getattr(defaults, f.name)), str)
        kwargs = {"default": default, "type": kind,
                  "help": f"{_HELP[f.name]} (env {env}; default {getattr(defaults, f.name)})"}
        if f.name == "key_type":
            kwargs["choices"] = KEY_TYPES
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def from_namespace(ns: argparse.Namespace) -> Config:
    """The frozen configuration from parsed arguments; validates ranges."""
    values = {f.name: getattr(ns, f.name) for f in fields(Config)}
    values["data_dir"] = Path(values["data_dir"])
    values["origin"] = values["origin"] or None  # TLOG_ORIGIN="" means unset
    values["port"] = int(values["port"])
    for name in ("batch_size", "pool_size", "max_body", "max_leaf", "max_attestation",
                 "max_json_depth",
                 "max_chain", "max_retrieve", "search_page", "max_verify_trials",
                 "max_headers", "write_burst"):
        values[name] = int(values[name])
        if values[name] < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
    if values["search_page"] > MAX_SEARCH_PAGE:
        raise SystemExit(f"--search-page must be at most {MAX_SEARCH_PAGE:,}")
    if values["max_verify_trials"] > MAX_VERIFY_TRIALS:
        raise SystemExit(f"--max-verify-trials must be at most {MAX_VERIFY_TRIALS} (16 "
                         "signatures x 16 verifiers)")
    if values["max_leaf"] > 65535:
        raise SystemExit("--max-leaf must be at most 65535 (tile entry bundles, SPEC §3.3)")
    values["batch_delay_ms"] = int(values["batch_delay_ms"])
    values["workers"] = int(values["workers"])
    if not 0 <= values["workers"] <= 64:
        raise SystemExit("--workers must be between 0 and 64")
    for name in ("read_timeout_s", "header_timeout_s"):
        values[name] = float(values[name])
        if not values[name] > 0 or values[name] == float("inf"):
            raise SystemExit(f"--{name.replace('_', '-')} must be a positive number of seconds")
    values["write_rate"] = float(values["write_rate"])
    if not 0 <= values["write_rate"] < float("inf"):
        raise SystemExit("--write-rate must be 0 (no limit) or a positive rate")
    return Config(**values)


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    parser = argparse.ArgumentParser(prog="tlog serve")
    build_parser(parser, environ)
    return from_namespace(parser.parse_args(argv))
