"""The soak's pass rule for memory and file descriptors: *flat* after warm-up.

A series (RSS in MB, or the number of open file descriptors, sampled every
few seconds) is **flat** when, over the n samples taken after the warm-up,

    median(last window) <= median(first window)
                           + max(abs_tol, rel_tol * median(first window))
                           + allowance

where a window is the first (or last) ceil(10 % of n) samples, and n is at
least :data:`MIN_SAMPLES` (fewer cannot show a trend: not flat). Medians
make one outlying sample harmless; comparing the run's end with its start
(after warm-up) catches a leak however slowly it grows, and a step that stays
(a higher plateau) as well as a trend. Falling is flat. Windows of 10 %, not
20 %: a step in the first window's second half would be taken for the
baseline (the 10-minute soak of docs/bench/soak.json has its file
descriptors step from 43 to 242, and its RSS from 153 to 168 MB, 50 s after
its warm-up: inside the first 20 % window, whose median is then above the
step; it is not flat, and this rule says so). The tolerances
(scripts/soak.py):

- RSS: ``abs_tol`` 10 MB (``--max-growth-mb``), ``rel_tol`` 5 %; ``allowance``
  0 on a prefilled log. From an empty log, SQLite's page caches (one writer
  and one reader connection, up to 32 MiB each) legitimately grow with the
  database, so the allowance is 2 MB per MB the database grew between the
  two windows (their medians).
- file descriptors: ``abs_tol`` 8, ``rel_tol`` 10 %, no allowance.

Pure functions, so that the rule is tested on synthetic series
(tests/test_benchmark_pages.py).
"""

from __future__ import annotations

import math
import statistics

WINDOW = 0.1
MIN_SAMPLES = 10
RSS_ABS_MB = 10.0
RSS_REL = 0.05
FDS_ABS = 8
FDS_REL = 0.10
CACHE_MB_PER_DB_MB = 2.0


def windows(values: list[float], window: float = WINDOW) -> tuple[list[float], list[float]]:
    """The first and last ``window`` of ``values`` (at least one sample each)."""
    k = max(1, math.ceil(window * len(values)))
    return values[:k], values[-k:]


def flat(values: list[float], abs_tol: float, rel_tol: float, allowance: float = 0.0,
         window: float = WINDOW) -> dict:
    """Whether ``values`` (post-warm-up samples in time order) are flat, with
    the figures that decided it."""
    values = [float(v) for v in values]
    if len(values) < MIN_SAMPLES:
        return {"flat": False, "samples": len(values),
                "reason": f"{len(values)} samples after warm-up: too few to judge "
                          f"(at least {MIN_SAMPLES})"}
    first_w, last_w = windows(values, window)
    first, last = statistics.median(first_w), statistics.median(last_w)
    tolerance = max(abs_tol, rel_tol * first)
    limit = first + tolerance + allowance
    return {"flat": last <= limit, "samples": len(values), "window": len(first_w),
            "first": round(first, 2), "last": round(last, 2), "growth": round(last - first, 2),
            "tolerance": round(tolerance, 2), "allowance": round(allowance, 2),
            "limit": round(limit, 2)}


def cache_allowance(db_mb: list[float], window: float = WINDOW) -> float:
    """RSS the page caches may add while the database grows (a log soaked from
    empty): :data:`CACHE_MB_PER_DB_MB` per MB between the windows' medians."""
    if len(db_mb) < MIN_SAMPLES:
        return 0.0
    first_w, last_w = windows([float(d) for d in db_mb], window)
    return CACHE_MB_PER_DB_MB * max(0.0, statistics.median(last_w) - statistics.median(first_w))


def rss_flat(rss_mb: list[float], db_mb: list[float], prefilled: bool,
             abs_mb: float = RSS_ABS_MB) -> dict:
    """The RSS rule (see the module's docstring)."""
    allowance = 0.0 if prefilled else cache_allowance(db_mb)
    return flat(rss_mb, abs_mb, RSS_REL, allowance)


def fds_flat(fds: list[int]) -> dict:
    """The file-descriptor rule (see the module's docstring)."""
    return flat(fds, FDS_ABS, FDS_REL)


def rule_text(kind: str, prefilled: bool = True, abs_mb: float = RSS_ABS_MB) -> str:
    """The rule in words, for the report."""
    base = ("median of the last 10 % of the samples after warm-up ≤ median of the first "
            "10 % + ")
    if kind == "rss":
        return (base + f"max({abs_mb:g} MB, {RSS_REL:.0%})"
                + ("" if prefilled else
                   f" + {CACHE_MB_PER_DB_MB:g} MB per MB the database grew (page caches)"))
    return base + f"max({FDS_ABS}, {FDS_REL:.0%})"
