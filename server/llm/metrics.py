"""The assistant's observer on Prometheus: what `actors.assistant.Run` and the rooms report,
counted in `server.metrics.Metrics` (a label per model, finish or code; none per room)."""

from __future__ import annotations

from actors.llm import Usage
from server.llm.resilience import BreakerState, ResilientLLM
from server.metrics import Metrics

_BREAKER_VALUES: dict[BreakerState, float] = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class PrometheusObserver:
    """`actors.assistant.AssistantObserver` on the app's metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def queued(self, depth: int) -> None:
        self._metrics.ai_queue_depth.observe(depth)

    def first_token(self, model: str, *, since_commit: float, since_request: float) -> None:
        first_token = self._metrics.ai_first_token
        first_token.labels(model, "commit").observe(since_commit)
        first_token.labels(model, "request").observe(since_request)

    def finished(
        self, model: str, finish: str, usage: Usage | None, tokens_per_second: float | None
    ) -> None:
        metrics = self._metrics
        metrics.ai_generations.labels(model, finish).inc()
        if tokens_per_second is not None:
            metrics.ai_tokens_per_second.labels(model).observe(tokens_per_second)
        if usage is not None:
            if usage.input_tokens is not None:
                metrics.ai_tokens.labels(model, "input").inc(usage.input_tokens)
            if usage.output_tokens is not None:
                metrics.ai_tokens.labels(model, "output").inc(usage.output_tokens)

    def failed(self, model: str, code: str) -> None:
        self._metrics.ai_errors.labels(model, code).inc()


def watch_breaker(metrics: Metrics, llm: ResilientLLM) -> None:
    """Have the breaker gauge read the breaker's state at every scrape."""
    metrics.ai_breaker_state.set_function(lambda: _BREAKER_VALUES[llm.breaker_state])
