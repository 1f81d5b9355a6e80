"""Request counting (tlog.metrics): the samples /metrics renders, and the
bound on series that client-chosen methods could otherwise grow; the
submission latency histogram (prometheus_client's Histogram) with its buckets."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tlog.metrics import (MAX_REQUEST_SERIES, SUBMISSION_BUCKETS, SUBMISSION_DOC,
                          SUBMISSION_NAME, Metrics)


def _requests(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    text = metrics.render()[0].decode()
    family = {f.name: f for f in text_string_to_metric_families(text)}["tlog_http_requests"]
    return {(s.labels["method"], s.labels["route"], s.labels["status"]): s.value
            for s in family.samples if s.name == "tlog_http_requests_total"}


def test_requests_are_counted_by_method_route_and_status():
    metrics = Metrics()
    for method, route, status in [("GET", "/a", 200), ("GET", "/a", 200), ("POST", "/a", 201),
                                  ("GET", "/a", 404), ("GET", "/b", 200)]:
        metrics.count_request(method, route, status)
    assert _requests(metrics) == {("GET", "/a", "200"): 2, ("POST", "/a", "201"): 1,
                                  ("GET", "/a", "404"): 1, ("GET", "/b", "200"): 1}


def test_series_are_bounded():
    metrics = Metrics()
    for i in range(MAX_REQUEST_SERIES + 50):
        metrics.count_request(f"M{i}", "unmatched", 405)
    metrics.count_request("M0", "unmatched", 405)  # an existing series still counts
    got = _requests(metrics)
    assert len(got) == MAX_REQUEST_SERIES + 1
    assert got[("other", "unmatched", "405")] == 50
    assert got[("M0", "unmatched", "405")] == 2


def _without_created(text: str) -> list[str]:
    return [line for line in text.splitlines() if "_created" not in line]


@pytest.mark.parametrize("seconds", [
    [], [0.0], [0.001], [0.0010001], [0.0025, 0.005, 0.01], [2.5], [2.5000001, 1e9],
    [0.0004, 0.003, 0.003, 0.07, 0.3, 0.9, 1.0, 1.7, 4.0],
])
def test_submission_histogram_renders_as_prometheus_histogram(seconds):
    registry = CollectorRegistry()
    reference = Histogram(SUBMISSION_NAME, SUBMISSION_DOC,
                          buckets=SUBMISSION_BUCKETS, registry=registry)
    metrics = Metrics()
    for value in seconds:
        reference.observe(value)
        metrics.observe_submission(value)
    ours = metrics.render()[0].decode()
    theirs = generate_latest(registry).decode()
    assert _without_created(theirs) == [
        line for line in _without_created(ours) if SUBMISSION_NAME in line]
    created = {f.name: f for f in text_string_to_metric_families(ours)}[
        f"{SUBMISSION_NAME}_created"]
    assert created.type == "gauge" and created.samples[0].value > 0
