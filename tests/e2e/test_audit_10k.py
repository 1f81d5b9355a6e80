"""Audit of a log of more than 10,000 entries: the tree rebuilt from every
entry bundle agrees with every tile and with the verified checkpoint; a single
tampered hash anywhere is found; the monitor scans the whole log through
verified tiles."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import pytest

from tlog_client.audit import AuditError, Progress, audit
from tlog_client.client import LogClient
from tlog_client.tiles import tiles_for_size

from .conftest import Cli, start_log
from .fill import fill
from .lying import LyingProxy

ENTRIES = 10_000


@pytest.fixture(scope="module")
def big_log(tmp_path_factory):
    log = start_log(tmp_path_factory.mktemp("big"))
    started = time.monotonic()
    assert asyncio.run(fill(log.url, ENTRIES, seed=b"audit")) == ENTRIES
    print(f"\nfilled {ENTRIES} entries in {time.monotonic() - started:.1f} s")
    yield log
    log.server.kill()


def test_cli_audit_of_10k_entries(big_log, tmp_path):
    cli = Cli(big_log.url, big_log.key_path, tmp_path / "state")
    started = time.monotonic()
    res = cli("audit", "--progress", "--json")
    elapsed = time.monotonic() - started
    assert res.code == 0, res.stderr
    report = res.json
    assert report["treeSize"] >= ENTRIES
    assert report["tilesCompared"] == len(tiles_for_size(report["treeSize"]))
    assert report["bundlesChecked"] == -(-report["treeSize"] // 256)
    lines = [line for line in res.stderr.split("\r") if "entries" in line]
    assert lines and f"{report['treeSize']:,}/{report['treeSize']:,}" in lines[-1]
    assert "ETA" in lines[0] and "/s" in lines[0]
    print(f"\ntlog-client audit of {report['treeSize']} entries: {elapsed:.2f} s wall "
          f"(audit itself {report['seconds']} s)")
    # the verified checkpoint was stored: loginfo continues from it
    assert cli("loginfo").code == 0


def test_library_audit_progress_and_monitor(big_log):
    seen: list[Progress] = []

    async def run():
        async with LogClient(big_log.url, big_log.public_pem) as client:
            return await audit(client, progress=seen.append, window=8, batch=4)
    report = asyncio.run(run())
    assert report.size >= ENTRIES and report.root_hash
    dones = [p.done for p in seen]
    assert dones == sorted(dones) and dones[-1] == report.size and seen[-1].eta == 0


def test_one_tampered_upper_tile_is_found(big_log):
    proxy = LyingProxy(big_log.url).start()
    try:
        def tile(path, data):
            if path.startswith("/tile/1/"):
                return data[:100] + bytes([data[100] ^ 0x80]) + data[101:]
            return data
        proxy.rewrite_tile = tile

        async def run():
            async with LogClient(proxy.url, big_log.public_pem) as client:
                await audit(client)
        with pytest.raises(AuditError, match="tile/1/"):
            asyncio.run(run())
    finally:
        proxy.stop()


def test_monitor_scans_the_whole_log(big_log, tmp_path):
    cli = Cli(big_log.url, big_log.key_path, tmp_path / "state")
    wanted = hashlib.sha256(b"audit" + b"%d" % 5000).hexdigest()
    started = time.monotonic()
    res = cli("monitor", "--once", "--digest", wanted, "--json", "--fail-on-match")
    elapsed = time.monotonic() - started
    assert res.code == 3, res.stderr  # --fail-on-match: something matched
    report = json.loads(res.stdout)
    assert report["scanned"] >= ENTRIES and report["anomalies"] == []
    assert [m["digests"] for m in report["matches"]] == [[f"sha256:{wanted}"]]
    print(f"\nmonitor scan of {report['scanned']} entries: {elapsed:.2f} s")
