"""The terminal commands with UPSTREAM=minimax-api (and as the fallback), as real processes
against the OpenAI-compatible stand-in: `ask`, `ask --continue` with stored history, a refused
key, `doctor` — and the key never printed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bridge_env import agent_auth
from tests.standins.minimax_agent import MiniMaxAgentStandIn
from tests.standins.openai_compat import DEFAULT_KEY, OpenAICompatStandIn
from tests.test_cli import cli_env, run_cli


@pytest.fixture
async def api() -> AsyncIterator[OpenAICompatStandIn]:
    async with OpenAICompatStandIn() as standin:
        standin.default_reasoning = lambda _: "HIDDEN-THOUGHTS"
        yield standin


def api_env(workdir: Path, api: OpenAICompatStandIn, **extra: str) -> dict[str, str]:
    return cli_env(
        workdir,
        UPSTREAM="minimax-api",
        MINIMAX_API_KEY=DEFAULT_KEY,
        MINIMAX_API_BASE_URL=api.base_url,
        **extra,
    )


async def test_ask_continue_sends_the_stored_history_and_doctor_passes(
    tmp_path: Path, api: OpenAICompatStandIn
) -> None:
    env = api_env(tmp_path, api)
    asked = await run_cli("ask", "Hi", "--continue", cwd=tmp_path, env=env)
    assert asked.code == 0, asked.err
    assert asked.out == "Echo: Hi\n"
    assert "HIDDEN-THOUGHTS" in asked.err, "reasoning goes to stderr, never to the answer"
    again = await run_cli("ask", "More", "--continue", cwd=tmp_path, env=env)
    assert again.out == "Echo: More\n"
    assert [(m["role"], m["content"]) for m in api.chat_requests[-1].messages] == [
        ("user", "Hi"),
        ("assistant", "Echo: Hi"),
        ("user", "More"),
    ]
    alone = await run_cli("ask", "Alone", cwd=tmp_path, env=env)
    assert alone.out == "Echo: Alone\n"
    assert len(api.chat_requests[-1].messages) == 1

    doctor = await run_cli("doctor", cwd=tmp_path, env=env)
    assert doctor.code == 0, doctor.out + doctor.err
    assert [line.split(":")[0] for line in doctor.out.splitlines()] == [
        "ok    settings",
        "ok    login",
        "ok    probe",
        "ok    question",
    ]
    for result in (asked, again, alone, doctor):
        assert DEFAULT_KEY not in result.out + result.err


async def test_a_refused_key_and_a_missing_key_are_explained(
    tmp_path: Path, api: OpenAICompatStandIn
) -> None:
    wrong = "sk-wrong-key-0123456789"
    refused = await run_cli(
        "ask", "Hi", cwd=tmp_path, env=api_env(tmp_path, api) | {"MINIMAX_API_KEY": wrong}
    )
    assert refused.code == 3, refused.err
    assert "MINIMAX_API_KEY" in refused.err
    assert wrong not in refused.out + refused.err
    doctor = await run_cli(
        "doctor", cwd=tmp_path, env=api_env(tmp_path, api) | {"MINIMAX_API_KEY": wrong}
    )
    assert doctor.code == 1
    assert "FAIL  probe" in doctor.out
    assert "check MINIMAX_API_KEY" in doctor.out
    assert wrong not in doctor.out + doctor.err
    missing = await run_cli(
        "ask", "Hi", cwd=tmp_path, env=api_env(tmp_path, api) | {"MINIMAX_API_KEY": ""}
    )
    assert missing.code != 0
    assert "MINIMAX_API_KEY must be set" in missing.err


async def test_doctor_checks_the_fallback_too(tmp_path: Path, api: OpenAICompatStandIn) -> None:
    agent = MiniMaxAgentStandIn()
    await agent.start()
    try:
        env = cli_env(
            tmp_path,
            UPSTREAM="minimax-agent",
            MINIMAX_AGENT_URL=agent.api_url,
            MINIMAX_AGENT_STREAM_URL=agent.stream_url,
            UPSTREAM_FALLBACK="minimax-api",
            MINIMAX_API_KEY=DEFAULT_KEY,
            MINIMAX_API_BASE_URL=api.base_url,
        )
        imported = await run_cli(
            "auth",
            "import",
            "-",
            cwd=tmp_path,
            env=env,
            stdin=json.dumps(agent_auth(agent).to_storage()),
        )
        assert imported.code == 0, imported.err
        doctor = await run_cli("doctor", "--no-ask", cwd=tmp_path, env=env)
    finally:
        await agent.stop()
    assert doctor.code == 0, doctor.out + doctor.err
    assert [line.split(":")[0] for line in doctor.out.splitlines()] == [
        "ok    settings",
        "ok    login",
        "ok    probe",
        "ok    fallback login",
        "ok    fallback probe",
    ]


async def test_a_pasted_key_with_a_prefix_is_refused_without_echoing_it(
    tmp_path: Path, api: OpenAICompatStandIn
) -> None:
    pasted = "Bearer sk-topsecret98765"
    result = await run_cli(
        "ask", "Hi", cwd=tmp_path, env=api_env(tmp_path, api) | {"MINIMAX_API_KEY": pasted}
    )
    assert result.code == 2, result.err
    assert "MINIMAX_API_KEY must be the bare key" in result.err
    assert "topsecret" not in result.out + result.err
    assert "Traceback" not in result.err
