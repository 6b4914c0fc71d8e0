"""An HTTP hop of the test's own in front of the emulator that keeps each request body.

It forwards every request unchanged over real loopback HTTP and answers with what the
emulator answered, so a test can see exactly what a provider client put on the wire.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tests.support.served import served

# Hop-by-hop and length headers that the two legs each set for themselves.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass
class Recorded:
    """One forwarded request: its path (with the query) and its JSON body, if it had one."""

    path: str
    body: Any


@dataclass
class Recorder:
    """The running hop: its base URL and every request it forwarded, in order."""

    base_url: str
    requests: list[Recorded] = field(default_factory=list)

    def bodies(self, path_part: str) -> list[Any]:
        """The bodies of the requests whose path holds `path_part`."""
        return [r.body for r in self.requests if path_part in r.path]


@asynccontextmanager
async def recording(upstream: str, session: aiohttp.ClientSession) -> AsyncIterator[Recorder]:
    """A recording hop to `upstream` on a free loopback port for the duration of the block."""
    recorder = Recorder("")

    async def forward(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        recorder.requests.append(Recorded(request.path_qs, orjson.loads(raw) if raw else None))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _OWN_HEADERS}
        async with session.request(
            request.method, upstream + request.path_qs, data=raw, headers=headers
        ) as resp:
            body = await resp.read()
            sent = {k: v for k, v in resp.headers.items() if k.lower() not in _OWN_HEADERS}
            return web.Response(status=resp.status, body=body, headers=sent)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    async with served(app) as url:
        recorder.base_url = url
        yield recorder
