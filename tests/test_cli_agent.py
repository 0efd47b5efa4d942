"""The terminal commands with UPSTREAM=minimax-agent, run as real processes against the stand-in:
`auth import` (good and bad files), `ask`, `ask --continue`, `auth export --output`, `doctor`."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.bridge_env import agent_auth
from tests.standins.minimax_agent import AgentFault, MiniMaxAgentStandIn
from tests.test_cli import cli_env, run_cli


def agent_env(workdir: Path, agent: MiniMaxAgentStandIn) -> dict[str, str]:
    return cli_env(
        workdir,
        UPSTREAM="minimax-agent",
        MINIMAX_AGENT_URL=agent.api_url,
        MINIMAX_AGENT_STREAM_URL=agent.stream_url,
    )


def auth_json(agent: MiniMaxAgentStandIn, **changes: object) -> str:
    data = json.loads(agent_auth(agent).model_dump_json())
    data = {"upstream": "minimax-agent", **data, **changes}
    return json.dumps({key: value for key, value in data.items() if value is not None})


async def test_import_ask_continue_export_and_doctor(
    tmp_path: Path, agent: MiniMaxAgentStandIn
) -> None:
    env = agent_env(tmp_path, agent)
    text = auth_json(agent)
    token = json.loads(text)["token"]
    imported = await run_cli("auth", "import", "-", cwd=tmp_path, env=env, stdin=text)
    assert imported.code == 0, imported.err
    assert "stored minimax-agent login" in imported.out

    asked = await run_cli("ask", "Hi", "--continue", cwd=tmp_path, env=env)
    assert asked.code == 0, asked.err
    assert asked.out.startswith("You said: Hi (message 1 in this session)")
    again = await run_cli("ask", "More", "--continue", cwd=tmp_path, env=env)
    assert again.out.startswith("You said: More (message 2 in this session)")
    fresh = await run_cli("ask", "New", cwd=tmp_path, env=env)
    assert fresh.out.startswith("You said: New (message 1 in this session)")

    shown = await run_cli("auth", "show", cwd=tmp_path, env=env)
    assert "upstream:      minimax-agent" in shown.out
    assert "token expires:" in shown.out
    output = tmp_path / "exported.json"
    exported = await run_cli("auth", "export", "--output", str(output), cwd=tmp_path, env=env)
    assert exported.code == 0, exported.err
    assert stat.S_IMODE(os.stat(output).st_mode) == 0o600
    assert json.loads(output.read_text())["token"] == token
    assert json.loads(output.read_text())["upstream"] == "minimax-agent"

    doctor = await run_cli("doctor", cwd=tmp_path, env=env)
    assert doctor.code == 0, doctor.out + doctor.err
    lines = doctor.out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "ok    settings",
        "ok    login",
        "ok    probe",
        "ok    question",
    ]
    for result in (imported, asked, again, shown, exported, doctor):
        assert token not in result.out + result.err


async def test_doctor_names_the_likely_causes_of_an_empty_401(
    tmp_path: Path, agent: MiniMaxAgentStandIn
) -> None:
    env = agent_env(tmp_path, agent)
    text = auth_json(agent)
    await run_cli("auth", "import", "-", cwd=tmp_path, env=env, stdin=text)
    agent.revoke(json.loads(text)["token"])
    doctor = await run_cli("doctor", "--no-ask", cwd=tmp_path, env=env)
    assert doctor.code == 1
    probe = next(line for line in doctor.out.splitlines() if "probe" in line)
    assert probe.startswith("FAIL")
    assert "token expired" in probe and "user id" in probe and "region" in probe
    assert "log in again" in probe


async def test_doctor_without_a_login_says_how_to_get_one(
    tmp_path: Path, agent: MiniMaxAgentStandIn
) -> None:
    doctor = await run_cli("doctor", cwd=tmp_path, env=agent_env(tmp_path, agent))
    assert doctor.code == 1
    assert "FAIL  login: no minimax-agent login is stored" in doctor.out


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"device_id": "abc"}, "device_id: Value error, must be digits only"),
        ({"real_user_id": "12ab"}, "real_user_id: Value error, must be digits only"),
        ({"token": None}, "token: Field required"),
        ({"uuid": "not-a-uuid"}, "uuid"),
        ({"upstream": "myspace"}, "upstream: must be one of"),
    ],
)
async def test_bad_auth_files_are_refused_with_one_line_and_nothing_stored(
    tmp_path: Path, agent: MiniMaxAgentStandIn, change: dict[str, object], complaint: str
) -> None:
    env = agent_env(tmp_path, agent)
    text = auth_json(agent, **change)
    result = await run_cli("auth", "import", "-", cwd=tmp_path, env=env, stdin=text)
    assert result.code == 2
    assert complaint in result.err
    assert len(result.err.strip().splitlines()) == 1
    shown = await run_cli("auth", "show", cwd=tmp_path, env=env)
    assert shown.code == 3, "nothing was stored"


async def test_not_json_is_refused(tmp_path: Path, agent: MiniMaxAgentStandIn) -> None:
    env = agent_env(tmp_path, agent)
    result = await run_cli("auth", "import", "-", cwd=tmp_path, env=env, stdin="{nope")
    assert result.code == 2
    assert "not valid JSON" in result.err


async def test_ask_reports_a_quota_wall_in_the_upstreams_words(
    tmp_path: Path, agent: MiniMaxAgentStandIn
) -> None:
    env = agent_env(tmp_path, agent)
    await run_cli("auth", "import", "-", cwd=tmp_path, env=env, stdin=auth_json(agent))
    agent.fail_next(AgentFault.QUOTA_ERROR)
    result = await run_cli("ask", "Hi", cwd=tmp_path, env=env)
    assert result.code == 1
    assert "quota exhausted" in result.err
