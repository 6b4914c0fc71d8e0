"""Fixtures that start the real emulator and the real gateway on free loopback ports."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from pipeline.emulator import EmulatorConfig, RunningEmulator, start_emulator
from pipeline.ingress import create_app
from pipeline.ingress.keys import SEND, SERVICES
from pipeline.ingress.send import SendSide
from pipeline.services import Services
from pipeline.settings import Settings


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


@dataclass
class Emulator:
    """The running emulator and a way to read its call counter."""

    running: RunningEmulator
    session: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return self.running.base_url

    async def calls(self) -> int:
        """How many generate calls the emulator has received."""
        async with self.session.get(self.base_url + "/stats") as resp:
            return int((await resp.json())["calls"])


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200), timeout=aiohttp.ClientTimeout(total=30)
    ) as client:
        yield client


@pytest.fixture
async def emulator(session: aiohttp.ClientSession) -> AsyncIterator[Emulator]:
    running = await start_emulator(EmulatorConfig(), host="127.0.0.1", port=0)
    yield Emulator(running, session)
    await running.stop()


GatewayFactory = Callable[..., Awaitable[Gateway]]

# A fixed key (32 bytes of 0x01), so webhook tests can verify signatures.
TEST_WEBHOOK_SECRET = "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="


def settings_for_test(**overrides: Any) -> Settings:
    """Settings for a test gateway: a free port, quiet logs, no real provider key."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "google_api_key": None,
        "openai_api_key": None,
        "log_format": "json",
        "log_level": "warning",
        # Sync-path tests need no job worker; job tests turn it on.
        "embedded_worker": False,
        "webhook_secret": TEST_WEBHOOK_SECRET,
        "webhook_allow_private": "127.0.0.0/8,::1/128",
    }
    values.update(overrides)
    gemini_url = values.get("gemini_base_url")
    if gemini_url and "openai_base_url" not in values:
        # The test's emulator serves the OpenAI-compatible API too, under /v1.
        values["openai_base_url"] = f"{gemini_url.rstrip('/')}/v1"
    return Settings(**values)


@pytest.fixture
async def start_gateway(
    emulator: Emulator, session: aiohttp.ClientSession
) -> AsyncIterator[GatewayFactory]:
    """Start gateways (pointed at the test's emulator unless told otherwise)."""
    runners: list[web.AppRunner] = []

    async def start(**overrides: Any) -> Gateway:
        overrides.setdefault("gemini_base_url", emulator.base_url)
        app = create_app(settings_for_test(**overrides))
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return Gateway(f"http://127.0.0.1:{port}", app[SERVICES], app[SEND], session)

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> Gateway:
    """A gateway with default settings, pointed at the test's emulator."""
    return await start_gateway()
