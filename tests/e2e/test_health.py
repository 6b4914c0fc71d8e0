"""Liveness, readiness, the model list and the embedded default's own emulator."""

import os

from tests.support.gateway import Gateway, GatewayFactory


async def test_healthz_and_readyz(gateway: Gateway):
    health = await gateway.get("/healthz")
    ready = await gateway.get("/readyz")

    assert (health.status, health.body) == (200, {"status": "ok", "pid": os.getpid()})
    assert ready.status == 200
    assert ready.body == {"status": "ready", "checks": {"provider": True, "cache": True}}


async def test_models_lists_aliases_and_prices(gateway: Gateway):
    reply = await gateway.get("/v1/models")

    models = {m["id"]: m for m in reply.body["data"]}
    for name in ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash", "gemini-2.5-flash-lite"):
        assert name in models
    assert "flash" in models["gemini-2.5-flash"]["aliases"]
    assert models["gemini-2.5-pro"]["output_per_million_usd"] == 10.0
    assert models["gpt-4o-mini"]["provider"] == "openai"
    assert models["gemini-2.5-flash"]["circuit"] == "closed"
    routes = {r["id"]: r for r in reply.body["routes"]}
    assert routes["auto"]["strategy"] == "fallback"
    assert [d["deployment"] for d in routes["auto"]["deployments"]] == [
        "gemini/gemini-2.5-flash",
        "gemini/gemini-2.0-flash",
        "openai/gpt-4o-mini",
    ]


async def test_embedded_default_runs_its_own_emulator(start_gateway: GatewayFactory):
    gateway = await start_gateway(gemini_base_url=None)

    reply = await gateway.generate({"model": "flash", "prompt": "embedded"})

    assert reply.status == 200, reply.body
    assert "embedded" in reply.body["text"]
    emulator = gateway.services.emulator
    assert emulator is not None
    assert emulator.host == "127.0.0.1"
    assert "built-in emulator" in gateway.services.provider_description()
    assert "GOOGLE_API_KEY" in gateway.services.provider_description()
