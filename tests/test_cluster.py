"""Several instances in webhook mode on PostgreSQL and Redis, behind a load balancer.

The Bot API stand-in plays Telegram and the load balancer: it posts each update, in order, to
the next instance. The tests that need PostgreSQL or Redis say so by name and marker; the webhook
secret and polling health tests need neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from redis.asyncio import Redis
from sqlalchemy import make_url, update

from bot.app import BotApp
from bot.cluster import Cluster
from bot.cluster.pacing import RedisPacingBudget
from bot.cluster.presence import BEAT_SECONDS
from bot.config import Settings
from bot.hailuo.login import BrowserLogin, LoginOptions
from bot.services.login_runner import LoginBusy, LoginRunner
from bot.services.logins import LoginService
from bot.services.queue import Ticket
from bot.storage.answers import AnswerStore
from bot.storage.conversations import ConversationKey
from bot.storage.database import Database
from bot.storage.migrations import ensure_schema
from bot.storage.models import AnswerRow, AnswerStatus, utcnow
from bot.telegram.pacer import PacingLimits
from tests.bridge_env import ADMIN, running_bridge, store_login
from tests.conftest import (
    forget_redis_keys,
    free_port,
    make_auth,
    require_redis,
    scratch_postgres_database,
    sqlite_url,
)
from tests.standins.hailuo import HailuoStandIn
from tests.standins.tcp_proxy import CuttableProxy
from tests.standins.telegram import TelegramStandIn

PUBLIC_URL = "https://bot.example.org/telegram/webhook"
SECRET = "webhook-secret-" + "x" * 16
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def own_telegram() -> AsyncIterator[TelegramStandIn]:
    """A bot of its own per test: Redis keys are namespaced by the bot id, so tests never meet."""
    standin = TelegramStandIn(f"{secrets.randbelow(10**9) + 10**9}:TEST-cluster-token")
    await standin.start()
    yield standin
    await standin.stop()


@pytest.fixture
async def shared_state(hailuo: HailuoStandIn) -> AsyncIterator[tuple[str, str]]:
    """A scratch PostgreSQL database holding a login, and the Redis server (both required)."""
    redis_url = require_redis()
    async with scratch_postgres_database() as database_url:
        auth = make_auth()
        hailuo.valid_tokens.add(auth.token)
        await store_login(database_url, auth)
        yield database_url, redis_url


@contextlib.asynccontextmanager
async def instance(
    tmp_path: Path,
    telegram: TelegramStandIn,
    hailuo: HailuoStandIn,
    database_url: str,
    instance_id: str,
    **settings: Any,
) -> AsyncIterator[BotApp]:
    """One bot instance in this process, serving the webhook on a free port."""
    defaults: dict[str, Any] = {
        "upstream": "hailuo",
        "shutdown_grace": 5.0,
        "login_profile_dir": tmp_path / f"profile-{instance_id}",
    }
    config = Settings(
        bot_token=telegram.token,
        database_url=database_url,
        telegram_api_url=telegram.base_url,
        hailuo_base_url=hailuo.base_url,
        webhook_url=PUBLIC_URL,
        webhook_secret=SECRET,
        web_host="127.0.0.1",
        web_port=free_port(),
        instance_id=instance_id,
        **{**defaults, **settings},
    )
    app = await BotApp.create(config)
    task = asyncio.create_task(app.serve(handle_signals=False))
    try:
        await telegram.wait_for(
            lambda: task.done() or (app.web and app.web.port), what="the web server"
        )
        if task.done():
            task.result()  # it failed to start: show why
        telegram.backends.append(f"http://127.0.0.1:{config.web_port}")
        yield app
    finally:
        with contextlib.suppress(ValueError):
            telegram.backends.remove(f"http://127.0.0.1:{config.web_port}")
        await app.stop()
        async with asyncio.timeout(60):
            await task
        await app.close()


def instance_env(
    workdir: Path,
    telegram: TelegramStandIn,
    hailuo: HailuoStandIn,
    database_url: str,
    redis_url: str,
    instance_id: str,
    port: int,
) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        "PYTHONPATH": str(ROOT),
        "BOT_TOKEN": telegram.token,
        "UPSTREAM": "hailuo",
        "DATABASE_URL": database_url,
        "TELEGRAM_API_URL": telegram.base_url,
        "HAILUO_BASE_URL": hailuo.base_url,
        "REDIS_URL": redis_url,
        "WEBHOOK_URL": PUBLIC_URL,
        "WEBHOOK_SECRET": SECRET,
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
        "INSTANCE_ID": instance_id,
        "LOGIN_PROFILE_DIR": str(workdir / "profile"),
    }


async def healthy(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def wait_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(120):
        while not await healthy(url):
            assert process.returncode is None, "the instance exited during start-up"
            await asyncio.sleep(0.1)


def final_texts(telegram: TelegramStandIn, chat_id: int) -> list[str]:
    """What the bot wrote in the chat, queue notices left out."""
    return [m.text for m in telegram.bot_messages(chat_id) if not m.text.startswith("⏳")]


# --- the webhook secret (no PostgreSQL or Redis needed) ------------------------------------------


async def test_webhook_refuses_requests_without_the_secret(
    tmp_path: Path, own_telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    telegram = own_telegram
    database_url = sqlite_url(tmp_path)
    auth = make_auth()
    hailuo.valid_tokens.add(auth.token)
    await store_login(database_url, auth)
    telegram.add_private_chat(42, "Alice")
    async with instance(tmp_path, telegram, hailuo, database_url, "solo") as app:
        await telegram.wait_for(lambda: telegram.webhook, what="setWebhook")
        assert telegram.webhook == {"url": PUBLIC_URL, "secret": SECRET}
        assert app.web is not None
        update = {
            "update_id": 999,
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": 42, "type": "private", "first_name": "Alice"},
                "from": {"id": 42, "is_bot": False, "first_name": "Alice"},
                "text": "Hello from a forger",
            },
        }
        url = f"http://127.0.0.1:{app.web.port}/telegram/webhook"
        async with aiohttp.ClientSession() as session:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong-" + SECRET}):
                async with session.post(url, json=update, headers=headers) as response:
                    assert response.status == 401
            # A secret that is not even ASCII is refused too (not a 500 from compare_digest).
            assert app.web.port is not None
            assert await raw_post_status(app.web.port, "/telegram/webhook", "sécret-ü") == 401
            # The same update with the secret is served: the refusal was about the secret.
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            async with session.post(url, json=update, headers=headers) as response:
                assert response.status == 200
        await telegram.wait_for(lambda: final_texts(telegram, 42), what="the genuine answer")
        await telegram.wait_for(lambda: not app.bridge.service.running, what="the answer saved")
        assert len(hailuo.requests) == 1
        assert hailuo.requests[0].fields["msgContent"] == "Hello from a forger"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{app.web.port}/healthz") as response:
                health = await response.json()
            async with session.get(f"http://127.0.0.1:{app.web.port}/metrics") as response:
                metrics = await response.text()
    assert health["status"] == "ok"
    assert health["login"] == "valid"
    assert 'hailuo_bridge_answers_total{status="done"} 1.0' in metrics
    assert "hailuo_bridge_streams_in_flight 0.0" in metrics
    assert 'hailuo_bridge_telegram_calls_total{method="sendMessage",result="ok"}' in metrics
    assert telegram.token not in metrics


# --- two instances on PostgreSQL and Redis -------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_instances_postgres_redis_burst_of_100_chats(
    tmp_path: Path,
    own_telegram: TelegramStandIn,
    hailuo: HailuoStandIn,
    shared_state: tuple[str, str],
) -> None:
    """Each chat answered once, the two instances sharing Telegram's limits: zero 429s."""
    telegram = own_telegram
    database_url, redis_url = shared_state
    hailuo.chunk_count, hailuo.chunk_delay = 4, 0.2
    chats = [5_000 + n for n in range(100)]
    for chat in chats:
        telegram.add_private_chat(chat, f"User {chat}")
    try:
        async with (
            instance(tmp_path, telegram, hailuo, database_url, "a", redis_url=redis_url) as a,
            instance(tmp_path, telegram, hailuo, database_url, "b", redis_url=redis_url) as b,
        ):
            await asyncio.gather(
                *(telegram.send_text(chat, chat, f"question {chat}") for chat in chats)
            )
            await telegram.wait_for(
                lambda: all(final_texts(telegram, chat) for chat in chats),
                timeout=180,
                what="an answer in every chat",
            )
            await telegram.wait_for(
                lambda: not a.bridge.service.running and not b.bridge.service.running,
                what="all answers saved",
            )
            served = (a.bridge.service.stats.started, b.bridge.service.stats.started)
            counts = await a.bridge.answers.counts_by_status()
    finally:
        await forget_redis_keys(redis_url, telegram.token)
    assert telegram.rate_limited == []
    assert all(len(final_texts(telegram, chat)) == 1 for chat in chats)  # never twice
    assert len(hailuo.requests) == 100
    assert counts[AnswerStatus.DONE] == 100
    assert min(served) > 0, served  # the load balancer really split the work
    assert sum(served) == 100


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_instances_postgres_redis_keep_one_chat_in_order(
    tmp_path: Path,
    own_telegram: TelegramStandIn,
    hailuo: HailuoStandIn,
    shared_state: tuple[str, str],
) -> None:
    """Questions of one chat, delivered to both instances in turn, are answered one at a time,
    in order, in one Hailuo conversation; /stop reaches the instance that streams."""
    telegram = own_telegram
    database_url, redis_url = shared_state
    hailuo.answer_for = lambda question: f"Answer to {question}."
    hailuo.chunk_count, hailuo.chunk_delay = 5, 0.1
    telegram.add_private_chat(42, "Alice")
    try:
        async with (
            instance(tmp_path, telegram, hailuo, database_url, "a", redis_url=redis_url),
            instance(tmp_path, telegram, hailuo, database_url, "b", redis_url=redis_url),
        ):
            for n in range(1, 5):
                await telegram.send_text(42, 42, f"q{n}")
            await telegram.wait_for(
                lambda: len(final_texts(telegram, 42)) >= 4, timeout=120, what="four answers"
            )
            delivered_to = {backend for _, backend, status in telegram.deliveries if status == 200}
            # A long answer, stopped with /stop sent to whichever instance gets it.
            hailuo.answer_for = None
            hailuo.chunk_count, hailuo.chunk_delay = 400, 0.1
            await telegram.send_text(42, 42, "tell me everything")
            await telegram.wait_for(lambda: len(hailuo.requests) == 5, what="the long answer")
            await telegram.wait_for(lambda: len(hailuo.requests[4].chunks) >= 3, what="streaming")
            await telegram.send_text(42, 42, "/stop")
            await telegram.wait_for(
                lambda: len(final_texts(telegram, 42)) >= 5, timeout=60, what="the stopped answer"
            )
            stopped_upstream = await hailuo.wait_outcome(4)
    finally:
        await forget_redis_keys(redis_url, telegram.token)
    texts = final_texts(telegram, 42)
    assert texts[:4] == [f"Answer to q{n}." for n in range(1, 5)]
    assert len(delivered_to) == 2
    upstream = hailuo.requests
    assert [request.fields["msgContent"] for request in upstream[:4]] == ["q1", "q2", "q3", "q4"]
    first_chat = upstream[1].fields["chatID"]
    assert first_chat and all(request.fields["chatID"] == first_chat for request in upstream[1:])
    for before, after in itertools.pairwise(upstream[:4]):
        assert after.chunks[0][0] >= before.chunks[-1][0]  # never two answers at once
    assert stopped_upstream == "disconnected"
    assert len(upstream[4].chunks) < 400
    assert texts[4].endswith("⏹ Stopped.")


@pytest.mark.postgres
@pytest.mark.redis
async def test_killed_instance_postgres_redis_other_serves_and_restart_marks_answer(
    tmp_path: Path,
    own_telegram: TelegramStandIn,
    hailuo: HailuoStandIn,
    shared_state: tuple[str, str],
) -> None:
    telegram = own_telegram
    database_url, redis_url = shared_state
    telegram.add_private_chat(42, "Alice")
    telegram.add_private_chat(43, "Bob")
    workdir = tmp_path / "a"
    workdir.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = instance_env(workdir, telegram, hailuo, database_url, redis_url, "a", port)

    async def start_a() -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=workdir, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await wait_healthy(url, process)
        return process

    process = await start_a()
    try:
        async with instance(
            tmp_path, telegram, hailuo, database_url, "b", redis_url=redis_url
        ) as b:
            # Only instance a gets the long question.
            telegram.backends[:] = [url]
            hailuo.chunk_count, hailuo.chunk_delay = 400, 0.1
            await telegram.send_text(42, 42, "a long story, please")
            await telegram.wait_for(lambda: telegram.draft_frames(42), what="a streaming")
            process.send_signal(signal.SIGKILL)
            await process.wait()
            telegram.backends[:] = [url, f"http://127.0.0.1:{b.settings.web_port}"]

            # The other instance keeps serving: another chat at once...
            hailuo.chunk_count, hailuo.chunk_delay = 3, 0.05
            await telegram.send_text(43, 43, "are you there?")
            await telegram.wait_for(lambda: final_texts(telegram, 43), what="b answering Bob")
            # ...and the same chat once a's place in the queue has been cleared (its heartbeat
            # expires in 10 s; a Telegram call it had in flight stops counting after 30 s).
            await telegram.send_text(42, 42, "hello again")
            await telegram.wait_for(
                lambda: final_texts(telegram, 42), timeout=120, what="b answering Alice"
            )
            answers = AnswerStore(b.database)
            interrupted = [r for r in await answers.unfinished() if r.instance_id == "a"]
            assert len(interrupted) == 1  # b leaves a's answer alone: a may still be alive

            process = await start_a()  # a comes back and marks its own answer
            await telegram.wait_for(
                lambda: any("restart" in text for text in final_texts(telegram, 42)),
                timeout=60,
                what="the interrupted answer marked",
            )
            record = await answers.get(interrupted[0].id)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):
                _, err = await process.communicate()
            assert telegram.token not in err.decode()
        await forget_redis_keys(redis_url, telegram.token)
    assert record is not None
    assert record.status is AnswerStatus.INTERRUPTED
    assert telegram.rate_limited == []


@pytest.mark.redis
async def test_login_runs_once_across_instances_redis(tmp_path: Path) -> None:
    """While one instance's browser runs, /login elsewhere is refused before any browser starts,
    and /login cancel there reaches the instance running it."""
    redis_url = require_redis()
    namespace = f"hailuo-bridge:{secrets.randbelow(10**9)}:"
    clusters = [
        await Cluster.connect(redis_url, namespace, name, PacingLimits(), login_timeout=60)
        for name in ("a", "b")
    ]
    for cluster in clusters:
        await cluster.start()
    requests: list[tuple[str, int]] = []

    async def on_request(action: str, chat_id: int) -> None:
        requests.append((action, chat_id))

    clusters[0].on_login_request(on_request)
    database = Database(sqlite_url(tmp_path))
    await ensure_schema(database, auto_migrate=True)
    options = LoginOptions(base_url="http://127.0.0.1:9", profile_dir=tmp_path / "profile")
    runner_b = LoginRunner(
        lambda: BrowserLogin(options), LoginService(database), coordination=clusters[1]
    )
    try:
        assert await clusters[0].claim_login()  # instance a's browser is running
        events: list[object] = []

        async def progress(event: object) -> None:
            events.append(event)

        with pytest.raises(LoginBusy):
            await runner_b.run(progress, obtained_by=1, source="test")
        assert events == []  # no browser was started for the refused login
        assert not (tmp_path / "profile").exists()
        assert await runner_b.cancel_anywhere()
        assert await runner_b.screenshot_elsewhere(77)
        async with asyncio.timeout(30):
            while len(requests) < 2:
                await asyncio.sleep(0.02)
        assert requests == [("cancel", 0), ("screenshot", 77)]
        await clusters[0].release_login()
        assert not await runner_b.cancel_anywhere()  # nothing runs anywhere now
    finally:
        for cluster in clusters:
            await cluster.close()
        await database.close()


@pytest.mark.redis
async def test_answers_of_instances_gone_for_good_are_closed_redis(
    tmp_path: Path, own_telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    """An instance that never comes back (scaled down) cannot mark its answers: after ten
    minutes, a running instance does — but never those of an instance that is running."""
    telegram = own_telegram
    redis_url = require_redis()
    database_url = sqlite_url(tmp_path)
    await store_login(database_url, make_auth())
    telegram.add_private_chat(42, "Alice")
    telegram.add_private_chat(43, "Bob")
    database = Database(database_url)
    answers = AnswerStore(database)
    started: dict[str, int] = {}
    for chat, owner in ((42, "gone"), (43, "busy")):
        _, started[owner] = await answers.begin(
            ConversationKey(chat),
            chat_id=chat,
            thread_id=0,
            user_id=chat,
            user_message_id=1,
            instance_id=owner,
        )
    async with database.writing() as session:  # both began an hour ago
        await session.execute(update(AnswerRow).values(started_at=utcnow() - timedelta(hours=1)))
    await database.close()
    namespace = f"hailuo-bridge:{telegram.token.split(':')[0]}:"
    busy = await Cluster.connect(redis_url, namespace, "busy", PacingLimits(), login_timeout=60)
    await busy.start()  # instance "busy" is running (slowly)
    try:
        async with instance(
            tmp_path,
            telegram,
            hailuo,
            database_url,
            "a",
            redis_url=redis_url,
            admin_ids=frozenset({ADMIN}),
        ) as app:
            await telegram.wait_for(
                lambda: final_texts(telegram, 42), what="the abandoned answer closed"
            )
            gone = await app.bridge.answers.get(started["gone"])
            kept = await app.bridge.answers.get(started["busy"])
            telegram.add_private_chat(ADMIN, "Admin")
            await telegram.send_text(ADMIN, ADMIN, "/status")
            status = await telegram.wait_for(lambda: final_texts(telegram, ADMIN), what="/status")
    finally:
        await busy.close()
        await forget_redis_keys(redis_url, telegram.token)
    assert final_texts(telegram, 42) == [
        "⚠️ Interrupted by a restart — please send your question again."
    ]
    assert final_texts(telegram, 43) == []
    assert "Instance: a (one of several" in status[0]
    assert "answers in flight on all instances: 1" in status[0]  # the busy instance's
    assert gone is not None and gone.status is AnswerStatus.INTERRUPTED
    assert kept is not None and kept.status is AnswerStatus.STREAMING


@pytest.mark.redis
async def test_shared_queue_takes_turns_across_processes_redis() -> None:
    """Places taken by two processes are served one at a time in message order; the place of
    a process that died is cleared instead of blocking the conversation."""
    redis_url = require_redis()
    namespace = f"hailuo-bridge:{secrets.randbelow(10**9)}:"
    a, b, dead = [
        await Cluster.connect(redis_url, namespace, name, PacingLimits(), login_timeout=60)
        for name in ("a", "b", "dead")
    ]
    for cluster in (a, b, dead):
        await cluster.start()
    served: list[int] = []
    holding = 0

    async def answer(cluster: Cluster, ticket: Ticket) -> None:
        nonlocal holding
        async with cluster.queue.turn(ticket):
            holding += 1
            assert holding == 1, "two answers at once"
            await asyncio.sleep(0.05)
            served.append(ticket.order)
            holding -= 1

    try:
        # Served by message id, whichever process took the place and in whatever order.
        first, second = await asyncio.gather(a.queue.join("c", 3), a.queue.join("c", 1))
        tickets = [(a, first), (a, second), (b, await b.queue.join("c", 2))]
        await asyncio.gather(*(answer(cluster, ticket) for cluster, ticket in tickets))
        assert served == [1, 2, 3]

        await dead.queue.join("d", 1)  # a place, and then its process dies
        await dead.close()
        async with asyncio.timeout(30):
            await answer(a, await a.queue.join("d", 2))
        assert served[-1] == 2
    finally:
        for cluster in (a, b):
            await cluster.close()


async def test_polling_instance_serves_health_and_metrics(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    """/healthz and /metrics in polling mode too; no login stored: serving, but "degraded"."""
    port = free_port()
    async with (
        running_bridge(
            tmp_path, telegram, hailuo, login=False, web_host="127.0.0.1", web_port=port
        ),
        aiohttp.ClientSession() as session,
    ):
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
            health = await response.json()
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            metrics = await response.text()
        async with session.post(f"http://127.0.0.1:{port}/telegram/webhook") as response:
            assert response.status in (404, 405)  # no webhook in polling mode
    assert health["status"] == "degraded"
    assert health["login"] == "missing"
    assert health["database"] == "ok"
    assert "hailuo_bridge_login_valid 0.0" in metrics


@pytest.mark.postgres
@pytest.mark.redis
async def test_stopping_instance_drains_postgres_redis(
    tmp_path: Path,
    own_telegram: TelegramStandIn,
    hailuo: HailuoStandIn,
    shared_state: tuple[str, str],
) -> None:
    """A stopping instance says "draining" to the load balancer and turns updates away (503, so
    Telegram delivers them again — to the other instance) while its answers finish."""
    telegram = own_telegram
    database_url, redis_url = shared_state
    telegram.add_private_chat(42, "Alice")
    telegram.add_private_chat(43, "Bob")
    try:
        async with (
            instance(
                tmp_path, telegram, hailuo, database_url, "a", redis_url=redis_url,
                shutdown_grace=10.0,
            ) as a,
            instance(tmp_path, telegram, hailuo, database_url, "b", redis_url=redis_url) as b,
        ):  # fmt: skip
            assert a.web is not None and b.web is not None
            a_url, b_url = telegram.backends
            telegram.backends[:] = [a_url]
            hailuo.chunk_count, hailuo.chunk_delay = 400, 0.05
            await telegram.send_text(42, 42, "a long story, please")
            await telegram.wait_for(lambda: telegram.draft_frames(42), what="a streaming")
            await a.stop()
            await telegram.wait_for(lambda: a.web and a.web.draining, what="a draining")
            async with aiohttp.ClientSession() as session, session.get(f"{a_url}/healthz") as got:
                assert got.status == 503
                assert (await got.json())["status"] == "draining"
            mark = len(telegram.deliveries)
            await telegram.send_text(43, 43, "are you there?")
            await telegram.wait_for(
                lambda: (a_url, 503) in [(d[1], d[2]) for d in telegram.deliveries[mark:]],
                what="a turning the update away",
            )
            hailuo.chunk_count = 3  # short answers from now on (a's too)
            telegram.backends[:] = [a_url, b_url]  # Telegram tries again; b is behind the LB too
            await telegram.wait_for(lambda: final_texts(telegram, 43), what="b answering Bob")
            await telegram.wait_for(
                lambda: len(final_texts(telegram, 42)) == 1, what="a's answer delivered"
            )
    finally:
        await forget_redis_keys(redis_url, telegram.token)
    tries = [(backend, status) for _, backend, status in telegram.deliveries[mark:]]
    assert tries[-1] == (b_url, 200)
    assert (a_url, 200) not in tries
    assert b.bridge.service.stats.started == 1
    assert final_texts(telegram, 42)[0]  # a's answer was delivered before it stopped


async def raw_post_status(port: int, path: str, secret: str) -> int:
    """POST with a secret header sent as raw UTF-8 bytes (HTTP clients refuse to)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b"{}"
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Telegram-Bot-Api-Secret-Token: {secret}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return int(status_line.split()[1])


@pytest.mark.redis
async def test_a_waiting_question_survives_a_redis_outage_redis() -> None:
    """Redis goes away while a question waits for its turn: it waits on, and is answered when
    Redis is back, instead of being dropped."""
    redis_url = require_redis()
    target = urlsplit(redis_url)
    proxy = CuttableProxy(target.port or 6379)
    await proxy.start()
    namespace = f"hailuo-bridge:{secrets.randbelow(10**9)}:"
    direct = await Cluster.connect(redis_url, namespace, "a", PacingLimits(), login_timeout=60)
    flaky = await Cluster.connect(
        f"redis://127.0.0.1:{proxy.port}{target.path}", namespace, "b", PacingLimits(), 60
    )
    for cluster in (direct, flaky):
        await cluster.start()
    try:
        first = await direct.queue.join("c", 1)
        second = await flaky.queue.join("c", 2)
        turns: list[int] = []

        async def wait_turn() -> None:
            async with flaky.queue.turn(second):
                turns.append(second.order)

        async with direct.queue.turn(first):
            waiting = asyncio.create_task(wait_turn())
            await asyncio.sleep(0.3)
            proxy.cut()  # the waiting instance loses Redis...
            await asyncio.sleep(1.5)
        proxy.open = True  # ...and gets it back after the turn was passed on
        async with asyncio.timeout(30):
            await waiting
        assert turns == [2]
    finally:
        for cluster in (direct, flaky):
            await cluster.close()
        await proxy.stop()


@pytest.mark.postgres
@pytest.mark.redis
async def test_an_instance_cut_off_from_redis_gives_up_before_another_takes_over_postgres_redis(
    tmp_path: Path,
    own_telegram: TelegramStandIn,
    hailuo: HailuoStandIn,
    shared_state: tuple[str, str],
) -> None:
    """Instance a streams a long answer and loses Redis for longer than its heartbeat: the
    others will take its turn for dead. It gives its answer up (marked interrupted) before
    that can happen, so b's answer to the next question never streams beside it."""
    telegram = own_telegram
    database_url, redis_url = shared_state
    target = urlsplit(redis_url)
    proxy = CuttableProxy(target.port or 6379)
    await proxy.start()
    flaky_url = f"redis://127.0.0.1:{proxy.port}{target.path}"
    telegram.add_private_chat(42, "Alice")
    hailuo.chunk_count, hailuo.chunk_delay = 300, 0.2  # a minute of answer
    try:
        async with (
            instance(tmp_path, telegram, hailuo, database_url, "a", redis_url=flaky_url) as a,
            instance(tmp_path, telegram, hailuo, database_url, "b", redis_url=redis_url) as b,
        ):
            assert a.web is not None and b.web is not None
            a_url, b_url = (f"http://127.0.0.1:{app.web.port}" for app in (a, b) if app.web)
            telegram.backends[:] = [a_url]
            await telegram.send_text(42, 42, "a long story")
            await telegram.wait_for(lambda: len(hailuo.requests) == 1, what="a asking")
            await telegram.wait_for(lambda: len(hailuo.requests[0].chunks) >= 3, what="streaming")
            proxy.cut()  # a loses Redis; its answer would go on for most of a minute
            await telegram.wait_for(
                lambda: any("interrupted" in t for t in final_texts(telegram, 42)),
                timeout=60,
                what="a giving its answer up",
            )
            assert await hailuo.wait_outcome(0) == "disconnected"
            telegram.backends[:] = [b_url]
            hailuo.chunk_count, hailuo.chunk_delay = 4, 0.05
            await telegram.send_text(42, 42, "still there?")
            await telegram.wait_for(
                lambda: any("still there?" in t for t in final_texts(telegram, 42)),
                timeout=90,
                what="b answering",
            )
    finally:
        await proxy.stop()
        await forget_redis_keys(redis_url, telegram.token)
    first, second = hailuo.requests
    assert first.chunks[-1][0] < second.chunks[0][0], "the two answers never overlapped"


@pytest.mark.postgres
@pytest.mark.redis
async def test_the_question_limit_holds_across_instances_postgres_redis(
    tmp_path: Path,
    own_telegram: TelegramStandIn,
    hailuo: HailuoStandIn,
    shared_state: tuple[str, str],
) -> None:
    """Two instances, a limit of two questions a minute: updates alternate between them, and
    still only two are answered (per process it would have been four)."""
    telegram = own_telegram
    database_url, redis_url = shared_state
    telegram.add_private_chat(42, "Alice")
    settings = {"redis_url": redis_url, "questions_per_minute": 2}
    try:
        async with (
            instance(tmp_path, telegram, hailuo, database_url, "a", **settings),
            instance(tmp_path, telegram, hailuo, database_url, "b", **settings),
        ):
            for text in ("one", "two", "three", "four"):
                await telegram.send_text(42, 42, text)
            await telegram.wait_for(
                lambda: any("faster than I can" in t for t in final_texts(telegram, 42)),
                what="the refusal",
            )
            await telegram.wait_for(
                lambda: sum("You said" in t for t in final_texts(telegram, 42)) == 2,
                what="two answers",
            )
            assert {backend for _, backend, _ in telegram.deliveries} == set(telegram.backends)
    finally:
        await forget_redis_keys(redis_url, telegram.token)
    assert len(hailuo.requests) == 2


@pytest.mark.redis
async def test_shutdown_ends_while_a_redis_call_hangs_redis(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The network to Redis stalls with the heartbeat's call in flight: stopping the instance's
    cluster side still ends, within its deadlines, and says what it gave up on."""
    redis_url = require_redis()
    target = urlsplit(redis_url)
    proxy = CuttableProxy(target.port or 6379)
    await proxy.start()
    namespace = f"hailuo-bridge:{secrets.randbelow(10**9)}:"
    cluster = await Cluster.connect(
        f"redis://127.0.0.1:{proxy.port}{target.path}", namespace, "a", PacingLimits(), 60
    )
    await cluster.start()
    try:
        ticket = await cluster.queue.join("c", 1)
        proxy.frozen = True
        # A Redis call in flight on every path that stops: the heartbeat (every 3 s) and a
        # place given up in the background.
        cluster.queue.discard(ticket)
        await asyncio.sleep(BEAT_SECONDS + 1.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(90):
            await cluster.close()
        assert loop.time() - started < 60
    finally:
        proxy.frozen = False
        await proxy.stop()
        await forget_redis_keys(redis_url, f"{namespace.split(':')[1]}:x")


@pytest.mark.postgres
async def test_health_fails_when_the_postgres_database_is_gone(
    tmp_path: Path, telegram: TelegramStandIn, hailuo: HailuoStandIn
) -> None:
    """/healthz turns 503 when the database cannot be reached, so a load balancer stops
    sending updates to an instance that could not keep them."""
    import asyncpg  # type: ignore[import-untyped]

    port = free_port()
    health_url = f"http://127.0.0.1:{port}/healthz"
    async with (
        scratch_postgres_database() as database_url,
        running_bridge(
            tmp_path, telegram, hailuo, database_url=database_url, web_host="127.0.0.1",
            web_port=port,
        ),
        aiohttp.ClientSession() as session,
    ):  # fmt: skip
        async with session.get(health_url) as response:
            assert response.status == 200
        server = make_url(database_url)
        admin = await asyncpg.connect(
            server.set(drivername="postgresql", database="postgres").render_as_string(
                hide_password=False
            )
        )
        try:
            await admin.execute(f'DROP DATABASE "{server.database}" WITH (FORCE)')
        finally:
            await admin.close()
        async with session.get(health_url) as response:
            assert response.status == 503
            body = await response.json()
    assert body["database"] == "unreachable"
    assert body["status"] == "unavailable"


@pytest.mark.redis
async def test_shared_budget_goes_to_the_longest_waiting_instance_redis() -> None:
    """When the bot-wide budget is contended, a fresh call on one instance steps back for a
    call that has waited longer on another, as one pacer would serve its oldest waiter; a
    contender that stopped asking blocks nobody."""
    redis_url = require_redis()
    namespace = f"hailuo-bridge:{secrets.randbelow(10**9)}:"
    limits = PacingLimits(global_per_second=2, chat_interval=0.01)  # one call per 0.5 s
    redis = Redis.from_url(redis_url)
    a, b, c = (RedisPacingBudget(redis, namespace, name, limits, stale_ms=2000) for name in "abc")
    try:
        assert (await b.take(9, waited=0.0)).granted
        await b.give_back(9)
        refused = await a.take(1, waited=5.0)  # too soon after b's call: a waits, and says so
        assert not refused.granted and refused.global_wait > 0
        await asyncio.sleep(0.6)  # the budget has room again (a asked 0.6 s ago, not stale)
        assert not (await b.take(2, waited=0.0)).granted  # b's fresh call steps back
        assert (await a.take(1, waited=5.6)).granted  # a's older one goes
        await a.give_back(1)

        await asyncio.sleep(0.6)
        assert (await b.take(2, waited=0.6)).granted
        await b.give_back(2)
        assert not (await c.take(3, waited=9.0)).granted  # c asks once, then never again
        await asyncio.sleep(2.1)  # c is stale now
        assert (await b.take(4, waited=0.0)).granted
    finally:
        keys = [key async for key in redis.scan_iter(f"{namespace}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
