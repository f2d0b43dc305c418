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
    assert not settings.uses_redis


def test_production_refuses_to_start_without_secret_key(tmp_path) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings({"ENV": "production", "VAR_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="32"):
        load_settings({"ENV": "production", "SECRET_KEY": "short", "VAR_DIR": str(tmp_path)})


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
    ("name", "value"), [("PORT", "eighty"), ("ENV", "staging"), ("ARGON2_TIME_COST", "x")]
)
def test_malformed_values_are_refused_with_their_name(tmp_path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({"VAR_DIR": str(tmp_path), name: value})


def test_plain_database_urls_get_the_async_driver(tmp_path) -> None:
    from storage.db import normalize_url

    assert normalize_url("postgresql://u@h/db").startswith("postgresql+asyncpg://")
    assert normalize_url("sqlite:///var/x.db") == "sqlite+aiosqlite:///var/x.db"
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url("mysql://u@h/db")
