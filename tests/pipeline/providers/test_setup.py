"""Which providers a process runs: wiring, the built-in emulator, readiness, description."""

import socket

import pytest

from pipeline.providers.custom import CustomProvider
from pipeline.providers.gemini import GeminiProvider
from pipeline.providers.openai import OpenAIProvider
from pipeline.settings import Settings
from tests.support.emulator import Emulator
from tests.support.gateway import GatewayFactory


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(
    ("settings", "gemini", "openai"),
    [
        ({}, True, True),
        ({"google_api_key": "k"}, False, True),
        ({"gemini_base_url": "http://127.0.0.1:1"}, False, True),
        ({"openai_api_key": "k"}, True, False),
        ({"openai_base_url": "http://127.0.0.1:1/v1"}, True, False),
        ({"google_api_key": "k", "openai_base_url": "http://127.0.0.1:1/v1"}, False, False),
    ],
)
def test_who_uses_the_built_in_emulator(settings: dict[str, str], gemini: bool, openai: bool):
    values = {"google_api_key": None, "openai_api_key": None, **settings}

    built = Settings(**values)

    assert (built.gemini_uses_emulator, built.openai_uses_emulator) == (gemini, openai)
    assert built.uses_emulator is (gemini or openai)


def test_openai_api_key_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")

    settings = Settings()

    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-from-env"
    assert not settings.openai_uses_emulator


async def test_the_gateway_serves_both_providers_from_the_tests_emulator(
    start_gateway: GatewayFactory, emulator: Emulator
):
    gateway = await start_gateway()

    gemini = await gateway.generate({"model": "flash", "prompt": "to gemini"})
    openai = await gateway.generate({"model": "gpt-mini", "prompt": "to openai"})

    assert gemini.status == openai.status == 200, (gemini.body, openai.body)
    assert gemini.body["text"].startswith("[gemini-2.5-flash] to gemini")
    assert openai.body["text"].startswith("[gpt-4o-mini] to openai")
    assert await emulator.calls() == 2
    providers = gateway.services.providers
    assert isinstance(providers["gemini"], GeminiProvider)
    assert isinstance(providers["openai"], OpenAIProvider)
    assert providers["openai"].base_url == f"{emulator.base_url}/v1"


async def test_the_embedded_default_serves_openai_from_its_own_emulator(
    start_gateway: GatewayFactory, emulator: Emulator
):
    # Given no key and no base URL for either provider
    gateway = await start_gateway(gemini_base_url=None, openai_base_url=None)

    # When a caller asks an OpenAI model
    reply = await gateway.generate({"model": "gpt-mini", "prompt": "embedded openai"})

    # Then the built-in emulator answers it (not the test's), and start-up says so
    assert reply.status == 200, reply.body
    assert "embedded openai" in reply.body["text"]
    assert await emulator.calls() == 0
    own = gateway.services.emulator
    assert own is not None
    openai = gateway.services.providers["openai"]
    assert isinstance(openai, OpenAIProvider)
    assert openai.base_url == f"{own.base_url}/v1"
    description = gateway.services.provider_description()
    assert f"gemini and openai via the built-in emulator at 127.0.0.1:{own.port}" in description
    assert "GOOGLE_API_KEY and OPENAI_API_KEY are not set" in description


async def test_only_openai_on_the_built_in_emulator(
    start_gateway: GatewayFactory, emulator: Emulator
):
    gateway = await start_gateway(openai_base_url=None)

    reply = await gateway.generate({"model": "gpt-mini", "prompt": "half embedded"})

    assert reply.status == 200, reply.body
    own = gateway.services.emulator
    assert own is not None
    # Gemini still goes where it was told: the test's emulator.
    gemini = gateway.services.providers["gemini"]
    assert isinstance(gemini, GeminiProvider)
    assert gemini.base_url == emulator.base_url
    description = gateway.services.provider_description()
    assert description.startswith("openai via the built-in emulator")
    assert f"gemini at {emulator.base_url}" in description


async def test_readiness_needs_every_provider(start_gateway: GatewayFactory):
    # Given Gemini on the test's emulator, and an OpenAI-compatible endpoint nobody serves
    gateway = await start_gateway(openai_base_url=f"{closed_url()}/v1")

    ready = await gateway.get("/readyz")

    assert ready.status == 503
    assert ready.body["checks"]["provider"] is False
    assert await gateway.services.providers["gemini"].ready() is True


async def test_custom_providers_join_the_built_in_ones(start_gateway: GatewayFactory):
    gateway = await start_gateway(
        custom_providers={"mine": "tests.support.model_factories:emulator_openai"}
    )

    assert isinstance(gateway.services.providers["mine"], CustomProvider)
    assert await gateway.services.providers_ready() is True
