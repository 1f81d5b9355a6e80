#!/usr/bin/env python3
"""Sampling profiles of a running server for the benchmark reports (py-spy).

:func:`record` samples a process (and its threads) with ``py-spy record
--format raw`` while a load runs; :func:`summarise` turns the collapsed
stacks into the share of samples spent in (inclusive) each of a list of
named frames and the top self-time frames, per thread. Samples where a
thread waits (epoll, a lock, a queue) are excluded by py-spy, so shares are
of CPU (or GIL-holding, with ``gil=True``) time.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
from pathlib import Path

PY_SPY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "py-spy"


def available() -> bool:
    return PY_SPY.exists() or shutil.which("py-spy") is not None


class Recording:
    """``with Recording(pid, out) as rec: <load>``; then ``rec.summary()``."""

    def __init__(self, pid: int, out: Path, rate: int = 200, gil: bool = False) -> None:
        self.pid, self.out, self.rate, self.gil = pid, Path(out), rate, gil
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Recording":
        exe = str(PY_SPY) if PY_SPY.exists() else "py-spy"
        cmd = [exe, "record", "-r", str(self.rate), "-f", "raw", "-o", str(self.out),
               "--pid", str(self.pid), "--subprocesses"]
        if self.gil:
            cmd.append("--gil")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(2)
            self.proc.wait(timeout=60)

    def summary(self, named: dict[str, str], top: int = 12) -> dict:
        return summarise(self.out, named, top)


_LOCATION = re.compile(r" \((?:[^)]*/)?([^/)]+\.py):\d+\)")


def _frame(frame: str) -> str:
    return _LOCATION.sub(r" (\1)", frame)


# Leaves of a thread that waits rather than works (py-spy does not always
# recognise a blocked queue get, epoll or fsync as idle): not counted. The
# COMMIT of a batch (Storage.write) and the published record's writes spend
# their time in fsync, i.e. waiting for the disk, not on the CPU.
WAITING = ("_worker (thread.py)", "EpollSelector.select (selectors.py)",
           "Condition.wait (threading.py)", "Storage.write (storage.py)",
           "write_file (durable.py)", "fsync_dir (durable.py)", "_fsync_dir (published.py)",
           "PublishedRecord._write (published.py)")


def summarise(path: Path, named: dict[str, str], top: int = 12) -> dict:
    """``named``: label -> substring of a frame (``"_verify_ecdsa"``). Returns
    {"samples", "named": {label: percent}, "self": [[frame, percent], ...]}."""
    total = 0
    incl: collections.Counter = collections.Counter()
    self_time: collections.Counter = collections.Counter()
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        if frames[-1] in WAITING:
            continue
        total += n
        joined = ";".join(frames)
        for label, needle in named.items():
            if needle in joined:
                incl[label] += n
        self_time[frames[-1]] += n
    pct = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    return {"samples": total,
            "named": {label: pct(incl[label]) for label in named},
            "self": [[f, pct(n)] for f, n in self_time.most_common(top)]}
