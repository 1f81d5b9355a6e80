"""The server's event loop (tlog/eventloop.py): uvloop when installed, and
asyncio's own loop as a fallback that serves the same log, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlog import eventloop

from ..serverproc import ServerProcess
from .helpers import PinnedLog, ecdsa_signer


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize("env, want", [({}, "uvloop"), ({"TLOG_EVENT_LOOP": "asyncio"}, None)])
def test_loop_factory_choice(monkeypatch, env, want):
    monkeypatch.delenv("TLOG_EVENT_LOOP", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    factory = eventloop.loop_factory()
    if want is None:
        assert factory is None
    else:
        uvloop = pytest.importorskip(want)
        assert factory is uvloop.new_event_loop


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_server_runs_on_either_loop(make_server, loop):
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    server = make_server(env={"TLOG_EVENT_LOOP": loop})
    # The loop's shared object is mapped only when uvloop runs the server.
    assert ("uvloop" in _maps(server.proc.pid)) == (loop == "uvloop")
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    for _ in range(3):
        pinned.submit(signer.entry())
    assert pinned.checkpoint().size == 3
    server.stop()
    assert ServerProcess(server.data_dir).fsck()["exit_code"] == 0
