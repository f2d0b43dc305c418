"""Settings come from the environment once; production insists on its secrets."""

from __future__ import annotations

import pytest

from server.config import ConfigError, load_settings


def test_defaults_serve_on_sqlite_in_process_on_localhost(tmp_path) -> None:
    settings = load_settings({"VAR_DIR": str(tmp_path)})
    assert settings.env == "development"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.redis_url is None


def test_production_refuses_to_start_without_secret_key(tmp_path) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings({"ENV": "production", "VAR_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="32"):
        load_settings({"ENV": "production", "SECRET_KEY": "short", "VAR_DIR": str(tmp_path)})


def test_production_answers_with_the_offline_model_only_when_told_to(tmp_path) -> None:
    production = {"ENV": "production", "SECRET_KEY": "s" * 40, "VAR_DIR": str(tmp_path)}
    with pytest.raises(ConfigError) as refused:
        load_settings(production)
    message = str(refused.value)
    assert message.startswith("GEMINI_API_KEY is required when ENV=production")
    assert "AI_PROVIDER=offline" in message and "\n" not in message
    assert load_settings({**production, "AI_PROVIDER": "offline"}).llm_provider == "offline"
    assert load_settings({**production, "GEMINI_API_KEY": "g"}).llm_provider == "gemini"


def test_the_key_chooses_the_model_unless_ai_provider_says_otherwise(tmp_path) -> None:
    def provider(**environ: str) -> str:
        return load_settings({"VAR_DIR": str(tmp_path), **environ}).llm_provider

    assert provider() == "offline"
    assert provider(AI_PROVIDER="") == "offline"
    assert provider(GEMINI_API_KEY="g") == "gemini"
    assert provider(GEMINI_API_KEY="g", AI_PROVIDER="Offline") == "offline"
    assert provider(GEMINI_API_KEY="g", AI_PROVIDER="gemini") == "gemini"
    with pytest.raises(ConfigError, match="^AI_PROVIDER=gemini needs GEMINI_API_KEY$"):
        provider(AI_PROVIDER="gemini")


def test_development_generates_a_secret_once_and_keeps_it(tmp_path) -> None:
    first = load_settings({"VAR_DIR": str(tmp_path)})
    second = load_settings({"VAR_DIR": str(tmp_path)})
    assert len(first.secret_key) >= 32
    assert first.secret_key == second.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_secrets_stay_out_of_the_settings_repr(tmp_path) -> None:
    settings = load_settings(
        {"VAR_DIR": str(tmp_path), "SECRET_KEY": "s" * 40, "GEMINI_API_KEY": "g-secret"}
    )
    assert "s" * 40 not in repr(settings)
    assert "g-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("PORT", "eighty", "must be a whole number, got 'eighty'"),
        ("PORT", "70000", "must be between 1 and 65535, got 70000"),
        ("ENV", "staging", "must be one of development, production, test, got 'staging'"),
        ("ARGON2_TIME_COST", "x", "must be a whole number"),
        ("ARGON2_MEMORY_COST", "4", "must be at least 32, got 4"),
        ("AUTH_RATE_LIMIT", "-5", "must be at least 1, got -5"),
        ("AI_QUEUE_SIZE", "0", "must be at least 1, got 0"),
        ("WS_OUTBOUND_HARD_LIMIT", "1000", "must be at least 262144, got 1000"),
        ("WS_HEARTBEAT", "0", "must be above 0, got 0"),
        ("WS_FRAMES_PER_SECOND", "nan", "must be a finite number, got 'nan'"),
        ("AI_IDLE_TIMEOUT", "soon", "must be a number, got 'soon'"),
        ("WS_TOKEN_GRACE", "-1", "must be at least 0.0, got -1.0"),
        ("DATABASE_URL", "nonsense", "not a database URL; expected postgresql://"),
        ("DATABASE_URL", "mysql://u:secret@h/db", "unsupported database 'mysql'"),
        ("DATABASE_URL", "postgresql://u:secret@h:port/db", "its port is not a number"),
        ("REDIS_URL", "localhost:6379", "must start with redis://, rediss:// or unix://"),
        ("REDIS_URL", "redis://:secret@h:port/0", "its port is not a number"),
        ("REDIS_URL", "redis://h:6379/zero", "its database number (the path) is 'zero'"),
        ("REDIS_CLUSTER", "maybe", "must be 1/true/yes or 0/false/no, got 'maybe'"),
        ("LOG_FORMAT", "yaml", "must be one of text, json, got 'yaml'"),
        ("LOG_LEVEL", "LOUD", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("PUBLIC_URL", "chat.example.com", "must be an http:// or https:// URL"),
        ("GEMINI_BASE_URL", "ftp://x", "must be an http:// or https:// URL"),
        ("STRIPE_API_BASE", "http://h:port", "has a port that is not a number"),
        ("SMTP_URL", "mail.example.com", "must look like smtp://user:pass@host:587"),
        ("ALLOWED_ORIGINS", "https://a.example, b.example", "got 'b.example'"),
        ("MAIL_FROM", "Roomcast", "must be an address like Roomcast <bot@example.com>"),
        ("TRUSTED_PROXIES", "10.0.0.1, nginx", "'nginx' does not appear to be an IPv4 or IPv6"),
        ("TRUSTED_PROXIES", "10.0.0.1/8", "10.0.0.1/8 has host bits set"),
        ("PROXY_HEADERS", "x-real-ip", "must be one of x-forwarded, forwarded, got 'x-real-ip'"),
        ("AI_PROVIDER", "openai", "must be one of gemini, offline, got 'openai'"),
    ],
)
def test_malformed_values_are_refused_in_one_line_with_their_name(
    tmp_path, name: str, value: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"VAR_DIR": str(tmp_path), name: value})
    message = str(refused.value)
    assert message.startswith(name) and reason in message
    assert "\n" not in message
    assert "secret" not in message  # a URL's password is never repeated


def test_empty_values_mean_the_defaults(tmp_path) -> None:
    names = ("PORT", "LOG_FORMAT", "LOG_LEVEL", "REDIS_URL", "DATABASE_URL", "REDIS_CLUSTER")
    settings = load_settings({"VAR_DIR": str(tmp_path), **dict.fromkeys(names, "")})
    assert (settings.port, settings.log_format, settings.log_level) == (8080, "text", "INFO")
    assert (settings.redis_url, settings.redis_cluster) == (None, False)
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


def test_well_formed_values_are_taken(tmp_path) -> None:
    settings = load_settings(
        {
            "VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql://u:p@db.internal:5432/roomcast",
            "REDIS_URL": "rediss://:p@cache.internal:6380/2",
            "REDIS_CLUSTER": "yes",
            "LOG_FORMAT": "JSON",
            "LOG_LEVEL": "warning",
            "ALLOWED_ORIGINS": "https://chat.example.com/, capacitor://localhost",
            "PUBLIC_URL": "https://chat.example.com/",
            "SMTP_URL": "smtps://u:p@smtp.example.com:465",
        }
    )
    assert settings.log_format == "json" and settings.log_level == "WARNING"
    assert settings.redis_cluster
    assert settings.allowed_origins == ("https://chat.example.com", "capacitor://localhost")
    assert settings.public_url == "https://chat.example.com"


def test_the_listen_backlog_and_the_token_check_cache_are_settings(tmp_path) -> None:
    defaults = load_settings({"VAR_DIR": str(tmp_path)})
    assert defaults.listen_backlog == 1024
    assert (defaults.auth_cache_ttl, defaults.auth_cache_size) == (30.0, 50_000)
    given = {"LISTEN_BACKLOG": "4096", "AUTH_CACHE_TTL": "0", "AUTH_CACHE_SIZE": "10"}
    settings = load_settings({"VAR_DIR": str(tmp_path), **given})
    assert settings.listen_backlog == 4096
    assert (settings.auth_cache_ttl, settings.auth_cache_size) == (0.0, 10)
    with pytest.raises(ConfigError, match="LISTEN_BACKLOG"):
        load_settings({"VAR_DIR": str(tmp_path), "LISTEN_BACKLOG": "0"})


def test_trusted_proxies_are_addresses_and_networks_or_any_and_none_by_default(tmp_path) -> None:
    def trusted(value: str) -> list[str]:
        settings = load_settings({"VAR_DIR": str(tmp_path), "TRUSTED_PROXIES": value})
        return [str(network) for network in settings.trusted_proxies]

    assert trusted("") == []
    assert trusted("10.0.0.0/8, 127.0.0.1,fd00::/8") == ["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"]
    assert trusted("*") == ["0.0.0.0/0", "::/0"]
    assert load_settings({"VAR_DIR": str(tmp_path)}).proxy_headers == "x-forwarded"


def test_a_var_dir_that_cannot_hold_the_secret_is_a_configuration_error(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="^VAR_DIR: cannot keep the development SECRET_KEY"):
        load_settings({"VAR_DIR": str(blocker / "var")})


def test_plain_database_urls_get_the_async_driver(tmp_path) -> None:
    from storage.db import normalize_url

    assert normalize_url("postgresql://u@h/db").startswith("postgresql+asyncpg://")
    assert normalize_url("sqlite:///var/x.db") == "sqlite+aiosqlite:///var/x.db"
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url("mysql://u@h/db")
