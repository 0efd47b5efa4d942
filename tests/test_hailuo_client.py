"""The Hailuo client against the stand-in: what a caller sees, fault by fault."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from bot.hailuo import (
    AuthRejected,
    AuthState,
    Conversation,
    ConversationStarted,
    Finished,
    HailuoClient,
    HailuoEvent,
    HailuoTimeouts,
    RateLimited,
    SignatureRejected,
    StreamInterrupted,
    TextDelta,
    TitleGenerated,
    UpstreamError,
    UpstreamUnavailable,
)
from tests.conftest import free_port, make_auth
from tests.standins.hailuo import Fault, HailuoStandIn


async def collect(
    client: HailuoClient, auth: AuthState, text: str, conversation: Conversation | None = None
) -> list[HailuoEvent]:
    return [event async for event in client.stream(auth, text, conversation)]


def answer_of(events: list[HailuoEvent]) -> str:
    return "".join(event.delta for event in events if isinstance(event, TextDelta))


async def test_a_new_conversation_streams_typed_events(
    client: HailuoClient, auth: AuthState, hailuo: HailuoStandIn
) -> None:
    events = await collect(client, auth, "Hello there")

    started, title = events[0], events[1]
    assert isinstance(started, ConversationStarted) and started.is_new
    assert started.conversation.token_fingerprint == auth.fingerprint
    assert isinstance(title, TitleGenerated) and title.title == "Chat about Hello there"
    deltas = [event for event in events if isinstance(event, TextDelta)]
    assert len(deltas) >= 3, "the answer should arrive in several pieces"
    expected = "You said: Hello there (message 1 in this conversation)"
    assert answer_of(events) == expected
    assert deltas[-1].text == expected
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.text == expected and finished.conversation == started.conversation

    request = hailuo.requests[0]
    assert request.fields == {
        "characterID": "1",
        "msgContent": "Hello there",
        "chatID": "0",
        "searchMode": "0",
    }
    assert request.headers["token"] == auth.token
    assert "sessionid=cookie-secret-value" in request.headers["cookie"]
    assert request.headers["user-agent"] == "Mozilla/5.0 Chrome/156.0"
    assert request.outcome == "answered"


async def test_second_message_continues_the_conversation(
    client: HailuoClient, auth: AuthState, hailuo: HailuoStandIn
) -> None:
    first = await collect(client, auth, "one")
    assert isinstance(first[0], ConversationStarted)
    conversation = first[0].conversation

    second = await collect(client, auth, "two\nlines", conversation)

    assert hailuo.requests[1].fields["chatID"] == conversation.chat_id
    assert isinstance(second[0], ConversationStarted) and not second[0].is_new
    assert not any(isinstance(event, TitleGenerated) for event in second)
    assert answer_of(second) == "You said: two\nlines (message 2 in this conversation)"


async def test_conversation_of_another_login_is_not_reused(
    client: HailuoClient, auth: AuthState, hailuo: HailuoStandIn
) -> None:
    old = Conversation(chat_id="123", token_fingerprint=make_auth(token="old-token").fingerprint)
    events = await collect(client, auth, "hi", old)
    assert hailuo.requests[0].fields["chatID"] == "0"
    assert isinstance(events[0], ConversationStarted) and events[0].is_new


async def test_sequential_answers_share_one_pooled_connection(
    client: HailuoClient, auth: AuthState, hailuo: HailuoStandIn
) -> None:
    for index in range(3):
        await collect(client, auth, f"question {index}")
    assert len({request.client_port for request in hailuo.requests}) == 1


@pytest.mark.parametrize(
    ("fault", "error", "kind"),
    [
        (Fault.UNAUTHORIZED, AuthRejected, "auth"),
        (Fault.EXPIRED_JSON, AuthRejected, "auth"),
        (Fault.BAD_SIGNATURE, SignatureRejected, "signature"),
        (Fault.SERVER_ERROR, UpstreamUnavailable, "unavailable"),
    ],
)
async def test_refusals_are_typed(
    client: HailuoClient,
    auth: AuthState,
    hailuo: HailuoStandIn,
    fault: Fault,
    error: type[Exception],
    kind: str,
) -> None:
    hailuo.fail_next(fault)
    with pytest.raises(error) as caught:
        await collect(client, auth, "hi")
    assert getattr(caught.value, "kind", None) == kind
    assert auth.token not in str(caught.value)


async def test_rate_limit_carries_retry_after(
    client: HailuoClient, auth: AuthState, hailuo: HailuoStandIn
) -> None:
    hailuo.retry_after = 7
    hailuo.fail_next(Fault.RATE_LIMITED)
    with pytest.raises(RateLimited) as caught:
        await collect(client, auth, "hi")
    assert caught.value.retry_after == 7


async def test_unknown_token_is_rejected(client: HailuoClient, hailuo: HailuoStandIn) -> None:
    with pytest.raises(AuthRejected) as caught:
        await collect(client, make_auth(token="revoked-token"), "hi")
    assert caught.value.status == 401
    assert "revoked-token" not in str(caught.value)


async def test_a_stale_signature_is_rejected_by_the_standin(
    client: HailuoClient, auth: AuthState
) -> None:
    tampered = auth.model_copy(update={"timestamp": auth.timestamp + 1})
    with pytest.raises(SignatureRejected):
        await collect(client, tampered, "hi")


async def test_connection_refused_is_unavailable(auth: AuthState) -> None:
    async with HailuoClient(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(UpstreamUnavailable, match="cannot reach Hailuo"):
            await collect(client, auth, "hi")


async def test_slow_first_byte_times_out_as_unavailable(
    auth: AuthState, hailuo: HailuoStandIn
) -> None:
    hailuo.first_byte_delay = 30
    hailuo.fail_next(Fault.SLOW_FIRST_BYTE)
    timeouts = HailuoTimeouts(first_event=0.5, idle=20, total=60)
    async with HailuoClient(hailuo.base_url, timeouts=timeouts) as client:
        with pytest.raises(UpstreamUnavailable, match=r"0\.5 s"):
            await collect(client, auth, "hi")


async def test_slow_first_byte_within_the_deadline_is_fine(
    client: HailuoClient, auth: AuthState, hailuo: HailuoStandIn
) -> None:
    hailuo.first_byte_delay = 0.3
    hailuo.fail_next(Fault.SLOW_FIRST_BYTE)
    events = await collect(client, auth, "patience")
    assert isinstance(events[-1], Finished)


async def test_disconnect_mid_stream_keeps_the_partial_text(
    client: HailuoClient, auth: AuthState, hailuo: HailuoStandIn
) -> None:
    hailuo.fail_next(Fault.DISCONNECT_MID_STREAM)
    seen: list[HailuoEvent] = []
    with pytest.raises(StreamInterrupted) as caught:
        async for event in client.stream(auth, "tell me more"):
            seen.append(event)
    partial = caught.value.partial_text
    assert partial and partial == answer_of(seen)
    assert "You said: tell me more".startswith(partial) or partial.startswith("You said")
    assert caught.value.conversation is not None


async def test_silence_mid_stream_is_an_interruption(
    auth: AuthState, hailuo: HailuoStandIn
) -> None:
    hailuo.fail_next(Fault.SILENT_MID_STREAM)
    timeouts = HailuoTimeouts(first_event=20, idle=0.5, total=60)
    async with HailuoClient(hailuo.base_url, timeouts=timeouts) as client:
        with pytest.raises(StreamInterrupted, match="silent") as caught:
            await collect(client, auth, "hi")
    assert caught.value.partial_text.startswith("You said")


async def test_malformed_line_is_skipped_and_logged(
    client: HailuoClient, auth: AuthState, hailuo: HailuoStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    hailuo.fail_next(Fault.MALFORMED_LINE)
    with caplog.at_level(logging.WARNING, logger="bot.hailuo"):
        events = await collect(client, auth, "still fine")
    assert answer_of(events) == "You said: still fine (message 1 in this conversation)"
    assert any("malformed" in record.getMessage() for record in caplog.records)


async def test_split_characters_never_reach_the_caller(
    client: HailuoClient, auth: AuthState, hailuo: HailuoStandIn
) -> None:
    hailuo.fail_next(Fault.SPLIT_MULTIBYTE)
    events = await collect(client, auth, "hi")
    deltas = [event.delta for event in events if isinstance(event, TextDelta)]
    assert all("\ufffd" not in delta for delta in deltas)
    assert "".join(deltas) == "Привет, мир 🙂 и ещё раз 🙂"


async def test_error_inside_the_stream_is_reported_not_shown(
    client: HailuoClient, auth: AuthState, hailuo: HailuoStandIn
) -> None:
    hailuo.fail_next(Fault.STREAM_STATUS_ERROR)
    with pytest.raises(UpstreamError) as caught:
        await collect(client, auth, "something forbidden")
    assert caught.value.code == 1300
    assert "content moderation" in str(caught.value)
    assert caught.value.partial_text.startswith("You said")


async def test_cancelling_the_consumer_closes_the_request_at_once(
    client: HailuoClient, auth: AuthState, hailuo: HailuoStandIn
) -> None:
    hailuo.chunk_count = 400
    hailuo.chunk_delay = 0.05  # 20 s of answer if nobody hangs up
    first_text = asyncio.Event()

    async def consume() -> None:
        async for event in client.stream(auth, "a very long story " * 20):
            if isinstance(event, TextDelta):
                first_text.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(30):
        await first_text.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await hailuo.wait_outcome(0, timeout=10) == "disconnected"
    # The client is still usable afterwards.
    hailuo.chunk_count, hailuo.chunk_delay = 4, 0.0
    assert isinstance((await collect(client, auth, "next"))[-1], Finished)


async def test_breaking_out_of_the_loop_closes_the_request(
    client: HailuoClient, auth: AuthState, hailuo: HailuoStandIn
) -> None:
    hailuo.chunk_count = 400
    hailuo.chunk_delay = 0.05
    stream = client.stream(auth, "a very long story " * 20)
    async with contextlib.aclosing(stream):
        async for event in stream:
            if isinstance(event, TextDelta):
                break
    assert await hailuo.wait_outcome(0, timeout=10) == "disconnected"


async def test_no_secret_reaches_the_logs(
    client: HailuoClient, auth: AuthState, hailuo: HailuoStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    hailuo.fail_next(Fault.MALFORMED_LINE, Fault.UNAUTHORIZED)
    with caplog.at_level(logging.DEBUG):
        await collect(client, auth, "hi")
        with pytest.raises(AuthRejected):
            await collect(client, auth, "hi")
    text = caplog.text
    assert auth.token not in text
    assert "cookie-secret-value" not in text
