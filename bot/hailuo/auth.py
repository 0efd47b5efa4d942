"""The Hailuo login a browser session leaves behind."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Self

from pydantic import ConfigDict, Field, field_validator

from bot.upstream import Credentials, InvalidCredentials, fingerprint

REQUIRED_PATH_PREFIX = "/v4/api/chat/msg?"


class InvalidAuthState(InvalidCredentials):
    """A Hailuo auth JSON that cannot be used; the message names the field, never its value."""


class AuthState(Credentials):
    """token, signed path, timestamp, cookies and headers of one Hailuo login.

    `repr` and `str` show a fingerprint and the cookie names only, so an auth state can be logged.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")
    UPSTREAM: ClassVar[str] = "hailuo"

    token: str = Field(min_length=1)
    path_and_query: str
    timestamp: int = Field(gt=0)
    cookies: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("path_and_query")
    @classmethod
    def _signed_path(cls, value: str) -> str:
        if not value.startswith("/") or "?" not in value:
            raise ValueError(f"must be the signed path, starting with {REQUIRED_PATH_PREFIX}")
        return value

    @field_validator("headers")
    @classmethod
    def _lower_header_names(cls, value: dict[str, str]) -> dict[str, str]:
        return {name.lower(): header for name, header in value.items()}

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.token)

    def secrets(self) -> list[str]:
        return [self.token, *self.cookies.values()]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> AuthState:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidAuthState(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except UnicodeDecodeError:
            raise InvalidAuthState("not UTF-8 text") from None
        return cls.from_mapping(data)

    @classmethod
    def from_mapping(cls, data: Any) -> Self:
        try:
            return super().from_mapping(data)
        except InvalidCredentials as exc:
            raise InvalidAuthState(str(exc)) from None

    def __repr__(self) -> str:
        path = self.path_and_query.split("?", 1)[0]
        return (
            f"AuthState(token=<{self.fingerprint}>, path={path!r}, timestamp={self.timestamp}, "
            f"cookies={sorted(self.cookies)}, headers={sorted(self.headers)})"
        )

    __str__ = __repr__
