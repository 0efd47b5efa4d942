"""The MiniMax Agent login: what the agent site leaves in the browser, verified before it counts.

The page keeps the JWT in `localStorage._token` (a bare JWT or a JSON string with `token`), the
device's UUID in `localStorage.UNIQUE_USER_ID` and an 8-digit device id in
`sessionStorage.tab_device_id` (reference §2.1). A guest page has a `_token` too, so a login only
counts once `/v1/api/user/info` accepts the token and names the account's realUserID.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from dataclasses import dataclass

from bot.minimax_agent.client import MiniMaxAgentClient
from bot.minimax_agent.credentials import (
    DEFAULT_USER_AGENT,
    AgentAuth,
    Region,
    token_from_storage,
)
from bot.upstream import AuthRejected, SignatureRejected, UpstreamFailure
from bot.upstream.browser import BrowserPage

log = logging.getLogger(__name__)

READ_STORAGE_JS = """JSON.stringify({
  token: localStorage.getItem("_token") || "",
  uuid: localStorage.getItem("UNIQUE_USER_ID") || "",
  device_id: sessionStorage.getItem("tab_device_id") || "",
  user_agent: navigator.userAgent,
})"""


@dataclass
class AgentLoginCapture:
    client: MiniMaxAgentClient
    region: Region
    _rejected: str = ""  # the last token the server refused (a guest's): not asked again

    async def __call__(self, page: BrowserPage) -> AgentAuth | None:
        try:
            facts = json.loads(await page.string(READ_STORAGE_JS))
        except ValueError:
            return None
        token = token_from_storage(str(facts.get("token") or ""))
        if not token or token == self._rejected:
            return None
        stored_uuid = str(facts.get("uuid") or "")
        if not stored_uuid and str(facts.get("token", "")).startswith("{"):
            stored_uuid = str(json.loads(facts["token"]).get("uuid") or "")
        device_id = str(facts.get("device_id") or "")
        auth = AgentAuth(
            region=self.region,
            token=token,
            real_user_id="0",  # learnt below
            uuid=stored_uuid if _is_uuid(stored_uuid) else str(uuid.uuid4()),
            device_id=device_id if device_id.isdigit() else _new_device_id(),
            cookies=await page.cookies(),
            user_agent=_user_agent(str(facts.get("user_agent") or "")),
        )
        try:
            info = await self.client.user_info(auth, with_user_id=False)
        except (AuthRejected, SignatureRejected):
            self._rejected = token  # a guest page's token: wait for a real login
            return None
        except UpstreamFailure as exc:
            log.info("cannot verify the login yet: %s", exc.message)
            return None
        real_user_id = str(info.get("realUserID") or "")
        if not real_user_id.isdigit():
            log.info("the agent site answered without a realUserID; waiting")
            return None
        return auth.model_copy(update={"real_user_id": real_user_id})


def _new_device_id() -> str:
    # The web app's own fallback for a missing id: 1e7 + rand(9e7) (§2.1).
    return str(10**7 + random.randrange(9 * 10**7))


def _user_agent(seen: str) -> str:
    return seen.replace("HeadlessChrome/", "Chrome/") if seen else DEFAULT_USER_AGENT


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return "-" in value
