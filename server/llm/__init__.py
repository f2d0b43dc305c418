"""The model providers behind `actors.llm.LLM`: Gemini, the offline stand-in, and the
resilience wrapper (timeouts, retries, circuit breaker) that goes around either."""

from server.llm.factory import build_llm
from server.llm.gemini import GeminiLLM
from server.llm.offline import OfflineLLM
from server.llm.resilience import CircuitBreaker, ResilientLLM

__all__ = [
    "CircuitBreaker",
    "GeminiLLM",
    "OfflineLLM",
    "ResilientLLM",
    "build_llm",
]
