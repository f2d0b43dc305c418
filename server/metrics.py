"""Prometheus metrics, on a registry of the app's own so several apps can share a process."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from server.admission import RefusalCause

#: Seconds from upgrade to `ready`, and from `join` to `joined`: a storm's p99 lives in
#: the upper buckets, a quiet server's in the first.
_WS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Seconds to an answer's first text: a fast model's first token is in the first buckets.
_AI_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)


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

        self._websockets()
        self._assistant()
        # CPU seconds, resident memory, open files of this process (Linux /proc).
        ProcessCollector(registry=self.registry)

        self.bus_probe_lag = Gauge(
            "roomcast_bus_probe_lag_seconds",
            "Time from publishing the self-probe to reading it back",
            registry=self.registry,
        )

    def _websockets(self) -> None:
        """Connections and what they cost: no label per connection, only per cause."""
        self.ws_open = Gauge(
            "roomcast_ws_connections",
            "Websocket connections open and authenticated on this instance",
            registry=self.registry,
        )
        self.ws_handshakes = Gauge(
            "roomcast_ws_handshakes",
            "Websocket upgrades accepted and not yet ready (authenticating)",
            registry=self.registry,
        )
        self.loop_lag = Gauge(
            "roomcast_event_loop_lag_seconds",
            "How late the event loop ran a timer, as admission control sees it",
            registry=self.registry,
        )
        self.ws_connects = Counter(
            "roomcast_ws_connects",
            "Websocket connections that authenticated (sent ready)",
            registry=self.registry,
        )
        refusals = Counter(
            "roomcast_ws_refusals",
            "Websocket upgrades refused, or closed before ready, by cause",
            ["cause"],
            registry=self.registry,
        )
        self.ws_refusals = {cause: refusals.labels(cause) for cause in RefusalCause}
        self.ws_auth_latency = Histogram(
            "roomcast_ws_auth_duration_seconds",
            "Time from the websocket upgrade request to ready",
            buckets=_WS_BUCKETS,
            registry=self.registry,
        )
        self.ws_join_latency = Histogram(
            "roomcast_ws_join_duration_seconds",
            "Time from a join frame to its joined reply",
            buckets=_WS_BUCKETS,
            registry=self.registry,
        )
        self.ws_resumes = Counter(
            "roomcast_ws_joins_since",
            "Joins with since: clients resuming a room after a reconnect",
            registry=self.registry,
        )

    def _assistant(self) -> None:
        """The assistant: a label per model, finish reason or error code, never per room."""
        self.ai_first_token = Histogram(
            "roomcast_ai_first_token_seconds",
            "Time to a generation's first text, from its prompt's commit (since=commit) or "
            "from its upstream request (since=request)",
            ["model", "since"],
            buckets=_AI_BUCKETS,
            registry=self.registry,
        )
        self.ai_tokens_per_second = Histogram(
            "roomcast_ai_tokens_per_second",
            "Output tokens per second of a generation after its first text",
            ["model"],
            buckets=(5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000),
            registry=self.registry,
        )
        self.ai_tokens = Counter(
            "roomcast_ai_tokens",
            "Tokens the provider counted, by model and direction (input, output)",
            ["model", "direction"],
            registry=self.registry,
        )
        self.ai_generations = Counter(
            "roomcast_ai_generations",
            "Generations ended with an answer, by model and finish reason",
            ["model", "finish"],
            registry=self.registry,
        )
        self.ai_errors = Counter(
            "roomcast_ai_errors",
            "Generations ended with ai.error, by model and code",
            ["model", "code"],
            registry=self.registry,
        )
        self.ai_breaker_state = Gauge(
            "roomcast_ai_breaker_state",
            "The model provider's circuit breaker: 0 closed, 1 half-open, 2 open",
            registry=self.registry,
        )
        self.ai_queue_depth = Histogram(
            "roomcast_ai_queue_depth",
            "Prompts in a room's queue when a prompt joins it (itself included)",
            buckets=(1, 2, 3, 4, 6, 8, 16, 32),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
