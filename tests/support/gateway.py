"""A promptbus ingress in the test's own process, and the answers it gives."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from opentelemetry.sdk.trace.export import SpanExporter

from pipeline.ingress import create_app
from pipeline.ingress.connections import IngressRunner
from pipeline.ingress.keys import SEND, SERVICES
from pipeline.ingress.send import SendSide
from pipeline.services import Services
from tests.support.settings import settings_for_test


@dataclass
class Reply:
    """One HTTP answer from the gateway."""

    status: int
    body: Any
    headers: "CIMultiDict[str]"

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Gateway:
    """A running promptbus ingress and a client session to it."""

    url: str
    services: Services
    send: SendSide
    session: aiohttp.ClientSession

    async def generate(self, body: Any, headers: dict[str, str] | None = None) -> Reply:
        """POST /v1/generate with a JSON body."""
        return await self.post_raw("/v1/generate", json.dumps(body), headers)

    async def post_raw(
        self,
        path: str,
        data: str | bytes,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> Reply:
        """POST raw bytes to `path`."""
        sent = {"Content-Type": content_type} if content_type else {}
        sent.update(headers or {})
        async with self.session.post(self.url + path, data=data, headers=sent) as resp:
            return Reply(resp.status, await resp.json(content_type=None), CIMultiDict(resp.headers))

    async def get(self, path: str) -> Reply:
        """GET `path`."""
        async with self.session.get(self.url + path) as resp:
            return Reply(resp.status, await resp.json(content_type=None), CIMultiDict(resp.headers))


# What the `start_gateway` fixture yields: call it with settings overrides.
GatewayFactory = Callable[..., Awaitable[Gateway]]


@asynccontextmanager
async def serving(
    session: aiohttp.ClientSession, *, span_exporter: SpanExporter | None = None, **overrides: Any
) -> AsyncIterator[Gateway]:
    """A gateway on a free loopback port for the duration of the block.

    With `span_exporter`, tracing is on and the spans go there.
    """
    settings = settings_for_test(**overrides)
    app = create_app(settings, span_exporter=span_exporter)
    runner = IngressRunner(app, settings)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield Gateway(f"http://127.0.0.1:{port}", app[SERVICES], app[SEND], session)
    finally:
        await runner.cleanup()
