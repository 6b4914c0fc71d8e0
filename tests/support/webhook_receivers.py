"""Where webhooks go in tests: scripted receivers, and a listener that counts connections.

Receivers are real aiohttp servers on 127.0.0.1 port 0. Nothing here sends traffic anywhere
but loopback.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook

from tests.support.polling import poll
from tests.support.served import served

# A receiver that holds an answer is released at teardown, so the server stops at once.
_SHUTDOWN_S = 2.0


@dataclass(frozen=True)
class Answer:
    """How a receiver answers one request."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hold_s: float = 0.0  # wait this long (or until the receiver is released) first
    # After the status and headers, send the body a byte at a time, this long before each.
    trickle_s: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request a receiver got."""

    at: float  # time.monotonic() on arrival, before any answer
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split(" ")

    def event(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded

    def verify(self, secret: str) -> dict[str, Any]:
        """The event, if the Standard Webhooks library accepts the signature under `secret`."""
        verified: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return verified


class Receiver:
    """Answers its n-th request with the n-th scripted answer, then with `then` for ever."""

    def __init__(self, script: tuple[Answer, ...], then: Answer) -> None:
        self._script = script
        self._then = then
        self.received: list[Received] = []
        self._changed = asyncio.Event()
        self._released = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        index = len(self.received)
        self.received.append(
            Received(
                time.monotonic(),
                request.path,
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        self._changed.set()
        answer = self._script[index] if index < len(self._script) else self._then
        if answer.hold_s > 0:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), answer.hold_s)
        if answer.trickle_s > 0:
            return await self._trickle(request, answer)
        return web.Response(status=answer.status, headers=dict(answer.headers), body=answer.body)

    async def _trickle(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        response = web.StreamResponse(status=answer.status, headers=dict(answer.headers))
        response.content_length = len(answer.body)
        await response.prepare(request)
        for byte in answer.body:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), answer.trickle_s)
            if self._released.is_set():
                break
            await response.write(bytes([byte]))
        return response

    def release(self) -> None:
        """End every held answer now."""
        self._released.set()

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """The first `count` requests, waiting up to `timeout_s` for them."""
        try:
            async with asyncio.timeout(timeout_s):
                while len(self.received) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"{self.url} got {len(self.received)} requests, not {count}, in {timeout_s:g}s"
            ) from None
        return self.received[:count]


@asynccontextmanager
async def receiving(*script: Answer, then: Answer | None = None) -> AsyncIterator[Receiver]:
    """A receiver on 127.0.0.1, port 0, for the duration of the block."""
    receiver = Receiver(script, then if then is not None else Answer())
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    async with served(app, shutdown_timeout=_SHUTDOWN_S) as url:
        receiver.url = f"{url}/hook"
        try:
            yield receiver
        finally:
            # Handlers held back by the script let go before the server shuts down.
            receiver.release()


class ConnectionCounter:
    """A raw TCP listener that counts the connections it accepts (and closes each at once)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.accepted = 0
        self.port = 0

    async def wait_accepted(self, count: int, timeout_s: float = 5.0) -> None:
        """Wait, with a deadline, until `count` connections have been accepted."""

        async def accepted() -> int:
            return self.accepted

        await poll(accepted, lambda n: n >= count, timeout_s=timeout_s, what=f"{count} accepts")

    async def on_connect(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()


@asynccontextmanager
async def counting_listener(host: str) -> AsyncIterator[ConnectionCounter]:
    """A ConnectionCounter listening on `host` (a loopback address), port 0."""
    counter = ConnectionCounter(host)
    server = await asyncio.start_server(counter.on_connect, host, 0)
    counter.port = server.sockets[0].getsockname()[1]
    try:
        yield counter
    finally:
        server.close()
        await server.wait_closed()
