#!/usr/bin/env python3
"""Sampling profiles of a running server for the benchmark reports (py-spy).

:func:`record` samples a process (and its threads) with ``py-spy record
--format raw`` while a load runs; :func:`summarise` turns the collapsed
stacks into the share of samples spent in (inclusive) each of a list of
named frames (and of frames besides others, counted from the stacks:
never negative) and the top self-time frames, per thread. Samples where a
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

    def summary(self, named: dict[str, str | tuple[str, ...]], top: int = 12,
                derived: dict[str, dict] | None = None) -> dict:
        return summarise(self.out, named, top, derived)


_LOCATION = re.compile(r" \((?:[^)]*/)?([^/)]+\.py):\d+\)")


def _frame(frame: str) -> str:
    return _LOCATION.sub(r" (\1)", frame)


# Leaves of a thread that waits rather than works (py-spy does not always
# recognise a blocked queue get, epoll or fsync as idle): not counted. The
# COMMIT of a batch (Storage.write) and the published record's writes spend
# their time in fsync, i.e. waiting for the disk, not on the CPU.
# Offload._work (tlog/offload.py) as the leaf is its thread blocked in the
# C SimpleQueue.get between jobs, like ThreadPoolExecutor's _worker (a job
# runs in Python frames below it).
WAITING = ("_worker (thread.py)", "Offload._work (offload.py)",
           "EpollSelector.select (selectors.py)",
           "Condition.wait (threading.py)", "Storage.write (storage.py)",
           "write_file (durable.py)", "fsync_dir (durable.py)", "_fsync_dir (published.py)",
           "PublishedRecord._write (published.py)")


def _any(needles, joined: str) -> bool:
    if isinstance(needles, str):
        return needles in joined
    return any(n in joined for n in needles)


def summarise(path: Path, named: dict[str, str | tuple[str, ...]], top: int = 12,
              derived: dict[str, dict] | None = None) -> dict:
    """Shares of the CPU samples in the collapsed stacks at ``path``.

    ``named``: label -> substring of a frame (``"_verify_ecdsa"``), or a
    tuple of alternatives; its share is *inclusive* (samples whose stack
    holds the frame anywhere), so shares overlap.

    ``derived``: label -> ``{"in": needles, "not": needles}``: the samples
    whose stack holds one of "in" and none of "not" ("parsing besides the
    signature check"). Counted from the stacks themselves, never by
    subtracting one inclusive share from another (which is wrong, and can
    go negative, when the frames are not nested as assumed).

    A share is None when no sample holds the frame ("in" for a derived
    one): the frame was not sampled (renamed, off the path, or too quick to
    be caught), which is not the same as 0 %. Returns {"samples", "named":
    {label: percent | None}, "derived": {label: percent | None}, "self":
    [[frame, percent], ...]}."""
    derived = derived or {}
    total = 0
    incl: collections.Counter = collections.Counter()
    present: collections.Counter = collections.Counter()
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
            if _any(needle, joined):
                incl[label] += n
        for label, spec in derived.items():
            if _any(spec["in"], joined):
                present[label] += n
                if not _any(spec.get("not", ()), joined):
                    incl["derived:" + label] += n
        self_time[frames[-1]] += n

    def pct(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    return {"samples": total,
            "named": {label: pct(incl[label]) if incl[label] else None for label in named},
            "derived": {label: pct(incl["derived:" + label]) if present[label] else None
                        for label in derived},
            "self": [[f, pct(n)] for f, n in self_time.most_common(top)]}


def share_text(value: float | None) -> str:
    """A share for prose: "26%", "0.4%", or "not sampled" (None). Shares
    come from sample counts, so they are never negative."""
    if value is None:
        return "not sampled"
    if value < 0:
        raise ValueError(f"a share of samples cannot be negative: {value}")
    return f"{value:.0f}%" if value >= 1 or value == 0 else f"{value:.1f}%"


def share_cell(value: float | None):
    """A share for a table cell: the number, or "not sampled"."""
    return "not sampled" if value is None else value
