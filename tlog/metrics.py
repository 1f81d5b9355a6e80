"""Prometheus metrics (SPEC §6 ``/metrics``), on a registry of the app's own."""

from __future__ import annotations

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("tlog_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.submission = Histogram(
            "tlog_submission_seconds", "Submission to durable integration, seconds",
            buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5),
            registry=self.registry)
        self.tree_size = Gauge("tlog_tree_size", "Entries in the log", registry=self.registry)
        self.pending = Gauge("tlog_pool_pending", "Submissions waiting to be integrated",
                             registry=self.registry)
        # Labelled children by (method, route, status): labels() validates
        # and locks on every call, a cost on every request; a child, once
        # made, is the same object forever.
        self._request_children: dict[tuple[str, str, int], Counter] = {}

    def count_request(self, method: str, route: str, status: int) -> None:
        key = (method, route, status)
        child = self._request_children.get(key)
        if child is None:
            child = self.requests.labels(method, route, str(status))
            if len(self._request_children) < 1024:  # methods are client-chosen
                self._request_children[key] = child
        child.inc()

    def observe_submission(self, seconds: float) -> None:
        self.submission.observe(seconds)

    def set_state(self, tree_size: int, pending: int) -> None:
        self.tree_size.set(tree_size)
        self.pending.set(pending)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
