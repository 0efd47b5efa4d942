"""What a login leaves behind, whatever the upstream: stored as JSON, never logged."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class InvalidCredentials(ValueError):
    """Credentials that cannot be used; the message names the field, never its value."""


def fingerprint(token: str) -> str:
    """A short stable id for a token: enough to tell logins apart, useless to an attacker."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


class Credentials(BaseModel):
    """One upstream's login. Subclasses say which upstream (`UPSTREAM`), what identifies the
    login (`fingerprint`) and which values are secret (`secrets`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    UPSTREAM: ClassVar[str] = ""

    @property
    def fingerprint(self) -> str:
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Values that must never appear in a log line or a message."""
        raise NotImplementedError

    @property
    def expires_at(self) -> datetime | None:
        """When the login stops working, where the upstream says so (a JWT's `exp`)."""
        return None

    def to_storage(self) -> dict[str, object]:
        """The JSON stored in the logins table (and written by `auth export`)."""
        return {"upstream": self.UPSTREAM, **self.model_dump(mode="json")}
