"""The protocol rules on their own: SSE framing and cumulative-content assembly."""

from __future__ import annotations

import json

import pytest

from bot.hailuo import Finished, TextDelta, UpstreamError
from bot.hailuo.answer import AnswerAssembler
from bot.upstream.sse import SseDecoder, SseEvent, SseTooLarge


def test_decoder_handles_any_split_and_crlf() -> None:
    raw = (
        'event: a\r\ndata: {"x": "é🙂"}\r\n\r\n: keep-alive\n\nevent: b\ndata: 1\ndata: 2\n\n'
    ).encode()
    for size in (1, 2, 3, 7, len(raw)):
        decoder = SseDecoder()
        events = []
        for start in range(0, len(raw), size):
            events += decoder.feed(raw[start : start + size])
        assert events == [SseEvent("a", '{"x": "é🙂"}'), SseEvent("b", "1\n2")]


def test_decoder_flushes_a_last_event_without_blank_line() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"event: close_chunk\ndata: {}") == []
    assert decoder.flush() == [SseEvent("close_chunk", "{}")]


def test_decoder_refuses_an_endless_line() -> None:
    decoder = SseDecoder(max_event_bytes=1000)
    with pytest.raises(SseTooLarge):
        decoder.feed(b"data: " + b"x" * 2000)


def message(content: str, *, is_end: int = 1, type_: int = 2, code: int = 0) -> SseEvent:
    payload = {
        "data": {"messageResult": {"content": content, "chatID": "9", "isEnd": is_end}},
        "type": type_,
        "statusInfo": {"code": code, "message": "boom" if code else "success"},
    }
    return SseEvent("message_result", json.dumps(payload))


def assembler() -> AnswerAssembler:
    return AnswerAssembler(token_fingerprint="fp", character_id="1", requested_chat_id="0")


@pytest.mark.parametrize("final", [message("done", is_end=0), message("done", type_=8)])
def test_either_end_marker_finishes(final: SseEvent) -> None:
    answer = assembler()
    answer.handle(message("do"))
    events = answer.handle(final)
    assert events[-1] == Finished(text="done", conversation=answer.conversation, message_id="")
    assert answer.handle(SseEvent("close_chunk", "")) == []


def test_deltas_follow_cumulative_content() -> None:
    answer = assembler()
    texts = ["He", "Hello", "Hello", "Hello, wor\ufffd", "Hello, world"]
    deltas = [e.delta for t in texts for e in answer.handle(message(t)) if isinstance(e, TextDelta)]
    assert deltas == ["He", "llo", ", wor", "ld"]


def test_replacement_char_at_the_very_end_is_kept() -> None:
    answer = assembler()
    answer.handle(message("odd \ufffd"))
    events = answer.handle(message("odd \ufffd", is_end=0))
    assert events[-1].text == "odd \ufffd"  # type: ignore[union-attr]


def test_status_type_3_is_not_an_error_but_others_are() -> None:
    answer = assembler()
    answer.handle(message("partial"))
    assert answer.handle(message("partial", type_=3, code=7)) == []
    with pytest.raises(UpstreamError) as caught:
        answer.handle(message("partial", code=7))
    assert caught.value.code == 7 and caught.value.partial_text == "partial"


def test_rewritten_text_is_reported_from_the_divergence() -> None:
    answer = assembler()
    answer.handle(message("abc"))
    events = answer.handle(message("abX and more"))
    assert events == [TextDelta(delta="X and more", text="abX and more")]
