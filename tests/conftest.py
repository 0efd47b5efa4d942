"""Fixtures shared by all tests: the Hailuo stand-in and a login it accepts."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator

import pytest

from bot.hailuo import AuthState, HailuoClient, HailuoTimeouts
from tests.standins.hailuo import CHAT_PATH, HailuoStandIn

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
