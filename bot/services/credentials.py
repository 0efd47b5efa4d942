"""Credentials from their stored JSON, whichever upstream they belong to."""

from __future__ import annotations

import json
from typing import Any

from bot.hailuo import AuthState
from bot.minimax_agent.credentials import AgentAuth
from bot.upstream import Credentials, InvalidCredentials

CREDENTIAL_TYPES: dict[str, type[AuthState] | type[AgentAuth]] = {
    AuthState.UPSTREAM: AuthState,
    AgentAuth.UPSTREAM: AgentAuth,
}


def parse_credentials(data: Any) -> Credentials:
    """An auth mapping: `"upstream"` names its adapter; without it, it is the old Hailuo shape."""
    if not isinstance(data, dict):
        raise InvalidCredentials("expected a JSON object")
    upstream = data.get("upstream", AuthState.UPSTREAM)
    kind = CREDENTIAL_TYPES.get(str(upstream))
    if kind is None:
        known = ", ".join(sorted(CREDENTIAL_TYPES))
        raise InvalidCredentials(f"upstream: must be one of {known}")
    return kind.from_mapping(data)


def parse_credentials_json(text: str | bytes) -> Credentials:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidCredentials(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise InvalidCredentials("not UTF-8 text") from None
    return parse_credentials(data)
