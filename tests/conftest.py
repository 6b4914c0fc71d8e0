"""Fixtures that start the real emulator and the real gateway on free loopback ports."""

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from pipeline.emulator import EmulatorConfig, start_emulator
from pipeline.ingress import create_app
from pipeline.ingress.connections import IngressRunner
from pipeline.ingress.keys import SEND, SERVICES
from tests.support.databases import database_url  # noqa: F401 - a fixture
from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.settings import settings_for_test


@pytest.fixture
def logs() -> Iterator[list[structlog.typing.EventDict]]:
    """The event dicts of every structlog line logged in this process while the test runs."""
    # Info lines reach it too: only the CLI runs `configure_logging` (and its level filter),
    # never this process, so structlog keeps its unfiltered, uncached defaults here.
    with structlog.testing.capture_logs() as captured:
        yield captured


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


@pytest.fixture
async def start_gateway(
    emulator: Emulator, session: aiohttp.ClientSession
) -> AsyncIterator[GatewayFactory]:
    """Start gateways (pointed at the test's emulator unless told otherwise)."""
    runners: list[web.AppRunner] = []

    async def start(**overrides: Any) -> Gateway:
        overrides.setdefault("gemini_base_url", emulator.base_url)
        settings = settings_for_test(**overrides)
        app = create_app(settings)
        runner = IngressRunner(app, settings)
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
