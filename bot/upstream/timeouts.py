"""How long an adapter waits, the same for every upstream (settings `HAILUO_*_TIMEOUT`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    connect: float = 10.0
    first_event: float = 60.0  # from the request to the first event of the stream
    idle: float = 60.0  # between events once the stream flows
    total: float = 600.0  # for a whole answer
