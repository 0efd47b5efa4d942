"""Which models a chat can pick with /model, and which one it uses."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.services.upstreams import Endpoint
from bot.storage.chat_settings import ChatSettingsStore
from bot.storage.database import Database
from bot.upstream import UpstreamUnavailable

LIST_TTL = 600.0  # the upstream's list is asked for at most every ten minutes


class ModelCatalog:
    """The primary upstream's models: the configured list (`MINIMAX_MODELS`) if there is one,
    else what the upstream offers (the API's /models, the agent's config)."""

    def __init__(
        self,
        database: Database,
        primary: Endpoint,
        *,
        default: str,
        configured: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = ChatSettingsStore(database)
        self._primary = primary
        self.default = default
        self._configured = list(configured)
        self._clock = clock
        self._cached: tuple[float, list[str]] | None = None

    @property
    def upstream(self) -> str:
        return self._primary.name

    async def available(self) -> list[str]:
        """Raises UpstreamFailure when the upstream cannot list them now."""
        if self._configured:
            return self._configured
        if self._cached is not None and self._clock() - self._cached[0] < LIST_TTL:
            return self._cached[1]
        login = await self._primary.logins.current()
        if login is None or login.record.invalid_at is not None:
            raise UpstreamUnavailable("no working login to ask for the models with")
        models = list(dict.fromkeys(await self._primary.client.models(login.auth)))
        self._cached = (self._clock(), models)
        return models

    async def current(self, chat_id: int) -> str:
        chosen = (await self._settings.get(chat_id)).model_for(self.upstream)
        return chosen or self.default

    async def choose(self, chat_id: int, model: str | None) -> None:
        """None (or the default's name): back to the default."""
        picked = None if model in (None, self.default) else model
        await self._settings.set_model(chat_id, self.upstream, picked)
