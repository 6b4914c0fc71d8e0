"""Tests of the emulator's fault rules (`/control/faults`), over HTTP and with real clients."""

import gc
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from google.genai.errors import ServerError

from pipeline.emulator import RunningEmulator
from tests.support.emulator import (
    BEARER,
    GEMINI_MODEL,
    OPENAI_MODEL,
    gemini_chat,
    openai_chat,
    read_stats,
    running,
    set_rules,
)

UNAWAITED_ERROR_BODY = "ignore:coroutine 'ClientResponse.json' was never awaited:RuntimeWarning"
DEFAULTS = {
    "model": None,
    "api": None,
    "status": None,
    "retry_after_s": None,
    "delay_ms": None,
    "after": 0,
    "times": None,
    "probability": 1.0,
    "seed": None,
}


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with running() as emulator:
        yield emulator


@pytest.fixture
async def http(emu: RunningEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emu.base_url) as session:
        yield session


async def gemini_call(
    http: aiohttp.ClientSession, text: str = "hello", model: str = GEMINI_MODEL
) -> tuple[int, Any]:
    """One generateContent call; the status and the JSON body."""
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    async with http.post(f"/v1beta/models/{model}:generateContent", json=body) as resp:
        return resp.status, await resp.json()


async def openai_call(
    http: aiohttp.ClientSession, text: str = "hello", model: str = OPENAI_MODEL
) -> tuple[int, Any]:
    """One chat completion call; the status and the JSON body."""
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    async with http.post("/v1/chat/completions", json=body, headers=BEARER) as resp:
        return resp.status, await resp.json()


async def listing(http: aiohttp.ClientSession) -> list[dict[str, Any]]:
    """GET the rules in force with their counters."""
    async with http.get("/control/faults") as resp:
        assert resp.status == 200
        rules: list[dict[str, Any]] = (await resp.json())["rules"]
        return rules


async def test_rules_are_set_listed_and_cleared(http: aiohttp.ClientSession) -> None:
    assert await listing(http) == []

    answered = await set_rules(http, {"fault": "empty"}, {"fault": "status", "status": 500})

    expected = [
        {**DEFAULTS, "fault": "empty", "matched": 0, "fired": 0},
        {**DEFAULTS, "fault": "status", "status": 500, "matched": 0, "fired": 0},
    ]
    assert answered == expected
    assert await listing(http) == expected
    async with http.delete("/control/faults") as resp:
        assert resp.status == 200
        assert await resp.json() == {"rules": []}
    assert await listing(http) == []
    assert (await gemini_call(http))[0] == 200


async def test_after_lets_the_first_calls_through(http: aiohttp.ClientSession) -> None:
    await set_rules(http, {"fault": "status", "status": 503, "after": 2})

    statuses = [(await gemini_call(http))[0] for _ in range(4)]

    assert statuses == [200, 200, 503, 503]
    [rule] = await listing(http)
    assert (rule["matched"], rule["fired"]) == (4, 2)


async def test_times_bounds_how_often_a_rule_fires(http: aiohttp.ClientSession) -> None:
    await set_rules(http, {"fault": "status", "status": 500, "times": 2, "after": 1})

    statuses = [(await openai_call(http))[0] for _ in range(5)]

    assert statuses == [200, 500, 500, 200, 200]
    [rule] = await listing(http)
    assert (rule["matched"], rule["fired"]) == (5, 2)


async def test_probability_with_a_seed_repeats_the_same_sequence(
    http: aiohttp.ClientSession,
) -> None:
    rule = {"fault": "status", "status": 503, "probability": 0.5, "seed": 7}

    runs = []
    for _ in range(2):
        await set_rules(http, rule)  # replacing the rules restarts their random sequence
        runs.append([(await gemini_call(http))[0] for _ in range(20)])

    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}
    [listed] = await listing(http)
    assert listed["matched"] == 20
    assert listed["fired"] == runs[1].count(503)


async def test_probability_zero_never_fires(http: aiohttp.ClientSession) -> None:
    await set_rules(http, {"fault": "status", "status": 503, "probability": 0})

    statuses = [(await gemini_call(http))[0] for _ in range(5)]

    assert statuses == [200] * 5
    assert (await listing(http))[0]["matched"] == 5


async def test_model_filter(http: aiohttp.ClientSession) -> None:
    await set_rules(http, {"fault": "status", "status": 429, "model": "gemini-2.5-pro"})

    assert (await gemini_call(http, model=GEMINI_MODEL))[0] == 200
    assert (await gemini_call(http, model="gemini-2.5-pro"))[0] == 429
    assert (await openai_call(http, model="gemini-2.5-pro"))[0] == 429
    assert (await listing(http))[0]["matched"] == 2


async def test_api_filter(http: aiohttp.ClientSession) -> None:
    await set_rules(http, {"fault": "status", "status": 500, "api": "openai"})

    assert (await gemini_call(http))[0] == 200
    assert (await openai_call(http))[0] == 500


async def test_the_first_rule_that_fires_decides(http: aiohttp.ClientSession) -> None:
    await set_rules(
        http,
        {"fault": "status", "status": 503, "times": 1},
        {"fault": "status", "status": 429},
    )

    statuses = [(await gemini_call(http))[0] for _ in range(3)]

    assert statuses == [503, 429, 429]
    first, second = await listing(http)
    assert (first["matched"], first["fired"]) == (3, 1)
    assert (second["matched"], second["fired"]) == (2, 2)


async def test_status_rule_with_retry_after(http: aiohttp.ClientSession) -> None:
    await set_rules(http, {"fault": "status", "status": 429, "retry_after_s": 3})

    async with http.post(
        "/v1/chat/completions",
        json={"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "x"}]},
        headers=BEARER,
    ) as resp:
        assert resp.status == 429
        assert (resp.headers["Retry-After"], resp.headers["retry-after-ms"]) == ("3", "3000")
    status, body = await gemini_call(http)
    assert status == 429
    assert body["error"]["details"][0]["retryDelay"] == "3s"


async def test_a_faulted_call_still_counts(http: aiohttp.ClientSession) -> None:
    await set_rules(http, {"fault": "status", "status": 500})

    await gemini_call(http)
    await openai_call(http)

    stats = await read_stats(http)
    assert (stats["calls"], stats["errors"]) == (2, 2)
    assert stats["by_api"] == {"gemini": 1, "openai": 1}


@pytest.mark.filterwarnings(UNAWAITED_ERROR_BODY)
async def test_status_rule_through_the_real_gemini_client(emu: RunningEmulator) -> None:
    async with aiohttp.ClientSession(base_url=emu.base_url) as http:
        await set_rules(http, {"fault": "status", "status": 503, "retry_after_s": 1})
    async with gemini_chat(emu) as llm:
        with pytest.raises(ServerError) as excinfo:
            await llm.ainvoke("hello")

    assert excinfo.value.details["error"]["details"][0]["retryDelay"] == "1s"
    del excinfo
    gc.collect()


async def test_reset_rule_makes_both_clients_raise_connection_errors(
    emu: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    await set_rules(http, {"fault": "reset"})

    with pytest.raises(openai.APIConnectionError):
        await openai_chat(emu).ainvoke("hello")
    async with gemini_chat(emu) as llm:
        with pytest.raises(aiohttp.ClientConnectionError):
            await llm.ainvoke("hello")

    assert (await listing(http))[0]["fired"] == 2


async def test_slow_rule_delays_the_answer(
    emu: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    await set_rules(http, {"fault": "slow", "delay_ms": 200, "times": 1})

    started = time.perf_counter()
    msg = await openai_chat(emu).ainvoke("hello")
    assert time.perf_counter() - started >= 0.2
    assert isinstance(msg.content, str)
    assert msg.content.startswith(f"[{OPENAI_MODEL}] hello #")


async def test_safety_and_empty_rules(emu: RunningEmulator, http: aiohttp.ClientSession) -> None:
    await set_rules(http, {"fault": "safety", "times": 1}, {"fault": "empty", "times": 1})

    async with gemini_chat(emu) as llm:
        blocked = await llm.ainvoke("hello")
        empty = await llm.ainvoke("hello")
        normal = await llm.ainvoke("hello")

    assert blocked.response_metadata["finish_reason"] == "SAFETY"
    assert (empty.content, empty.response_metadata["finish_reason"]) == ("", "STOP")
    assert normal.text.startswith(f"[{GEMINI_MODEL}] hello #")


async def test_malformed_json_rule(emu: RunningEmulator, http: aiohttp.ClientSession) -> None:
    await set_rules(http, {"fault": "malformed_json", "api": "openai"})

    msg = await openai_chat(emu).bind(response_format={"type": "json_object"}).ainvoke("hi")

    assert isinstance(msg.content, str)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(msg.content)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"rules": [{}]}, "rules.0.fault: Field required"),
        ({"rules": [{"fault": "explode"}]}, "rules.0.fault"),
        ({"rules": [{"fault": "status"}]}, "status (400-599) is required"),
        ({"rules": [{"fault": "status", "status": 200}]}, "rules.0.status"),
        ({"rules": [{"fault": "empty", "status": 500}]}, "only there"),
        ({"rules": [{"fault": "empty", "retry_after_s": 1}]}, "retry_after_s is only"),
        ({"rules": [{"fault": "slow"}]}, "delay_ms (> 0) is required"),
        ({"rules": [{"fault": "reset", "delay_ms": 5}]}, "delay_ms (> 0) is required"),
        ({"rules": [{"fault": "empty", "probability": 1.5}]}, "rules.0.probability"),
        ({"rules": [{"fault": "empty", "after": -1}]}, "rules.0.after"),
        ({"rules": [{"fault": "empty", "times": 0}]}, "rules.0.times"),
        ({"rules": [{"fault": "empty", "after": "2"}]}, "rules.0.after"),
        ({"rules": [{"fault": "empty", "api": "anthropic"}]}, "rules.0.api"),
        ({"rules": [{"fault": "empty", "colour": "red"}]}, "rules.0.colour"),
        ({"rules": [{"fault": "empty"}, {"fault": "nope"}]}, "rules.1.fault"),
        ({"rules": {"fault": "empty"}}, "rules: "),
        ({}, "rules: Field required"),
        ([], 'the body must be an object {"rules": [...]}'),
    ],
)
async def test_invalid_rules_are_400_and_change_nothing(
    http: aiohttp.ClientSession, body: Any, message: str
) -> None:
    await set_rules(http, {"fault": "empty"})

    async with http.post("/control/faults", json=body) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]

    assert message in error["message"]
    assert [rule["fault"] for rule in await listing(http)] == ["empty"]


async def test_non_json_rules_are_400(http: aiohttp.ClientSession) -> None:
    async with http.post("/control/faults", data=b"{nope") as resp:
        assert resp.status == 400
        assert "not JSON" in (await resp.json())["error"]["message"]
