"""Settings: parsed as people write them, and every one of them documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings, normalize_database_url

ROOT = Path(__file__).resolve().parents[1]


def test_ids_are_comma_separated() -> None:
    settings = load_settings(admin_ids="12, 34;56", allowed_chat_ids="-1001,")
    assert settings.admin_ids == {12, 34, 56}
    assert settings.allowed_chat_ids == {-1001}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("sqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_urls_get_the_async_drivers(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_bad_values_are_named_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(database_url="mysql://secret-password@h/db", pacing_group_per_minute=50)
    message = str(caught.value)
    assert "DATABASE_URL" in message
    assert "PACING_GROUP_PER_MINUTE" in message
    assert "secret-password" not in message


def test_every_setting_is_in_env_example_and_readme() -> None:
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    for name in Settings.model_fields:
        env = name.upper()
        assert env in documented, f"{env} is missing from .env.example"
        assert f"`{env}`" in readme, f"{env} is missing from the README's table"


def test_webhook_mode_needs_a_secret_and_a_port_but_only_to_run_the_bot() -> None:
    with pytest.raises(ConfigError, match="WEBHOOK_URL"):
        load_settings(webhook_url="http://bot.example.org/hook")  # Telegram posts only over HTTPS
    settings = load_settings(webhook_url="https://bot.example.org/hook")
    assert settings.webhook_path == "/hook"  # `db upgrade` in a release phase still works
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        settings.require_webhook_settings()
    with pytest.raises(ConfigError, match="WEB_PORT"):
        load_settings(
            webhook_url="https://bot.example.org/hook", webhook_secret="s" * 20
        ).require_webhook_settings()
    with pytest.raises(ConfigError) as caught:
        load_settings(webhook_secret="short", redis_url="http://x:secret-pass@h")
    assert "WEBHOOK_SECRET" in str(caught.value)
    assert "REDIS_URL" in str(caught.value)
    assert "secret-pass" not in str(caught.value)
