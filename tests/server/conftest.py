"""Fixtures for tests through a real server process (see tests/serverproc.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("sqlite_utils")  # the server's dependencies (extra "server")


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    """One real server shared by a module's read-mostly tests; its output
    must show no internal error when the module is done."""
    from ..serverproc import ServerProcess
    server = ServerProcess(tmp_path_factory.mktemp("shared") / "log",
                           "--origin", "tlog.test/shared").start()
    yield server
    server.stop()
    output = server.log_path.read_text(errors="replace")
    assert "Traceback" not in output and "internal error" not in output, output
    assert server.fsck()["exit_code"] == 0


@pytest.fixture(scope="module")
def pinned(module_server):
    from .helpers import PinnedLog
    return PinnedLog.of(module_server)
