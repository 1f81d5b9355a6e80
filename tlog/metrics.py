"""Prometheus metrics (SPEC §6 ``/metrics``), on a registry of the app's own."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest)
from prometheus_client.core import CounterMetricFamily
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


# tlog_submission_seconds: submission to durable integration.
SUBMISSION_NAME = "tlog_submission_seconds"
SUBMISSION_DOC = "Submission to durable integration, seconds"
SUBMISSION_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = RequestCounts()
        self.registry.register(self.requests)
        self.submission = Histogram(SUBMISSION_NAME, SUBMISSION_DOC, buckets=SUBMISSION_BUCKETS,
                                    registry=self.registry)
        self.tree_size = Gauge("tlog_tree_size", "Entries in the log", registry=self.registry)
        self.pending = Gauge("tlog_pool_pending", "Submissions waiting to be integrated",
                             registry=self.registry)
        # SPEC §10: damaged rows found while serving (by what was damaged:
        # the kind of row, never its index, so the series stay few), and
        # whether this process halted (U1: storage went back or forked).
        self.damage = Counter("tlog_storage_damage", "Damaged stored rows found while "
                              "serving (answered 500)", ["what"], registry=self.registry)
        self.halted = Gauge("tlog_halted", "1 when this process halted: storage went back, "
                            "forked, or its head is damaged (writes refused)",
                            registry=self.registry)

    def watch_queues(self, *offloads) -> None:
        """Export each :class:`tlog.offload.Offload`'s queue (SPEC §10 U5):
        jobs waiting, refused (503, queue full) and skipped (client gone)."""
        waiting = Gauge("tlog_offload_waiting", "Items waiting for an offload thread",
                        ["queue"], registry=self.registry)
        refused = Gauge("tlog_offload_refused", "Jobs refused because the queue was full "
                        "(answered 503), since start", ["queue"], registry=self.registry)
        skipped = Gauge("tlog_offload_skipped", "Jobs skipped because their client went "
                        "away, since start", ["queue"], registry=self.registry)
        for q in offloads:
            waiting.labels(q.name).set_function(lambda q=q: q.waiting)
            refused.labels(q.name).set_function(lambda q=q: q.refused)
            skipped.labels(q.name).set_function(lambda q=q: q.skipped)

    def count_damage(self, what: str) -> None:
        """One damaged row found; ``what`` names it ("stored entry 12"):
        counted by its kind, its words without digits (a bounded set)."""
        kind = " ".join(w for w in what.split() if not any(c.isdigit() for c in w))[:60]
        self.damage.labels(kind or "row").inc()

    def set_halted(self, reason: str) -> None:
        self.halted.set(1)

    def count_request(self, method: str, route: str, status: int) -> None:
        self.requests.add(method, route, status)

    def observe_submission(self, seconds: float) -> None:
        self.submission.observe(seconds)

    def set_state(self, tree_size: int, pending: int) -> None:
        self.tree_size.set(tree_size)
        self.pending.set(pending)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
