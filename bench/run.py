"""Benchmark: the real bot (its own process, real Dispatcher, SQLite, HTTP) against the Telegram and
Hailuo stand-ins, under a light and a saturated load, next to a naive baseline in the same run.

Everything is measured on the stand-ins' side with one clock, so the bot carries no benchmark code:
first visible text after Hailuo's first chunk, how stale the visible text is while streaming, the
call budget used, fairness between chats, calls per answer, 429s, answers lost or truncated; and
from /proc, the bot's CPU seconds and peak RSS. Results: a table on stdout, JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.minimax_agent.credentials import AgentAuth
from bot.telegram.render import PartSplitter
from tests.conftest import forget_redis_keys, free_port, make_auth, scratch_postgres_database
from tests.standins.hailuo import HailuoStandIn
from tests.standins.minimax_agent import MiniMaxAgentStandIn
from tests.standins.openai_compat import DEFAULT_KEY, OpenAICompatStandIn
from tests.standins.telegram import Limits, TelegramStandIn

TOKEN = "424242:BENCH-token-for-loopback-only"
FRAME_METHODS = {
    "sendMessage", "editMessageText", "sendMessageDraft", "sendRichMessage", "sendRichMessageDraft",
}  # fmt: skip
SENDS = {"sendMessage", "sendRichMessage"}


def frame_text(params: dict[str, Any]) -> str:
    """What a frame call shows: its text, or a rich message's Markdown ("" for a thinking
    block, which shows no answer text)."""
    rich = params.get("rich_message")
    if rich is None:
        return str(params.get("text", ""))
    content = json.loads(rich) if isinstance(rich, str) else rich
    return str(content.get("markdown") or "")


WORDS = [
    "stream",
    "answer",
    "token",
    "latency",
    "budget",
    "chat",
    "group",
    "draft",
    "message",
    "limit",
    "window",
    "fairness",
    "priority",
    "frame",
    "pacing",
    "scheduler",
    "telegram",
    "hailuo",
    "edit",
    "markdown",
    "render",
    "entity",
    "part",
]


@dataclass
class Shape:
    name: str
    streams: int  # answers started together (over `ramp_seconds`)
    arrivals_per_second: float = 0.0  # new questions while they stream
    arrival_seconds: float = 0.0
    group_share: float = 0.25
    ramp_seconds: float = 0.0


@dataclass
class Question:
    chat_id: int
    user_id: int
    text: str
    answer: str
    group: bool
    asked_at: float = 0.0
    late: bool = False  # arrived while the load was already saturated


@dataclass
class Result:
    implementation: str
    shape: str
    answers: int
    seconds: float
    overhead_ms: list[float] = field(default_factory=list)
    late_first_text_ms: list[float] = field(default_factory=list)
    lag_private_s: list[float] = field(default_factory=list)
    lag_group_s: list[float] = field(default_factory=list)
    intervals_s: list[float] = field(default_factory=list)
    calls: int = 0
    messages: int = 0  # messages the answers were left in (rich ones hold up to 32 768)
    rate_limited: int = 0
    rate_limited_by: dict[str, int] = field(default_factory=dict)
    lost_or_truncated: int = 0
    calls_per_second_saturated: float = 0.0
    peak_calls_per_second: int = 0
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    db_writes: int | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "implementation": self.implementation,
            "shape": self.shape,
            "answers": self.answers,
            "seconds": round(self.seconds, 1),
            "first_text_overhead_ms_p50": _pct(self.overhead_ms, 50),
            "first_text_overhead_ms_p99": _pct(self.overhead_ms, 99),
            "late_questions_first_text_ms_p99": _pct(self.late_first_text_ms, 99),
            "freshness_private_s_p50": _pct(self.lag_private_s, 50),
            "freshness_private_s_p99": _pct(self.lag_private_s, 99),
            "freshness_group_s_p50": _pct(self.lag_group_s, 50),
            "freshness_group_s_p99": _pct(self.lag_group_s, 99),
            "update_interval_s_p50": _pct(self.intervals_s, 50),
            "update_interval_s_p99": _pct(self.intervals_s, 99),
            "telegram_calls": self.calls,
            "calls_per_answer": round(self.calls / max(self.answers, 1), 1),
            "messages_per_answer": round(self.messages / max(self.answers, 1), 2),
            "calls_per_second_saturated": round(self.calls_per_second_saturated, 1),
            "peak_calls_in_one_second": self.peak_calls_per_second,
            "http_429": self.rate_limited,
            "http_429_by_limit": ", ".join(
                f"{k} {v}" for k, v in sorted(self.rate_limited_by.items())
            )
            or None,
            "lost_or_truncated": self.lost_or_truncated,
            "cpu_seconds": round(self.cpu_seconds, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "db_writes_per_answer": (
                round(self.db_writes / max(self.answers, 1), 2)
                if self.db_writes is not None
                else None
            ),
        }


def _pct(values: list[float], percentile: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(percentile / 100 * (len(ordered) - 1)))
    return round(ordered[index], 3)


def make_answer(rng: random.Random, longest: int = 6000) -> str:
    """200 to 6000 characters of plain Markdown: paragraphs, bold, code, a list, a code block."""
    target = rng.randint(200, longest)
    parts: list[str] = []
    size = 0
    while size < target:
        kind = rng.random()
        if kind < 0.1:
            lines = "\n".join(f"value_{n} = {n}" for n in range(rng.randint(2, 6)))
            block = f"```python\n{lines}\n```"
        elif kind < 0.2:
            block = "\n".join(f"- {rng.choice(WORDS)} {rng.choice(WORDS)}" for _ in range(3))
        else:
            words = [rng.choice(WORDS) for _ in range(rng.randint(15, 40))]
            words[rng.randrange(len(words))] = f"**{rng.choice(WORDS)}**"
            words[rng.randrange(len(words))] = f"`{rng.choice(WORDS)}`"
            block = " ".join(words).capitalize() + "."
        parts.append(block)
        size += len(block) + 2
    return "\n\n".join(parts)[:target].rstrip("`* \n-") or "ok"


def expected_parts(answer: str) -> list[str]:
    return [part.text for part in PartSplitter().parts(answer)]


class Harness:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.rng = random.Random(args.seed)

    async def run(self, implementation: str, shape: Shape) -> Result:
        telegram = TelegramStandIn(TOKEN, Limits())
        hailuo = HailuoStandIn()
        agent = MiniMaxAgentStandIn()
        api = OpenAICompatStandIn()
        await telegram.start()
        await hailuo.start()
        await agent.start()
        await api.start()
        try:
            return await self._run(implementation, shape, telegram, hailuo, agent, api)
        finally:
            await telegram.stop()
            await hailuo.stop()
            await agent.stop()
            await api.stop()

    async def _run(
        self,
        implementation: str,
        shape: Shape,
        telegram: TelegramStandIn,
        hailuo: HailuoStandIn,
        agent: MiniMaxAgentStandIn,
        api: OpenAICompatStandIn,
    ) -> Result:
        auth = make_auth(token="bench-token-0123456789")
        hailuo.valid_tokens.add(auth.token)
        hailuo.first_chunk_delay = agent.first_chunk_delay = self.args.first_chunk_delay
        hailuo.chunk_delay = agent.chunk_delay = 1 / self.args.chunks_per_second
        hailuo.chunk_chars = self.args.chunk_chars
        agent.chunks_for = lambda text: max(1, -(-len(text) // self.args.chunk_chars))
        agent.heartbeat = False
        questions = self._questions(shape, telegram)
        by_text = {q.text: q for q in questions}
        hailuo.answer_for = lambda text: by_text[text.split(": ", 1)[-1]].answer
        agent.answer_for = hailuo.answer_for
        # The API streams the same answers at the same pace (after a short reasoning).
        api.first_chunk_delay = self.args.first_chunk_delay
        api.chunk_delay = 1 / self.args.chunks_per_second
        api.chunks_for = agent.chunks_for
        api.answer_for = hailuo.answer_for
        # No reasoning, as for the other upstreams here: a "thinking" frame a tenth of a second
        # before the answer would take the chat's one call a second (real reasoning lasts
        # seconds, long enough for the frame to be gone).
        api.default_reasoning = lambda _: ""

        run_dir = Path(tempfile.mkdtemp(dir=self.workdir, prefix=f"{implementation}-{shape.name}-"))
        auth_file = run_dir / "auth.json"
        on_agent = implementation == "agent"
        if on_agent:
            account = "900000000000000042"
            login = AgentAuth(
                token=agent.add_account(account),
                real_user_id=account,
                uuid="4d6c7b10-2f1e-4c3a-9b8d-0123456789ab",
                device_id="52718364",
            )
            auth_file.write_text(json.dumps(login.to_storage()))
        else:
            auth_file.write_text(auth.to_json())
        on_api = implementation == "api"
        upstream = "minimax-agent" if on_agent else "minimax-api" if on_api else "hailuo"
        env = {
            **os.environ,
            "BOT_TOKEN": TOKEN,
            "UPSTREAM": upstream,
            "MINIMAX_API_KEY": DEFAULT_KEY,
            "MINIMAX_API_BASE_URL": api.base_url,
            "MINIMAX_AGENT_URL": agent.api_url,
            "MINIMAX_AGENT_STREAM_URL": agent.stream_url,
            "TELEGRAM_API_URL": telegram.base_url,
            "HAILUO_BASE_URL": hailuo.base_url,
            "DATABASE_URL": f"sqlite:///{run_dir / 'bot.sqlite3'}",
            "QUESTIONS_PER_MINUTE": "1000",
            "MAX_INPUT_CHARS": "4000",
            "LOG_LEVEL": "INFO",
            # `plain` is the bridge with rich messages off (the entity path only).
            "RICH_MESSAGES": "off" if implementation == "plain" else "auto",
            "AUTH_FILE": str(auth_file),
        }
        async with contextlib.AsyncExitStack() as stack:
            instances = 1
            if implementation.startswith("cluster"):
                instances = int(implementation.rpartition("-")[2])
                env["DATABASE_URL"] = await stack.enter_async_context(scratch_postgres_database())
                env["REDIS_URL"] = self.args.redis_url
                env["WEBHOOK_URL"] = "https://bench.example.org/hook"
                env["WEBHOOK_SECRET"] = "bench-webhook-secret-0123456789"
                env["WEB_HOST"] = "127.0.0.1"
                stack.push_async_callback(forget_redis_keys, self.args.redis_url, TOKEN)
            if implementation == "naive":
                command = [sys.executable, "-m", "bench.naive"]
            elif on_api:  # the key is a setting: nothing to import
                command = [sys.executable, "-m", "bot"]
            else:
                await _check(sys.executable, "-m", "bot", "auth", "import", str(auth_file), env=env)
                command = [sys.executable, "-m", "bot"]
            processes, logs = [], []
            for number in range(instances):
                log_path = run_dir / f"bot-{number}.log"
                logs.append(log_path)
                own = dict(env)
                if instances > 1 or implementation.startswith("cluster"):
                    port = free_port()
                    own.update(WEB_PORT=str(port), INSTANCE_ID=f"bench-{number}")
                    telegram.backends.append(f"http://127.0.0.1:{port}")
                log_file = stack.enter_context(log_path.open("wb"))
                process = await asyncio.create_subprocess_exec(
                    *command, env=own, stdout=log_file, stderr=log_file
                )
                stack.push_async_callback(_terminate, process)
                processes.append(process)
            if implementation.startswith("cluster"):
                await telegram.wait_for(
                    lambda: telegram.webhook and len(telegram.calls_of("setWebhook")) >= instances,
                    timeout=120,
                    what="every instance to set the webhook",
                )
            else:
                await telegram.wait_for(lambda: telegram.polls, timeout=60, what="the bot to poll")
            # Imports (aiogram's types) are excluded from the CPU figure.
            cpu_at_start = sum(_process_usage(p.pid)[0] for p in processes)
            started = time.monotonic()
            await self._ask(shape, questions, telegram)
            await self._wait_done(questions, telegram, implementation)
            seconds = time.monotonic() - started
            usage = [_process_usage(p.pid) for p in processes]
            cpu, rss = sum(u[0] for u in usage), sum(u[1] for u in usage)
        result = Result(implementation, shape.name, len(questions), seconds)
        result.cpu_seconds, result.peak_rss_mb = cpu - cpu_at_start, rss
        writes = [_db_writes(path.read_text(errors="replace")) for path in logs]
        result.db_writes = None if None in writes else sum(w or 0 for w in writes)
        if on_agent:
            asked = [(post.json()["content"], post.chunks) for post in agent.message_posts]
        elif on_api:
            asked = [
                (str(request.messages[-1]["content"]), request.chunks)
                for request in api.chat_requests
            ]
        else:
            asked = [(request.fields["msgContent"], request.chunks) for request in hailuo.requests]
        self._measure(result, questions, telegram, asked, shape)
        return result

    def _questions(self, shape: Shape, telegram: TelegramStandIn) -> list[Question]:
        total = shape.streams + round(shape.arrivals_per_second * shape.arrival_seconds)
        questions = []
        for index in range(total):
            group = self.rng.random() < shape.group_share
            user = 500_000 + index
            if group:
                chat = -1_005_000_000 - index
                telegram.add_user(user, f"User {index}")
                telegram.add_group(chat, f"Group {index}")
            else:
                chat = user
                telegram.add_private_chat(user, f"User {index}")
            text = f"question {index} in {shape.name}"
            questions.append(
                Question(
                    chat, user, text, make_answer(self.rng), group, late=index >= shape.streams
                )
            )
        return questions

    async def _ask(
        self, shape: Shape, questions: list[Question], telegram: TelegramStandIn
    ) -> None:
        async def ask(question: Question) -> None:
            question.asked_at = time.monotonic()
            text = f"/ask {question.text}" if question.group else question.text
            await telegram.send_text(question.chat_id, question.user_id, text)

        for question in questions[: shape.streams]:
            await ask(question)
            if shape.ramp_seconds:
                await asyncio.sleep(shape.ramp_seconds / shape.streams)
        late = questions[shape.streams :]
        if late:
            await asyncio.sleep(3.0)  # let the first wave saturate the budget
            gap = 1 / shape.arrivals_per_second
            for question in late:
                await ask(question)
                await asyncio.sleep(gap)

    async def _wait_done(
        self, questions: list[Question], telegram: TelegramStandIn, implementation: str
    ) -> None:
        def done(question: Question) -> bool:
            messages = telegram.bot_messages(question.chat_id)
            if question.group:
                return (
                    bool(messages)
                    and all(m.reply_markup is None for m in messages)
                    and (
                        implementation == "naive"
                        or any(m.rich for m in messages)  # one rich message holds it all
                        or len(messages) >= len(expected_parts(question.answer))
                    )
                    and _settled(messages)
                )
            return bool(messages)

        def all_done() -> bool:
            return all(done(question) for question in questions)

        try:
            await telegram.wait_for(all_done, timeout=self.args.timeout, what="every answer")
        except AssertionError:
            print("  (some answers never completed; they count as lost)", file=sys.stderr)
        await asyncio.sleep(4.0)  # final edits of the last parts

    def _measure(
        self,
        result: Result,
        questions: list[Question],
        telegram: TelegramStandIn,
        asked: list[tuple[str, list[tuple[float, str]]]],
        shape: Shape,
    ) -> None:
        calls = [c for c in telegram.calls if c.method in FRAME_METHODS]
        result.calls = len(calls)  # what Telegram sees, refused calls included
        refused = [c for c in calls if c.status == 429]
        result.rate_limited = len(refused)
        for call in refused:
            result.rate_limited_by[call.reason] = result.rate_limited_by.get(call.reason, 0) + 1
        by_question = {text.split(": ", 1)[-1]: chunks for text, chunks in asked}
        saturated_window: tuple[float, float] | None = None
        if shape.streams >= 50:
            starts = sorted(q.asked_at for q in questions)
            saturated_window = (starts[0] + 5.0, starts[0] + 5.0 + max(shape.arrival_seconds, 10))
        for question in questions:
            chunks = by_question.get(question.text) or []
            shown = [
                c
                for c in calls
                if c.status == 200 and int(c.params.get("chat_id", 0)) == question.chat_id
                and frame_text(c.params).strip()
            ]  # fmt: skip
            messages = telegram.bot_messages(question.chat_id)
            result.messages += len(messages)
            final = "\n".join(m.text for m in messages)
            # The naive bot shows raw Markdown, so it is checked against the raw answer; rich
            # messages hold Markdown too, cut between lines.
            naive = result.implementation == "naive"
            if any(m.rich for m in messages):
                # Every line, the last one perhaps with closers after it (`**wor` → `**wor**`).
                lines = final.split("\n")
                *whole, last = question.answer.split("\n")
                delivered = set(whole) <= set(lines) and any(
                    line.startswith(last) for line in lines
                )
            else:
                expected = [question.answer] if naive else expected_parts(question.answer)
                delivered = all(part.strip() in final for part in expected)
            if not delivered:
                result.lost_or_truncated += 1
            if not chunks or not shown:
                continue
            first_chunk = chunks[0][0]
            visible = [c for c in shown if c.at >= first_chunk - 0.001]
            if visible:
                overhead = (visible[0].at - first_chunk) * 1000
                (result.late_first_text_ms if question.late else result.overhead_ms).append(
                    overhead
                )
            lags = result.lag_group_s if question.group else result.lag_private_s
            lags.extend(_staleness(shown, chunks, question.group))
            if saturated_window is not None:
                stamps = [c.at for c in shown if saturated_window[0] <= c.at <= saturated_window[1]]
                result.intervals_s.extend(b - a for a, b in itertools.pairwise(stamps))
        successful = sorted(c.at for c in calls if c.status == 200)
        if successful:
            buckets: dict[int, int] = {}
            for at in successful:
                buckets[int(at)] = buckets.get(int(at), 0) + 1
            result.peak_calls_per_second = max(buckets.values())
            if saturated_window is not None:
                inside = [a for a in successful if saturated_window[0] <= a <= saturated_window[1]]
                span = saturated_window[1] - saturated_window[0]
                result.calls_per_second_saturated = len(inside) / span


def _settled(messages: list[Any]) -> bool:
    newest: float = max(m.updated_at for m in messages)
    return time.monotonic() - newest > 1.0


def _staleness(shown: list[Any], chunks: list[tuple[float, str]], group: bool) -> list[float]:
    """Just before each new frame: for how long text already received from Hailuo had been
    waiting to become visible (0 when the screen already showed everything received).

    What a frame shows is matched exactly: each chunk's content is rendered into parts the way
    the bot renders it, and the frame's visible length is compared with those."""
    splitter = PartSplitter()
    rendered = []  # per chunk: (sealed parts' lengths, total visible length)
    for _, content in chunks:
        parts = splitter.parts(content)
        rendered.append(([len(p.text) for p in parts[:-1]], sum(len(p.text) for p in parts)))
    lags = []
    shown_chunk = -1  # the newest chunk the screen shows
    new_messages = 0
    last_chunk_at = chunks[-1][0]
    for call in shown:
        following = shown_chunk + 1
        if following < len(chunks) and chunks[following][0] < call.at:
            lags.append(call.at - chunks[following][0])
        elif call.at <= last_chunk_at:
            lags.append(0.0)
        if call.at > last_chunk_at + 0.001:
            break  # streaming is over: what follows is final delivery
        if call.method in SENDS:
            new_messages += 1
            if not group:
                continue  # a sealed part of a private answer; drafts carry the stream
        sealed = new_messages - 1 if group else new_messages
        text_length = len(frame_text(call.params))
        rich = "rich_message" in call.params  # Markdown as received, plus a few closers
        for index in range(len(chunks) - 1, shown_chunk, -1):
            sealed_lengths, total = rendered[index]
            visible = sum(sealed_lengths[:sealed]) + text_length
            shows = len(chunks[index][1]) <= text_length + 8 if rich else total <= visible + 1
            if shows and call.at >= chunks[index][0]:
                shown_chunk = index
                break
    return lags


async def _terminate(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        async with asyncio.timeout(30):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


def _process_usage(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) and peak resident memory in MB, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(stat[11]) + int(stat[12])) / ticks
        status = Path(f"/proc/{pid}/status").read_text()
        peak_kb = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")
        )
        return cpu, peak_kb / 1024
    except (OSError, StopIteration, IndexError):
        return 0.0, 0.0


def _db_writes(log: str) -> int | None:
    for line in reversed(log.splitlines()):
        if "database writes" in line:
            words = line.split()
            return int(words[words.index("database") - 1])
    return None


async def _check(*command: str, env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed: {err.decode()}")


def _table(results: list[Result]) -> str:
    rows = [r.summary() for r in results]
    keys = [k for k in rows[0] if k not in ("implementation", "shape")]
    header = ["metric"] + [f"{r['implementation']}/{r['shape']}" for r in rows]
    lines = [header] + [[key] + [_cell(r[key]) for r in rows] for key in keys]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _cell(value: Any) -> str:
    return "—" if value is None else str(value)


async def _main(args: argparse.Namespace) -> list[Result]:
    workdir = Path(tempfile.mkdtemp(prefix="hailuo-bench-"))
    harness = Harness(args, workdir)
    # Light: questions arrive over a few seconds, up to `--light` answers streaming at once.
    light = Shape("light", streams=args.light, ramp_seconds=args.light / 4)
    saturated = Shape(
        f"saturated-{args.streams}",
        streams=args.streams,
        arrivals_per_second=args.arrivals_per_second,
        arrival_seconds=args.arrival_seconds,
    )
    if args.cluster:
        # One instance against two, both in webhook mode on PostgreSQL and Redis.
        os.environ.setdefault("TEST_POSTGRES_URL", args.postgres_url)
        plan = [("cluster-1", saturated), ("cluster-2", saturated)]
    else:
        plan = [
            ("bridge", light),
            ("plain", light),
            ("bridge", saturated),
            ("agent", light),
            ("api", light),
        ]
        if not args.skip_naive:
            plan.append(("naive", light))
        if args.only:
            wanted = set(args.only.split(","))
            plan = [(name, shape) for name, shape in plan if name in wanted]
    results = []
    for implementation, shape in plan:
        print(f"running {implementation} / {shape.name} …", file=sys.stderr)
        results.append(await harness.run(implementation, shape))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--light", type=int, default=20, help="answers at once, light load")
    parser.add_argument("--streams", type=int, default=100, help="answers at once, saturated")
    parser.add_argument("--arrivals-per-second", type=float, default=5.0)
    parser.add_argument("--arrival-seconds", type=float, default=15.0)
    parser.add_argument("--first-chunk-delay", type=float, default=0.5)
    parser.add_argument("--chunks-per-second", type=float, default=10.0)
    parser.add_argument("--chunk-chars", type=int, default=40)
    parser.add_argument("--longest", type=int, default=6000, help="longest answer, characters")
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--only",
        default="",
        help="run only these, comma-separated: bridge, plain, agent, api, naive",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="saturated load on one and on two instances (webhook, PostgreSQL, Redis)",
    )
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--hostile",
        action="store_true",
        help="a 1 MB answer, a list bomb and bad links in flight: do other chats wait?",
    )
    parser.add_argument(
        "--soak",
        type=float,
        nargs="?",
        const=10.0,
        default=None,
        metavar="MINUTES",
        help="a chaos soak through two webhook instances (default 10 minutes); see bench/soak.py",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.soak is not None:
        from bench.soak import run_soak

        report = asyncio.run(run_soak(args))
        for key, value in report.items():
            print(f"{key:28} {value}")
        _write_json(args.json or Path("bench/results/soak.json"), [report])
        return 0 if report["verdict"] == "PASS" else 1
    if args.hostile:
        from bench.hostile import run_hostile
        from bench.hostile import table as hostile_table

        found = asyncio.run(run_hostile(args))
        print(hostile_table(found))
        _write_json(args.json or Path("bench/results/hostile.json"), found)
        return 0
    results = asyncio.run(_main(args))
    table = _table(results)
    print(table)
    _write_json(args.json or Path("bench/results/latest.json"), [r.summary() for r in results])
    return 0


def _write_json(path: Path, results: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"\n(JSON: {path})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
