"""Objects built from settings, shared by the bot and the terminal commands."""

from __future__ import annotations

from bot.config import Settings
from bot.hailuo import HailuoClient, HailuoTimeouts


def hailuo_client(settings: Settings) -> HailuoClient:
    return HailuoClient(
        settings.hailuo_base_url,
        proxy=settings.hailuo_proxy,
        timeouts=HailuoTimeouts(
            connect=settings.hailuo_connect_timeout,
            first_event=settings.hailuo_first_event_timeout,
            idle=settings.hailuo_idle_timeout,
            total=settings.hailuo_total_timeout,
        ),
    )
