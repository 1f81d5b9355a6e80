"""Request counting (tlog.metrics): the samples /metrics renders, and the
bound on series that client-chosen methods could otherwise grow."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tlog.metrics import MAX_REQUEST_SERIES, Metrics


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
