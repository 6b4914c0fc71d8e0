"""The Gemini provider over real HTTP: the real LangChain client against the emulator."""

import socket
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from pipeline.errors import UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from pipeline.providers.gemini import GeminiProvider
from schemas import GenerationParams, SafetySetting
from tests.support.emulator import Emulator
from tests.support.providers import PARAMS, PERSON, ask, gemini_on, openai_on
from tests.support.recorder import recording

MODEL = "gemini-2.5-flash"


@pytest.fixture
async def gemini(emulator: Emulator) -> AsyncIterator[GeminiProvider]:
    async with gemini_on(emulator.base_url) as provider:
        yield provider


async def test_answers_with_usage_and_finish_reason(gemini: GeminiProvider):
    generation = await gemini.generate(MODEL, ask("hello there", system="be brief"), PARAMS)

    assert generation.provider == "gemini"
    assert generation.provider_model == MODEL
    assert generation.text.startswith(f"[{MODEL}] hello there #")
    assert generation.finish_reason == "stop"
    # The emulator counts whitespace-separated words: 4 prompt words, 4 answer words.
    assert (generation.usage.input_tokens, generation.usage.output_tokens) == (4, 4)
    assert generation.usage.total_tokens == 8
    assert generation.json_ is None


async def test_params_reach_the_model(gemini: GeminiProvider):
    params = GenerationParams(max_output_tokens=2, temperature=0.2, top_k=5)

    generation = await gemini.generate(MODEL, ask("one two three four"), params)

    assert generation.finish_reason == "max_tokens"
    assert generation.usage.output_tokens == 2


async def test_safety_settings_reach_gemini_and_other_families_ignore_them(
    emulator: Emulator, session: aiohttp.ClientSession
):
    settings = (
        SafetySetting(category="HARM_CATEGORY_HARASSMENT", threshold="BLOCK_ONLY_HIGH"),
        SafetySetting(category="HARM_CATEGORY_HATE_SPEECH", threshold="OFF"),
    )
    async with recording(emulator.base_url, session) as hop:
        async with gemini_on(hop.base_url) as gemini:
            await gemini.generate(MODEL, ask("careful"), PARAMS, safety_settings=settings)
            await gemini.generate(MODEL, ask("plain"), PARAMS)
        async with openai_on(f"{hop.base_url}/v1") as openai:
            answer = await openai.generate(
                "gpt-4o-mini", ask("careful"), PARAMS, safety_settings=settings
            )

    careful, plain = hop.bodies(":generateContent")
    assert careful["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"},
    ]
    assert not plain.get("safetySettings")
    assert answer.text
    [chat] = hop.bodies("/chat/completions")
    assert not {k for k in chat if "safety" in k.lower()}


async def test_a_withheld_answer_reports_safety(gemini: GeminiProvider):
    answer = await gemini.generate(MODEL, ask("x [[emulator:block=safety]]"), PARAMS)
    prompt = await gemini.generate(MODEL, ask("x [[emulator:block=prompt]]"), PARAMS)

    assert (answer.finish_reason, answer.text) == ("safety", "")
    assert (prompt.finish_reason, prompt.text) == ("safety", "")
    # Only the refused prompt says that nothing was generated
    assert (answer.prompt_blocked, prompt.prompt_blocked) == (False, True)


async def test_503_is_retryable_and_made_once(gemini: GeminiProvider, emulator: Emulator):
    before = await emulator.calls()

    with pytest.raises(UpstreamUnavailable) as caught:
        await gemini.generate(MODEL, ask("x [[emulator:status=503]]"), PARAMS)

    assert caught.value.retryable
    assert "503" in caught.value.message
    # One upstream call: the SDK does not retry behind promptbus's back.
    assert await emulator.calls() == before + 1


async def test_400_is_not_retryable(gemini: GeminiProvider):
    with pytest.raises(UpstreamRejected) as caught:
        await gemini.generate(MODEL, ask("x [[emulator:no-such-directive]]"), PARAMS)

    assert not caught.value.retryable
    assert "400" in caught.value.message


async def test_429_carries_the_retry_delay(gemini: GeminiProvider):
    with pytest.raises(UpstreamUnavailable) as caught:
        await gemini.generate(MODEL, ask("x [[emulator:status=429,retry_after=1.5]]"), PARAMS)

    assert caught.value.retryable
    assert "429" in caught.value.message
    # From RetryInfo.retryDelay "1.5s" (the Retry-After header says 2, rounded up).
    assert caught.value.retry_after_s == pytest.approx(1.5)


async def test_a_reset_connection_is_unavailable(gemini: GeminiProvider, emulator: Emulator):
    before = await emulator.calls()

    with pytest.raises(UpstreamUnavailable) as caught:
        await gemini.generate(MODEL, ask("x [[emulator:reset]]"), PARAMS)

    assert caught.value.retryable
    assert "cannot reach the model provider" in caught.value.message
    assert await emulator.calls() == before + 1


async def test_json_mode_returns_json_matching_the_schema(gemini: GeminiProvider):
    generation = await gemini.generate(
        MODEL, ask("describe someone"), PARAMS, response_schema=PERSON
    )

    answer = orjson.loads(generation.text)
    assert isinstance(answer["name"], str)
    assert isinstance(answer["age"], int)
    assert generation.json_ is None  # raw text only: validation is the structured step's


async def test_a_slow_answer_is_a_timeout(emulator: Emulator):
    async with gemini_on(emulator.base_url, timeout_s=0.2) as gemini:
        with pytest.raises(UpstreamTimeout) as caught:
            await gemini.generate(MODEL, ask("x [[emulator:delay=1000]]"), PARAMS)

    assert caught.value.retryable


async def test_nobody_listening_is_unavailable_and_not_ready():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with gemini_on(closed) as gemini:
        with pytest.raises(UpstreamUnavailable) as caught:
            await gemini.generate(MODEL, ask("hi"), PARAMS)
        ready = await gemini.ready()

    assert caught.value.retryable
    assert "cannot reach the model provider" in caught.value.message
    assert ready is False


async def test_ready_when_the_endpoint_answers(gemini: GeminiProvider):
    assert await gemini.ready() is True


async def test_one_client_per_model_reused(gemini: GeminiProvider):
    await gemini.generate(MODEL, ask("a"), PARAMS)
    await gemini.generate(MODEL, ask("b"), PARAMS)
    await gemini.generate("gemini-2.5-pro", ask("c"), PARAMS)

    assert gemini.model(MODEL) is gemini.model(MODEL)
    assert gemini.model(MODEL) is not gemini.model("gemini-2.5-pro")
