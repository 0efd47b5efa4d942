"""The MiniMax Agent adapter against its strict stand-in: signing, set-up, sessions, frames, faults.

The stand-in (tests/standins/minimax_agent.py) is an independent reading of the protocol
reference: it recomputes every signature and refuses what the real server would refuse.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from bot.minimax_agent.client import MiniMaxAgentClient
from bot.minimax_agent.credentials import AgentAuth
from bot.minimax_agent.frames import FrameAssembler
from bot.minimax_agent.signing import x_signature, yy
from bot.upstream import (
    AuthRejected,
    Conversation,
    ConversationStarted,
    Finished,
    ProtocolChanged,
    RateLimited,
    ReasoningDelta,
    StreamInterrupted,
    TextDelta,
    TitleGenerated,
    UpstreamError,
    UpstreamEvent,
    UpstreamTimeouts,
    UpstreamUnavailable,
)
from tests.bridge_env import AGENT_USER, agent_auth
from tests.standins.minimax_agent import AgentFault, MiniMaxAgentStandIn

# --- the published vectors of the protocol reference, §4.4 ---------------------------------------

MS = 1790000000123
MCODE_TARGET = (
    "/v1/api/user/info?device_platform=mcode&biz_id=3&app_id=3001&version_code=22201"
    "&unix=1790000000123&timezone_offset=28800&sys_language=zh&lang=zh&device_id=0"
    "&os_name=darwin&browser_name=mcode&user_id=0&client=mcode"
)
WEB_QUERY = (
    "device_platform=web&biz_id=3&app_id=3001&version_code=22201&unix=1790000000123"
    "&timezone_offset=28800&sys_language=en&lang=en&uuid=11111111-2222-4333-8444-555555555555"
    "&device_id=12345678&os_name=Windows&browser_name=Chrome&device_memory=16&cpu_core_num=8"
    "&browser_language=en-US&browser_platform=Win32&user_id=900000000000000001"
    "&screen_width=1920&screen_height=1080&token=TEST.JWT.TOKEN&client=web&region=en"
)
WEB_BODY = (
    '{"content":"hi","model":{"provider_id":"minimax","model_id":"MiniMax-M3","reasoning":true},'
    '"turn_id":"00000000-0000-4000-8000-000000000000","worktreeMode":false}'
)
MESSAGE_PATH = "/minimax-cloud/api/v1/session/123456789012345/message"


def test_signing_reproduces_the_published_vectors() -> None:
    assert x_signature(1790000000, "") == "03015677c012162b07bc060014868ead"
    assert yy(MCODE_TARGET, None, MS) == "ea384f50aae587ea2048557a2e1b30b1"
    assert x_signature(1790000000, WEB_BODY) == "6ff4acd05b58215d0f42f81d105da063"
    absolute = f"https://agent-stream.minimax.io{MESSAGE_PATH}?{WEB_QUERY}"
    assert yy(absolute, WEB_BODY, MS) == "0825dc1d326966770cb50364a3863c60"
    assert yy(f"{MESSAGE_PATH}?{WEB_QUERY}", WEB_BODY, MS) == "5083c65ec5a01472bba11c6081ffb965"
    agents = f"/minimax-cloud/api/v1/agent?{WEB_QUERY}"
    assert yy(agents, None, MS) == "49488954c4c1f941b7cf0d1ea4a08352"
    assert x_signature(1780470413, '{"content":"你好"}') == "c7822b5bc35ae640a505e494415d5827"


# --- frames ------------------------------------------------------------------------------------


def frames(*payloads: str) -> list[UpstreamEvent]:
    assembler = FrameAssembler(Conversation(chat_id="1", token_fingerprint="f"))
    return [event for payload in payloads for event in assembler.handle(payload)]


def chunk(content: str = "", thinking: str = "", *, finish: bool = False, reason: str = "") -> str:
    body = {
        "role": "assistant",
        "msg_content": content,
        "thinking_content": thinking,
        "finish": finish,
        "finish_reason": reason,
    }
    return json.dumps({"type": 6, "agent_message_chunk": body})


def test_frames_keep_reasoning_apart_and_ignore_echoes_and_heartbeats() -> None:
    events = frames(
        '{"type": 2, "agent_message": {"role": "user", "msg_content": "question"}}',
        '{"type": 10}',
        chunk(thinking="Let me "),
        chunk(thinking="think."),
        chunk("Hello"),
        "not json at all",
        chunk(", world"),
        chunk(finish=True, reason="stop"),
    )
    reasoning = [e.text for e in events if isinstance(e, ReasoningDelta)]
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert reasoning[-1] == "Let me think."
    assert texts == ["Hello", "Hello, world"]
    assert isinstance(events[-1], Finished)
    assert events[-1].text == "Hello, world"


def test_a_repeated_whole_answer_is_not_shown_twice() -> None:
    answer = "A whole answer that is long enough."
    events = frames(chunk(answer[:10]), chunk(answer[10:]), chunk(answer), chunk(finish=True))
    assert [e.text for e in events if isinstance(e, Finished)] == [answer]


def test_the_final_message_adds_what_the_chunks_missed() -> None:
    final = '{"type": 2, "agent_message": {"role": "assistant", "msg_content": "Hello, world",'
    events = frames(chunk("Hello"), final + ' "finish_reason": "stop"}}')
    assert [e.text for e in events if isinstance(e, Finished)] == ["Hello, world"]


def test_an_error_frame_with_quota_words_is_a_rate_limit_with_them() -> None:
    error = (
        '{"type": 2, "agent_message": {"role": "assistant", "finish_reason": "error",'
        ' "msg_content": "Token Plan quota exhausted (2056)"}}'
    )
    with pytest.raises(RateLimited, match="quota exhausted") as caught:
        frames(chunk("Partial"), error)
    assert caught.value.partial_text == "Partial"
    with pytest.raises(UpstreamError, match="boom"):
        frames(chunk("boom", finish=True, reason="error"))


# --- the client against the stand-in -------------------------------------------------------------


@pytest.fixture
async def agent() -> AsyncIterator[MiniMaxAgentStandIn]:
    standin = MiniMaxAgentStandIn()
    await standin.start()
    yield standin
    await standin.stop()


@pytest.fixture
async def client(agent: MiniMaxAgentStandIn) -> AsyncIterator[MiniMaxAgentClient]:
    timeouts = UpstreamTimeouts(connect=5, first_event=20, idle=5, total=60)
    async with MiniMaxAgentClient(
        api_url=agent.api_url, stream_url=agent.stream_url, timeouts=timeouts
    ) as agent_client:
        yield agent_client


async def ask(
    client: MiniMaxAgentClient, auth: AgentAuth, text: str, conversation: Conversation | None = None
) -> list[UpstreamEvent]:
    return [event async for event in client.stream(auth, text, conversation)]


def answer_of(events: list[UpstreamEvent]) -> str:
    finished = [event for event in events if isinstance(event, Finished)]
    assert finished, f"no Finished in {events}"
    return finished[-1].text


async def test_first_question_sets_up_the_account_and_answers_in_a_new_session(
    agent: MiniMaxAgentStandIn, client: MiniMaxAgentClient
) -> None:
    auth = agent_auth(agent)
    agent.reasoning = "The user greets me. I should greet back."
    events = await ask(client, auth, "Hello there")
    assert answer_of(events) == "You said: Hello there (message 1 in this session)"
    started = events[0]
    assert isinstance(started, ConversationStarted) and started.is_new
    [session] = agent.sessions.values()
    assert started.conversation.chat_id == session.session_id
    assert session.agent_id == agent.mavis_agent_id, "the mavis agent, by its numeric id"
    assert AGENT_USER in agent.initialised
    reasoning = [e.text for e in events if isinstance(e, ReasoningDelta)]
    assert reasoning[-1] == agent.reasoning
    assert agent.reasoning not in answer_of(events)
    assert TitleGenerated("Chat about Hello there") in events
    [post] = agent.message_posts
    assert post.yy_target == "absolute", "the stream host's message POST signs the full URL"
    assert post.headers["token"] == post.param("token") == auth.token
    assert post.json()["model"] == {
        "provider_id": "minimax",
        "model_id": "MiniMax-M3",
        "reasoning": True,
    }


async def test_a_conversation_continues_in_its_session(
    agent: MiniMaxAgentStandIn, client: MiniMaxAgentClient
) -> None:
    auth = agent_auth(agent)
    first = await ask(client, auth, "one")
    conversation = first[0].conversation if isinstance(first[0], ConversationStarted) else None
    second = await ask(client, auth, "two", conversation)
    assert answer_of(second) == "You said: two (message 2 in this session)"
    assert len(agent.sessions) == 1
    assert [s.turns for s in agent.sessions.values()] == [["one", "two"]]
    # Another account's conversation is not continued with this login.
    other = agent_auth(agent, "900000000000000999")
    third = await ask(client, other, "three", conversation)
    assert answer_of(third).endswith("(message 1 in this session)")


async def test_a_forgotten_set_up_is_done_again(
    agent: MiniMaxAgentStandIn, client: MiniMaxAgentClient
) -> None:
    auth = agent_auth(agent)
    await ask(client, auth, "first")
    agent.fail_next(AgentFault.NOT_INITIALISED)
    assert answer_of(await ask(client, auth, "second")).startswith("You said: second")
    assert len(agent.sessions) == 2


async def test_a_busy_session_continues_in_a_new_one(
    agent: MiniMaxAgentStandIn, client: MiniMaxAgentClient
) -> None:
    auth = agent_auth(agent)
    first = await ask(client, auth, "first")
    assert isinstance(first[0], ConversationStarted)
    agent.fail_next(AgentFault.SESSION_BUSY)
    events = await ask(client, auth, "second", first[0].conversation)
    new = [e for e in events if isinstance(e, ConversationStarted) and e.is_new]
    assert len(new) == 1
    assert answer_of(events) == "You said: second (message 1 in this session)"


async def test_a_conversation_deleted_on_the_site_continues_in_a_new_session(
    agent: MiniMaxAgentStandIn, client: MiniMaxAgentClient
) -> None:
    """The message POST answers 404 (the session is gone): a new session, not an error."""
    auth = agent_auth(agent)
    first = await ask(client, auth, "first")
    assert isinstance(first[0], ConversationStarted)
    agent.sessions.pop(first[0].conversation.chat_id)
    events = await ask(client, auth, "second", first[0].conversation)
    new = [e for e in events if isinstance(e, ConversationStarted) and e.is_new]
    assert len(new) == 1
    assert new[0].conversation.chat_id != first[0].conversation.chat_id
    assert answer_of(events) == "You said: second (message 1 in this session)"


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        (AgentFault.UNAUTHORIZED, AuthRejected, "token expired, the user id is wrong"),
        (AgentFault.HTML_PAGE, ProtocolChanged, "protocol has probably changed"),
        (AgentFault.CHALLENGE_403, UpstreamUnavailable, "challenge"),
        (AgentFault.SERVER_ERROR, UpstreamUnavailable, "unavailable"),
        (AgentFault.RATE_LIMITED, RateLimited, "rate limiting"),
        (AgentFault.QUOTA_ERROR, RateLimited, "quota exhausted"),
        (AgentFault.CHUNK_ERROR, UpstreamError, "reported an error"),
        (AgentFault.DISCONNECT_MID_STREAM, StreamInterrupted, "broke"),
    ],
)
async def test_each_fault_is_a_typed_error(
    agent: MiniMaxAgentStandIn,
    client: MiniMaxAgentClient,
    fault: AgentFault,
    error: type[Exception],
    words: str,
) -> None:
    auth = agent_auth(agent)
    agent.fail_next(fault)
    with pytest.raises(error, match=words) as caught:
        await ask(client, auth, "hello")
    if fault is AgentFault.RATE_LIMITED:
        assert isinstance(caught.value, RateLimited)
        assert caught.value.retry_after == 7
    if fault in (AgentFault.QUOTA_ERROR, AgentFault.DISCONNECT_MID_STREAM):
        assert getattr(caught.value, "partial_text", ""), "what came is kept"
    assert auth.token not in str(caught.value)


@pytest.mark.parametrize("fault", [AgentFault.MALFORMED_FRAME, AgentFault.REPEAT_WHOLE_ANSWER])
async def test_quirks_do_not_spoil_the_answer(
    agent: MiniMaxAgentStandIn, client: MiniMaxAgentClient, fault: AgentFault
) -> None:
    agent.fail_next(fault)
    agent.no_space_after_colon = True
    agent.answer_next("An answer long enough to be recognised when it is repeated whole.")
    events = await ask(client, agent_auth(agent), "hello")
    assert answer_of(events) == "An answer long enough to be recognised when it is repeated whole."


async def test_a_silent_stream_is_interrupted_not_awaited_forever(
    agent: MiniMaxAgentStandIn, client: MiniMaxAgentClient
) -> None:
    agent.fail_next(AgentFault.SILENT_MID_STREAM)
    with pytest.raises(StreamInterrupted, match="silent") as caught:
        await ask(client, agent_auth(agent), "hello")
    assert caught.value.partial_text


async def test_the_probe_checks_the_account_and_renews_an_expiring_token(
    agent: MiniMaxAgentStandIn, client: MiniMaxAgentClient
) -> None:
    auth = agent_auth(agent)
    assert await client.probe(auth) == auth
    expiring = auth.model_copy(
        update={"token": agent.make_token(AGENT_USER, exp=int(time.time()) + 3600)}
    )
    renewed = await client.probe(expiring)
    assert renewed.token != expiring.token
    assert agent.renewals == 1
    assert renewed.expires_at is not None
    agent.revoke(auth.token)
    with pytest.raises(AuthRejected):
        await client.probe(auth)
    wrong_account = auth.model_copy(update={"real_user_id": "900000000000000777"})
    with pytest.raises(AuthRejected):
        await ask(client, wrong_account, "hello")
