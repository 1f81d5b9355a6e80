"""Prometheus metrics (SPEC §6 ``/metrics``), on a registry of the app's own."""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

MAX_REQUEST_SERIES = 1024  # (method, route, status) series kept; methods are client-chosen


class RequestCounts(Collector):
    """``tlog_http_requests_total{method, route, status}``, counted in a
    plain dict and turned into samples when scraped: a request costs one
    dict update, not a prometheus child's lock (both on the event loop)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}

    def add(self, method: str, route: str, status: int) -> None:
        key = (method, route, status)
        counts = self.counts
        if key not in counts and len(counts) >= MAX_REQUEST_SERIES:
            key = ("other", route, status)
        counts[key] = counts.get(key, 0) + 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("tlog_http_requests", "HTTP requests by route and status",
                                     labels=["method", "route", "status"])
        for (method, route, status), count in list(self.counts.items()):
            family.add_metric([method, route, str(status)], count)
        yield family


class SubmissionLatency(Collector):
    """``tlog_submission_seconds``, the histogram prometheus_client's
    ``Histogram`` exposes (buckets, count, sum, created), kept as plain
    per-bucket counts and made cumulative when scraped: an observation is a
    bisection and two additions on the event loop, not a child's locks for
    the sum and the bucket (about 1 us of every submission)."""

    NAME = "tlog_submission_seconds"
    DOC = "Submission to durable integration, seconds"
    BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5)

    def __init__(self) -> None:
        self.counts = [0] * (len(self.BUCKETS) + 1)  # the last: above every bound
        self.total = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound counts in that bound's bucket (le).
        self.counts[bisect.bisect_left(self.BUCKETS, seconds)] += 1
        self.total += seconds

    def collect(self) -> Iterator[HistogramMetricFamily | GaugeMetricFamily]:
        counts, running, buckets = list(self.counts), 0, []
        for bound, count in zip((*map(float, self.BUCKETS), float("inf")), counts):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        family = HistogramMetricFamily(self.NAME, self.DOC)
        family.add_metric([], buckets, sum_value=self.total)
        yield family
        yield GaugeMetricFamily(f"{self.NAME}_created", self.DOC, value=self.created)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = RequestCounts()
        self.registry.register(self.requests)
        self.submission = SubmissionLatency()
        self.registry.register(self.submission)
        self.tree_size = Gauge("tlog_tree_size", "Entries in the log", registry=self.registry)
        self.pending = Gauge("tlog_pool_pending", "Submissions waiting to be integrated",
                             registry=self.registry)

    def count_request(self, method: str, route: str, status: int) -> None:
        self.requests.add(method, route, status)

    def observe_submission(self, seconds: float) -> None:
        self.submission.observe(seconds)

    def set_state(self, tree_size: int, pending: int) -> None:
        self.tree_size.set(tree_size)
        self.pending.set(pending)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
