"""Objects built from settings, shared by the bot and the terminal commands."""

from __future__ import annotations

from bot.config import Settings
from bot.hailuo import HailuoClient
from bot.hailuo.login import HailuoLoginCapture
from bot.minimax_agent.client import MiniMaxAgentClient, default_hosts
from bot.minimax_agent.login import AgentLoginCapture
from bot.upstream import Upstream, UpstreamTimeouts
from bot.upstream.browser import BrowserLogin, LoginCapture, LoginOptions


def timeouts(settings: Settings) -> UpstreamTimeouts:
    return UpstreamTimeouts(
        connect=settings.hailuo_connect_timeout,
        first_event=settings.hailuo_first_event_timeout,
        idle=settings.hailuo_idle_timeout,
        total=settings.hailuo_total_timeout,
    )


def hailuo_client(settings: Settings) -> HailuoClient:
    return HailuoClient(
        settings.hailuo_base_url, proxy=settings.hailuo_proxy, timeouts=timeouts(settings)
    )


def agent_hosts(settings: Settings) -> tuple[str, str]:
    """The API host and the stream host: the region's, unless overridden (proxies, tests)."""
    api, stream = default_hosts(settings.minimax_region)
    return settings.minimax_agent_url or api, settings.minimax_agent_stream_url or stream


def minimax_agent_client(settings: Settings) -> MiniMaxAgentClient:
    api, stream = agent_hosts(settings)
    return MiniMaxAgentClient(
        api_url=api,
        stream_url=stream,
        model=settings.minimax_model,
        proxy=settings.hailuo_proxy,
        timeouts=timeouts(settings),
    )


def build_upstream(settings: Settings) -> Upstream:
    """The adapter `UPSTREAM` names."""
    if settings.upstream == "hailuo":
        return hailuo_client(settings)
    return minimax_agent_client(settings)


def login_options(settings: Settings) -> LoginOptions:
    """The browser login for `UPSTREAM`: the Hailuo site, or the agent site (the API host)."""
    site = settings.hailuo_base_url if settings.upstream == "hailuo" else agent_hosts(settings)[0]
    return LoginOptions(
        base_url=site,
        profile_dir=settings.login_profile_dir.resolve(),
        timeout=settings.login_timeout,
        headless=settings.browser_headless,
        browser_path=settings.browser_path,
        proxy=settings.hailuo_proxy,
        login_url=settings.login_url,
    )


def browser_login(settings: Settings, upstream: Upstream | None = None) -> BrowserLogin:
    """A browser login for `UPSTREAM`; an agent login is verified with `upstream`'s client."""
    options = login_options(settings)
    capture: LoginCapture
    if settings.upstream == "hailuo":
        capture = HailuoLoginCapture(options.base_url)
    else:
        client = upstream if isinstance(upstream, MiniMaxAgentClient) else None
        capture = AgentLoginCapture(
            client or minimax_agent_client(settings), settings.minimax_region
        )
    return BrowserLogin(options, capture)
