"""`python -m bench --soak MINUTES`: a chaos soak that must lose nothing.

Two webhook instances (`python -m bot`, their own processes) on PostgreSQL and Redis, both
reached through TCP proxies the soak can cut, behind the Telegram stand-in (which plays the load
balancer and enforces Telegram's limits) and the Hailuo stand-in. Mixed traffic — private chats,
groups, forum topics, long answers, `/stop`, `/new` — while the soak SIGKILLs a random instance
every minute (and starts it again), cuts Redis and PostgreSQL for a few seconds now and then, and
makes the upstream fail now and then. At the end it checks and prints: every question got exactly
one answer, or an explicit note (stopped, interrupted, failed, send again); no answer twice; zero
429s; no conversation queue left in Redis; tasks and database connections back to their level
when idle; no Chromium; the instances' memory growth.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from redis.asyncio import Redis

from bench.run import TOKEN, _check, _process_usage
from bot.i18n import translator
from tests.conftest import forget_redis_keys, free_port, make_auth, scratch_postgres_database
from tests.standins.hailuo import Fault, HailuoStandIn
from tests.standins.tcp_proxy import CuttableProxy
from tests.standins.telegram import Limits, TelegramStandIn

SECRET = "soak-webhook-secret-0123456789"
FAULTS = (Fault.SERVER_ERROR, Fault.DISCONNECT_MID_STREAM, Fault.RATE_LIMITED)
NOTE_KEYS = (
    "note_stopped",
    "note_interrupted",
    "note_restart",
    "error_upstream_down",
    "error_internal",
    "queue_full",
)


@dataclass
class Asked:
    tag: str  # "[Q0001]": every answer starts with its question's tag
    chat_id: int
    message_id: int
    thread_id: int | None


@dataclass
class Incarnation:
    name: str
    process: asyncio.subprocess.Process
    started: float
    rss_at_minute: float | None = None
    rss_last: float = 0.0


@dataclass
class Soak:
    args: argparse.Namespace
    telegram: TelegramStandIn
    hailuo: HailuoStandIn
    env: dict[str, str]
    workdir: Path
    ports: dict[str, int]
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    asked: list[Asked] = field(default_factory=list)
    running: dict[str, Incarnation] = field(default_factory=dict)
    lived: list[Incarnation] = field(default_factory=list)
    kills: int = 0
    exits: int = 0
    cuts: dict[str, int] = field(default_factory=lambda: {"redis": 0, "postgres": 0})

    async def start(self, name: str) -> None:
        env = {**self.env, "INSTANCE_ID": f"soak-{name}", "WEB_PORT": str(self.ports[name])}
        log = (self.workdir / f"{name}-{len(self.lived) + len(self.running)}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", env=env, stdout=log, stderr=log
        )
        self.running[name] = Incarnation(name, process, time.monotonic())

    async def kill(self, name: str) -> None:
        incarnation = self.running.pop(name)
        incarnation.process.send_signal(signal.SIGKILL)
        await incarnation.process.wait()
        self.lived.append(incarnation)
        self.kills += 1

    async def watch_memory(self) -> None:
        while True:
            for incarnation in list(self.running.values()):
                _, rss = _rss_now(incarnation.process.pid)
                incarnation.rss_last = rss or incarnation.rss_last
                if (
                    incarnation.rss_at_minute is None
                    and time.monotonic() - incarnation.started > 60
                ):
                    incarnation.rss_at_minute = rss
            await asyncio.sleep(2)


def _rss_now(pid: int) -> tuple[float, float]:
    """CPU seconds and current (not peak) RSS in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss_kb = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")
        )
    except (OSError, StopIteration):
        return 0.0, 0.0
    return _process_usage(pid)[0], rss_kb / 1024


async def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("TEST_POSTGRES_URL", args.postgres_url)
    workdir = Path(tempfile.mkdtemp(prefix="hailuo-soak-"))
    telegram = TelegramStandIn(TOKEN, Limits())
    hailuo = HailuoStandIn()
    redis_target = urlsplit(args.redis_url)
    redis_proxy = CuttableProxy(redis_target.port or 6379)
    await telegram.start()
    await hailuo.start()
    await redis_proxy.start()
    try:
        async with scratch_postgres_database() as database_url:
            pg = urlsplit(database_url)
            pg_proxy = CuttableProxy(pg.port or 5432)
            await pg_proxy.start()
            try:
                proxied_db = database_url.replace(
                    f"{pg.hostname}:{pg.port}", f"127.0.0.1:{pg_proxy.port}"
                )
                return await _soak(
                    args, workdir, telegram, hailuo, database_url, proxied_db, redis_proxy, pg_proxy
                )
            finally:
                await pg_proxy.stop()
    finally:
        await forget_redis_keys(args.redis_url, TOKEN)
        await redis_proxy.stop()
        await telegram.stop()
        await hailuo.stop()


async def _soak(
    args: argparse.Namespace,
    workdir: Path,
    telegram: TelegramStandIn,
    hailuo: HailuoStandIn,
    database_url: str,
    proxied_db: str,
    redis_proxy: CuttableProxy,
    pg_proxy: CuttableProxy,
) -> dict[str, Any]:
    auth = make_auth(token="soak-token-0123456789")
    hailuo.valid_tokens.add(auth.token)
    hailuo.chunk_delay = 0.15
    hailuo.first_chunk_delay = 0.3
    rng = random.Random(7)

    def answer_for(question: str) -> str:
        tag = question.split("]")[0].split("[")[-1]
        size = rng.choice((200, 400, 800, 1500, 5000))
        words = " ".join(
            rng.choice(("stream", "chaos", "answer", "turn", "lease")) for _ in range(size // 6)
        )
        return f"[{tag}] {words} (end)"

    hailuo.answer_for = answer_for
    hailuo.chunk_chars = 60
    redis_path = urlsplit(args.redis_url).path or "/0"
    env = {
        **os.environ,
        "BOT_TOKEN": TOKEN,
        "UPSTREAM": "hailuo",
        "HAILUO_BASE_URL": hailuo.base_url,
        "TELEGRAM_API_URL": telegram.base_url,
        "DATABASE_URL": proxied_db,
        "REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}{redis_path}",
        "WEBHOOK_URL": "https://soak.example.org/hook",
        "WEBHOOK_SECRET": SECRET,
        "WEB_HOST": "127.0.0.1",
        "QUESTIONS_PER_MINUTE": "1000",
        "CHAT_REQUESTS_PER_MINUTE": "1000",
        "SHUTDOWN_GRACE": "5",
        "LOG_LEVEL": "INFO",
    }
    auth_file = workdir / "auth.json"
    auth_file.write_text(auth.to_json())
    await _check(
        sys.executable, "-m", "bot", "db", "upgrade", env={**env, "DATABASE_URL": database_url}
    )
    await _check(
        sys.executable,
        "-m",
        "bot",
        "auth",
        "import",
        str(auth_file),
        env={**env, "DATABASE_URL": database_url},
    )
    ports = {"a": free_port(), "b": free_port()}
    telegram.backends[:] = [f"http://127.0.0.1:{port}" for port in ports.values()]
    soak = Soak(args, telegram, hailuo, env, workdir, ports)
    chats = _chats(telegram)
    for name in ports:
        await soak.start(name)
    await telegram.wait_for(
        lambda: len(telegram.calls_of("setWebhook")) >= 2, timeout=120, what="both instances"
    )
    idle_tasks = await _tasks(ports)
    memory = asyncio.create_task(soak.watch_memory())
    end = time.monotonic() + args.soak * 60
    print(f"soaking for {args.soak:g} min …", file=sys.stderr)
    chaos = asyncio.create_task(_chaos(soak, redis_proxy, pg_proxy, end))
    try:
        await _traffic(soak, chats, end)
    finally:
        chaos.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await chaos
    redis_proxy.open = pg_proxy.open = True
    for name in ports:
        if name not in soak.running:
            await soak.start(name)
    settled = await _settle(soak)
    _write_details(soak, workdir / "details.txt")
    quiet_tasks = await _tasks(ports)
    connections = await _pg_connections(database_url)
    memory.cancel()
    queues = await _queues_left(soak.args.redis_url)
    for name in list(soak.running):
        incarnation = soak.running.pop(name)
        if incarnation.process.returncode is None:
            incarnation.process.terminate()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await incarnation.process.wait()
        soak.lived.append(incarnation)
    connections_after = await _pg_connections(database_url)
    return _report(soak, settled, idle_tasks, quiet_tasks, connections, connections_after, queues)


def _chats(telegram: TelegramStandIn) -> list[tuple[int, int, int | None]]:
    """(chat, user, topic) triples the traffic picks from."""
    picks: list[tuple[int, int, int | None]] = []
    for index in range(8):
        user = 810_000 + index
        telegram.add_private_chat(user, f"User {index}")
        picks.append((user, user, None))
    for index, forum in enumerate((False, False, True)):
        group = -1_008_100_000 - index
        members = [820_000 + index * 10 + member for member in range(3)]
        for member in members:
            telegram.add_user(member, f"Member {member}")
        telegram.add_group(group, f"Group {index}", forum=forum, admins={members[0]})
        for member in members:
            picks.append((group, member, (index + 1) * 100 + member % 2 if forum else None))
    return picks


async def _traffic(soak: Soak, chats: list[tuple[int, int, int | None]], end: float) -> None:
    number = 0
    while time.monotonic() < end:
        chat, user, topic = soak.rng.choice(chats)
        roll = soak.rng.random()
        if roll < 0.08:
            await soak.telegram.send_text(chat, user, "/stop", thread_id=topic)
        elif roll < 0.12 and chat > 0:
            await soak.telegram.send_text(chat, user, "/new", thread_id=topic)
        else:
            number += 1
            tag = f"Q{number:04d}"
            text = f"[{tag}] tell me" if chat > 0 else f"/ask [{tag}] tell me"
            message_id = await soak.telegram.send_text(chat, user, text, thread_id=topic)
            soak.asked.append(Asked(f"[{tag}]", chat, message_id, topic))
            if soak.rng.random() < 0.08:
                soak.hailuo.fail_next(soak.rng.choice(FAULTS))
        await asyncio.sleep(soak.rng.uniform(0.5, 2.0))


async def _chaos(
    soak: Soak, redis_proxy: CuttableProxy, pg_proxy: CuttableProxy, end: float
) -> None:
    next_kill = time.monotonic() + 60
    next_redis = time.monotonic() + 25
    next_pg = time.monotonic() + 45
    while time.monotonic() < end:
        now = time.monotonic()
        for name, incarnation in list(soak.running.items()):
            if incarnation.process.returncode is not None:  # as a platform would: start again
                print(
                    f"  instance {name} exited ({incarnation.process.returncode})", file=sys.stderr
                )
                soak.exits += 1
                soak.lived.append(soak.running.pop(name))
                await soak.start(name)
        if now >= next_kill and soak.running:
            name = soak.rng.choice(sorted(soak.running))
            print(f"  SIGKILL instance {name}", file=sys.stderr)
            await soak.kill(name)
            await asyncio.sleep(2)
            await soak.start(name)
            next_kill = now + 60
        if now >= next_redis:
            soak.cuts["redis"] += 1
            redis_proxy.cut()
            await asyncio.sleep(soak.rng.uniform(2, 5))
            redis_proxy.open = True
            next_redis = now + soak.rng.uniform(40, 70)
        if now >= next_pg:
            soak.cuts["postgres"] += 1
            pg_proxy.cut()
            await asyncio.sleep(soak.rng.uniform(2, 4))
            pg_proxy.open = True
            next_pg = now + soak.rng.uniform(50, 80)
        await asyncio.sleep(0.5)


def _notes() -> list[str]:
    t = translator("en")
    texts = [t(key) for key in NOTE_KEYS]
    texts.append(t("error_upstream", reason="x").split("(")[0])
    texts.append(t.plural("error_upstream_busy", 7).split("7")[0])
    return [text.strip() for text in texts if text.strip()]


def _outcomes(soak: Soak, notes: list[str], lost: list[str] | None = None) -> dict[str, int]:
    """Every question: answered (its whole answer, once), noted (stopped, interrupted, failed:
    said so), twice (its answer in two messages), or lost. A note about an answer that never
    produced text is a reply to the question in groups; in a private chat it replies to nothing,
    so there such notes are counted against the chat's questions that have no answer."""
    found: dict[str, int] = {"answered": 0, "noted": 0, "lost": 0, "twice": 0}
    unexplained: dict[int, int] = {}
    for asked in soak.asked:
        messages = soak.telegram.bot_messages(asked.chat_id)
        carrying = [m for m in messages if asked.tag in m.text]
        if len(carrying) > 1:
            found["twice"] += 1
            continue
        if carrying:
            first = carrying[0].message_id
            span = []
            for message in messages:
                if message.message_id < first:
                    continue
                if message.message_id > first and "[Q" in message.text:
                    break
                span.append(message)
            ids = {m.message_id for m in span}
            related = span + [m for m in messages if m.reply_to in ids | {asked.message_id}]
            if any(note in m.text for m in related for note in notes):
                found["noted"] += 1
            elif any(m.text.rstrip().endswith("(end)") for m in span):
                found["answered"] += 1
            else:
                found["lost"] += 1
                if lost is not None:
                    lost.append(asked.tag)
            continue
        replies = [m for m in messages if m.reply_to == asked.message_id]
        if any(note in m.text for m in replies for note in notes):
            found["noted"] += 1
        else:
            unexplained[asked.chat_id] = unexplained.get(asked.chat_id, 0) + 1
    for chat_id, count in unexplained.items():
        loose = [
            m
            for m in soak.telegram.bot_messages(chat_id)
            if "[Q" not in m.text and m.reply_to is None and any(n in m.text for n in notes)
        ]
        explained = min(count, len(loose)) if chat_id > 0 else 0
        found["noted"] += explained
        found["lost"] += count - explained
        if lost is not None and count > explained:
            lost.append(f"{count - explained} unanswered in chat {chat_id}")
    return found


async def _settle(soak: Soak) -> dict[str, int]:
    """Wait (up to three minutes) until every question is answered or noted."""
    notes = _notes()
    with contextlib.suppress(AssertionError):
        await soak.telegram.wait_for(
            lambda: _outcomes(soak, notes)["lost"] == 0, timeout=180, what="settling"
        )
    await asyncio.sleep(5)  # the last finals
    return _outcomes(soak, notes)


def _write_details(soak: Soak, path: Path) -> None:
    """What a failed soak needs looked at: each lost question's chat, and the refused calls."""
    lost: list[str] = []
    _outcomes(soak, _notes(), lost)
    lines = []
    for item in lost:
        lines.append(f"LOST {item}")
        asked = next((a for a in soak.asked if a.tag == item), None)
        chat_id = asked.chat_id if asked else int(item.rsplit(" ", 1)[1])
        if asked:
            lines.append(f"  question message {asked.message_id}")
        lines += [
            f"    {m.message_id} ->{m.reply_to}: {m.text[:60]!r} … {m.text[-30:]!r}"
            for m in soak.telegram.bot_messages(chat_id)
        ]
    for call in soak.telegram.rate_limited:
        lines.append(f"429 {call.method} chat {call.params.get('chat_id')} ({call.reason})")
    path.write_text("\n".join(lines))
    print(f"details: {path}", file=sys.stderr)


async def _tasks(ports: dict[str, int]) -> dict[str, int]:
    found = {}
    async with aiohttp.ClientSession() as session:
        for name, port in ports.items():
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(
                    f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(total=10)
                ) as response:
                    for line in (await response.text()).splitlines():
                        if line.startswith("hailuo_bridge_asyncio_tasks "):
                            found[name] = int(float(line.split()[1]))
    return found


async def _pg_connections(database_url: str) -> int:
    import asyncpg  # type: ignore[import-untyped]

    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    name = urlsplit(dsn).path.lstrip("/")
    connection = await asyncpg.connect(dsn)
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await connection.close()
    return int(count)


async def _queues_left(redis_url: str) -> int:
    redis = Redis.from_url(redis_url)
    try:
        return len(
            [key async for key in redis.scan_iter(f"hailuo-bridge:{TOKEN.split(':')[0]}:turns:*")]
        )
    finally:
        await redis.aclose()


def _report(
    soak: Soak,
    settled: dict[str, int],
    idle_tasks: dict[str, int],
    quiet_tasks: dict[str, int],
    connections: int,
    connections_after: int,
    queues: int,
) -> dict[str, Any]:
    growth = [
        (incarnation.rss_last - incarnation.rss_at_minute) / incarnation.rss_at_minute * 100
        for incarnation in soak.lived
        if incarnation.rss_at_minute
    ]
    result: dict[str, Any] = {
        "minutes": soak.args.soak,
        "questions": len(soak.asked),
        **settled,
        "sigkills": soak.kills,
        "unexpected_exits": soak.exits,
        "redis_cuts": soak.cuts["redis"],
        "postgres_cuts": soak.cuts["postgres"],
        "upstream_faults_injected": sum(1 for r in soak.hailuo.requests if r.outcome != "answered"),
        "http_429": len(soak.telegram.rate_limited),
        "queues_left_in_redis": queues,
        "tasks_idle_at_start": idle_tasks,
        "tasks_idle_at_end": quiet_tasks,
        "db_connections_idle": connections,
        "db_connections_after_stop": connections_after,
        "rss_growth_pct_max": round(max(growth), 1) if growth else None,
    }
    result["verdict"] = (
        "PASS"
        if settled["lost"] == 0
        and settled["twice"] == 0
        and result["http_429"] == 0
        and queues == 0
        and connections_after == 0
        and (not growth or max(growth) < 10)
        else "FAIL"
    )
    return result
