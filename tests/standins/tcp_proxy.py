"""A TCP proxy whose connections a test can cut or stall, as a network outage would (Redis,
PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bot.lifecycle import stop_tasks


class CuttableProxy:
    """Forwards 127.0.0.1:`port` to `target_port`; `cut()` drops every connection and refuses new
    ones until `open` is set again; `frozen` holds the bytes back without closing anything."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.open = True
        self.frozen = False  # connections stay up but nothing gets through (a stalled network)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self._writers.update((writer, upstream_writer))
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    while self.frozen:
                        await asyncio.sleep(0.05)
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def cut(self) -> None:
        self.open = False
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def stop(self) -> None:
        self.frozen = False
        self.cut()
        if self._server is not None:
            self._server.close()
        await stop_tasks(list(self._connections), "the proxy's connections", grace=5.0)
