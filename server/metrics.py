"""Prometheus metrics, on a registry of the app's own so several apps can share a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The counters and histograms Roomcast exposes at `/metrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "roomcast_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "roomcast_http_request_duration_seconds",
            "Time from request to response, by route template",
            ["route"],
            registry=self.registry,
        )
        self.dependency_up = Gauge(
            "roomcast_dependency_up",
            "1 when the dependency answered its last readiness check",
            ["dependency"],
            registry=self.registry,
        )
        self.actor_crashes = Counter(
            "roomcast_actor_crashes",
            "Actor crashes seen by supervisors, by actor kind",
            ["kind"],
            registry=self.registry,
        )
        self.actor_tells_failed = Counter(
            "roomcast_actor_tells_failed",
            "Notices an actor could not be told (stopping, or mailbox full), by actor kind, "
            "message and error",
            ["kind", "message", "error"],
            registry=self.registry,
        )

        self.bus_probe_lag = Gauge(
            "roomcast_bus_probe_lag_seconds",
            "Time from publishing the self-probe to reading it back",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
