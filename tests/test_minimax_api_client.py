"""The MiniMax API adapter against an OpenAI-compatible stand-in, and its think-tag splitter.

The stand-in (tests/standins/openai_compat.py) streams reasoning both ways MiniMax can send it
(apart, or inline as `<think>` cut inside the tags) and injects the HTTP and `base_resp` faults.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, ClassVar

import pytest

from bot.minimax_api import ApiKey, ThinkSplitter
from bot.minimax_api.client import MiniMaxApiClient
from bot.upstream import (
    AuthRejected,
    ConversationStarted,
    Credentials,
    Finished,
    InvalidCredentials,
    ProtocolChanged,
    RateLimited,
    ReasoningDelta,
    StreamInterrupted,
    TextDelta,
    Turn,
    UpstreamError,
    UpstreamEvent,
    UpstreamFailure,
    UpstreamTimeouts,
    UpstreamUnavailable,
    fingerprint,
)
from tests.standins.openai_compat import DEFAULT_KEY, Fault, OpenAICompatStandIn

TIMEOUTS = UpstreamTimeouts(connect=5, first_event=20, idle=20, total=60)
KEY = ApiKey(key=DEFAULT_KEY)

# --- ThinkSplitter -------------------------------------------------------------------------------

SAMPLES: list[tuple[str, str, str]] = [
    # (content as the server streams it, the answer, the reasoning)
    (
        "\n\n<think>\nThe user greets me.\n</think>\n\nHello there!",
        "Hello there!",
        "The user greets me.\n",
    ),
    (
        "<think>first</think>Answer one <think>second</think> and two",
        "Answer one  and two",
        "first\n\nsecond",
    ),
    (
        "x < y, a<b and <thinking> or </thin> stay text",
        "x < y, a<b and <thinking> or </thin> stay text",
        "",
    ),
    (
        "<think>never closed, so all of it is reasoning",
        "",
        "never closed, so all of it is reasoning",
    ),
    ("<think>r</think>\n\nA</think>B", "AB", "r"),
    ("Plain answer ending in <thi", "Plain answer ending in <thi", ""),
    ("<think>ends inside the close tag </thi", "", "ends inside the close tag </thi"),
    ("<<think>>x</think>>", "<>", ">x"),
]


def split_all(chunks: list[str]) -> tuple[str, str]:
    splitter = ThinkSplitter()
    answer = reasoning = ""
    for chunk in chunks:
        a, r = splitter.feed(chunk)
        answer, reasoning = answer + a, reasoning + r
    a, r = splitter.flush()
    return answer + a, reasoning + r


@pytest.mark.parametrize(("content", "answer", "reasoning"), SAMPLES)
def test_the_splitter_gives_the_same_result_however_the_content_is_cut(
    content: str, answer: str, reasoning: str
) -> None:
    assert split_all([content]) == (answer, reasoning)
    assert split_all(list(content)) == (answer, reasoning), "one character at a time"
    for cut in range(len(content) + 1):
        assert split_all([content[:cut], content[cut:]]) == (answer, reasoning), cut
    for first in range(1, len(content)):
        for second in range(first, len(content)):
            pieces = [content[:first], content[first:second], content[second:]]
            assert split_all(pieces) == (answer, reasoning), (first, second)


def test_the_splitter_holds_back_only_what_can_still_become_a_tag() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("a <") == ("a ", "")
    assert splitter.feed(" b") == ("< b", ""), "released as soon as it cannot be a tag"
    assert splitter.feed(" <th") == (" ", "")
    assert splitter.feed("e end") == ("<the end", "")
    assert splitter.feed("<think>why") == ("", "why")
    assert splitter.feed(" so</th") == ("", " so")
    assert splitter.inside_think
    assert splitter.feed("ink>\n\nok") == ("\n\nok", ""), "stripped only at the start"
    assert not splitter.inside_think
    assert splitter.flush() == ("", "")


def test_a_tag_split_at_every_position_never_leaks() -> None:
    content = "<think>secret plan</think>\n\nThe visible answer."
    for cut in range(len(content) + 1):
        splitter = ThinkSplitter()
        first = splitter.feed(content[:cut])
        second = splitter.feed(content[cut:])
        rest = splitter.flush()
        answer = first[0] + second[0] + rest[0]
        assert "secret" not in answer and "<" not in answer, cut
        for part in (first[0], second[0], rest[0]):
            assert not part or "think" not in part


# --- credentials ---------------------------------------------------------------------------------


def test_the_api_key_is_a_login_that_never_shows_its_value() -> None:
    assert KEY.UPSTREAM == "minimax-api"
    assert KEY.fingerprint == fingerprint(DEFAULT_KEY)
    assert KEY.secrets() == [DEFAULT_KEY]
    assert DEFAULT_KEY not in repr(KEY) and DEFAULT_KEY not in str(KEY)
    assert KEY.to_storage() == {"upstream": "minimax-api", "key": DEFAULT_KEY}
    assert ApiKey.from_mapping({"key": f" {DEFAULT_KEY}\n"}) == KEY
    for bad in ({"key": ""}, {"key": "  "}, {}, {"key": '"quoted"'}):
        with pytest.raises(InvalidCredentials, match="key"):
            ApiKey.from_mapping(bad)


# --- the client against the stand-in -------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[OpenAICompatStandIn]:
    async with OpenAICompatStandIn() as standin:
        yield standin


@pytest.fixture
async def client(server: OpenAICompatStandIn) -> AsyncIterator[MiniMaxApiClient]:
    async with MiniMaxApiClient(base_url=server.base_url, timeouts=TIMEOUTS) as api_client:
        yield api_client


async def ask(
    client: MiniMaxApiClient, text: str, key: Credentials = KEY, **kwargs: Any
) -> list[UpstreamEvent]:
    return [event async for event in client.stream(key, text, **kwargs)]


def answer_of(events: list[UpstreamEvent]) -> str:
    finished = [event for event in events if isinstance(event, Finished)]
    assert len(finished) == 1 and events[-1] is finished[0], events
    return finished[0].text


def reasoning_of(events: list[UpstreamEvent]) -> str:
    reasoning = [event for event in events if isinstance(event, ReasoningDelta)]
    return reasoning[-1].text if reasoning else ""


def assert_consistent(events: list[UpstreamEvent]) -> None:
    """Each delta extends the text before it; the final text is the last one."""
    text = reasoning = ""
    for event in events:
        if isinstance(event, TextDelta):
            assert event.delta and event.text == text + event.delta
            text = event.text
        elif isinstance(event, ReasoningDelta):
            assert event.delta and event.text == reasoning + event.delta
            reasoning = event.text
    assert answer_of(events) == text


async def test_the_answer_streams_and_finishes_without_a_conversation(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    events = await ask(client, "hello there")
    assert answer_of(events) == "Echo: hello there"
    assert_consistent(events)
    deltas = [event for event in events if isinstance(event, TextDelta)]
    assert len(deltas) >= 3, "streamed, not in one piece"
    assert not any(isinstance(event, ConversationStarted) for event in events)
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.conversation is None
    [request] = server.chat_requests
    assert request.body["stream"] is True
    assert request.reasoning_split
    assert request.outcome == "answered"


@pytest.mark.parametrize(
    "style",
    ["reasoning_details", "reasoning_details_cumulative", "reasoning_content", "inline"],
)
async def test_reasoning_never_reaches_the_answer(
    server: OpenAICompatStandIn, client: MiniMaxApiClient, style: str
) -> None:
    if style == "inline":
        server.ignore_reasoning_split = True
    else:
        server.reasoning_style = style  # type: ignore[assignment]
    reasoning = "Six times seven. Mention <b> tags? No: just the number."
    server.reply_next("The answer is 42.", reasoning=reasoning)
    events = await ask(client, "what is six times seven?")
    assert answer_of(events) == "The answer is 42."
    assert reasoning_of(events) == reasoning
    assert_consistent(events)
    for event in events:
        if isinstance(event, TextDelta):
            assert "think" not in event.text and "Six times" not in event.text
    first_text = next(i for i, event in enumerate(events) if isinstance(event, TextDelta))
    last_reasoning = max(i for i, event in enumerate(events) if isinstance(event, ReasoningDelta))
    assert last_reasoning < first_text, "the thinking comes before the answer"
    assert server.chat_requests[0].chunks_sent >= 6


async def test_a_server_that_splits_reasoning_keeps_a_literal_think_tag_in_the_answer(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    server.reply_next("Models write <think>…</think> around their reasoning.", reasoning="Tags.")
    events = await ask(client, "what is <think>?")
    assert answer_of(events) == "Models write <think>…</think> around their reasoning."
    assert reasoning_of(events) == "Tags."


async def test_a_whole_json_answer_is_accepted_from_a_server_that_ignores_stream(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    server.ignore_stream = True
    server.reply_next("All at once.", reasoning="Short.")
    events = await ask(client, "hi")
    assert answer_of(events) == "All at once."
    assert reasoning_of(events) == "Short."


async def test_history_goes_oldest_first_after_the_system_prompt(
    server: OpenAICompatStandIn,
) -> None:
    history = [Turn("first question", "first answer"), Turn("second question", "second answer")]
    async with MiniMaxApiClient(
        base_url=server.base_url, system_prompt="You are terse.", timeouts=TIMEOUTS
    ) as client:
        await ask(client, "third question", history=history)
    async with MiniMaxApiClient(base_url=server.base_url, timeouts=TIMEOUTS) as client:
        await ask(client, "no system prompt")
    with_prompt, without = server.chat_requests
    assert with_prompt.messages == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "second answer"},
        {"role": "user", "content": "third question"},
    ]
    assert without.messages == [{"role": "user", "content": "no system prompt"}]
    assert with_prompt.model == "MiniMax-M3"


async def test_the_model_can_be_chosen_per_question(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    await ask(client, "hi", model="MiniMax-M2.7")
    assert server.chat_requests[-1].model == "MiniMax-M2.7"
    with pytest.raises(UpstreamError, match="unknown model 'MiniMax-Nope'") as caught:
        await ask(client, "hi", model="MiniMax-Nope")
    assert type(caught.value) is UpstreamError
    assert caught.value.code == 400


async def test_a_strict_server_that_refuses_reasoning_split_still_answers(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    """A strict OpenAI-compatible server answers 400 to the unknown `reasoning_split`: the
    question is asked again without it (and later ones too), its inline <think> split out."""
    server.refused_fields = {"reasoning_split"}
    events = await ask(client, "hi")
    assert answer_of(events) == "Echo: hi"
    assert "think>" not in answer_of(events)
    assert reasoning_of(events), "the inline reasoning still arrives apart"
    await ask(client, "again")
    assert [request.status for request in server.chat_requests] == [400, 200, 200]
    assert [request.reasoning_split for request in server.chat_requests] == [True, False, False]


async def test_a_conversation_argument_is_ignored(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    from bot.upstream import Conversation

    conversation = Conversation(chat_id="123", token_fingerprint=KEY.fingerprint)
    events = [event async for event in client.stream(KEY, "again", conversation)]
    assert answer_of(events) == "Echo: again"
    assert await client.title(KEY, conversation) == ""


async def test_each_key_is_sent_with_its_own_questions(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    other = ApiKey(key="sk-standin-second-key-0000")
    server.api_keys.add(other.key)
    results = await asyncio.gather(ask(client, "one"), ask(client, "two", other), ask(client, "3"))
    assert [answer_of(events) for events in results] == ["Echo: one", "Echo: two", "Echo: 3"]
    keys = {request.messages[-1]["content"]: request.key for request in server.chat_requests}
    assert keys == {"one": KEY.key, "two": other.key, "3": KEY.key}


async def test_a_closed_client_opens_again_when_used(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    await ask(client, "before")
    await client.close()
    assert answer_of(await ask(client, "after")) == "Echo: after"


# --- errors --------------------------------------------------------------------------------------


async def test_a_wrong_key_is_refused(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    wrong = ApiKey(key="sk-wrong-key-that-nobody-issued")
    with pytest.raises(AuthRejected) as caught:
        await ask(client, "hi", wrong)
    assert caught.value.status == 401
    assert caught.value.message == "MiniMax API: invalid api key (401)"
    server.fail_next(Fault.UNAUTHORIZED)
    with pytest.raises(AuthRejected, match=r"invalid api key \(401\)"):
        await ask(client, "hi")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0.5", 0.5), (None, None), ("soon", None)],
)
async def test_a_rate_limit_says_when_to_come_back(
    server: OpenAICompatStandIn,
    client: MiniMaxApiClient,
    header: str | None,
    expected: float | None,
) -> None:
    server.retry_after = header
    server.fail_next(Fault.RATE_LIMITED)
    with pytest.raises(RateLimited, match=r"rate limited \(429") as caught:
        await ask(client, "hi")
    assert caught.value.retry_after == expected
    assert len(server.chat_requests) == 1, "no retry behind the caller's back"


async def test_a_rate_limit_with_an_http_date(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    server.retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    server.fail_next(Fault.RATE_LIMITED)
    with pytest.raises(RateLimited) as caught:
        await ask(client, "hi")
    assert caught.value.retry_after is not None
    assert 60 < caught.value.retry_after <= 121


@pytest.mark.parametrize(("fault", "status"), [(Fault.SERVER_ERROR, 500), (Fault.UNAVAILABLE, 503)])
async def test_server_errors_are_unavailability(
    server: OpenAICompatStandIn, client: MiniMaxApiClient, fault: Fault, status: int
) -> None:
    server.fail_next(fault)
    with pytest.raises(UpstreamUnavailable, match=f"unavailable \\({status}\\)"):
        await ask(client, "hi")
    assert answer_of(await ask(client, "hi")) == "Echo: hi", "a one-shot fault"


async def test_a_sticky_fault_stays(server: OpenAICompatStandIn, client: MiniMaxApiClient) -> None:
    server.sticky_fault = Fault.UNAVAILABLE
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await ask(client, "hi")
    server.sticky_fault = None
    assert answer_of(await ask(client, "hi")) == "Echo: hi"


async def test_an_html_page_is_not_taken_for_an_empty_answer(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    server.fail_next(Fault.HTML_PAGE)
    with pytest.raises(ProtocolChanged, match="HTML page"):
        await ask(client, "hi")


async def test_an_unreachable_server_is_unavailability() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with MiniMaxApiClient(base_url=f"http://127.0.0.1:{port}/v1", timeouts=TIMEOUTS) as dead:
        with pytest.raises(UpstreamUnavailable, match="cannot reach MiniMax API"):
            await ask(dead, "hi")


@pytest.mark.parametrize("fault", [Fault.BREAK_MID_STREAM, Fault.END_WITHOUT_DONE])
async def test_a_stream_cut_short_keeps_the_text_so_far(
    server: OpenAICompatStandIn, client: MiniMaxApiClient, fault: Fault
) -> None:
    server.reply_next("A long answer that will not arrive whole.", reasoning="Hm.")
    server.chunk_count = 6
    server.fail_next(fault)
    events: list[UpstreamEvent] = []
    with pytest.raises(StreamInterrupted) as caught:
        async for event in client.stream(KEY, "hi"):
            events.append(event)
    texts = [event.text for event in events if isinstance(event, TextDelta)]
    assert caught.value.partial_text == texts[-1]
    assert "A long answer that will not arrive whole.".startswith(caught.value.partial_text)
    assert caught.value.partial_text != "A long answer that will not arrive whole."
    assert server.chat_requests[0].outcome == "broken"


@pytest.mark.parametrize(
    ("code", "words", "error"),
    [
        (1008, "insufficient balance", RateLimited),
        (1002, "rate limit", RateLimited),
        (1004, "invalid api key", AuthRejected),
        (2049, "invalid api key", AuthRejected),
        (2013, "invalid params, unknown field", UpstreamError),
    ],
)
async def test_errors_in_a_200_body_are_typed(
    server: OpenAICompatStandIn,
    client: MiniMaxApiClient,
    code: int,
    words: str,
    error: type[UpstreamFailure],
) -> None:
    server.base_resp_code = code
    server.base_resp_msg = "invalid params, unknown field" if code == 2013 else "whatever it says"
    server.fail_next(Fault.BASE_RESP)
    with pytest.raises(error, match=words) as caught:
        await ask(client, "hi")
    assert type(caught.value) is error
    assert f"({code}" in caught.value.message
    if isinstance(caught.value, UpstreamError):
        assert caught.value.code == code


async def test_an_error_chunk_in_the_stream_keeps_the_text_so_far(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    server.reply_next("Partial and then out of money.", reasoning="")
    server.fail_next(Fault.BASE_RESP_IN_STREAM)
    with pytest.raises(RateLimited, match="insufficient balance") as caught:
        await ask(client, "hi")
    assert caught.value.partial_text
    assert "Partial and then out of money.".startswith(caught.value.partial_text)


async def test_the_key_never_appears_in_errors_or_logs(
    server: OpenAICompatStandIn, client: MiniMaxApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = ApiKey(key="sk-wrong-key-that-nobody-issued")
    server.base_resp_msg = f"the key {DEFAULT_KEY} has no balance left"  # a server echoing it
    failures: list[UpstreamFailure] = []

    async def expect_failure(key: ApiKey = KEY, **kwargs: Any) -> None:
        try:
            await ask(client, "hi", key, **kwargs)
        except UpstreamFailure as exc:
            failures.append(exc)
        else:
            pytest.fail("expected a failure")

    await expect_failure(wrong)
    for fault in (
        Fault.RATE_LIMITED,
        Fault.SERVER_ERROR,
        Fault.BASE_RESP,
        Fault.BASE_RESP_IN_STREAM,
        Fault.BREAK_MID_STREAM,
    ):
        server.fail_next(fault)
        await expect_failure()
    server.base_resp_code = 2013
    server.fail_next(Fault.BASE_RESP)
    await expect_failure()
    await expect_failure(model="MiniMax-Nope")
    with pytest.raises(AuthRejected) as probe_failure:
        await client.probe(wrong)
    failures.append(probe_failure.value)
    await ask(client, "fine")
    assert len(failures) == 9
    for failure in failures:
        for text in (str(failure), repr(failure), failure.message):
            assert DEFAULT_KEY not in text and wrong.key not in text, text
        assert len(failure.message) < 300
    assert "***" in failures[-3].message, "the echoed key was blanked out"
    assert caplog.records, "the libraries did log at DEBUG"
    for record in caplog.records:
        for secret in (DEFAULT_KEY, wrong.key):
            assert secret not in record.getMessage()
            assert secret not in (caplog.handler.format(record))


# --- timeouts and closing ------------------------------------------------------------------------


async def test_closing_the_stream_early_closes_it_on_the_server(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    server.gate = asyncio.Event()
    server.reply_next("First words, then the rest.", reasoning="")
    stream = client.stream(KEY, "hi")
    first = await anext(stream)
    assert isinstance(first, TextDelta)
    assert server.streams_open == 1
    await stream.aclose()
    await server.wait_streams_closed(timeout=30)
    assert server.chat_requests[0].outcome == "disconnected"
    server.gate.set()
    assert answer_of(await ask(client, "again")) == "Echo: again", "the pool still works"


async def test_a_silent_stream_is_interrupted_by_the_idle_limit(
    server: OpenAICompatStandIn,
) -> None:
    server.gate = asyncio.Event()  # never set: the server holds the stream after one chunk
    server.reply_next("Words and then silence.", reasoning="")
    timeouts = UpstreamTimeouts(connect=5, first_event=20, idle=0.5, total=60)
    async with MiniMaxApiClient(base_url=server.base_url, timeouts=timeouts) as client:
        with pytest.raises(StreamInterrupted, match=r"went silent for 0\.5 s") as caught:
            await ask(client, "hi")
    assert caught.value.partial_text
    await server.wait_streams_closed(timeout=30)


async def test_a_silent_start_is_unavailability(server: OpenAICompatStandIn) -> None:
    server.first_chunk_delay = 3600
    timeouts = UpstreamTimeouts(connect=5, first_event=0.5, idle=20, total=60)
    async with MiniMaxApiClient(base_url=server.base_url, timeouts=timeouts) as client:
        with pytest.raises(UpstreamUnavailable, match=r"0\.5 s"):
            await ask(client, "hi")
    await server.wait_streams_closed(timeout=30)


async def test_an_answer_that_takes_too_long_is_cut_at_the_total_limit(
    server: OpenAICompatStandIn,
) -> None:
    server.gate = asyncio.Event()
    server.reply_next("Some words, then a very long pause.", reasoning="")
    timeouts = UpstreamTimeouts(connect=5, first_event=20, idle=20, total=1.5)
    async with MiniMaxApiClient(base_url=server.base_url, timeouts=timeouts) as client:
        with pytest.raises(StreamInterrupted, match=r"longer than 1\.5 s") as caught:
            await ask(client, "hi")
    assert caught.value.partial_text
    await server.wait_streams_closed(timeout=30)


# --- probe and models ----------------------------------------------------------------------------


async def test_the_probe_checks_the_key(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    assert await client.probe(KEY) == KEY
    with pytest.raises(AuthRejected) as caught:
        await client.probe(ApiKey(key="sk-wrong-key-that-nobody-issued"))
    assert caught.value.status == 401
    assert server.chat_requests == [], "the probe asks no question"


async def test_models_are_listed_and_a_server_without_the_list_is_fine(
    server: OpenAICompatStandIn, client: MiniMaxApiClient
) -> None:
    assert await client.models(KEY) == ["MiniMax-M3", "MiniMax-M2.7", "MiniMax-M2.7-highspeed"]
    server.models_endpoint = False
    assert await client.models(KEY) == []
    assert await client.probe(KEY) == KEY


async def test_another_upstreams_login_is_refused(client: MiniMaxApiClient) -> None:
    class OtherLogin(Credentials):
        UPSTREAM: ClassVar[str] = "hailuo"

    with pytest.raises(AuthRejected, match="not MiniMax API"):
        await ask(client, "hi", OtherLogin())
    with pytest.raises(AuthRejected):
        await client.probe(OtherLogin())
