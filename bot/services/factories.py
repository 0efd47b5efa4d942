"""Objects built from settings, shared by the bot and the terminal commands."""

from __future__ import annotations

from bot.config import Settings
from bot.hailuo import HailuoClient
from bot.hailuo.login import HailuoLoginCapture
from bot.minimax_agent.client import MiniMaxAgentClient, default_hosts
from bot.minimax_agent.login import AgentLoginCapture
from bot.services.logins import LoginService
from bot.services.upstreams import Endpoint, KeyLogins, LoginSource
from bot.storage.database import Database
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


def minimax_api_client(settings: Settings) -> Upstream:
    # Imported here: the openai package costs memory that deployments without it need not pay.
    from bot.minimax_api.client import MiniMaxApiClient

    return MiniMaxApiClient(
        base_url=settings.minimax_api_base_url,
        model=settings.minimax_model,
        system_prompt=settings.system_prompt,
        proxy=settings.hailuo_proxy,
        timeouts=timeouts(settings),
    )


def build_upstream(settings: Settings, name: str | None = None) -> Upstream:
    """The adapter `name` (default: `UPSTREAM`) names."""
    name = name or settings.upstream
    if name == "hailuo":
        return hailuo_client(settings)
    if name == "minimax-api":
        return minimax_api_client(settings)
    return minimax_agent_client(settings)


def login_source(settings: Settings, database: Database | None, upstream: str) -> LoginSource:
    """The API's key comes from the settings; web upstreams' logins from the database."""
    if upstream == "minimax-api":
        from bot.minimax_api.credentials import ApiKey

        return KeyLogins(ApiKey(key=settings.api_key()))
    assert database is not None, "a web login is stored in the database"
    return LoginService(database, upstream)


def fallback_endpoint(settings: Settings, database: Database) -> Endpoint | None:
    """`UPSTREAM_FALLBACK`, ready to answer, or None."""
    name = settings.upstream_fallback
    if name is None:
        return None
    return Endpoint(build_upstream(settings, name), login_source(settings, database, name))


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
