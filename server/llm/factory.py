"""Choose and assemble the model provider from the settings."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from actors.llm import LLM
from server.config import ConfigError, Settings
from server.llm.gemini import GeminiLLM
from server.llm.offline import OfflineLLM
from server.llm.resilience import ResilientLLM


@dataclass(frozen=True, slots=True)
class LLMTuning:
    """Timeouts, retries and breaker limits (seconds); see `ResilientLLM` for each."""

    first_token_timeout: float = 30.0
    idle_timeout: float = 15.0
    request_timeout: float = 300.0
    retries: int = 2
    backoff_base: float = 0.2
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0
    offline_delay: float = 0.03


def build_llm(
    settings: Settings,
    tuning: LLMTuning | None = None,
    *,
    http_session: aiohttp.ClientSession | None = None,
) -> ResilientLLM:
    """GeminiLLM or OfflineLLM, as `settings.llm_provider` says; either inside ResilientLLM.

    Args:
        settings: reads llm_provider, gemini_api_key, gemini_model and gemini_base_url.
        tuning: resilience limits; defaults suit the public Gemini API.
        http_session: for Gemini, an aiohttp session to share; the caller closes it.

    Raises:
        ConfigError: Gemini is asked for without a key (load_settings refuses that first).
    """
    tuning = tuning or LLMTuning()
    inner: LLM
    if settings.llm_provider == "gemini":
        if not settings.gemini_api_key:
            raise ConfigError("AI_PROVIDER=gemini needs GEMINI_API_KEY")
        inner = GeminiLLM(
            settings.gemini_api_key,
            settings.gemini_model,
            base_url=settings.gemini_base_url,
            request_timeout_s=tuning.request_timeout,
            http_session=http_session,
        )
    else:
        inner = OfflineLLM(delay_s=tuning.offline_delay)
    return ResilientLLM(
        inner,
        first_token_timeout=tuning.first_token_timeout,
        idle_timeout=tuning.idle_timeout,
        retries=tuning.retries,
        backoff_base=tuning.backoff_base,
        breaker_failures=tuning.breaker_failures,
        breaker_cooldown=tuning.breaker_cooldown,
    )
