"""Settings: read once from the environment into one frozen object, passed down."""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from actors.assistant import AssistantConfig
from server.admission import AdmissionLimits

Env = Literal["development", "production", "test"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ProxyHeaders = Literal["x-forwarded", "forwarded"]
AIProvider = Literal["gemini", "offline"]


class ConfigError(Exception):
    """The environment does not describe a runnable configuration."""


#: The assistant's budget and queue defaults, written once on its own config.
_ASSISTANT = AssistantConfig()
#: Admission control's thresholds, likewise.
_ADMISSION = AdmissionLimits()


def _sqlite_url(var_dir: Path) -> str:
    """The development database, kept under VAR_DIR."""
    return f"sqlite+aiosqlite:///{var_dir / 'roomcast.db'}"


def _local_url(host: str, port: int) -> str:
    """PUBLIC_URL when unset: where the server listens."""
    return f"http://{host}:{port}"


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
    # Connections the kernel queues before `accept` (aiohttp's default, 128, is below a
    # reconnect storm of 200 at a time: the rest would retry their SYN after 1 s).
    listen_backlog: int = 1024
    var_dir: Path = Path("var")
    # Defaults below may use the fields above them: the class body runs top to bottom.
    database_url: str = _sqlite_url(var_dir)
    redis_url: str | None = None
    # REDIS_URL names one node of a Redis Cluster, which the client discovers from it.
    redis_cluster: bool = False
    # Connections to Redis per process (per node on a cluster), and how long a command
    # waits for a free one before the request is answered 503 `unavailable`.
    redis_max_connections: int = 64
    redis_pool_timeout: float = 1.0
    secret_key: str = field(default="", repr=False)
    allowed_origins: tuple[str, ...] = ()
    # Peers whose forwarding headers (`proxy_headers`) name the client: server/forwarded.py.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    proxy_headers: ProxyHeaders = "x-forwarded"
    # AI_PROVIDER as given; None lets the key decide (see `llm_provider`).
    ai_provider: AIProvider | None = None
    gemini_api_key: str | None = field(default=None, repr=False)
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None
    stripe_secret_key: str | None = field(default=None, repr=False)
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    stripe_price_pro: str | None = None
    stripe_api_base: str | None = None
    smtp_url: str | None = field(default=None, repr=False)
    public_url: str = _local_url(host, port)
    max_body_bytes: int = 1024 * 1024
    webhook_max_body_bytes: int = 512 * 1024
    access_token_ttl: int = 15 * 60
    # The websocket's token check keeps users and sign-ins this long (0: off), at most this
    # many of each; every revocation on the control stream invalidates them first.
    auth_cache_ttl: float = 30.0
    auth_cache_size: int = 50_000
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
    # Admission: an upgrade is refused at once with 503 while this many others are still
    # authenticating, while the event loop runs this many seconds late (0: never), or at
    # this many open connections (0: no cap). Well above a storm of 1,000 healthy clients.
    ws_max_handshakes: int = _ADMISSION.max_handshakes
    ws_max_loop_lag: float = _ADMISSION.max_loop_lag
    ws_max_connections: int = _ADMISSION.max_connections
    # Seconds a refused client is told to wait: a random whole number from this to 3 times it.
    ws_retry_after: int = _ADMISSION.retry_after
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
    ai_context_tokens: int = _ASSISTANT.context_tokens
    ai_max_output_tokens: int = _ASSISTANT.max_output_tokens
    ai_queue_size: int = _ASSISTANT.queue_size
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
    def llm_provider(self) -> AIProvider:
        """Who answers prompts: AI_PROVIDER when set, else Gemini with a key, offline without."""
        if self.ai_provider is not None:
            return self.ai_provider
        return "gemini" if self.gemini_api_key else "offline"


# What the readers fall back to: each default is written once, on the dataclass.
_DEFAULT = Settings()

_N = TypeVar("_N", int, float)


class _Environment:
    """Typed reads of the environment, each refusing a bad value with one line that names
    the variable and what is wrong (run.py prints it as is)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str, default: str) -> str:
        return self._environ.get(name, "").strip() or default

    def optional(self, name: str) -> str | None:
        return self._environ.get(name, "").strip() or None

    def integer(self, name: str, default: int, *, low: int = 0, high: int | None = None) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        return self._within(name, value, low, high)

    def number(self, name: str, default: float, *, low: float = 0.0, above: bool = False) -> float:
        """A finite number of at least `low` (above it, when `above`)."""
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {raw!r}")
        if above and not value > low:
            raise ConfigError(f"{name} must be above {low:g}, got {raw}")
        return self._within(name, value, low, None)

    @staticmethod
    def _within(name: str, value: _N, low: _N, high: _N | None) -> _N:
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise ConfigError(f"{name} must be {bounds}, got {value}")
        return value

    def flag(self, name: str) -> bool:
        raw = self._environ.get(name, "").strip().lower()
        if raw in ("", "0", "false", "no", "off"):
            return False
        if raw in ("1", "true", "yes", "on"):
            return True
        raise ConfigError(f"{name} must be 1/true/yes or 0/false/no, got {raw!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def web_url(self, name: str, default: str | None = None) -> str | None:
        """An http(s) URL with a host, without its trailing slash."""
        url = self.optional(name) or default
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{name} must be an http:// or https:// URL, got {url!r}")
        try:
            parts.port  # noqa: B018 - reading it is what checks it
        except ValueError:
            raise ConfigError(f"{name} has a port that is not a number: {url!r}") from None
        return url.rstrip("/")


def _origins(read: _Environment) -> tuple[str, ...]:
    """ALLOWED_ORIGINS: `*`, or origins (`scheme://host[:port]`, no path) split by commas."""
    raw = read.text("ALLOWED_ORIGINS", "")
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (not parts.scheme or not parts.netloc or parts.path or parts.query):
            raise ConfigError(
                f"ALLOWED_ORIGINS must list origins like https://chat.example.com "
                f"(no path), or *; got {origin!r}"
            )
    return origins


def _trusted_proxies(read: _Environment) -> tuple[IPNetwork, ...]:
    """TRUSTED_PROXIES: `*`, or IP addresses and CIDR networks split by commas."""
    items = [item.strip() for item in read.text("TRUSTED_PROXIES", "").split(",")]
    if "*" in items:
        return (ipaddress.IPv4Network("0.0.0.0/0"), ipaddress.IPv6Network("::/0"))
    try:
        return tuple(ipaddress.ip_network(item) for item in items if item)
    except ValueError as exc:  # strict: host bits set in a network is a typo
        raise ConfigError(
            f"TRUSTED_PROXIES must list IP addresses and networks like 10.0.0.0/8, or *: {exc}"
        ) from None


def _database_url(read: _Environment, var_dir: Path) -> str:
    from storage.db import normalize_url

    url = read.text("DATABASE_URL", _sqlite_url(var_dir))
    try:
        normalize_url(url)
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL: {exc}") from None
    return url


def _redis_url(read: _Environment) -> str | None:
    from storage.redis import check_url

    url = read.optional("REDIS_URL")
    if url is not None:
        try:
            check_url(url)
        except ValueError as exc:
            raise ConfigError(f"REDIS_URL: {exc}") from None
    return url


def _smtp_url(read: _Environment) -> str | None:
    """SMTP_URL as server/outbox.py reads it; checked here so a typo stops the start."""
    url = read.optional("SMTP_URL")
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError("SMTP_URL must look like smtp://user:pass@host:587 or smtps://...")
    try:
        parts.port  # noqa: B018 - reading it is what checks it
    except ValueError:
        raise ConfigError("SMTP_URL has a port that is not a number") from None
    return url


def _mail_from(read: _Environment) -> str:
    value = read.text("MAIL_FROM", _DEFAULT.mail_from)
    if "@" not in parseaddr(value)[1]:
        raise ConfigError(
            f"MAIL_FROM must be an address like Roomcast <bot@example.com>, got {value!r}"
        )
    return value


def _log_level(read: _Environment) -> str:
    level = read.text("LOG_LEVEL", _DEFAULT.log_level).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(
            f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got {level!r}"
        )
    return level


def _env(read: _Environment) -> Env:
    return read.choice("ENV", _DEFAULT.env, ("development", "production", "test"))  # type: ignore[return-value]


def _secret_key(read: _Environment, env: Env, var_dir: Path) -> str:
    """The signing key: required in production, generated once and kept in development."""
    given = read.optional("SECRET_KEY")
    if given:
        if env == "production" and len(given) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters in production")
        return given
    if env == "production":
        raise ConfigError("SECRET_KEY is required when ENV=production")
    path = var_dir / "secret_key"
    try:
        if path.exists():
            return path.read_text().strip()
        var_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key + "\n")
        path.chmod(0o600)
    except OSError as exc:
        raise ConfigError(
            f"VAR_DIR: cannot keep the development SECRET_KEY in {path}: {exc.strerror}"
        ) from None
    return key


def _argon2(read: _Environment) -> Argon2Params:
    default = Argon2Params()
    parallelism = read.integer("ARGON2_PARALLELISM", default.parallelism, low=1, high=255)
    return Argon2Params(
        time_cost=read.integer("ARGON2_TIME_COST", default.time_cost, low=1),
        # argon2 needs 8 KiB per lane at least.
        memory_cost=read.integer("ARGON2_MEMORY_COST", default.memory_cost, low=8 * parallelism),
        parallelism=parallelism,
    )


def _plans(read: _Environment) -> PlanLimits:
    default = PlanLimits()
    return PlanLimits(
        basic_daily_ai_prompts=read.integer(
            "PLAN_BASIC_DAILY_AI_PROMPTS", default.basic_daily_ai_prompts
        ),
        pro_daily_ai_prompts=read.integer(
            "PLAN_PRO_DAILY_AI_PROMPTS", default.pro_daily_ai_prompts
        ),
        pro_price=read.text("PLAN_PRO_PRICE", default.pro_price),
        past_due_grace_days=read.integer("PLAN_PAST_DUE_GRACE_DAYS", default.past_due_grace_days),
    )


# Settings' keyword arguments, as each group's reader below returns them.
_Fields = dict[str, Any]


def _listening(read: _Environment) -> _Fields:
    host = read.text("HOST", _DEFAULT.host)
    port = read.integer("PORT", _DEFAULT.port, low=1, high=65535)
    public_url = read.web_url("PUBLIC_URL", _local_url(host, port)) or ""
    backlog = read.integer("LISTEN_BACKLOG", _DEFAULT.listen_backlog, low=1)
    return {"host": host, "port": port, "public_url": public_url, "listen_backlog": backlog}


def _redis(read: _Environment) -> _Fields:
    return {
        "redis_url": _redis_url(read),
        "redis_cluster": read.flag("REDIS_CLUSTER"),
        "redis_max_connections": read.integer(
            "REDIS_MAX_CONNECTIONS", _DEFAULT.redis_max_connections, low=1
        ),
        "redis_pool_timeout": read.number("REDIS_POOL_TIMEOUT", _DEFAULT.redis_pool_timeout),
    }


def _peers(read: _Environment) -> _Fields:
    """Who may open websockets, and whose forwarding headers are believed."""
    return {
        "allowed_origins": _origins(read),
        "trusted_proxies": _trusted_proxies(read),
        "proxy_headers": read.choice(
            "PROXY_HEADERS", _DEFAULT.proxy_headers, ("x-forwarded", "forwarded")
        ),
    }


def _accounts(read: _Environment) -> _Fields:
    return {
        "smtp_url": _smtp_url(read),
        "mail_from": _mail_from(read),
        "auth_rate_limit": read.integer("AUTH_RATE_LIMIT", _DEFAULT.auth_rate_limit, low=1),
        "auth_rate_window": read.integer("AUTH_RATE_WINDOW", _DEFAULT.auth_rate_window, low=1),
        "auth_cache_ttl": read.number("AUTH_CACHE_TTL", _DEFAULT.auth_cache_ttl),
        "auth_cache_size": read.integer("AUTH_CACHE_SIZE", _DEFAULT.auth_cache_size, low=1),
        "argon2": _argon2(read),
    }


def _billing(read: _Environment) -> _Fields:
    return {
        "stripe_secret_key": read.optional("STRIPE_SECRET_KEY"),
        "stripe_webhook_secret": read.optional("STRIPE_WEBHOOK_SECRET"),
        "stripe_price_pro": read.optional("STRIPE_PRICE_PRO"),
        "stripe_api_base": read.web_url("STRIPE_API_BASE"),
        "plans": _plans(read),
    }


def _websockets(read: _Environment) -> _Fields:
    d = _DEFAULT
    soft_limit = read.integer("WS_OUTBOUND_SOFT_LIMIT", d.ws_outbound_soft_limit, low=1)
    return {
        "ws_heartbeat": read.number("WS_HEARTBEAT", d.ws_heartbeat, above=True),
        "ws_frames_per_second": read.number(
            "WS_FRAMES_PER_SECOND", d.ws_frames_per_second, above=True
        ),
        "ws_burst": read.number("WS_BURST", d.ws_burst, low=1.0),
        "ws_outbound_soft_limit": soft_limit,
        "ws_outbound_hard_limit": read.integer(
            "WS_OUTBOUND_HARD_LIMIT", d.ws_outbound_hard_limit, low=soft_limit
        ),
        "ws_token_grace": read.number("WS_TOKEN_GRACE", d.ws_token_grace),
        "ws_max_handshakes": read.integer("WS_MAX_HANDSHAKES", d.ws_max_handshakes, low=1),
        "ws_max_loop_lag": read.number("WS_MAX_LOOP_LAG", d.ws_max_loop_lag),
        "ws_max_connections": read.integer("WS_MAX_CONNECTIONS", d.ws_max_connections),
        "ws_retry_after": read.integer("WS_RETRY_AFTER", d.ws_retry_after, low=1),
    }


def _assistant(read: _Environment) -> _Fields:
    d = _DEFAULT
    return {
        "ai_provider": _ai_provider(read),
        "gemini_api_key": read.optional("GEMINI_API_KEY"),
        "gemini_model": read.text("GEMINI_MODEL", d.gemini_model),
        "gemini_base_url": read.web_url("GEMINI_BASE_URL"),
        "ai_first_token_timeout": read.number(
            "AI_FIRST_TOKEN_TIMEOUT", d.ai_first_token_timeout, above=True
        ),
        "ai_idle_timeout": read.number("AI_IDLE_TIMEOUT", d.ai_idle_timeout, above=True),
        "ai_request_timeout": read.number("AI_REQUEST_TIMEOUT", d.ai_request_timeout, above=True),
        "ai_retries": read.integer("AI_RETRIES", d.ai_retries),
        "ai_backoff_base": read.number("AI_BACKOFF_BASE", d.ai_backoff_base),
        "ai_breaker_failures": read.integer("AI_BREAKER_FAILURES", d.ai_breaker_failures, low=1),
        "ai_breaker_cooldown": read.number("AI_BREAKER_COOLDOWN", d.ai_breaker_cooldown),
        "ai_offline_delay": read.number("AI_OFFLINE_DELAY", d.ai_offline_delay),
        "ai_context_tokens": read.integer("AI_CONTEXT_TOKENS", d.ai_context_tokens, low=1),
        "ai_max_output_tokens": read.integer("AI_MAX_OUTPUT_TOKENS", d.ai_max_output_tokens, low=1),
        "ai_queue_size": read.integer("AI_QUEUE_SIZE", d.ai_queue_size, low=1),
    }


def _ai_provider(read: _Environment) -> AIProvider | None:
    """AI_PROVIDER, or None when unset: the key decides (`Settings.llm_provider`)."""
    if read.optional("AI_PROVIDER") is None:
        return None
    return read.choice("AI_PROVIDER", "", ("gemini", "offline"))  # type: ignore[return-value]


def _instances(read: _Environment) -> _Fields:
    """Presence and generation heartbeats shared between instances."""
    return {
        "presence_ttl": read.number("PRESENCE_TTL", _DEFAULT.presence_ttl, above=True),
        "tick_interval": read.number("TICK_INTERVAL", _DEFAULT.tick_interval, above=True),
        "ai_interrupt_after": read.number(
            "AI_INTERRUPT_AFTER", _DEFAULT.ai_interrupt_after, above=True
        ),
    }


def _logging(read: _Environment) -> _Fields:
    return {
        "log_format": read.choice("LOG_FORMAT", _DEFAULT.log_format, ("text", "json")),
        "log_level": _log_level(read),
    }


def _check_llm_provider(settings: Settings) -> None:
    """Production answers with the offline model only when told to: without a key, a
    forgotten GEMINI_API_KEY would otherwise go unnoticed until users read the answers."""
    if settings.ai_provider == "gemini" and not settings.gemini_api_key:
        raise ConfigError("AI_PROVIDER=gemini needs GEMINI_API_KEY")
    if settings.is_production and settings.ai_provider is None and not settings.gemini_api_key:
        raise ConfigError(
            "GEMINI_API_KEY is required when ENV=production; "
            "set AI_PROVIDER=offline to answer with the offline model instead"
        )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from `environ` (default: the process environment).

    Raises:
        ConfigError: a value is malformed or out of range (its message is one line naming
            the variable), or production lacks a required secret or an explicit model.
    """
    read = _Environment(os.environ if environ is None else environ)
    env = _env(read)
    var_dir = Path(read.text("VAR_DIR", str(_DEFAULT.var_dir)))
    listening = _listening(read)
    database_url = _database_url(read, var_dir)
    redis = _redis(read)
    settings = Settings(
        env=env,
        var_dir=var_dir,
        database_url=database_url,
        secret_key=_secret_key(read, env, var_dir),
        **listening,
        **redis,
        **_peers(read),
        **_assistant(read),
        **_billing(read),
        **_accounts(read),
        **_websockets(read),
        **_instances(read),
        **_logging(read),
    )
    _check_llm_provider(settings)
    return settings


def generate_secret() -> str:
    """A fresh random key, for tests and tools that need one."""
    return secrets.token_urlsafe(48)
