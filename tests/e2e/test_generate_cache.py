"""The sync fast path's cache, driven over HTTP against the real emulator."""

import asyncio

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory

HELLO = {"model": "flash", "prompt": "hello"}


async def test_miss_then_hit_does_not_reach_the_emulator(gateway: Gateway, emulator: Emulator):
    # Given a cold cache, when the same request is sent twice
    first = await gateway.generate(HELLO)
    second = await gateway.generate(HELLO)

    # Then the first is a miss answered by the model, the second a hit from L1
    assert first.status == 200, first.body
    assert first.header("X-Cache") == "MISS"
    assert first.body["cache"]["hit"] is False
    assert first.body["cache"]["stored"] is True
    assert "hello" in first.body["text"]
    assert second.status == 200
    assert second.header("X-Cache") == "HIT"
    assert second.body["cache"]["hit"] is True
    assert second.body["cache"]["tier"] == "l1"
    assert second.header("Age") == "0"
    assert second.body["text"] == first.body["text"]
    assert second.body["usage"] == first.body["usage"]
    assert await emulator.calls() == 1


async def test_response_carries_usage_cost_model_and_request_id(gateway: Gateway):
    reply = await gateway.generate(HELLO, headers={"X-Request-Id": "caller-id-1"})

    assert reply.status == 200
    assert reply.header("X-Request-Id") == "caller-id-1"
    body = reply.body
    assert body["model"] == "flash"
    assert body["provider_model"] == "gemini-2.5-flash"
    assert body["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    # gemini-2.5-flash lists at $0.30 in and $2.50 out per million tokens.
    expected = usage["input_tokens"] * 0.30e-6 + usage["output_tokens"] * 2.50e-6
    assert abs(body["cost"]["total_usd"] - expected) < 1e-12


async def test_unsafe_request_id_is_replaced(gateway: Gateway):
    reply = await gateway.generate(HELLO, headers={"X-Request-Id": "no spaces allowed"})

    assert reply.header("X-Request-Id") not in (None, "no spaces allowed")


async def test_key_ignores_body_key_order_and_whitespace(gateway: Gateway, emulator: Emulator):
    await gateway.post_raw("/v1/generate", '{"model":"flash","prompt":"order"}')
    reply = await gateway.post_raw("/v1/generate", '{\n  "prompt" : "order",\n\t"model": "flash" }')

    assert reply.header("X-Cache") == "HIT"
    assert await emulator.calls() == 1


async def test_alias_and_provider_model_share_entries(gateway: Gateway, emulator: Emulator):
    await gateway.generate({"model": "flash", "prompt": "alias"})
    reply = await gateway.generate({"model": "gemini-2.5-flash", "prompt": "alias"})

    assert reply.header("X-Cache") == "HIT"
    assert await emulator.calls() == 1


async def test_prompt_with_system_equals_the_same_messages(gateway: Gateway, emulator: Emulator):
    await gateway.generate({"model": "flash", "prompt": "hi", "system": "be brief"})
    reply = await gateway.generate(
        {
            "model": "flash",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ],
        }
    )

    assert reply.header("X-Cache") == "HIT"
    assert await emulator.calls() == 1


async def test_every_answer_shaping_field_changes_the_key(gateway: Gateway, emulator: Emulator):
    base = {"model": "flash", "prompt": "vary", "params": {"temperature": 0.5}}
    variants = [
        base,
        {**base, "prompt": "vary!"},
        {**base, "system": "be brief"},
        {**base, "model": "pro"},
        {**base, "params": {"temperature": 0.6}},
        {**base, "params": {"temperature": 0.5, "max_output_tokens": 5}},
        {**base, "params": {"temperature": 0.5, "stop": ["x"]}},
        {**base, "params": {"temperature": 0.5, "top_k": 3}},
        {**base, "params": {"temperature": 0.5, "top_p": 0.5}},
    ]
    keys = set()
    for variant in variants:
        reply = await gateway.generate(variant)
        assert reply.status == 200, reply.body
        assert reply.header("X-Cache") == "MISS", variant
        keys.add(reply.body["cache"]["key"])

    assert len(keys) == len(variants)
    assert await emulator.calls() == len(variants)


async def test_entry_expires_after_its_ttl(gateway: Gateway, emulator: Emulator):
    body = {"model": "flash", "prompt": "short-lived", "cache": {"ttl": 1}}
    first = await gateway.generate(body)
    assert first.body["cache"]["ttl_s"] == 1
    assert (await gateway.generate(body)).header("X-Cache") == "HIT"

    await asyncio.sleep(1.2)

    assert (await gateway.generate(body)).header("X-Cache") == "MISS"
    assert await emulator.calls() == 2


async def test_eviction_by_entry_count_keeps_recently_used(
    start_gateway: GatewayFactory, emulator: Emulator
):
    gateway = await start_gateway(cache_max_entries=2)
    a, b, c = ({"model": "flash", "prompt": p} for p in "abc")
    await gateway.generate(a)
    await gateway.generate(b)
    assert (await gateway.generate(a)).header("X-Cache") == "HIT"  # a is now most recent

    await gateway.generate(c)  # evicts b, the least recently used

    assert (await gateway.generate(a)).header("X-Cache") == "HIT"
    assert (await gateway.generate(b)).header("X-Cache") == "MISS"
    assert gateway.services.l1.stats()["entries"] <= 2


async def test_eviction_by_bytes(start_gateway: GatewayFactory, emulator: Emulator):
    gateway = await start_gateway(cache_max_bytes=1024, cache_max_entries=1000)
    a, b = {"model": "flash", "prompt": "a" * 150}, {"model": "flash", "prompt": "b" * 150}
    await gateway.generate(a)
    assert (await gateway.generate(a)).header("X-Cache") == "HIT"

    await gateway.generate(b)  # two answers do not fit in 1 KiB

    assert (await gateway.generate(b)).header("X-Cache") == "HIT"
    assert (await gateway.generate(a)).header("X-Cache") == "MISS"
    assert gateway.services.l1.stats()["bytes"] <= 1024


async def test_no_cache_skips_lookup_but_stores(gateway: Gateway, emulator: Emulator):
    await gateway.generate(HELLO)
    fresh = await gateway.generate({**HELLO, "cache": {"no_cache": True}})
    assert fresh.header("X-Cache") == "MISS"
    assert fresh.body["cache"]["stored"] is True

    after = await gateway.generate(HELLO)

    assert after.header("X-Cache") == "HIT"
    assert after.body["created"] == fresh.body["created"]  # the fresh answer replaced the old
    assert await emulator.calls() == 2


async def test_no_store_does_not_store(gateway: Gateway, emulator: Emulator):
    first = await gateway.generate({**HELLO, "cache": {"no_store": True}})
    assert first.body["cache"]["stored"] is False

    assert (await gateway.generate(HELLO)).header("X-Cache") == "MISS"
    assert await emulator.calls() == 2


async def test_cache_control_header_no_store_and_no_cache(gateway: Gateway, emulator: Emulator):
    await gateway.generate(HELLO, headers={"Cache-Control": "no-store"})
    assert (await gateway.generate(HELLO, headers={"Cache-Control": "no-cache"})).header(
        "X-Cache"
    ) == "MISS"
    assert (await gateway.generate(HELLO)).header("X-Cache") == "HIT"
    assert await emulator.calls() == 2


async def test_cache_control_max_age_refuses_older_answers(gateway: Gateway, emulator: Emulator):
    await gateway.generate(HELLO)
    assert (await gateway.generate(HELLO, headers={"Cache-Control": "max-age=60"})).header(
        "X-Cache"
    ) == "HIT"

    await asyncio.sleep(1.1)
    old = await gateway.generate(HELLO)
    assert old.header("X-Cache") == "HIT"
    assert int(old.header("Age") or "0") >= 1
    refreshed = await gateway.generate(HELLO, headers={"Cache-Control": "max-age=1"})

    assert refreshed.header("X-Cache") == "MISS"
    again = await gateway.generate(HELLO)
    assert again.header("X-Cache") == "HIT"
    assert again.header("Age") == "0"
    assert await emulator.calls() == 2


async def test_errors_are_not_cached(gateway: Gateway, emulator: Emulator):
    # A rejected request (not retried, so each try is one upstream call)
    failing = {"model": "flash", "prompt": "boom [[emulator:status=400]]"}
    blocked = {"model": "flash", "prompt": "bad [[emulator:block=safety]]"}
    empty = {"model": "flash", "prompt": "nothing [[emulator:empty]]"}
    for body in (failing, blocked, empty):
        first = await gateway.generate(body)
        second = await gateway.generate(body)
        assert first.status == second.status
        assert first.status >= 400

    assert await emulator.calls() == 6
    assert gateway.services.l1.stats()["entries"] == 0
