"""Settings: read once from the environment into one frozen object, passed down."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Env = Literal["development", "production", "test"]


class ConfigError(Exception):
    """The environment does not describe a runnable configuration."""


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """Daily AI prompt allowance and display price of the two plans."""

    basic_daily_ai_prompts: int = 20
    pro_daily_ai_prompts: int = 1000
    pro_price: str = "$12/month"
    past_due_grace_days: int = 3


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """argon2id cost; production defaults follow RFC 9106's second recommendation."""

    time_cost: int = 3
    memory_cost: int = 65536
    parallelism: int = 4


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything Roomcast reads from its environment, typed and validated."""

    env: Env = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    var_dir: Path = Path("var")
    database_url: str = "sqlite+aiosqlite:///var/roomcast.db"
    redis_url: str | None = None
    # REDIS_URL names one node of a Redis Cluster, which the client discovers from it.
    redis_cluster: bool = False
    # Connections to Redis per process (per node on a cluster), and how long a command
    # waits for a free one before the request is answered 503 `unavailable`.
    redis_max_connections: int = 64
    redis_pool_timeout: float = 1.0
    secret_key: str = field(default="", repr=False)
    allowed_origins: tuple[str, ...] = ()
    gemini_api_key: str | None = field(default=None, repr=False)
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None
    stripe_secret_key: str | None = field(default=None, repr=False)
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    stripe_price_pro: str | None = None
    stripe_api_base: str | None = None
    smtp_url: str | None = field(default=None, repr=False)
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = 1024 * 1024
    webhook_max_body_bytes: int = 512 * 1024
    access_token_ttl: int = 15 * 60
    # Per client IP and auth endpoint: at most `auth_rate_limit` requests a window.
    auth_rate_limit: int = 30
    auth_rate_window: int = 60
    mail_from: str = "Roomcast <no-reply@localhost>"
    # Websocket: frames per second per connection (with a burst), outbound queue limits.
    ws_heartbeat: float = 25.0  # seconds of quiet before a ping; no pong in half that: dropped
    ws_frames_per_second: float = 50.0
    ws_burst: float = 100.0
    ws_outbound_soft_limit: int = 256 * 1024
    ws_outbound_hard_limit: int = 1024 * 1024
    # A connection whose token expired this long ago without a re-auth is closed (4401).
    ws_token_grace: float = 60.0
    # The assistant: time to the first token and between tokens, retries before the first
    # token, the circuit breaker, the context budget and the queue of prompts per room.
    ai_first_token_timeout: float = 30.0
    ai_idle_timeout: float = 15.0
    ai_request_timeout: float = 300.0
    ai_retries: int = 2
    ai_backoff_base: float = 0.2
    ai_breaker_failures: int = 5
    ai_breaker_cooldown: float = 30.0
    ai_offline_delay: float = 0.03
    ai_context_tokens: int = 8000
    ai_max_output_tokens: int = 1024
    ai_queue_size: int = 8
    # Across instances: presence entries live this long unless refreshed (every tick);
    # a generation silent this long is declared interrupted by the others.
    presence_ttl: float = 6.0
    tick_interval: float = 2.0
    ai_interrupt_after: float = 6.0
    refresh_token_ttl: int = 30 * 24 * 3600
    argon2: Argon2Params = Argon2Params()
    plans: PlanLimits = PlanLimits()
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def uses_redis(self) -> bool:
        return self.redis_url is not None


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _positive(value: float, name: str) -> float:
    if not value > 0:
        raise ConfigError(f"{name} must be above 0, got {value}")
    return value


def _optional(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _env(environ: Mapping[str, str]) -> Env:
    value = environ.get("ENV", "development").strip().lower()
    if value not in ("development", "production", "test"):
        raise ConfigError(f"ENV must be development, production or test, got {value!r}")
    return value  # type: ignore[return-value]


def _secret_key(environ: Mapping[str, str], env: Env, var_dir: Path) -> str:
    """The signing key: required in production, generated once and kept in development."""
    given = _optional(environ, "SECRET_KEY")
    if given:
        if env == "production" and len(given) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters in production")
        return given
    if env == "production":
        raise ConfigError("SECRET_KEY is required when ENV=production")
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from `environ` (default: the process environment).

    Raises:
        ConfigError: a value is malformed, or production lacks a required secret.
    """
    environ = os.environ if environ is None else environ
    env = _env(environ)
    var_dir = Path(environ.get("VAR_DIR", "var"))
    host = environ.get("HOST", "127.0.0.1")
    port = _int(environ, "PORT", 8080)
    origins = tuple(
        o.strip().rstrip("/") for o in environ.get("ALLOWED_ORIGINS", "").split(",") if o.strip()
    )
    default_argon = Argon2Params()
    return Settings(
        env=env,
        host=host,
        port=port,
        var_dir=var_dir,
        database_url=_optional(environ, "DATABASE_URL")
        or f"sqlite+aiosqlite:///{var_dir / 'roomcast.db'}",
        redis_url=_optional(environ, "REDIS_URL"),
        redis_cluster=environ.get("REDIS_CLUSTER", "").strip().lower() in ("1", "true", "yes"),
        redis_max_connections=_int(environ, "REDIS_MAX_CONNECTIONS", 64),
        redis_pool_timeout=_float(environ, "REDIS_POOL_TIMEOUT", 1.0),
        secret_key=_secret_key(environ, env, var_dir),
        allowed_origins=origins,
        gemini_api_key=_optional(environ, "GEMINI_API_KEY"),
        gemini_model=environ.get("GEMINI_MODEL", "gemini-2.5-flash"),
        gemini_base_url=_optional(environ, "GEMINI_BASE_URL"),
        stripe_secret_key=_optional(environ, "STRIPE_SECRET_KEY"),
        stripe_webhook_secret=_optional(environ, "STRIPE_WEBHOOK_SECRET"),
        stripe_price_pro=_optional(environ, "STRIPE_PRICE_PRO"),
        stripe_api_base=_optional(environ, "STRIPE_API_BASE"),
        smtp_url=_optional(environ, "SMTP_URL"),
        mail_from=environ.get("MAIL_FROM", "Roomcast <no-reply@localhost>"),
        auth_rate_limit=_int(environ, "AUTH_RATE_LIMIT", 30),
        auth_rate_window=_int(environ, "AUTH_RATE_WINDOW", 60),
        ws_heartbeat=_positive(_float(environ, "WS_HEARTBEAT", 25.0), "WS_HEARTBEAT"),
        ws_frames_per_second=_float(environ, "WS_FRAMES_PER_SECOND", 50.0),
        ws_burst=_float(environ, "WS_BURST", 100.0),
        ws_outbound_soft_limit=_int(environ, "WS_OUTBOUND_SOFT_LIMIT", 256 * 1024),
        ws_outbound_hard_limit=_int(environ, "WS_OUTBOUND_HARD_LIMIT", 1024 * 1024),
        ws_token_grace=_float(environ, "WS_TOKEN_GRACE", 60.0),
        ai_first_token_timeout=_float(environ, "AI_FIRST_TOKEN_TIMEOUT", 30.0),
        ai_idle_timeout=_float(environ, "AI_IDLE_TIMEOUT", 15.0),
        ai_request_timeout=_float(environ, "AI_REQUEST_TIMEOUT", 300.0),
        ai_retries=_int(environ, "AI_RETRIES", 2),
        ai_backoff_base=_float(environ, "AI_BACKOFF_BASE", 0.2),
        ai_breaker_failures=_int(environ, "AI_BREAKER_FAILURES", 5),
        ai_breaker_cooldown=_float(environ, "AI_BREAKER_COOLDOWN", 30.0),
        ai_offline_delay=_float(environ, "AI_OFFLINE_DELAY", 0.03),
        ai_context_tokens=_int(environ, "AI_CONTEXT_TOKENS", 8000),
        ai_max_output_tokens=_int(environ, "AI_MAX_OUTPUT_TOKENS", 1024),
        ai_queue_size=_int(environ, "AI_QUEUE_SIZE", 8),
        presence_ttl=_float(environ, "PRESENCE_TTL", 6.0),
        tick_interval=_float(environ, "TICK_INTERVAL", 2.0),
        ai_interrupt_after=_float(environ, "AI_INTERRUPT_AFTER", 6.0),
        public_url=environ.get("PUBLIC_URL", f"http://{host}:{port}").rstrip("/"),
        argon2=Argon2Params(
            time_cost=_int(environ, "ARGON2_TIME_COST", default_argon.time_cost),
            memory_cost=_int(environ, "ARGON2_MEMORY_COST", default_argon.memory_cost),
            parallelism=_int(environ, "ARGON2_PARALLELISM", default_argon.parallelism),
        ),
        plans=PlanLimits(
            basic_daily_ai_prompts=_int(environ, "PLAN_BASIC_DAILY_AI_PROMPTS", 20),
            pro_daily_ai_prompts=_int(environ, "PLAN_PRO_DAILY_AI_PROMPTS", 1000),
            pro_price=environ.get("PLAN_PRO_PRICE", "$12/month"),
            past_due_grace_days=_int(environ, "PLAN_PAST_DUE_GRACE_DAYS", 3),
        ),
        log_format="json" if environ.get("LOG_FORMAT", "").lower() == "json" else "text",
        log_level=environ.get("LOG_LEVEL", "INFO").upper(),
    )


def generate_secret() -> str:
    """A fresh random key, for tests and tools that need one."""
    return secrets.token_urlsafe(48)
