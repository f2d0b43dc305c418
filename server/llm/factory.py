"""Choose and assemble the model provider from the settings."""

from __future__ import annotations

import aiohttp

from actors.llm import LLM
from server.config import ConfigError, Settings
from server.llm.gemini import GeminiLLM
from server.llm.offline import OfflineLLM
from server.llm.resilience import ResilientLLM


def build_llm(
    settings: Settings, *, http_session: aiohttp.ClientSession | None = None
) -> ResilientLLM:
    """GeminiLLM or OfflineLLM, as `settings.llm_provider` says; either inside ResilientLLM.

    Args:
        settings: the provider (llm_provider, gemini_*) and its timeouts, retries and
            breaker limits (the `ai_*` settings; see `ResilientLLM` for each).
        http_session: for Gemini, an aiohttp session to share; the caller closes it.

    Raises:
        ConfigError: Gemini is asked for without a key (load_settings refuses that first).
    """
    inner: LLM
    if settings.llm_provider == "gemini":
        if not settings.gemini_api_key:
            raise ConfigError("AI_PROVIDER=gemini needs GEMINI_API_KEY")
        inner = GeminiLLM(
            settings.gemini_api_key,
            settings.gemini_model,
            base_url=settings.gemini_base_url,
            request_timeout_s=settings.ai_request_timeout,
            http_session=http_session,
        )
    else:
        inner = OfflineLLM(delay_s=settings.ai_offline_delay)
    return ResilientLLM(
        inner,
        first_token_timeout=settings.ai_first_token_timeout,
        idle_timeout=settings.ai_idle_timeout,
        retries=settings.ai_retries,
        backoff_base=settings.ai_backoff_base,
        breaker_failures=settings.ai_breaker_failures,
        breaker_cooldown=settings.ai_breaker_cooldown,
    )
