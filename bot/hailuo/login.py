"""The Hailuo login: what the seed's site leaves in the browser once someone has logged in."""

from __future__ import annotations

import json
from dataclasses import dataclass

from bot.hailuo.auth import AuthState
from bot.upstream.browser import (
    BROWSER_ARGS,
    BrowserPage,
    LoginDone,
    LoginError,
    LoginEvent,
    LoginLink,
    LoginOptions,
    LoginStage,
    LoginTimeout,
    browser_processes,
    stop_leftover_browsers,
)
from bot.upstream.browser import BrowserLogin as _BrowserLogin

__all__ = [
    "BROWSER_ARGS",
    "BrowserLogin",
    "LoginDone",
    "LoginError",
    "LoginEvent",
    "LoginLink",
    "LoginOptions",
    "LoginStage",
    "LoginTimeout",
    "browser_processes",
    "capture_hailuo_login",
    "stop_leftover_browsers",
]

READ_TOKEN_JS = "localStorage.getItem('_token') || ''"  # noqa: S105 (a script, not a secret)
# Built in the page, from the browser's own facts (protocol reference, section 1).
SIGNED_PATH_JS = """(() => {
  const ua = navigator.userAgent;
  const browser = /Edg\\//.test(ua) ? "edge" : /Chrome\\//.test(ua) ? "chrome"
    : /Firefox\\//.test(ua) ? "firefox" : /Safari\\//.test(ua) ? "safari" : "unknown";
  const unix = Date.now();
  const params = {
    device_platform: "web", biz_id: 2, app_id: 3001, version_code: 22201, lang: "en",
    uuid: localStorage.getItem("UNIQUE_USER_ID") || "",
    device_id: localStorage.getItem("USER_HARD_WARE_INFO") || "",
    os_name: (navigator.userAgentData && navigator.userAgentData.platform)
      || navigator.platform || "Unknown",
    browser_name: browser,
    cpu_core_num: navigator.hardwareConcurrency || 8,
    browser_language: navigator.language || "unknown",
    browser_platform: navigator.platform || "unknown",
    screen_width: window.screen.width,
    screen_height: window.screen.height,
    unix: unix,
  };
  return JSON.stringify({
    path_and_query: "/v4/api/chat/msg?" + new URLSearchParams(params).toString(),
    timestamp: unix,
    user_agent: ua,
  });
})()"""


@dataclass(frozen=True, slots=True)
class HailuoLoginCapture:
    base_url: str

    async def __call__(self, page: BrowserPage) -> AuthState | None:
        token = await page.string(READ_TOKEN_JS)
        if not token:
            return None
        raw = await page.string(SIGNED_PATH_JS)
        try:
            facts = json.loads(raw)
        except ValueError:
            raise LoginError("the page did not give its browser facts") from None
        user_agent = str(facts["user_agent"]).replace("HeadlessChrome/", "Chrome/")
        return AuthState(
            token=token,
            path_and_query=facts["path_and_query"],
            timestamp=int(facts["timestamp"]),
            cookies=await page.cookies(),
            headers={"user-agent": user_agent, "referer": self.base_url.rstrip("/") + "/"},
        )


def capture_hailuo_login(base_url: str) -> HailuoLoginCapture:
    return HailuoLoginCapture(base_url)


class BrowserLogin(_BrowserLogin):
    """The browser login for Hailuo."""

    def __init__(self, options: LoginOptions) -> None:
        super().__init__(options, HailuoLoginCapture(options.base_url))
