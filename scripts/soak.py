#!/usr/bin/env python3
"""Soak (issue 7, SPEC §9): a real ``tlog serve`` under 10 minutes of mixed
load, with its memory and the latencies sampled every few seconds.

The load is open-loop (each kind of request is started at its own fixed
rate, whatever the server does; a kind with too many requests in flight
skips, and the skips are counted): writes (hashedrekord and DSSE entries),
reads (entries by index and UUID, retrieve, search, log info, checkpoint),
consistency proofs, tiles and entry bundles, and bad requests (malformed
JSON, bad signatures, non-canonical integers, unknown routes and tiles,
duplicates, wrong media type, too many items, too large) that must get
their one expected 4xx. Every response is checked: any other status, any
5xx, any transport error counts as an error.

Every ``--sample-s`` seconds: the server's resident memory (VmRSS of the
process), the size of its database (with the WAL), its open file descriptors
and threads, the tree size, and per kind the request count and latency
percentiles. After the run: the server log checked for tracebacks, ``tlog
fsck``. SQLite keeps up to 32 MiB of pages per connection (one writer, one
reader), so while the database is smaller than that its page caches
legitimately grow with it. So the log is first prefilled (``--prefill``,
default 60,000 entries, written as fast as the server takes them: about 90 MB
of database) and the timed run starts with full caches, where any RSS growth
is growth.

The run passes (``ok``) only if no request failed, the server logged no
traceback, fsck is clean, and both the RSS and the open file descriptors are
*flat* after warm-up (scripts/soakrules.py): the median of the last 10 % of
the samples after warm-up is at most the median of the first 10 % plus
max(10 MB, 5 %) for RSS (``--max-growth-mb``; from an empty log, plus 2 MB
per MB the database grew: the page caches) and max(8, 10 %) for file
descriptors. Every raw figure is reported (all samples in the JSON).
``--from-json`` summarises and plots a saved run again, under the current
rule.

Writes docs/bench/soak.json and soak.png (``--prefill 0``:
soak-from-empty.json and .png), through scripts/render_benchmarks.py's
write_result (commit, machine, load); ``--quick`` (1 minute, 15 s warm-up,
a prefill of 2,000) writes them to docs/bench/quick/.

    .venv/bin/python scripts/soak.py [--minutes 10] [--warmup-minutes 2] [--prefill N] [--quick]
    .venv/bin/python scripts/soak.py --from-json docs/bench/soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import soakrules  # noqa: E402
from render_benchmarks import machine_info, result_dir, write_result  # noqa: E402

from tests.client.attestation_samples import ecdsa_key, payload  # noqa: E402
from tests.server.helpers import ecdsa_signer, rsa_signer, unique_data  # noqa: E402
from tests.serverproc import ServerProcess  # noqa: E402
from tlog_client import dsse, intoto  # noqa: E402
from tlog_client.tiles import entries_path, tile_path, tile_at  # noqa: E402

API = "/api/v1"
# requests per second by kind (open loop)
RATES = {"write": 30, "read": 60, "search": 10, "proof": 15, "tile": 20, "bad": 15}
MAX_IN_FLIGHT = 64  # per kind; above it a due request is skipped (and counted)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def proc_stats(pid: int, data_dir: Path) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    db = sum((data_dir / name).stat().st_size for name in ("tlog.db", "tlog.db-wal")
             if (data_dir / name).exists())
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {"cpu_s": (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"),
            "load1": os.getloadavg()[0],
            "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
            "rss_anon_mb": int(fields["RssAnon"].split()[0]) / 1024,
            "db_mb": db / 2**20,
            "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


class Load:
    def __init__(self, url: str, rng: random.Random) -> None:
        self.url = url
        self.rng = rng
        # Many keys, so a search by key finds a few hundred entries at most
        # and the cost of a request does not grow with the log.
        self.signers = [ecdsa_signer() for _ in range(32)] + [rsa_signer()]
        self.digests: list[str] = []  # artifact digests logged (searches that hit)
        self.key = ecdsa_key()
        self.size = 0
        self.uuids: list[str] = []
        self.logged: list[dict] = []  # some proposed entries already logged (for 409s)
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.errors: list[str] = []
        self.skipped: Counter = Counter()
        self.in_flight: Counter = Counter()
        self.session: aiohttp.ClientSession | None = None

    # -- requests of each kind: (method, path, json or raw body, headers, expected) ----

    def write(self):
        if self.rng.random() < 0.1:
            statement = {"_type": "https://in-toto.io/Statement/v1",
                         "subject": [{"name": "soak", "digest": {
                             "sha256": unique_data().hex()[:64].ljust(64, "0")}}],
                         "predicateType": "https://example.com/soak", "predicate": {}}
            env = dsse.sign_envelope(intoto.PAYLOAD_TYPE, payload(statement), [self.key.private])
            proposed = dsse.build_proposed(env, [self.key.pem])
        else:
            proposed = self.rng.choice(self.signers).entry()
        return "POST", f"{API}/log/entries", proposed, None, {201}

    def read(self):
        if not self.size:
            return "GET", f"{API}/log", None, None, {200}
        i = self.rng.randrange(self.size)
        choice = self.rng.random()
        if choice < 0.4:
            return "GET", f"{API}/log/entries?logIndex={i}", None, None, {200}
        if choice < 0.6 and self.uuids:
            return ("GET", f"{API}/log/entries/{self.rng.choice(self.uuids)}", None, None,
                    {200})
        if choice < 0.75:
            idx = [self.rng.randrange(self.size) for _ in range(self.rng.randint(1, 10))]
            return "POST", f"{API}/log/entries/retrieve", {"logIndexes": idx}, None, {200}
        if choice < 0.9:
            return "GET", "/checkpoint", None, None, {200}
        return "GET", f"{API}/log", None, None, {200}

    def search(self):
        signer = self.rng.choice(self.signers)
        choice = self.rng.random()
        if choice < 0.4 or not self.digests:
            query = {"hash": "sha256:" + os.urandom(32).hex()}
        elif choice < 0.8:
            query = {"hash": self.rng.choice(self.digests)}
        else:
            query = {"publicKey": {"format": "x509",
                                   "content": signer.entry()["spec"]["signature"]["publicKey"][
                                       "content"]}}
        return "POST", f"{API}/index/retrieve", query, None, {200}

    def proof(self):
        if self.size < 2:
            return "GET", f"{API}/log", None, None, {200}
        last = self.rng.randint(2, self.size)
        first = self.rng.randint(1, last)
        return "GET", f"{API}/log/proof?firstSize={first}&lastSize={last}", None, None, {200}

    def tile(self):
        if not self.size:
            return "GET", "/checkpoint", None, None, {200}
        n = self.rng.randrange((self.size + 255) // 256)
        if self.rng.random() < 0.5:
            width = min(256, self.size - 256 * n)
            return "GET", "/" + entries_path(n, width), None, None, {200}
        level = self.rng.choice([0, 0, 0, 1])
        count = self.size >> (8 * level)
        if level and count < 1:
            level, count = 0, self.size
        n = self.rng.randrange(max(1, (count + 255) // 256))
        return "GET", "/" + tile_path(tile_at(level, n, self.size)), None, None, {200}

    def bad(self):
        signer = self.rng.choice(self.signers)
        cases = [
            ("POST", f"{API}/log/entries", b"{", None, {400}),
            ("POST", f"{API}/log/entries", b'{"kind":"hashedrekord","kind":"x"}', None, {400}),
            ("GET", f"{API}/log/entries?logIndex=+5", None, None, {400}),
            ("GET", f"{API}/log/entries?logIndex=05", None, None, {400}),
            ("GET", f"{API}/log/entries?logIndex={10**12}", None, None, {404}),
            ("GET", f"{API}/log/proof?firstSize=0&lastSize=1", None, None, {400}),
            ("GET", "/tile/0/x001", None, None, {404}),
            ("GET", "/nope", None, None, {404}),
            ("POST", f"{API}/log", b"{}", None, {405}),
            ("POST", f"{API}/log/entries", b"{}", {"Content-Type": "text/plain"}, {415}),
            ("POST", f"{API}/log/entries/retrieve", {"logIndexes": list(range(11))}, None,
             {422}),
        ]
        entry = signer.entry()
        entry["spec"]["signature"]["content"] = signer.entry()["spec"]["signature"]["content"]
        cases.append(("POST", f"{API}/log/entries", entry, None, {400}))
        if self.logged:
            cases.append(("POST", f"{API}/log/entries", self.rng.choice(self.logged), None,
                          {409}))
        if self.rng.random() < 0.05:
            cases.append(("POST", f"{API}/log/entries", b'{"x": "' + b"a" * (4 << 20) + b'"}',
                          None, {413}))
        return self.rng.choice(cases)

    # -- running ---------------------------------------------------------------------

    async def one(self, kind: str) -> None:
        method, path, body, headers, expected = getattr(self, kind)()
        kwargs: dict = {"headers": headers or {}}
        if isinstance(body, (bytes, bytearray)):
            kwargs["data"] = body
            kwargs["headers"] = {"Content-Type": "application/json", **kwargs["headers"]}
        elif body is not None:
            kwargs["json"] = body
        started = time.perf_counter()
        self.in_flight[kind] += 1
        try:
            async with self.session.request(method, self.url + path, **kwargs) as r:
                data = await r.read()
                status = r.status
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            self.errors.append(f"{kind} {method} {path[:80]}: {type(exc).__name__}: {exc}")
            return
        finally:
            self.in_flight[kind] -= 1
        self.latency[kind].append(time.perf_counter() - started)
        self.statuses[kind][status] += 1
        if status not in expected:
            self.errors.append(f"{kind} {method} {path[:80]}: {status} {data[:200]!r}")
            return
        if kind == "write":
            obj = json.loads(data)
            (uuid, inner), = obj.items()
            self.size = max(self.size, inner["logIndex"] + 1)
            if len(self.uuids) < 5000:
                self.uuids.append(uuid)
            if len(self.logged) < 200 and isinstance(body, dict):
                self.logged.append(body)
            if body.get("kind") == "hashedrekord" and len(self.digests) < 5000:
                digest = body["spec"]["data"]["hash"]
                self.digests.append(f"{digest['algorithm']}:{digest['value']}")

    async def run_kind(self, kind: str, rate: float, until: float) -> None:
        period = 1 / rate
        due = time.monotonic()
        tasks: set[asyncio.Task] = set()
        while due < until:
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            if self.in_flight[kind] >= MAX_IN_FLIGHT:
                self.skipped[kind] += 1
            else:
                task = asyncio.create_task(self.one(kind))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            due += period
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def prefill(load: Load, count: int, concurrency: int = 32) -> dict:
    """Write ``count`` entries as fast as the server takes them (closed loop)."""
    started = time.monotonic()
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await load.one("write")
            if load.errors:
                return

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.monotonic() - started
    print(f"prefill: {count} entries in {seconds:.0f} s, tree size {load.size}, "
          f"errors {len(load.errors)}", flush=True)
    load.latency.clear()
    load.statuses.clear()
    return {"entries": count, "seconds": round(seconds, 1), "tree_size": load.size}


async def soak(server: ServerProcess, minutes: float, sample_s: float, seed: int,
               prefill_count: int = 0) -> dict:
    load = Load(server.url, random.Random(seed))
    samples = []
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        load.session = session
        async with session.get(server.url + f"{API}/log") as r:
            load.size = (await r.json())["treeSize"]
        filled = await prefill(load, prefill_count) if prefill_count else None
        start = time.monotonic()
        until = start + minutes * 60
        runners = [asyncio.create_task(load.run_kind(k, rate, until))
                   for k, rate in RATES.items() if rate > 0]
        next_sample = start + sample_s
        last_cpu = [proc_stats(server.proc.pid, server.data_dir)["cpu_s"], start]
        while time.monotonic() < until:
            await asyncio.sleep(max(0.0, next_sample - time.monotonic()))
            next_sample += sample_s
            stats = proc_stats(server.proc.pid, server.data_dir)
            interval = {}
            for kind in RATES:
                lat, load.latency[kind] = load.latency[kind], []
                interval[kind] = {"n": len(lat), "p50_ms": percentile(lat, .5) * 1e3,
                                  "p95_ms": percentile(lat, .95) * 1e3,
                                  "p99_ms": percentile(lat, .99) * 1e3,
                                  "max_ms": max(lat, default=float("nan")) * 1e3}
            now = time.monotonic()
            stats["server_cpu_pct"] = round(100 * (stats["cpu_s"] - last_cpu[0])
                                            / max(1e-9, now - last_cpu[1]), 1)
            last_cpu[:] = [stats["cpu_s"], now]
            sample = {"t": round(now - start, 2), **stats,
                      "tree_size": load.size, "errors": len(load.errors), "latency": interval}
            samples.append(sample)
            print(f"t={sample['t']:6.0f}s rss={stats['rss_mb']:6.1f} MB db={stats['db_mb']:6.1f} MB "
                  f"cpu={stats['server_cpu_pct']:3.0f}% load={stats['load1']:.1f} "
                  f"fds={stats['fds']:3d} "
                  f"threads={stats['threads']:2d} tree={load.size:6d} "
                  + " ".join(f"{k}={v['n']}/{v['p50_ms']:.1f}/{v['p99_ms']:.0f}ms"
                             for k, v in interval.items())
                  + f" errors={len(load.errors)}", flush=True)
        await asyncio.gather(*runners)
    return {"prefill": filled, "samples": samples, "errors": load.errors,
            "skipped": dict(load.skipped),
            "statuses": {k: {str(s): n for s, n in sorted(c.items())}
                         for k, c in load.statuses.items()},
            "tree_size": load.size}


def slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] / 60 for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def plot(result: dict, path: Path, warmup_s: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    samples = result["samples"]
    t = [s["t"] / 60 for s in samples]
    fig, (ax1, ax2, ax3, ax4) = plt.subplots(4, 1, figsize=(10, 12), sharex=True,
                                             gridspec_kw={"height_ratios": [3, 3, 3, 1.5]})
    ax1.plot(t, [s["rss_mb"] for s in samples], color="tab:blue", label="server RSS")
    ax1.plot(t, [s["db_mb"] for s in samples], color="tab:orange", label="database + WAL size")
    ax1.axvspan(0, warmup_s / 60, color="0.9", label="warm-up")
    ax1.set_ylabel("MB")
    ax1.set_ylim(bottom=0)
    ax1b = ax1.twinx()
    ax1b.plot(t, [s["tree_size"] for s in samples], color="tab:gray", ls="--",
              label="tree size")
    ax1b.set_ylabel("tree size (entries)")
    ax1.legend(loc="upper left")
    ax1b.legend(loc="lower right")
    prefilled = result["summary"]["prefill"]
    ax1.set_title(f"tlog soak: {result['summary']['minutes']:g} min mixed load"
                  + (f" on a log prefilled with {prefilled['entries']} entries"
                     if prefilled else "") + "\n"
                  f"({result['summary']['requests']} requests, "
                  f"{result['summary']['errors']} errors)")
    for kind in RATES:
        ax2.plot(t, [s["latency"][kind]["p50_ms"] for s in samples], label=f"{kind} p50")
        ax3.plot(t, [s["latency"][kind]["p99_ms"] for s in samples], label=f"{kind} p99")
    for ax, name in ((ax2, "p50"), (ax3, "p99")):
        ax.set_yscale("log")
        ax.set_ylabel(f"latency {name} (ms)")
        ax.legend(ncol=3, fontsize=8)
        ax.axvspan(0, warmup_s / 60, color="0.9")
        ax.grid(True, which="both", alpha=0.3)
    ax4.plot(t, [s["server_cpu_pct"] for s in samples], color="tab:blue",
             label="server CPU (% of one core)")
    ax4.plot(t, [100 * s["load1"] / (os.cpu_count() or 1) for s in samples], color="tab:red",
             label="machine load (% of all cores, 1-min average)")
    ax4.set_ylabel("%")
    ax4.set_ylim(bottom=0)
    ax4.legend(fontsize=8, loc="upper left")
    ax4.axvspan(0, warmup_s / 60, color="0.9")
    ax4.set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def summarize(result: dict, run: dict, warmup: float, max_growth_mb: float) -> dict:
    """The figures of a run (``run``: what only the live run knows: settings,
    final process figures, log and fsck results)."""
    samples = result["samples"]
    after = [(s["t"], s["rss_mb"]) for s in samples if s["t"] > warmup]
    end_t = samples[-1]["t"]
    first_minute = [r for t, r in after if t <= warmup + 60]
    last_minute = [r for t, r in after if t > end_t - 60]
    rss_warm = statistics.median(first_minute) if first_minute else float("nan")
    rss_end = statistics.median(last_minute) if last_minute else float("nan")
    # Growth is a trend, not a step: the high-water mark of the second half
    # of the run (after warm-up) against that of the first half, and the
    # slope of the second half. (A burst of requests, e.g. while the machine
    # is busy elsewhere, leaves the allocator at a higher mark once; a leak
    # keeps making new highs.)
    middle = warmup + (end_t - warmup) / 2
    first_half = [r for t, r in after if t <= middle]
    second_half = [(t, r) for t, r in after if t > middle]
    new_high = max(r for _, r in second_half) - max(first_half)
    slope_second = slope_mb_per_min(second_half)
    db_after = [(s["t"], s["db_mb"]) for s in samples if s["t"] > warmup]
    db_second = [(t, d) for t, d in db_after if t > middle]
    db_growth = db_after[-1][1] - db_after[0][1] if db_after else 0.0
    # SQLite keeps up to 32 MiB of pages per connection (cache_size), one
    # writer and one reader connection: while the database is smaller than
    # that, the caches grow with it (at most 2 MB of RSS per MB of database).
    cache_allowance = 2 * max(0.0, db_second[-1][1] - db_second[0][1]) if db_second else 0.0
    all_lat = defaultdict(list)
    requests = sum(sum(c.values()) for c in result["statuses"].values())
    for s in samples:
        for kind, v in s["latency"].items():
            if s["t"] > warmup and v["n"]:
                all_lat[kind].append(v["p99_ms"])
    summary = {
        **{k: run[k] for k in ("minutes", "warmup_minutes", "sample_s", "rates_per_s")},
        "prefill": result.get("prefill"), "requests": requests,
        "tree_size": result["tree_size"], "errors": len(result["errors"]),
        "skipped": result["skipped"], "statuses": result["statuses"],
        "rss_mb_after_warmup": round(rss_warm, 1), "rss_mb_end": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - rss_warm, 1),
        "rss_slope_mb_per_min_after_warmup": round(slope_mb_per_min(after), 3),
        "rss_new_high_second_half_mb": round(new_high, 1),
        "rss_slope_mb_per_min_second_half": round(slope_second, 3),
        "db_mb_end": round(samples[-1]["db_mb"], 1),
        "db_growth_mb_after_warmup": round(db_growth, 1),
        "db_slope_mb_per_min_after_warmup": round(slope_mb_per_min(db_after), 3),
        "rss_mb_max": round(max(s["rss_mb"] for s in samples), 1),
        "fds_first_last": [samples[0]["fds"], run["final"]["fds"]],
        "threads_first_last": [samples[0]["threads"], run["final"]["threads"]],
        "median_p99_ms_after_warmup": {k: round(statistics.median(v), 2)
                                       for k, v in all_lat.items()},
        "worst_p99_ms_after_warmup": {k: round(max(v), 2) for k, v in all_lat.items()},
        "server_log_tracebacks": run["tracebacks"],
        "fsck_ok": run["fsck_ok"], "fsck_entries": run["fsck_entries"],
    }
    # Reported, no longer the rule: new highs in the second half (without a
    # prefill, beyond the page caches' growth with the database).
    allowance = 0.0 if result.get("prefill") else cache_allowance
    summary["rss_growth_checked_mb"] = round(new_high - allowance, 1)
    # The rule (scripts/soakrules.py): RSS and open file descriptors flat
    # after warm-up, no error, no traceback, fsck clean.
    post = [s for s in samples if s["t"] > warmup]
    prefilled = bool(result.get("prefill"))
    summary["rss_flat"] = soakrules.rss_flat([s["rss_mb"] for s in post],
                                             [s["db_mb"] for s in post], prefilled,
                                             max_growth_mb)
    summary["fds_flat"] = soakrules.fds_flat([s["fds"] for s in post])
    summary["rules"] = {"rss": soakrules.rule_text("rss", prefilled, max_growth_mb),
                        "fds": soakrules.rule_text("fds")}
    summary["ok"] = bool(summary["errors"] == 0
                         and summary["rss_flat"]["flat"] and summary["fds_flat"]["flat"]
                         and summary["server_log_tracebacks"] == 0 and summary["fsck_ok"])
    return summary


def _flat_text(verdict: dict, unit: str) -> str:
    if "first" not in verdict:
        return verdict.get("reason", "not judged")
    return (f"{verdict['first']:g} → {verdict['last']:g}{unit} ({verdict['growth']:+g}; limit "
            f"{verdict['limit']:g}{unit}, windows of {verdict['window']} samples)")


def report(result: dict, name: str, image: str) -> dict:
    """The schema of scripts/render_benchmarks.py: targets, tables and the
    plot; the whole run (every sample) under "data"."""
    s = result["summary"]
    prefill = s.get("prefill")
    kinds = list(s["median_p99_ms_after_warmup"])
    targets = [
        {"target": "every response the expected one (no 5xx, no transport error, every bad "
                   "request its one 4xx)",
         "measured": f"{s['errors']} errors in {s['requests']:,} requests",
         "met": s["errors"] == 0},
        {"target": "RSS flat after warm-up: " + s["rules"]["rss"],
         "measured": _flat_text(s["rss_flat"], " MB"), "met": s["rss_flat"]["flat"]},
        {"target": "open file descriptors flat after warm-up: " + s["rules"]["fds"],
         "measured": _flat_text(s["fds_flat"], ""), "met": s["fds_flat"]["flat"]},
        {"target": "no traceback in the server log; tlog fsck clean after the run",
         "measured": f"{s['server_log_tracebacks']} tracebacks; fsck "
                     f"{'clean' if s['fsck_ok'] else 'NOT clean'} ({s['fsck_entries']} entries)",
         "met": s["server_log_tracebacks"] == 0 and bool(s["fsck_ok"])},
    ]
    rows = [
        ["minutes (warm-up)", f"{s['minutes']:g} ({s['warmup_minutes']:g})"],
        ["sample every (s)", s["sample_s"]],
        ["requests per second by kind", ", ".join(f"{k} {v:g}" for k, v in
                                                  s["rates_per_s"].items())],
        ["prefill", f"{prefill['entries']:,} entries in {prefill['seconds']:g} s"
         if prefill else "none (from an empty log)"],
        ["requests", s["requests"]], ["tree size at the end", s["tree_size"]],
        ["skipped (too many in flight)", ", ".join(f"{k} {v}" for k, v in
                                                   s["skipped"].items()) or "none"],
        ["RSS MB after warm-up (first minute's median) → end (last minute's)",
         f"{s['rss_mb_after_warmup']:g} → {s['rss_mb_end']:g}"],
        ["RSS MB max", s["rss_mb_max"]],
        ["RSS slope after warm-up (MB/min)", s["rss_slope_mb_per_min_after_warmup"]],
        ["RSS new high in the second half over the first (MB)",
         s["rss_new_high_second_half_mb"]],
        ["database MB at the end (growth after warm-up)",
         f"{s['db_mb_end']:g} ({s['db_growth_mb_after_warmup']:+g})"],
        ["file descriptors, first sample → after the load", " → ".join(
            str(v) for v in s["fds_first_last"])],
        ["threads, first sample → after the load", " → ".join(
            str(v) for v in s["threads_first_last"])],
        ["ok", s["ok"]],
    ]
    tables = [
        {"title": "The run", "columns": ["", ""], "rows": rows},
        {"title": "Latency after warm-up (ms): median and worst of the samples' p99",
         "columns": ["kind", "median p99", "worst p99"],
         "rows": [[k, s["median_p99_ms_after_warmup"][k],
                   s["worst_p99_ms_after_warmup"].get(k)] for k in kinds]},
        {"title": "Responses by kind and status",
         "columns": ["kind", "statuses"],
         "rows": [[k, ", ".join(f"{code}: {n:,}" for code, n in v.items())]
                  for k, v in s["statuses"].items()]},
    ]
    method = [
        f"A real `tlog serve` under {s['minutes']:g} minutes of mixed open-loop load "
        + (f"on a log prefilled with {prefill['entries']:,} entries (past SQLite's page "
           "caches, so that RSS growth is growth)" if prefill else "from an empty log")
        + ": writes (hashedrekord and DSSE), reads (entries by index and UUID, retrieve, "
        "checkpoint, log info), searches, consistency proofs, tiles and entry bundles, and "
        "bad requests that must get their one expected 4xx. Every response is checked. "
        f"Every {s['sample_s']:g} s: the server's RSS, database size, open file "
        "descriptors, threads, CPU and the latency percentiles per kind.",
        "Pass rule (scripts/soakrules.py): no error, no traceback, fsck clean, and both the "
        "RSS and the open file descriptors flat after the warm-up: " + s["rules"]["rss"]
        + " for RSS, " + s["rules"]["fds"] + " for file descriptors (medians of windows of "
        "samples, so one outlier does not decide; a trend or a step that stays does).",
    ]
    title = "Soak" if prefill or name == "soak" else "Soak from empty"
    return {"benchmark": name, "title": title, "order": 90 if name == "soak" else 91,
            "command": "scripts/soak.py" + ("" if prefill else " --prefill 0"),
            "machine": result.get("machine") or {}, "method": method, "targets": targets,
            "tables": tables,
            "images": [{"file": image, "title": f"{title}: RSS, database, latency, CPU"}],
            "data": {k: v for k, v in result.items() if k != "machine"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--warmup-minutes", type=float, default=2)
    parser.add_argument("--sample-s", type=float, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--name", help="the result's name (default: soak, or "
                                       "soak-from-empty with --prefill 0)")
    parser.add_argument("--max-growth-mb", type=float, default=soakrules.RSS_ABS_MB,
                        help="RSS growth allowed after warm-up (with 5%% of the RSS, the "
                             "larger; see scripts/soakrules.py)")
    parser.add_argument("--prefill", type=int, default=60_000,
                        help="entries written as fast as possible before the timed run, so "
                             "the database outgrows SQLite's page caches (0: start empty)")
    parser.add_argument("--rate", action="append", default=[], metavar="KIND=N",
                        help=f"requests per second of a kind (default {RATES})")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 minute, 15 s warm-up, samples every 2 s, a "
                             "prefill of 2,000 (unless 0); written to docs/bench/quick/")
    parser.add_argument("--from-json", type=Path,
                        help="do not run: summarise and plot a saved run again (its "
                             "provenance and date kept)")
    args = parser.parse_args()
    for item in args.rate:
        kind, _, value = item.partition("=")
        if kind not in RATES:
            parser.error(f"--rate: no kind {kind!r}")
        RATES[kind] = float(value)

    old_json = None
    if args.from_json:
        old_json = json.loads(args.from_json.read_text())
        # this script's schema ("data" holds the run), or the old file (the run itself)
        result = dict(old_json["data"]) if "benchmark" in old_json else dict(old_json)
        old = result["summary"]
        name = args.name or (old_json.get("benchmark") or args.from_json.stem)
        quick = bool((old_json.get("provenance") or {}).get("quick"))
        run = {**{k: old[k] for k in ("minutes", "warmup_minutes", "sample_s", "rates_per_s",
                                      "fsck_ok", "fsck_entries")},
               "final": {"fds": old["fds_first_last"][1],
                         "threads": old["threads_first_last"][1]},
               "tracebacks": old["server_log_tracebacks"]}
        result["machine"] = old_json.get("machine") or old.get("machine") or {}
    else:
        if args.quick:
            args.minutes, args.warmup_minutes, args.sample_s = 1.0, 0.25, 2.0
            args.prefill = min(args.prefill, 2000)
        quick = args.quick
        name = args.name or ("soak" if args.prefill else "soak-from-empty")
        machine = machine_info()
        # SIGTERM (or SIGINT, ignored by background jobs) stops the server too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit("soak: terminated"))
        work = Path(tempfile.mkdtemp(prefix="tlog-soak-"))
        server = ServerProcess(work / "log", "--origin", "tlog.test/soak").start()
        try:
            result = asyncio.run(soak(server, args.minutes, args.sample_s, args.seed,
                                      args.prefill))
            final = proc_stats(server.proc.pid, server.data_dir)
        finally:
            server.stop()
        fsck = server.fsck()
        run = {"minutes": args.minutes, "warmup_minutes": args.warmup_minutes,
               "sample_s": args.sample_s, "rates_per_s": dict(RATES), "final": final,
               "tracebacks": server.log_path.read_text(errors="replace").count("Traceback"),
               "fsck_ok": fsck.get("exit_code") == 0 and fsck.get("ok", False),
               "fsck_entries": fsck.get("entries")}
        shutil.rmtree(work, ignore_errors=True)
        result["errors"] = result["errors"][:50]
        result["machine"] = machine

    warmup = run["warmup_minutes"] * 60
    summary = summarize(result, run, warmup, args.max_growth_mb)
    summary.pop("machine", None)
    result["summary"] = summary
    out_dir = result_dir(quick)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{name}.png"
    plot(result, png, warmup)
    out = report(result, name, png.name)
    path = write_result(out, quick=quick, rereport_of=old_json)
    print(json.dumps(summary, indent=1))
    print("RESULT:", "PASS" if summary["ok"] else "FAIL", f"(wrote {path}; plot: {png})")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
