"""Fixtures shared by all tests: the Hailuo stand-in and a login it accepts."""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from bot.config import normalize_database_url
from bot.hailuo import AuthState, HailuoClient, HailuoTimeouts
from bot.storage.database import Database
from bot.storage.migrations import ensure_schema
from tests.standins.hailuo import CHAT_PATH, HailuoStandIn
from tests.standins.minimax_agent import MiniMaxAgentStandIn
from tests.standins.telegram import TelegramStandIn

pytest_plugins = ["tests.hang_guard"]

TEST_TIMESTAMP = 1_732_000_000_000


def make_auth(token: str = "test-token-0123456789", timestamp: int = TEST_TIMESTAMP) -> AuthState:
    """A login shaped like one the browser flow captures."""
    params = {
        "device_platform": "web",
        "biz_id": "2",
        "app_id": "3001",
        "version_code": "22201",
        "lang": "en",
        "uuid": "3f1c2d4e-0000-4000-8000-123456789abc",
        "device_id": "301234567890123456",
        "os_name": "Linux x86_64",
        "browser_name": "chrome",
        "cpu_core_num": "8",
        "browser_language": "en-US",
        "browser_platform": "Linux x86_64",
        "screen_width": "1920",
        "screen_height": "1080",
        "unix": str(timestamp),
    }
    return AuthState(
        token=token,
        path_and_query=f"{CHAT_PATH}?{urllib.parse.urlencode(params)}",
        timestamp=timestamp,
        cookies={"sessionid": "cookie-secret-value", "_ga": "GA1.1.42"},
        headers={"User-Agent": "Mozilla/5.0 Chrome/156.0", "Referer": "https://www.hailuo.ai/"},
    )


@pytest.fixture
async def hailuo() -> AsyncIterator[HailuoStandIn]:
    standin = HailuoStandIn()
    await standin.start()
    yield standin
    await standin.stop()


@pytest.fixture
def auth(hailuo: HailuoStandIn) -> AuthState:
    login = make_auth()
    hailuo.valid_tokens.add(login.token)
    return login


@pytest.fixture
async def client(hailuo: HailuoStandIn) -> AsyncIterator[HailuoClient]:
    timeouts = HailuoTimeouts(connect=5, first_event=20, idle=20, total=60)
    async with HailuoClient(hailuo.base_url, timeouts=timeouts) as hailuo_client:
        yield hailuo_client


# --- databases -----------------------------------------------------------------------------------

POSTGRES_SKIP_REASON = (
    "TEST_POSTGRES_URL is not set: PostgreSQL tests need a server "
    "(e.g. TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test); CI always sets it"
)


def free_port() -> int:
    """A loopback port nobody listens on (for a server to take, or to be refused by)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'bot.sqlite3'}"


@contextlib.asynccontextmanager
async def scratch_postgres_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    base = os.environ.get("TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests, but TEST_POSTGRES_URL is not set")
        pytest.skip(POSTGRES_SKIP_REASON)
    import asyncpg  # type: ignore[import-untyped]

    server = make_url(normalize_database_url(base))
    name = f"hb_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


REDIS_SKIP_REASON = (
    "TEST_REDIS_URL is not set: the several-instance tests need Redis "
    "(e.g. TEST_REDIS_URL=redis://127.0.0.1:6379/0); CI always sets it"
)


def require_redis() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must run the Redis tests, but TEST_REDIS_URL is not set")
        pytest.skip(REDIS_SKIP_REASON)
    return url


async def forget_redis_keys(redis_url: str, bot_token: str) -> None:
    """Remove what a bot (by its id; every key is namespaced by it) left in Redis."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        pattern = f"hailuo-bridge:{bot_token.split(':')[0]}:*"
        keys = [key async for key in redis.scan_iter(pattern)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    async with scratch_postgres_database() as url:
        yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await ensure_schema(db, auto_migrate=True)
    yield db
    await db.close()


@pytest.fixture
async def agent() -> AsyncIterator[MiniMaxAgentStandIn]:
    """The MiniMax Agent stand-in (API and stream hosts on ports of their own)."""
    standin = MiniMaxAgentStandIn()
    await standin.start()
    yield standin
    await standin.stop()


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramStandIn]:
    standin = TelegramStandIn("123456:TEST-bot-token-secret")
    await standin.start()
    yield standin
    await standin.stop()
