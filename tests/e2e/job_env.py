"""A gateway with its embedded worker and an emulator, running jobs on one test bus."""

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from pipeline.emulator import EmulatorConfig, start_emulator
from pipeline.ingress import create_app
from pipeline.ingress.keys import SEND, SERVICES
from tests.conftest import Emulator, Gateway, Reply, settings_for_test
from tests.e2e.bus import Bus, provisioned_bus


@asynccontextmanager
async def serving(session: aiohttp.ClientSession, **overrides: Any) -> AsyncIterator[Gateway]:
    """A gateway on a free loopback port for the duration of the block."""
    app = create_app(settings_for_test(**overrides))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield Gateway(f"http://127.0.0.1:{port}", app[SERVICES], app[SEND], session)
    finally:
        await runner.cleanup()


@dataclass
class JobEnv:
    """A gateway running jobs on one bus, its emulator, and the bus it is on."""

    bus: Bus
    gateway: Gateway
    emulator: Emulator
    session: aiohttp.ClientSession

    async def submit(self, body: Any, headers: dict[str, str] | None = None) -> Reply:
        """POST /v1/jobs."""
        return await self.gateway.post_raw("/v1/jobs", json.dumps(body), headers)

    async def get(self, path: str) -> Reply:
        return await self.gateway.get(path)

    async def delete(self, path: str) -> Reply:
        async with self.session.delete(self.gateway.url + path) as resp:
            return Reply(resp.status, await resp.json(content_type=None), CIMultiDict(resp.headers))

    async def wait_job(self, job_id: str, wait_s: float = 20.0) -> Reply:
        """GET /v1/jobs/{id}?wait=S."""
        return await self.get(f"/v1/jobs/{job_id}?wait={wait_s:g}")


@asynccontextmanager
async def job_env(broker: str, **overrides: Any) -> AsyncIterator[JobEnv]:
    """A bus on `broker`, an emulator and a gateway with its embedded worker on that bus."""
    with provisioned_bus(broker) as bus:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100), timeout=aiohttp.ClientTimeout(total=60)
        ) as session:
            running = await start_emulator(EmulatorConfig(), host="127.0.0.1", port=0)
            try:
                settings = {
                    **bus.overrides(),
                    "embedded_worker": True,
                    "gemini_base_url": running.base_url,
                    **overrides,
                }
                async with serving(session, **settings) as gateway:
                    yield JobEnv(bus, gateway, Emulator(running, session), session)
            finally:
                await running.stop()


def new_id(prefix: str) -> str:
    """A unique id for a job or a prompt of one test."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
