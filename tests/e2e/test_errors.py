"""Bad input gets a clear 4xx JSON error and changes nothing; upstream failures map cleanly."""

import json
import socket

import pytest

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory


def assert_error(reply, status: int, error_type: str, retryable: bool = False) -> dict:
    assert reply.status == status, reply.body
    assert (reply.header("Content-Type") or "").startswith("application/json")
    error = reply.body["error"]
    assert error["type"] == error_type
    assert error["retryable"] is retryable
    assert error["message"]
    assert reply.header("X-Request-Id")
    return error


async def assert_nothing_changed(gateway: Gateway, emulator: Emulator) -> None:
    assert await emulator.calls() == 0
    assert gateway.services.l1.stats()["entries"] == 0


async def test_malformed_json_is_400(gateway: Gateway, emulator: Emulator):
    reply = await gateway.post_raw("/v1/generate", '{"model": "flash", "prompt": ')

    assert_error(reply, 400, "invalid_json")
    await assert_nothing_changed(gateway, emulator)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_wrong_content_type_is_415(gateway: Gateway, emulator: Emulator, content_type):
    body = json.dumps({"model": "flash", "prompt": "hi"})
    reply = await gateway.post_raw("/v1/generate", body, content_type=content_type)

    assert_error(reply, 415, "unsupported_media_type")
    await assert_nothing_changed(gateway, emulator)


async def test_body_over_the_limit_is_413(start_gateway: GatewayFactory, emulator: Emulator):
    gateway = await start_gateway(max_body_bytes=2048)
    body = json.dumps({"model": "flash", "prompt": "x" * 4096})

    reply = await gateway.post_raw("/v1/generate", body)

    assert_error(reply, 413, "payload_too_large")
    await assert_nothing_changed(gateway, emulator)


async def test_chunked_body_over_the_limit_is_413(
    start_gateway: GatewayFactory, emulator: Emulator
):
    gateway = await start_gateway(max_body_bytes=2048)

    async def chunks():
        yield b'{"model": "flash", "prompt": "'
        for _ in range(8):
            yield b"x" * 1024
        yield b'"}'

    async with gateway.session.post(
        gateway.url + "/v1/generate", data=chunks(), headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["type"] == "payload_too_large"
    await assert_nothing_changed(gateway, emulator)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "hi"}, "model"),
        ({"model": "flash", "prompt": "hi", "params": {"temperature": 5}}, "params.temperature"),
        ({"model": "flash", "prompt": ""}, "prompt"),
        ({"model": "flash", "prompt": "hi", "cache": {"ttl": 0}}, "cache.ttl"),
        ({"model": "flash", "prompt": "hi", "surprise": 1}, "surprise"),
        ({"model": "flash", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
    ],
)
async def test_schema_violation_is_422_naming_the_field(
    gateway: Gateway, emulator: Emulator, body, field
):
    error = assert_error(await gateway.generate(body), 422, "validation_error")

    assert error["field"] == field
    assert field.split(".")[-1] in error["message"]
    await assert_nothing_changed(gateway, emulator)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "flash"},
        {"model": "flash", "prompt": "hi", "messages": [{"role": "user", "content": "hi"}]},
        {"model": "flash", "messages": [{"role": "assistant", "content": "hi"}]},
        [1, 2, 3],
    ],
)
async def test_inconsistent_request_is_422(gateway: Gateway, emulator: Emulator, body):
    assert_error(await gateway.generate(body), 422, "validation_error")
    await assert_nothing_changed(gateway, emulator)


async def test_unknown_model_is_404_listing_known_aliases(gateway: Gateway, emulator: Emulator):
    error = assert_error(
        await gateway.generate({"model": "gpt-17", "prompt": "hi"}), 404, "unknown_model"
    )

    for alias in ("flash", "pro", "flash-lite"):
        assert alias in error["message"]
    await assert_nothing_changed(gateway, emulator)


async def test_unknown_route_and_method_are_json_errors(gateway: Gateway):
    assert_error(await gateway.get("/v1/nothing-here"), 404, "not_found")
    assert_error(await gateway.get("/v1/generate"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("directive", "status", "error_type", "retryable"),
    [
        ("status=503", 503, "upstream_unavailable", True),
        ("status=429", 503, "upstream_unavailable", True),
        ("status=500", 503, "upstream_unavailable", True),
        ("status=504", 504, "upstream_timeout", True),
        ("status=400", 502, "upstream_rejected", False),
        ("status=403", 502, "upstream_rejected", False),
    ],
)
async def test_upstream_status_maps_to_gateway_error(
    gateway: Gateway, directive, status, error_type, retryable
):
    body = {"model": "flash", "prompt": f"x [[emulator:{directive}]]"}

    assert_error(await gateway.generate(body), status, error_type, retryable)


async def test_safety_block_is_an_error_with_finish_reason(gateway: Gateway):
    for directive in ("block=safety", "block=prompt"):
        body = {"model": "flash", "prompt": f"x [[emulator:{directive}]]"}
        error = assert_error(await gateway.generate(body), 422, "content_blocked")
        assert error["finish_reason"] == "safety"


async def test_empty_answer_is_an_error_never_an_empty_200(gateway: Gateway):
    body = {"model": "flash", "prompt": "x [[emulator:empty]]"}

    error = assert_error(await gateway.generate(body), 502, "empty_answer", retryable=True)

    assert error["finish_reason"] == "stop"


async def test_slow_upstream_is_504(start_gateway: GatewayFactory):
    gateway = await start_gateway(provider_timeout_s=0.3)
    body = {"model": "flash", "prompt": "x [[emulator:delay=2000]]"}

    assert_error(await gateway.generate(body), 504, "upstream_timeout", retryable=True)


async def test_unreachable_provider_is_503_and_not_ready(start_gateway: GatewayFactory):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    gateway = await start_gateway(gemini_base_url=closed)

    assert_error(
        await gateway.generate({"model": "flash", "prompt": "hi"}),
        503,
        "upstream_unavailable",
        retryable=True,
    )
    ready = await gateway.get("/readyz")
    assert ready.status == 503
    assert ready.body["checks"] == {"provider": False, "cache": True}
