"""A MiniMax API key (the `MINIMAX_API_KEY` setting), as the one login this upstream has."""

from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict, Field, field_validator

from bot.upstream import Credentials, fingerprint


class ApiKey(Credentials):
    """Built by the caller from the setting; there is no browser login to capture."""

    # A refused value must never be echoed in a validation error (it is the secret).
    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)
    UPSTREAM: ClassVar[str] = "minimax-api"

    key: str = Field(min_length=1)

    @field_validator("key")
    @classmethod
    def _bare(cls, value: str) -> str:
        # A key pasted with its newline or quotes would be refused as a wrong key: say so early.
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        if any(ch.isspace() for ch in value) or value.startswith(("'", '"')):
            raise ValueError("must be the bare key, without quotes or spaces")
        return value

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def secrets(self) -> list[str]:
        return [self.key]

    def __repr__(self) -> str:
        return f"ApiKey(key=<{self.fingerprint}>)"

    __str__ = __repr__
