"""The terminal commands, run as a user runs them: a real process against the stand-in."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.hailuo import AuthState
from tests.conftest import free_port, make_auth
from tests.standins.hailuo import Fault, HailuoStandIn
from tests.standins.telegram import TelegramStandIn


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def cli_env(workdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{workdir / 'data' / 'bot.sqlite3'}",
            "UPSTREAM": "hailuo",
            **extra,
        }
    )
    return env


_SETTINGS = {
    "TELEGRAM_API_URL",
    "BOT_TOKEN",
    "ADMIN_IDS",
    "DATABASE_URL",
    "HAILUO_BASE_URL",
    "LOG_LEVEL",
    "AUTO_MIGRATE",
    "LOGIN_PROFILE_DIR",
    "LOGIN_TIMEOUT",
    "REDIS_URL",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "WEB_PORT",
    "INSTANCE_ID",
    "UPSTREAM",
    "MINIMAX_REGION",
    "MINIMAX_AGENT_URL",
    "MINIMAX_AGENT_STREAM_URL",
    "MINIMAX_MODEL",
    "SHOW_REASONING",
    "MAX_ANSWER_CHARS",
}


async def run_cli(
    *args: str, cwd: Path, env: dict[str, str], stdin: str = "", program: list[str] | None = None
) -> Result:
    process = await asyncio.create_subprocess_exec(
        *(program or [sys.executable, "-m", "bot"]),
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await process.communicate(stdin.encode())
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def write_auth(path: Path, auth: AuthState) -> Path:
    path.write_text(auth.to_json())
    return path


async def test_run_without_bot_token_says_so(workdir: Path) -> None:
    result = await run_cli(cwd=workdir, env=cli_env(workdir))
    assert result.code == 2
    assert "BOT_TOKEN is not set" in result.err
    assert "Traceback" not in result.err


async def test_unreachable_redis_is_said_without_its_password(workdir: Path) -> None:
    redis_url = f"redis://:redis-password-42@127.0.0.1:{free_port()}/0"
    result = await run_cli(
        cwd=workdir, env=cli_env(workdir, BOT_TOKEN="123:abc", REDIS_URL=redis_url)
    )
    assert result.code == 2
    assert "cannot reach Redis at REDIS_URL" in result.err
    assert "redis-password-42" not in result.err
    assert "Traceback" not in result.err


async def test_bad_setting_is_named_without_a_traceback(workdir: Path) -> None:
    env = cli_env(workdir, BOT_TOKEN="123:abc", ADMIN_IDS="12,bob", LOG_LEVEL="chatty")
    result = await run_cli(cwd=workdir, env=env)
    assert result.code == 2
    assert "ADMIN_IDS" in result.err
    assert "LOG_LEVEL" in result.err
    assert "Traceback" not in result.err


async def test_settings_come_from_dotenv(workdir: Path) -> None:
    (workdir / ".env").write_text("BOT_TOKEN=not-a-token\n")
    result = await run_cli(cwd=workdir, env=cli_env(workdir))
    assert result.code == 2
    assert "BOT_TOKEN is malformed" in result.err
    assert "not-a-token" not in result.err


async def test_console_script_is_the_same_program(workdir: Path) -> None:
    script = shutil.which("hailuo-bridge", path=str(Path(sys.executable).parent))
    assert script is not None, "pip install -e . should have installed the console script"
    result = await run_cli(cwd=workdir, env=cli_env(workdir), program=[script])
    assert result.code == 2
    assert "BOT_TOKEN is not set" in result.err


async def test_ask_streams_with_an_auth_file(
    workdir: Path, hailuo: HailuoStandIn, auth: AuthState
) -> None:
    env = cli_env(workdir, HAILUO_BASE_URL=hailuo.base_url)
    auth_file = write_auth(workdir / "auth.json", auth)
    result = await run_cli("ask", "Hello", "--auth", str(auth_file), cwd=workdir, env=env)
    assert result.code == 0, result.err
    assert result.out == "You said: Hello (message 1 in this conversation)\n"
    assert "[Chat about Hello]" in result.err
    assert not (workdir / "data").exists(), "--auth alone needs no database"


async def test_ask_without_any_login_explains(workdir: Path, hailuo: HailuoStandIn) -> None:
    env = cli_env(workdir, HAILUO_BASE_URL=hailuo.base_url)
    result = await run_cli("ask", "Hello", cwd=workdir, env=env)
    assert result.code == 3
    assert "no hailuo login is stored" in result.err
    assert "auth import" in result.err


async def test_imported_login_is_used_shown_and_exported(
    workdir: Path, hailuo: HailuoStandIn, auth: AuthState
) -> None:
    env = cli_env(workdir, HAILUO_BASE_URL=hailuo.base_url)
    imported = await run_cli("auth", "import", "-", cwd=workdir, env=env, stdin=auth.to_json())
    assert imported.code == 0, imported.err
    assert auth.fingerprint in imported.out

    shown = await run_cli("auth", "show", cwd=workdir, env=env)
    assert "never yet" in shown.out
    asked = await run_cli("ask", "Hi", "--continue", cwd=workdir, env=env)
    assert asked.out.startswith("You said: Hi (message 1")
    again = await run_cli("ask", "More", "--continue", cwd=workdir, env=env)
    assert again.out.startswith("You said: More (message 2"), "--continue keeps the conversation"
    fresh = await run_cli("ask", "New", cwd=workdir, env=env)
    assert fresh.out.startswith("You said: New (message 1")

    shown = await run_cli("auth", "show", cwd=workdir, env=env)
    assert shown.code == 0
    assert auth.fingerprint in shown.out
    assert "never yet" not in shown.out
    for secret in (auth.token, "cookie-secret-value"):
        assert secret not in shown.out + shown.err + asked.err

    exported = await run_cli("auth", "export", cwd=workdir, env=env)
    assert AuthState.from_json(exported.out) == auth


async def test_rejected_login_is_marked_and_explained(
    workdir: Path, hailuo: HailuoStandIn, auth: AuthState
) -> None:
    env = cli_env(workdir, HAILUO_BASE_URL=hailuo.base_url)
    await run_cli("auth", "import", str(write_auth(workdir / "a.json", auth)), cwd=workdir, env=env)
    hailuo.fail_next(Fault.UNAUTHORIZED)
    result = await run_cli("ask", "Hi", cwd=workdir, env=env)
    assert result.code == 3
    assert "log in again" in result.err
    assert auth.token not in result.err
    shown = await run_cli("auth", "show", cwd=workdir, env=env)
    assert "REJECTED" in shown.out


async def test_upstream_outage_is_a_clear_failure(
    workdir: Path, hailuo: HailuoStandIn, auth: AuthState
) -> None:
    env = cli_env(workdir, HAILUO_BASE_URL=hailuo.base_url)
    hailuo.fail_next(Fault.SERVER_ERROR)
    auth_file = write_auth(workdir / "auth.json", auth)
    result = await run_cli("ask", "Hi", "--auth", str(auth_file), cwd=workdir, env=env)
    assert result.code == 1
    assert "try again later" in result.err
    assert "Traceback" not in result.err


async def test_bad_auth_file_is_refused_clearly(workdir: Path) -> None:
    bad = workdir / "auth.json"
    bad.write_text(json.dumps({"token": "x", "timestamp": 1}))
    result = await run_cli("auth", "import", str(bad), cwd=workdir, env=cli_env(workdir))
    assert result.code == 2
    assert "path_and_query" in result.err


async def test_db_commands(workdir: Path) -> None:
    env = cli_env(workdir)
    before = await run_cli("db", "current", cwd=workdir, env=env)
    assert "revision: empty" in before.out
    upgraded = await run_cli("db", "upgrade", cwd=workdir, env=env)
    assert upgraded.code == 0, upgraded.err
    after = await run_cli("db", "current", cwd=workdir, env=env)
    assert "up to date" in after.out


async def test_terminal_commands_never_print_the_token_in_errors(
    workdir: Path, hailuo: HailuoStandIn
) -> None:
    secret_auth = make_auth(token="super-secret-token-value")
    env = cli_env(workdir, HAILUO_BASE_URL=hailuo.base_url, LOG_LEVEL="DEBUG")
    auth_file = write_auth(workdir / "auth.json", secret_auth)
    result = await run_cli(
        "--log-level", "DEBUG", "ask", "Hi", "--auth", str(auth_file), cwd=workdir, env=env
    )
    assert result.code == 3
    assert "super-secret-token-value" not in result.out + result.err


async def test_run_with_a_token_telegram_rejects_says_so(
    workdir: Path, telegram: TelegramStandIn
) -> None:
    env = cli_env(workdir, BOT_TOKEN="999:wrong-token", TELEGRAM_API_URL=telegram.base_url)
    result = await run_cli(cwd=workdir, env=env)
    assert result.code == 2
    assert "BOT_TOKEN was rejected by Telegram" in result.err
    assert "wrong-token" not in result.err
    assert "Traceback" not in result.err


async def test_the_bot_process_answers_and_stops_gracefully_on_sigterm(
    workdir: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn, auth: AuthState
) -> None:
    """`python -m bot` for real: polls, streams an answer, and on SIGTERM closes it properly."""
    env = cli_env(
        workdir,
        BOT_TOKEN=telegram.token,
        TELEGRAM_API_URL=telegram.base_url,
        HAILUO_BASE_URL=hailuo.base_url,
        SHUTDOWN_GRACE="0.5",
    )
    await run_cli("auth", "import", "-", cwd=workdir, env=env, stdin=auth.to_json())
    telegram.add_private_chat(42, "Alice")
    hailuo.answer_next("Short answer.", "long " * 1000)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=workdir, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await telegram.send_text(42, 42, "first")
        await telegram.wait_for(lambda: telegram.bot_messages(42), what="the first answer")
        hailuo.chunk_count, hailuo.chunk_delay = 500, 0.1
        await telegram.send_text(42, 42, "second")
        await telegram.wait_for(
            lambda: any("long" in frame for frame in telegram.draft_frames(42)), what="streaming"
        )
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            _, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    texts = [m.text for m in telegram.bot_messages(42)]
    assert texts[0] == "Short answer."
    assert texts[1].startswith("long long")
    assert texts[1].endswith("Interrupted by a restart — please send your question again.")
    assert telegram.token not in err.decode()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed")
async def test_terminal_login_stores_the_browser_login(
    workdir: Path, hailuo: HailuoStandIn
) -> None:
    hailuo.login_after = 1.0
    env = cli_env(
        workdir,
        HAILUO_BASE_URL=hailuo.base_url,
        LOGIN_PROFILE_DIR=str(workdir / "profile"),
        LOGIN_TIMEOUT="60",
    )
    result = await run_cli("login", cwd=workdir, env=env)
    assert result.code == 0, result.err
    assert "starting the browser" in result.err
    shown = await run_cli("auth", "show", cwd=workdir, env=env)
    assert "from terminal" in shown.out
    asked = await run_cli("ask", "hi", cwd=workdir, env=env)
    assert asked.out.startswith("You said: hi")
    assert hailuo.requests[-1].headers["token"] == hailuo.login_token
