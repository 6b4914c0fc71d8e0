"""The Gemini client's own HTTP session: proxies from the environment, closing and reopening."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from pipeline.providers.gemini import GeminiProvider, env_proxy
from tests.support.emulator import Emulator
from tests.support.providers import PARAMS, ask, gemini_on

MODEL = "gemini-2.5-flash"
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY")


@dataclass
class ForwardProxy:
    """A plain-HTTP forward proxy on loopback: it relays absolute-URI requests, counting them."""

    url: str = ""
    targets: list[str] = field(default_factory=list)


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    seen = ForwardProxy()
    session = aiohttp.ClientSession()

    async def relay(request: web.Request) -> web.Response:
        seen.targets.append(str(request.url))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with session.request(
            request.method, request.url, headers=headers, data=await request.read()
        ) as upstream:
            return web.Response(
                status=upstream.status,
                body=await upstream.read(),
                content_type=upstream.content_type,
            )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", relay)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    seen.url = f"http://127.0.0.1:{port}"
    try:
        yield seen
    finally:
        await runner.cleanup()
        await session.close()


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def test_calls_go_through_the_proxy_the_environment_names(
    emulator: Emulator, proxy: ForwardProxy, clean_proxy_env: pytest.MonkeyPatch
):
    clean_proxy_env.setenv("HTTP_PROXY", proxy.url)

    async with gemini_on(emulator.base_url) as gemini:
        generation = await gemini.generate(MODEL, ask("through the proxy"), PARAMS)

    assert generation.text.startswith(f"[{MODEL}] through the proxy")
    assert len(proxy.targets) == 1
    assert proxy.targets[0].startswith(f"{emulator.base_url}/v1beta/models/{MODEL}")


async def test_no_proxy_bypasses_the_proxy(
    emulator: Emulator, proxy: ForwardProxy, clean_proxy_env: pytest.MonkeyPatch
):
    clean_proxy_env.setenv("HTTP_PROXY", proxy.url)
    clean_proxy_env.setenv("NO_PROXY", "127.0.0.1")

    async with gemini_on(emulator.base_url) as gemini:
        await gemini.generate(MODEL, ask("straight there"), PARAMS)

    assert proxy.targets == []


def test_env_proxy_by_scheme(clean_proxy_env: pytest.MonkeyPatch):
    clean_proxy_env.setenv("HTTPS_PROXY", "http://proxy.internal:3128")

    assert env_proxy("https://generativelanguage.googleapis.com") == "http://proxy.internal:3128"
    assert env_proxy("http://127.0.0.1:9000") is None


async def test_closing_twice_is_harmless(emulator: Emulator):
    gemini = GeminiProvider(
        api_key=SecretStr("k"), base_url=emulator.base_url, timeout_s=5, max_attempts=1
    )
    await gemini.generate(MODEL, ask("x"), PARAMS)
    await gemini.aclose()
    await gemini.aclose()

    generation = await gemini.generate(MODEL, ask("after close, a new session"), PARAMS)
    await gemini.aclose()

    assert generation.text.startswith(f"[{MODEL}] after close")


async def test_a_provider_outlives_the_loops_that_used_it(emulator: Emulator):
    gemini = GeminiProvider(
        api_key=SecretStr("k"), base_url=emulator.base_url, timeout_s=5, max_attempts=1
    )

    def on_short_lived_loops() -> list[str]:
        # Each asyncio.run is a loop of its own, closed when it returns (as a stopped runtime's).
        return [
            asyncio.run(gemini.generate(MODEL, ask(f"loop {n}"), PARAMS)).text for n in range(3)
        ]

    texts = await asyncio.to_thread(on_short_lived_loops)
    generation = await gemini.generate(MODEL, ask("the test's own loop"), PARAMS)

    assert [text.split("#")[0] for text in texts] == [f"[{MODEL}] loop {n} " for n in range(3)]
    assert generation.text.startswith(f"[{MODEL}] the test's own loop")
    # What the closed loops built is forgotten: one session and one model, for this loop.
    assert list(gemini._sessions) == [asyncio.get_running_loop()]
    assert len(gemini._models) == 1
    await gemini.aclose()
