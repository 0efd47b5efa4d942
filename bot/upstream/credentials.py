"""What a login leaves behind, whatever the upstream: stored as JSON, never logged."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError


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

    @classmethod
    def from_mapping(cls, data: Any) -> Self:
        """Validated credentials; InvalidCredentials names each bad field, never its value."""
        if not isinstance(data, dict):
            raise InvalidCredentials(f"expected a JSON object with {', '.join(cls.model_fields)}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'auth'}: {err['msg']}"
                for err in exc.errors()
            )
            raise InvalidCredentials(problems) from None

    def to_storage(self) -> dict[str, object]:
        """The JSON stored in the logins table (and written by `auth export`)."""
        return {"upstream": self.UPSTREAM, **self.model_dump(mode="json")}
