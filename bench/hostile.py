"""`python -m bench --hostile`: answers a hostile upstream could send must not hold anyone up.

Three such answers stream at once into the real bot (its own process, SQLite, polling): 1 MB of
ordinary Markdown in four events, a 20 kB nested-list bomb (`- - - …`), and an answer full of
links Telegram refuses (anchors, relative paths, `javascript:`). Meanwhile a probe question
arrives from another private chat every half second. Measured on the stand-ins' clock: the
probes' first visible text after Hailuo's first chunk (p50, p99, max), the bot's peak RSS, and
whether each hostile answer was delivered (cut, flattened, unlinked) instead of lost. The
baseline is the same probes without the hostile answers, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.run import (
    FRAME_METHODS,
    TOKEN,
    _check,
    _pct,
    _process_usage,
    _terminate,
    frame_text,
)
from tests.conftest import make_auth
from tests.standins.hailuo import HailuoStandIn
from tests.standins.telegram import Limits, TelegramStandIn

PARAGRAPH = "A paragraph with **bold**, `code`, a [link](https://example.org/x) and 🙂. " * 4
HOSTILE = {
    "huge": (PARAGRAPH + "\n\n") * (1_000_000 // (len(PARAGRAPH) + 2)),
    "bomb": "Start\n\n" + "- " * 10_000 + "deep words\n\nEnd.",
    "links": " ".join(
        f"[anchor](#a{n}) [relative](/docs/{n}) [script](javascript:alert({n})) "
        f"[the site](https://example.org/{n})"
        for n in range(100)
    ),
}
# What each hostile answer must show when it has been delivered.
DELIVERED = {"huge": "cut here", "bomb": "deep words", "links": "the site"}
PROBE_ANSWER = "A short probe answer, streamed in small pieces like a real one. " * 10
PROBES = 20
PROBE_GAP = 0.5


async def run_hostile(args: argparse.Namespace) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="hailuo-bench-hostile-"))
    results = []
    for hostile in (False, True):
        label = "hostile" if hostile else "baseline"
        print(f"running {label} …", file=sys.stderr)
        results.append(await _one(args, workdir, hostile))
    return results


async def _one(args: argparse.Namespace, workdir: Path, hostile: bool) -> dict[str, Any]:
    telegram = TelegramStandIn(TOKEN, Limits())
    hailuo = HailuoStandIn()
    await telegram.start()
    await hailuo.start()
    try:
        return await _measure(args, workdir, hostile, telegram, hailuo)
    finally:
        await telegram.stop()
        await hailuo.stop()


async def _measure(
    args: argparse.Namespace,
    workdir: Path,
    hostile: bool,
    telegram: TelegramStandIn,
    hailuo: HailuoStandIn,
) -> dict[str, Any]:
    auth = make_auth(token="bench-token-0123456789")
    hailuo.valid_tokens.add(auth.token)
    hailuo.first_chunk_delay = args.first_chunk_delay
    hailuo.chunk_delay = 1 / args.chunks_per_second
    hailuo.answer_for = lambda question: HOSTILE.get(question, PROBE_ANSWER)
    hailuo.chunks_for = lambda text: 4 if text in HOSTILE.values() else len(text) // 40
    chats = {name: 900_001 + index for index, name in enumerate(HOSTILE)}
    probes = [910_001 + index for index in range(PROBES)]
    for chat_id in [*chats.values(), *probes]:
        telegram.add_private_chat(chat_id, f"User {chat_id}")

    run_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="hostile-" if hostile else "baseline-"))
    auth_file = run_dir / "auth.json"
    auth_file.write_text(auth.to_json())
    env = {
        **os.environ,
        "BOT_TOKEN": TOKEN,
        "UPSTREAM": "hailuo",
        "TELEGRAM_API_URL": telegram.base_url,
        "HAILUO_BASE_URL": hailuo.base_url,
        "DATABASE_URL": f"sqlite:///{run_dir / 'bot.sqlite3'}",
        "QUESTIONS_PER_MINUTE": "1000",
        "LOG_LEVEL": "INFO",
    }
    await _check(sys.executable, "-m", "bot", "auth", "import", str(auth_file), env=env)
    async with contextlib.AsyncExitStack() as stack:
        log_file = stack.enter_context((run_dir / "bot.log").open("wb"))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", env=env, stdout=log_file, stderr=log_file
        )
        stack.push_async_callback(_terminate, process)
        await telegram.wait_for(lambda: telegram.polls, timeout=60, what="the bot to poll")
        if hostile:
            for name, chat_id in chats.items():
                await telegram.send_text(chat_id, chat_id, name)
        await asyncio.sleep(1.0)  # the hostile answers are streaming
        for chat_id in probes:
            await telegram.send_text(chat_id, chat_id, f"probe {chat_id}")
            await asyncio.sleep(PROBE_GAP)

        def finished() -> bool:
            done = all(telegram.bot_messages(chat_id) for chat_id in probes)
            if hostile:
                done = done and all(_shows(telegram, chats[n], DELIVERED[n]) for n in chats)
            return done

        with contextlib.suppress(AssertionError):
            await telegram.wait_for(finished, timeout=args.timeout, what="every answer")
        _, peak_rss = _process_usage(process.pid)
    first_text = _first_text_ms(telegram, hailuo, probes)
    result: dict[str, Any] = {
        "run": "hostile" if hostile else "baseline",
        "probes_answered": sum(1 for chat_id in probes if telegram.bot_messages(chat_id)),
        "probe_first_text_ms_p50": _pct(first_text, 50),
        "probe_first_text_ms_p99": _pct(first_text, 99),
        "probe_first_text_ms_max": round(max(first_text), 1) if first_text else None,
        "peak_rss_mb": round(peak_rss),
        "rate_limited": len(telegram.rate_limited),
    }
    if hostile:
        for name, chat_id in chats.items():
            result[f"{name}_delivered"] = _shows(telegram, chat_id, DELIVERED[name])
        result["huge_parts"] = len(telegram.bot_messages(chats["huge"]))
    return result


def _shows(telegram: TelegramStandIn, chat_id: int, text: str) -> bool:
    return any(text in message.text for message in telegram.bot_messages(chat_id))


def _first_text_ms(
    telegram: TelegramStandIn, hailuo: HailuoStandIn, probes: list[int]
) -> list[float]:
    by_chat = {}
    for request in hailuo.requests:
        question = request.fields["msgContent"]
        if question.startswith("probe ") and request.chunks:
            by_chat[int(question.split()[1])] = request.chunks[0][0]
    delays = []
    for chat_id in probes:
        first_chunk = by_chat.get(chat_id)
        if first_chunk is None:
            continue
        shown = [
            call.at
            for call in telegram.calls
            if call.status == 200
            and int(call.params.get("chat_id", 0)) == chat_id
            and call.method in FRAME_METHODS
            and frame_text(call.params).strip()
            and call.at >= first_chunk - 0.001
        ]
        if shown:
            delays.append((min(shown) - first_chunk) * 1000)
    return delays


def table(results: list[dict[str, Any]]) -> str:
    keys = sorted({key for result in results for key in result if key != "run"}, key=_order)
    header = ["metric", *(result["run"] for result in results)]
    rows = [header] + [[key, *(_cell(result.get(key)) for result in results)] for key in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _order(key: str) -> tuple[int, str]:
    return (0 if key.startswith("probe") else 1, key)


def _cell(value: Any) -> str:
    return "—" if value is None else str(value)
