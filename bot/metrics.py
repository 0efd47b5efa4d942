"""Prometheus metrics of one bot process (served at /metrics when WEB_PORT is set).

Each process has its own registry, so several bots in one test process never mix their numbers;
a Prometheus server scrapes every instance and sums.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ANSWER_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.answers = Counter(
            "hailuo_bridge_answers", "Answers by final status.", ["status"], registry=registry
        )
        self.streams = Gauge(
            "hailuo_bridge_streams_in_flight", "Answers being streamed now.", registry=registry
        )
        self.answer_seconds = Histogram(
            "hailuo_bridge_answer_seconds",
            "From the start of an answer to its final state.",
            buckets=ANSWER_BUCKETS,
            registry=registry,
        )
        self.first_text_seconds = Histogram(
            "hailuo_bridge_first_text_seconds",
            "From the start of an answer to Hailuo's first text.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_errors = Counter(
            "hailuo_bridge_upstream_errors",
            "Upstream failures by kind.",
            ["kind"],
            registry=registry,
        )
        self.rich_fallbacks = Counter(
            "hailuo_bridge_rich_fallbacks",
            "Answers sent as plain messages after Telegram refused them as rich messages.",
            registry=registry,
        )
        self.fallback_answers = Counter(
            "hailuo_bridge_fallback_answers",
            "Questions answered by UPSTREAM_FALLBACK instead of UPSTREAM, by reason.",
            ["reason"],
            registry=registry,
        )
        self.telegram_calls = Counter(
            "hailuo_bridge_telegram_calls",
            "Bot API calls by method and result (ok, retry_after, error).",
            ["method", "result"],
            registry=registry,
        )
        self.telegram_429 = Counter(
            "hailuo_bridge_telegram_429", "Bot API calls refused with 429.", registry=registry
        )
        self.telegram_call_seconds = Histogram(
            "hailuo_bridge_telegram_call_seconds",
            "Duration of Bot API calls.",
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self.login_valid = Gauge(
            "hailuo_bridge_login_valid",
            "1 when a Hailuo login is stored and not rejected.",
            registry=registry,
        )
        self.tasks = Gauge(
            "hailuo_bridge_asyncio_tasks",
            "asyncio tasks alive in the process (a leak shows as growth when idle).",
            registry=registry,
        )

    # --- the answering service's AnswerMetrics ------------------------------------------------

    def answer_started(self) -> None:
        self.streams.inc()

    def answer_finished(self, status: str, seconds: float) -> None:
        self.streams.dec()
        self.answers.labels(status).inc()
        self.answer_seconds.observe(seconds)

    def first_text(self, seconds: float) -> None:
        self.first_text_seconds.observe(seconds)

    def upstream_error(self, kind: str) -> None:
        self.upstream_errors.labels(kind).inc()

    def rich_refused(self) -> None:
        self.rich_fallbacks.inc()

    def fallback_answer(self, reason: str) -> None:
        self.fallback_answers.labels(reason).inc()

    # --- the Bot API session -------------------------------------------------------------------

    def telegram_call(self, method: str, result: str, seconds: float | None) -> None:
        self.telegram_calls.labels(method, result).inc()
        if seconds is not None:
            self.telegram_call_seconds.observe(seconds)
        if result == "retry_after":
            self.telegram_429.inc()

    def render(self) -> bytes:
        self.tasks.set(len(asyncio.all_tasks()))
        return generate_latest(self.registry)
