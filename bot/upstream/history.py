"""A conversation's earlier exchanges, as the bot stores them (for upstreams that keep none)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Turn:
    """One exchange: the question as it was sent upstream, the answer as the user saw it."""

    question: str
    answer: str

    @property
    def size(self) -> int:
        return len(self.question) + len(self.answer)
