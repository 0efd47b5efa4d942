"""The instance's HTTP server: Telegram's webhook (webhook mode), /healthz and /metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE

from bot.metrics import Metrics
from bot.services.health import HealthCheck

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header's name)


class WebServer:
    def __init__(
        self,
        health: HealthCheck,
        metrics: Metrics,
        instance_id: str,
        webhook: tuple[str, Handler] | None = None,
    ) -> None:
        self._health = health
        self._metrics = metrics
        self._instance_id = instance_id
        self._started = time.monotonic()
        self._runner: web.AppRunner | None = None
        self.draining = False  # shutting down: tell the load balancer to send updates elsewhere
        self.port: int | None = None
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/metrics", self._metrics_page)
        if webhook is not None:
            path, handler = webhook
            self.app.router.add_post(path, self._guarded(handler))

    def _guarded(self, handler: Handler) -> Handler:
        async def webhook(request: web.Request) -> web.StreamResponse:
            if self.draining:
                # Telegram delivers the update again, to an instance that is not stopping.
                return web.Response(status=503, text="shutting down")
            if not request.headers.get(SECRET_HEADER, "").isascii():
                # compare_digest refuses non-ASCII text with a TypeError (a 500): it is no secret.
                return web.Response(status=401, text="Unauthorized")
            return await handler(request)

        return webhook

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("serving HTTP on %s:%s", host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        health = await self._health.check()
        self._metrics.login_valid.set(1 if health.login == "valid" else 0)
        if self.draining:
            status = "draining"
        elif not health.serving:
            status = "unavailable"
        else:
            status = "ok" if health.login == "valid" else "degraded"
        body = {
            "status": status,
            "database": "ok" if health.database else "unreachable",
            "login": health.login,
            "instance": self._instance_id,
            "uptime_seconds": round(time.monotonic() - self._started),
        }
        ok = health.serving and not self.draining
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics_page(self, request: web.Request) -> web.Response:
        health = await self._health.check()
        self._metrics.login_valid.set(1 if health.login == "valid" else 0)
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})
