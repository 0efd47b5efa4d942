"""When the primary rests after an outage, and for how long (a clock the test moves)."""

from __future__ import annotations

from bot.services.upstreams import BACKOFF_FIRST, BACKOFF_MAX, Failover, FailoverReason


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_outages_rest_the_primary_doubling_up_to_the_maximum() -> None:
    clock = Clock()
    failover = Failover(clock)
    assert failover.primary_failed(FailoverReason.OUTAGE), "the first failure starts an episode"
    rests = []
    for _ in range(8):
        start = clock.now
        while failover.resting:
            clock.now += 1.0
        rests.append(clock.now - start)
        assert not failover.primary_failed(FailoverReason.OUTAGE), "admins told once"
    assert rests[:3] == [BACKOFF_FIRST, BACKOFF_FIRST * 2, BACKOFF_FIRST * 4]
    assert rests[-1] == BACKOFF_MAX


def test_answers_already_under_way_do_not_lengthen_the_rest() -> None:
    """A blip fails six answers in flight: one rest of 30 s, not 30 × 2⁵."""
    clock = Clock()
    failover = Failover(clock)
    for _ in range(6):
        failover.primary_failed(FailoverReason.OUTAGE)
    clock.now += BACKOFF_FIRST - 0.5
    assert failover.resting
    clock.now += 1.0
    assert not failover.resting


def test_retry_after_longer_than_the_backoff_wins() -> None:
    clock = Clock()
    failover = Failover(clock)
    failover.primary_failed(FailoverReason.OUTAGE, retry_after=120.0)
    clock.now += 100.0
    assert failover.resting


def test_a_working_primary_ends_the_episode_and_the_backoff() -> None:
    clock = Clock()
    failover = Failover(clock)
    failover.primary_failed(FailoverReason.OUTAGE)
    clock.now += BACKOFF_FIRST + 1
    failover.primary_failed(FailoverReason.OUTAGE)  # tried again, failed again: 60 s
    failover.primary_worked()
    assert not failover.resting
    assert failover.primary_failed(FailoverReason.OUTAGE), "a new episode: admins told again"
    clock.now += BACKOFF_FIRST + 1
    assert not failover.resting, "the back-off started over at 30 s"


def test_a_login_problem_does_not_rest_the_primary() -> None:
    """Until an admin logs in, the stored login itself says the primary cannot answer."""
    failover = Failover(Clock())
    assert failover.primary_failed(FailoverReason.LOGIN)
    assert not failover.resting
