"""The typed events an upstream answer stream yields, in the order they can arrive."""

from __future__ import annotations

from dataclasses import dataclass

from bot.upstream.conversation import Conversation


@dataclass(frozen=True, slots=True)
class ConversationStarted:
    """The server-side conversation this answer belongs to; `is_new` when the upstream just
    made it."""

    conversation: Conversation
    is_new: bool


@dataclass(frozen=True, slots=True)
class TitleGenerated:
    title: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New answer text. `text` is the whole answer so far, for consumers that render frames."""

    delta: str
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """New reasoning ("thinking") text: never part of the answer. `text` is all of it so far."""

    delta: str
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    text: str
    conversation: Conversation | None
    message_id: str = ""


UpstreamEvent = ConversationStarted | TitleGenerated | TextDelta | ReasoningDelta | Finished
