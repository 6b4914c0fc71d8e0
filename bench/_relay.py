"""The floor of any gateway's stream: a bare aiohttp relay of the emulator's Gemini SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from _common import HOST
from aiohttp import web

# The one route it relays, as the emulator serves it.
RELAY_PATH = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"


def serve_relay(port: int, emulator_url: str) -> None:
    """Relay each request's stream from the emulator, line by line, as it arrives.

    No parsing, no model, no cache: one more HTTP hop in Python, which is what a gateway
    costs before it does anything at all.
    """

    async def relay(request: web.Request) -> web.StreamResponse:
        session: aiohttp.ClientSession = request.app["session"]
        upstream = f"{emulator_url}{RELAY_PATH}?alt=sse"
        body = await request.read()
        headers = {"content-type": "application/json"}
        async with session.post(upstream, data=body, headers=headers) as answer:
            stream = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await stream.prepare(request)
            async for line in answer.content:
                await stream.write(line)
            await stream.write_eof()
            return stream

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as client:
            app["session"] = client
            yield

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_post(RELAY_PATH, relay)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host=HOST, port=port, access_log=None, print=None)
