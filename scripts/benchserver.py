#!/usr/bin/env python3
"""Run a real ``tlog serve`` for a benchmark: pinned to CPUs with ``taskset``,
timed from process start to the first ``/healthz`` 200, measured for resident
memory (the whole process tree), stopped with SIGTERM.

Also pins the calling process (the load generator) with :func:`pin`.
"""

from __future__ import annotations

import os
import signal
import socket
import shutil
import subprocess
import tempfile
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")


QUIET = {"max_busy": 0.15, "max_wait_s": 20.0, "budget_s": 900.0, "waited_s": 0.0,
         "gave_up": 0, "runs": 0}


def _cpu_jiffies() -> tuple[int, int] | None:
    try:
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)


def wait_until_quiet() -> None:
    """On a shared machine, start a measured run only once other processes
    leave the CPUs mostly idle (< 15 % busy over 0.25 s): at most 20 s per
    run and 15 minutes in all. QUIET records what it took (for the report)."""
    QUIET["runs"] += 1
    if QUIET["waited_s"] >= QUIET["budget_s"]:
        QUIET["gave_up"] += 1
        return
    start = time.monotonic()
    while True:
        a = _cpu_jiffies()
        time.sleep(0.25)
        b = _cpu_jiffies()
        if a is None or b is None or b[0] == a[0]:
            break
        if 1 - (b[1] - a[1]) / (b[0] - a[0]) < QUIET["max_busy"]:
            break
        if time.monotonic() - start > QUIET["max_wait_s"]:
            QUIET["gave_up"] += 1
            break
    QUIET["waited_s"] += time.monotonic() - start


def quick_quiet() -> None:
    """For a smoke run (``--quick``): wait for idle CPUs a moment at most
    (its figures are not the page's, so a busy machine only makes them
    noisier)."""
    QUIET.update(max_wait_s=0.5, budget_s=10.0)


def quiet_report() -> str:
    return (f"waited {QUIET['waited_s']:.0f} s in all for the CPUs to be idle before "
            f"{QUIET['runs']} runs; {QUIET['gave_up']} started while other processes were "
            "still busy")


def warm_page_cache(data_dir: Path, chunk: int = 1 << 22) -> float:
    """Read the log's database file once, so the OS page cache holds it (as
    it would on a server with the RAM for it) and reads measure the server,
    not the disk; returns the seconds it took."""
    started = time.perf_counter()
    for name in ("tlog.db", "tlog.db-wal"):
        path = Path(data_dir) / name
        if path.exists():
            with open(path, "rb", buffering=0) as f:
                while f.read(chunk):
                    pass
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(cpus: set[int]) -> None:
    """Pin this process (the load generator) to ``cpus``, if they exist."""
    have = os.sched_getaffinity(0)
    if cpus & have == cpus:
        os.sched_setaffinity(0, cpus)


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out.append(int(d.name))
    return out


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` and all its descendants, in MiB."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        stack += _children(p)
    return total / 1024


class Server:
    """``tlog serve --data-dir DIR`` on a free port, pinned to ``cpus``."""

    def __init__(self, data_dir: Path, *args: str, cpus: str | None = "0",
                 port: int | None = None, env: dict[str, str] | None = None,
                 python: str = PYTHON) -> None:
        """``python``: the interpreter (of a venv with tlog installed) that
        runs the server; the checkout's .venv unless given."""
        self.data_dir = Path(data_dir)
        self.python = python
        self.args = list(args)
        self.cpus = cpus
        self.port = port or free_port()
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> "Server":
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        cmd = [self.python, "-m", "tlog.cli", "serve", "--data-dir", str(self.data_dir),
               "--port", str(self.port), *self.args]
        if self.cpus is not None:
            cmd = ["taskset", "-c", self.cpus, *cmd]
        env = {**os.environ, "TLOG_LOG_LEVEL": "WARNING", **self.env}
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        self._log = open(self.log_path, "ab")
        started = time.perf_counter()
        # cwd: not the repository, so that a PYTHONPATH given in ``env`` (an
        # older tree, for before/after runs) decides which tlog is imported.
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.data_dir.parent)
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        self.startup_s = time.perf_counter() - started
                        return self
            except OSError:
                time.sleep(0.005)
        self.stop()
        raise RuntimeError("server did not start")

    def rss_mib(self) -> float:
        return rss_mib(self.proc.pid)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def fsck(data_dir: Path) -> tuple[int, str]:
    out = subprocess.run([PYTHON, "-m", "tlog.cli", "fsck", "--data-dir", str(data_dir)],
                         capture_output=True, text=True, cwd=ROOT)
    return out.returncode, (out.stdout + out.stderr).strip().splitlines()[-1]


if __name__ == "__main__":
    print("a helper module for scripts/bench_*.py", file=sys.stderr)


# -- the code of another commit, for before/after runs ---------------------------------

BEFORE = "c96b491"  # the head before issue 18 (fail-closed storage): what "before" means


class CodeAt:
    """A context manager: a git worktree of ``ref`` and the environment
    (``env``: PYTHONPATH) under which ``.venv``'s Python imports that tree's
    ``tlog`` and ``tlog_client`` instead of the checkout's; removed on exit.
    The server is started outside the repository (see :class:`Server`), so
    the PYTHONPATH wins."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.base = Path(tempfile.mkdtemp(prefix="tlog-before-"))
        self.tree = self.base / "tree"
        self.env: dict[str, str] = {}

    def __enter__(self) -> "CodeAt":
        subprocess.run(["git", "worktree", "add", "--detach", str(self.tree), self.ref],
                       cwd=ROOT, check=True, capture_output=True)
        shim = self.base / "shim"
        shim.mkdir()
        (shim / "tlog_client").symlink_to(self.tree / "client")
        (shim / "tlog").symlink_to(self.tree / "tlog")
        self.env = {"PYTHONPATH": str(shim)}
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["git", "worktree", "remove", "--force", str(self.tree)], cwd=ROOT,
                       capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)

    def schema_version(self) -> int:
        """The storage schema the tree at ``ref`` reads (its SCHEMA_VERSION)."""
        import re
        text = (self.tree / "tlog" / "storage.py").read_text()
        return int(re.search(r"^SCHEMA_VERSION = (\d+)", text, re.M).group(1))


# What a log of schema N+1 drops to be read by code of schema N: each is the
# reverse of that migration (tlog/storage.py MIGRATIONS), data kept.
DOWNGRADES = {3: ["ALTER TABLE entries DROP COLUMN seal"]}


def log_for_schema(data_dir: Path, schema: int) -> Path:
    """A copy of the log ``data_dir`` that code of storage ``schema`` reads
    (cached beside it as ``<dir>.schema<N>``; made once: a copy and the
    reverse migrations, minutes at 10^7)."""
    import sqlite3
    target = data_dir.with_name(f"{data_dir.name}.schema{schema}")
    if (target / "tlog.db").exists():
        return target
    work = target.with_name(target.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(data_dir, work)
    # Not a cached log of its own (build_synthetic_log.cached_log): no marker.
    (work / "synthetic-size").unlink(missing_ok=True)
    db = sqlite3.connect(work / "tlog.db", isolation_level=None)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        while version > schema:
            for sql in DOWNGRADES[version]:
                db.execute(sql)
            version -= 1
            db.execute(f"PRAGMA user_version={version}")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    work.rename(target)
    return target
