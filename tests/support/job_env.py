"""A gateway with its embedded worker and an emulator, running jobs on one test bus."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict
from opentelemetry.sdk.trace.export import SpanExporter

from pipeline.emulator import EmulatorConfig, start_emulator
from tests.support.bus import Bus, provisioned_bus
from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, Reply, serving


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
async def job_env(
    broker: str, *, span_exporter: SpanExporter | None = None, **overrides: Any
) -> AsyncIterator[JobEnv]:
    """A bus on `broker`, an emulator and a gateway with its embedded worker on that bus.

    With `span_exporter`, tracing is on and the spans go there.
    """
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
                async with serving(session, span_exporter=span_exporter, **settings) as gateway:
                    yield JobEnv(bus, gateway, Emulator(running, session), session)
            finally:
                await running.stop()
