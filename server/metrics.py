"""Prometheus metrics of one app: HTTP requests and latency, graph runs, approval decisions, orders."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    """Its own registry per app, so two apps in one process (tests, embedding) never collide."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "copilot_http_requests",
            "HTTP requests by route template, method and status code",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "copilot_http_request_seconds",
            "HTTP request latency (for streams: until the response headers are sent)",
            ["route"],
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.graph_runs = Counter(
            "copilot_graph_runs",
            "Graph runs by kind and outcome",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.approvals = Counter(
            "copilot_approval_decisions", "Approval decisions received", ["decision"], registry=self.registry
        )
        self.orders = Counter(
            "copilot_orders",
            "Orders sent to the broker after an approval",
            ["outcome"],
            registry=self.registry,
        )
        self.busy = Counter(
            "copilot_session_busy", "Requests refused because the session was running", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
