"""A TCP proxy of the test's own in front of a broker, to cut or silence its connections.

Cutting the proxy rather than stopping the shared service lets a test choose the moment
exactly and leaves every other run on the machine alone (see /work/shared/SERVICES.md).
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from tests.support.services import RABBITMQ_ADDRESS, REDIS_ADDRESS

BROKER_ADDRESSES = {"rabbitmq": RABBITMQ_ADDRESS, "redis": REDIS_ADDRESS}


class Proxy:
    """A TCP proxy of the test's own in front of the broker: it can cut, reopen and freeze."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Future[Any]] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    async def open(self) -> None:
        """Listen (again, on the same port once it has one)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop listening and drop every connection, frozen ones too (a no-op when cut)."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        # Each handler ends once its aborted sockets have; none is left for the loop to cancel.
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def freeze(self) -> int:
        """Silence every open connection: no byte forwarded either way, no reset, no close.

        A path that dropped its state or froze, as the two ends see it. New connections
        still forward as usual. Returns how many connections it froze.
        """
        pipes, self._pipes = self._pipes, set()
        for pipes_of_one in pipes:
            pipes_of_one.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        return len(pipes)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        pipes = asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._pipes.add(pipes)
        try:
            await pipes
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return  # frozen: both sockets stay open until cut()
        self._pipes.discard(pipes)
        self._writers.difference_update((writer, up_writer))


@asynccontextmanager
async def proxy_to(broker: str) -> AsyncIterator[Proxy]:
    """A proxy in front of `broker`, open for the block and cut at its end."""
    proxy = Proxy(BROKER_ADDRESSES[broker])
    await proxy.open()
    try:
        yield proxy
    finally:
        await proxy.cut()
