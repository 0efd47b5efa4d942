"""A MiniMax Agent web login: the JWT from `localStorage._token` and the ids the web app keeps.

The auth JSON (`auth import` / `auth export`) is
`{"upstream": "minimax-agent", "region": "intl", "token": "<JWT>", "real_user_id": "<digits>",
"uuid": "<uuid4>", "device_id": "<digits>", "cookies": {}, "user_agent": "<browser UA>"}`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator

from bot.upstream import Credentials, fingerprint

Region = Literal["intl", "cn"]
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class AgentAuth(Credentials):
    model_config = ConfigDict(frozen=True, extra="ignore")
    UPSTREAM: ClassVar[str] = "minimax-agent"

    region: Region = "intl"
    token: str = Field(min_length=1)
    # realUserID: ~18 digits, above 2**53, so always a string (§2.1).
    real_user_id: str
    uuid: str
    device_id: str
    cookies: dict[str, str] = Field(default_factory=dict)
    user_agent: str = DEFAULT_USER_AGENT

    @field_validator("real_user_id", "device_id")
    @classmethod
    def _digits(cls, value: str) -> str:
        if not value.isdigit() or not value.isascii():
            raise ValueError("must be digits only")
        return value

    @field_validator("uuid")
    @classmethod
    def _uuid(cls, value: str) -> str:
        if not _UUID.match(value):
            raise ValueError("must be a hyphenated UUID")
        return value

    @field_validator("token")
    @classmethod
    def _token(cls, value: str) -> str:
        value = value.strip()
        if any(ch.isspace() for ch in value) or value.startswith(("'", '"')):
            raise ValueError("must be the bare JWT, without quotes or spaces")
        return value

    @property
    def fingerprint(self) -> str:
        """The account (not the token): a renewed token keeps the account's conversations."""
        return fingerprint(f"{self.region}:{self.real_user_id}")

    def secrets(self) -> list[str]:
        return [self.token, *self.cookies.values()]

    @property
    def expires_at(self) -> datetime | None:
        """The JWT's `exp` (read, not verified: only the server can verify it)."""
        exp = jwt_payload(self.token).get("exp")
        if isinstance(exp, int | float) and exp > 0:
            try:
                return datetime.fromtimestamp(exp, UTC)
            except (ValueError, OverflowError, OSError):  # milliseconds, or nonsense
                return None
        return None

    def __repr__(self) -> str:
        return (
            f"AgentAuth(account=<{self.fingerprint}>, region={self.region}, "
            f"cookies={sorted(self.cookies)})"
        )

    __str__ = __repr__


def jwt_payload(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified; {} when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    padded = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        payload = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


def token_from_storage(value: str) -> str:
    """`localStorage._token` holds the bare JWT or a JSON string with a `token` field (§2.1)."""
    value = value.strip()
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            return ""
        token = data.get("token") if isinstance(data, dict) else None
        return token.strip() if isinstance(token, str) else ""
    return value.strip('"')
