"""Settings from the environment and `.env`, validated once at start-up.

Every setting has one name, used in the environment, in `.env`, in `.env.example` and in the
README table, so an operator never has to guess.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/hailuo-bridge.sqlite3"
DEFAULT_API_BASE_URL = "https://api.minimax.io/v1"

# Telegram accepts 1-256 characters of A-Z, a-z, 0-9, _ and - as a webhook secret token.
WEBHOOK_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,256}")
INSTANCE_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it and never echoes secrets."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    bot_token: SecretStr | None = None
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    database_url: str = DEFAULT_DATABASE_URL
    auto_migrate: bool = True
    telegram_api_url: str | None = None

    # Which MiniMax the bot talks to: the MiniMax Agent web chat (default), the official API
    # (or any OpenAI-compatible server), or the seed's Hailuo web chat.
    upstream: Literal["minimax-agent", "minimax-api", "hailuo"] = "minimax-agent"
    # Answers questions the primary cannot (login rejected, down, out of quota).
    upstream_fallback: Literal["minimax-api"] | None = None
    minimax_region: Literal["intl", "cn"] = "intl"
    minimax_agent_url: str | None = None  # default by region: https://agent.minimax.io
    minimax_agent_stream_url: str | None = None  # https://agent-stream.minimax.io
    minimax_model: str = Field(default="MiniMax-M3", min_length=1)
    show_reasoning: bool = False
    # Answers as Telegram rich messages (tables, math, headings; 32 768 characters a message).
    rich_messages: Literal["auto", "on", "off"] = "auto"
    minimax_api_key: SecretStr | None = None
    minimax_api_base_url: str = DEFAULT_API_BASE_URL
    # The models /model offers (comma-separated); empty: the ones the upstream lists.
    minimax_models: Annotated[tuple[str, ...], NoDecode] = ()
    system_prompt: str = ""
    history_max_chars: int = Field(default=24_000, ge=1_000, le=2_000_000)
    history_retention_days: int = Field(default=30, ge=1)

    hailuo_base_url: str = "https://www.hailuo.ai"
    hailuo_proxy: str | None = None
    hailuo_connect_timeout: float = Field(default=10.0, gt=0)
    hailuo_first_event_timeout: float = Field(default=60.0, gt=0)
    hailuo_idle_timeout: float = Field(default=60.0, gt=0)
    hailuo_total_timeout: float = Field(default=600.0, gt=0)

    allowed_user_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    allowed_chat_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    # Everything a person makes the bot do (questions, commands, buttons) counts: per user,
    # and per group chat; shared by all instances through Redis.
    questions_per_minute: int = Field(default=10, ge=1)
    chat_requests_per_minute: int = Field(default=20, ge=1)
    queue_max_depth: int = Field(default=10, ge=1)
    max_input_chars: int = Field(default=4000, ge=1)
    # An answer longer than this is cut there (upstream stopped, what came is kept): bounds the
    # memory and rendering work a runaway or hostile answer can cost.
    max_answer_chars: int = Field(default=64_000, ge=1_000, le=1_000_000)
    shutdown_grace: float = Field(default=10.0, ge=0)

    pacing_global_per_second: float = Field(default=29.0, gt=0, le=30)
    pacing_chat_interval: float = Field(default=1.0, gt=0)
    pacing_group_per_minute: float = Field(default=19.0, gt=0, le=20)

    login_timeout: float = Field(default=300.0, gt=0)
    login_url: str | None = None
    login_profile_dir: Path = Path("data/browser-profile")
    browser_path: str | None = None
    browser_headless: bool = True

    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    web_host: str = "0.0.0.0"  # noqa: S104 - a server in a container listens on all interfaces
    web_port: int | None = Field(default=None, ge=1, le=65535)
    redis_url: SecretStr | None = None
    instance_id: str = Field(default_factory=socket.gethostname)

    log_level: LogLevel = "INFO"

    @field_validator("admin_ids", "allowed_user_ids", "allowed_chat_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.replace(";", ",").split(",")]
            try:
                return frozenset(int(part) for part in parts if part)
            except ValueError:
                raise ValueError("must be comma-separated numeric Telegram ids") from None
        return value

    @field_validator("minimax_api_base_url", mode="before")
    @classmethod
    def _default_api_url(cls, value: object) -> object:
        return DEFAULT_API_BASE_URL if value in ("", None) else value

    @field_validator("minimax_models", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator(
        "upstream", "minimax_region", "upstream_fallback", "rich_messages", mode="before"
    )
    @classmethod
    def _lower_choice(cls, value: object) -> object:
        if value == "":
            return None
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator(
        "hailuo_base_url",
        "telegram_api_url",
        "minimax_agent_url",
        "minimax_agent_stream_url",
        "minimax_api_base_url",
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc:  # Telegram posts only over HTTPS
            raise ValueError("must be the public https:// URL Telegram posts updates to")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not WEBHOOK_SECRET_PATTERN.fullmatch(value.get_secret_value()):
            raise ValueError("must be 16-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("must be a redis:// or rediss:// URL")
        return value

    @field_validator("instance_id", mode="before")
    @classmethod
    def _default_instance_id(cls, value: object) -> object:
        return socket.gethostname() if value == "" else value

    @field_validator("instance_id")
    @classmethod
    def _instance_id(cls, value: str) -> str:
        if not INSTANCE_ID_PATTERN.fullmatch(value):
            raise ValueError("must be 1-64 characters of A-Z, a-z, 0-9, _ . : and -")
        return value

    def require_webhook_settings(self) -> None:
        """Webhook mode needs a secret and a port; only the bot itself needs them, so `db
        upgrade` in a release phase runs with the same environment and no port."""
        if self.webhook_url is None:
            return
        if self.webhook_secret is None:
            raise ConfigError(
                "WEBHOOK_SECRET must be set when WEBHOOK_URL is set (the same on every instance)"
            )
        if self.web_port is None:
            raise ConfigError("WEB_PORT must be set when WEBHOOK_URL is set")

    def require_upstream_settings(self) -> None:
        """The API upstream needs its key; a fallback must differ from the primary."""
        uses_api = "minimax-api" in (self.upstream, self.upstream_fallback)
        key = self.api_key()
        if uses_api and not key:
            raise ConfigError(
                "MINIMAX_API_KEY must be set when UPSTREAM or UPSTREAM_FALLBACK is minimax-api"
            )
        if uses_api and (any(ch.isspace() for ch in key) or key[0] in "'\""):
            raise ConfigError("MINIMAX_API_KEY must be the bare key, without quotes or spaces")
        if self.upstream_fallback == self.upstream:
            raise ConfigError("UPSTREAM_FALLBACK must name another upstream than UPSTREAM")

    def api_key(self) -> str:
        return self.minimax_api_key.get_secret_value().strip() if self.minimax_api_key else ""

    def secret_values(self) -> list[str]:
        """Everything logs must never show: tokens, keys, the webhook secret, URL passwords."""
        values = [
            secret.get_secret_value()
            for secret in (self.bot_token, self.webhook_secret, self.minimax_api_key)
            if secret is not None
        ]
        urls = [self.database_url]
        if self.redis_url is not None:
            urls.append(self.redis_url.get_secret_value())
        if self.hailuo_proxy:
            urls.append(self.hailuo_proxy)
        for url in urls:
            try:
                password = urlsplit(url).password
            except ValueError:
                password = None
            if password:
                values.append(password)
        return values

    @property
    def webhook_path(self) -> str:
        """The path updates are posted to, as the load balancer forwards it."""
        return urlsplit(self.webhook_url or "").path or "/"

    @field_validator(
        "hailuo_proxy",
        "login_url",
        "browser_path",
        "web_port",
        "webhook_secret",
        "redis_url",
        "minimax_api_key",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    def require_bot_token(self) -> str:
        if self.bot_token is None or not self.bot_token.get_secret_value().strip():
            raise ConfigError(
                "BOT_TOKEN is not set: put the token from @BotFather in the environment or in .env"
            )
        token = self.bot_token.get_secret_value().strip()
        bot_id, _, secret = token.partition(":")
        if not bot_id.isdigit() or not secret:
            raise ConfigError(
                "BOT_TOKEN is malformed: expected the form 123456:ABC-DEF... from @BotFather"
            )
        return token


def normalize_database_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, sqlite:///) and pick the async drivers we ship."""
    url = url.strip()
    for prefix, replacement in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(prefix):
            return replacement + url[len(prefix) :]
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    raise ValueError("must be a sqlite:/// or postgresql:// URL")


def load_settings(**overrides: object) -> Settings:
    """Build the settings or raise ConfigError with one line per bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "settings"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{name}: {message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
