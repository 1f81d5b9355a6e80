"""Shared fixtures. Fixtures that start a server import it lazily so that the
client-only test environment (no server dependencies) can collect tests/client."""

from __future__ import annotations

import pytest


@pytest.fixture
def make_server(tmp_path):
    """Factory: ``make_server(*args, data_dir=None)`` starts a real server."""
    from .serverproc import ServerProcess
    started = []

    def make(*args, data_dir=None, **kwargs):
        server = ServerProcess(data_dir or tmp_path / f"log{len(started)}", *args, **kwargs)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.kill()


@pytest.fixture
def log_server(make_server):
    """A fresh real log server (Ed25519 key, empty log)."""
    return make_server()
