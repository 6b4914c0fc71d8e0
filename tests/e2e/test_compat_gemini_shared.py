"""A Gemini request means what the same request means on /v1/generate: one cache entry,
the same upstream call; its safety settings reach Gemini; its JSON-array stream works."""

import json

import aiohttp
from google.genai import types

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.genai_clients import gemini_path, genai_client, header
from tests.support.recorder import recording

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}


async def test_the_generate_api_and_the_gemini_api_share_one_cache_entry(
    gateway: Gateway, emulator: Emulator
):
    native = await gateway.generate(
        {
            "model": "flash",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "my name is Ada"},
                {"role": "assistant", "content": "hello Ada"},
                {"role": "user", "content": "what is it?"},
            ],
            "params": {"temperature": 0.2, "top_k": 5, "max_output_tokens": 50, "stop": ["zz"]},
            "response_schema": SCHEMA,
        }
    )
    assert native.status == 200, native.body
    config = types.GenerateContentConfig(
        system_instruction="be brief",
        temperature=0.2,
        top_k=5,
        max_output_tokens=50,
        stop_sequences=["zz"],
        response_mime_type="application/json",
        response_json_schema=SCHEMA,
    )
    history = [
        types.Content(role="user", parts=[types.Part(text="my name is Ada")]),
        types.Content(role="model", parts=[types.Part(text="hello Ada")]),
        types.Content(role="user", parts=[types.Part(text="what is it?")]),
    ]
    async with genai_client(gateway.url, "v1") as sdk:
        answer = await sdk.aio.models.generate_content(
            model="gemini-2.5-flash", contents=history, config=config
        )

    assert await emulator.calls() == 1
    assert header(answer, "x-cache") == "HIT"
    assert answer.text == native.body["text"]
    assert json.loads(answer.text) == native.body["json"]


async def test_safety_settings_reach_gemini_and_key_the_cache(
    start_gateway: GatewayFactory, emulator: Emulator, session: aiohttp.ClientSession
):
    settings = [
        types.SafetySetting(
            category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
            threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH,
        )
    ]
    async with recording(emulator.base_url, session) as hop:
        gateway = await start_gateway(gemini_base_url=hop.base_url)
        async with genai_client(gateway.url, "v1beta") as sdk:
            careful = {"safety_settings": settings}
            await sdk.aio.models.generate_content(model="flash", contents="hi", config=careful)
            plain = await sdk.aio.models.generate_content(model="flash", contents="hi")
            again = await sdk.aio.models.generate_content(
                model="flash", contents="hi", config=careful
            )

    sent = hop.bodies(":generateContent")
    assert len(sent) == 2, "with and without safety settings are two entries"
    assert sent[0]["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
    ]
    assert not sent[1].get("safetySettings")
    assert header(plain, "x-cache") == "MISS"
    assert header(again, "x-cache") == "HIT"


async def test_without_alt_sse_the_stream_is_one_json_array(
    gateway: Gateway, emulator: Emulator, session: aiohttp.ClientSession
):
    url = gateway.url + gemini_path("flash", "streamGenerateContent")
    body = {"contents": [{"role": "user", "parts": [{"text": "an array of chunks please"}]}]}

    async with session.post(url, json=body, params={"key": "k"}) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        live = json.loads(await resp.read())
    async with session.post(url, json=body) as resp:
        assert resp.headers["X-Cache"] == "HIT"
        replayed = json.loads(await resp.read())

    for chunks in (live, replayed):
        assert isinstance(chunks, list)
        assert len(chunks) >= 2
        text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
        assert text.startswith("[gemini-2.5-flash] an array of chunks please #")
        assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
        assert chunks[-1]["usageMetadata"]["totalTokenCount"] > 0
    assert await emulator.calls() == 1
