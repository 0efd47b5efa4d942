"""The benchmark's own arithmetic (the benchmark itself runs with `python -m bench`)."""

from __future__ import annotations

import random
from types import SimpleNamespace

from bench.run import _pct, _staleness, make_answer


def frame(at: float, method: str, text: str) -> SimpleNamespace:
    return SimpleNamespace(at=at, method=method, params={"text": text}, status=200)


def test_answers_have_the_promised_sizes() -> None:
    rng = random.Random(1)
    sizes = [len(make_answer(rng)) for _ in range(200)]
    assert min(sizes) >= 150
    assert max(sizes) <= 6000
    assert max(sizes) > 4096, "some answers must need more than one message"


def test_staleness_is_zero_when_every_chunk_is_shown_at_once() -> None:
    chunks = [(1.0, "Hello"), (2.0, "Hello world")]
    frames = [
        frame(1.0, "sendMessageDraft", "Hello"),
        frame(2.0, "sendMessageDraft", "Hello world"),
    ]
    assert _staleness(frames, chunks, group=False) == [0.0, 0.0]


def test_staleness_counts_how_long_received_text_waited() -> None:
    chunks = [(1.0, "Hello"), (1.2, "Hello there"), (1.4, "Hello there, friend")]
    frames = [
        frame(1.0, "sendMessageDraft", "Hello"),
        frame(2.0, "sendMessageDraft", "Hello there, friend"),
    ]
    lags = _staleness(frames, chunks, group=False)
    assert lags[0] == 0.0
    assert abs(lags[1] - 0.8) < 1e-9, "the chunk received at 1.2 was shown at 2.0"


def test_percentiles() -> None:
    assert _pct([], 50) is None
    assert _pct([3.0, 1.0, 2.0], 50) == 2.0
    assert _pct(list(map(float, range(101))), 99) == 99.0
