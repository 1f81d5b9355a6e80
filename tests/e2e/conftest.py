"""Fixtures of the end-to-end client tests: a real ``tlog serve`` process per
module, its public key (read from the server's key file: out of band, never
fetched from the log), signing keys, and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..serverproc import ServerProcess


@dataclass
class Log:
    server: ServerProcess
    key_path: Path        # the log's public key, PEM (what users pin)
    private_key: object   # the log's signing key (for tests that make a lying log)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def public_pem(self) -> bytes:
        return self.key_path.read_bytes()


def start_log(base: Path, *args: str) -> Log:
    server = ServerProcess(base / "data", *args).start()
    private = serialization.load_pem_private_key(
        (base / "data" / "log-key.pem").read_bytes(), password=None)
    key_path = base / "log-public.pem"
    key_path.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return Log(server, key_path, private)


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    started = start_log(tmp_path_factory.mktemp("log"))
    yield started
    started.server.kill()


@dataclass
class Signer:
    key: ec.EllipticCurvePrivateKey
    key_path: Path
    pub_path: Path

    @property
    def public_pem(self) -> bytes:
        return self.pub_path.read_bytes()


def make_signer(directory: Path, name: str = "signer") -> Signer:
    key = ec.generate_private_key(ec.SECP256R1())
    key_path, pub_path = directory / f"{name}.key", directory / f"{name}.pub"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    pub_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return Signer(key, key_path, pub_path)


@pytest.fixture
def signer(tmp_path) -> Signer:
    return make_signer(tmp_path)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)


class Cli:
    """Runs ``tlog-client`` as a subprocess with its configuration in the
    environment (TLOG_URL, TLOG_LOG_KEY, TLOG_STATE_DIR)."""

    def __init__(self, url: str, key_path: Path, state_dir: Path) -> None:
        self.env = {**os.environ, "TLOG_URL": url, "TLOG_LOG_KEY": str(key_path),
                    "TLOG_STATE_DIR": str(state_dir)}

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 120) -> Result:
        out = subprocess.run([sys.executable, "-m", "tlog_client.cli", *map(str, args)],
                             capture_output=True, text=True, timeout=timeout,
                             env={**self.env, **(env or {})})
        return Result(out.returncode, out.stdout, out.stderr)


@pytest.fixture
def cli(log, tmp_path) -> Cli:
    return Cli(log.url, log.key_path, tmp_path / "state")
