"""Errors and blocks on the Gemini API, as google-genai raises and reads them."""

import json

import aiohttp
import pytest
from google.genai import errors, types

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.genai_clients import VERSIONS, gemini_path, genai_client
from tests.support.sse import events

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def details_of(error: errors.APIError, kind: str) -> list[dict[str, object]]:
    """The error's `details` entries of one `@type`."""
    found = error.details["error"]["details"]
    return [d for d in found if d["@type"] == "type.googleapis.com/google.rpc." + kind]


@pytest.mark.parametrize("version", VERSIONS)
async def test_an_unknown_model_is_a_404_client_error(gateway: Gateway, version: str):
    async with genai_client(gateway.url, version) as sdk:
        with pytest.raises(errors.ClientError) as caught:
            await sdk.aio.models.generate_content(model="no-such-model", contents="hi")
        with pytest.raises(errors.ClientError) as listed:
            await sdk.aio.models.count_tokens(model="models/no-such-model", contents="hi")

    assert caught.value.code == 404
    assert caught.value.status == "NOT_FOUND"
    assert "no-such-model" in caught.value.message
    [info] = details_of(caught.value, "ErrorInfo")
    assert info["reason"] == "UNKNOWN_MODEL"
    assert listed.value.code == 404


@pytest.mark.parametrize(
    ("config", "contents", "words"),
    [
        ({"candidate_count": 2}, "hi", "one candidate"),
        ({"presence_penalty": 0.5}, "hi", "presencePenalty"),
        ({"response_mime_type": "text/x.enum"}, "hi", "responseMimeType"),
        (None, types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png"), "inlineData"),
        (None, types.Part.from_function_response(name="f", response={}), "functionResponse"),
        ({"tools": [types.Tool(google_search=types.GoogleSearch())]}, "hi", "googleSearch"),
    ],
    ids=["candidates", "penalty", "mime", "image", "unasked-response", "google-search"],
)
async def test_bad_input_is_a_400_client_error_naming_what_is_wrong(
    gateway: Gateway, emulator: Emulator, config: object, contents: object, words: str
):
    async with genai_client(gateway.url, "v1beta") as sdk:
        with pytest.raises(errors.ClientError) as caught:
            await sdk.aio.models.generate_content(model="flash", contents=contents, config=config)

    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert words in caught.value.message
    assert await emulator.calls() == 0


async def test_malformed_bodies_and_unknown_fields_are_400s(gateway: Gateway):
    path = gemini_path("flash", "generateContent")
    contents = [{"parts": [{"text": "hi"}]}]

    not_json = await gateway.post_raw(path, "{not json")
    wrong_type = await gateway.post_raw(path, '{"contents": "hi"}')
    unknown = await gateway.post_raw(path, json.dumps({"contents": contents, "temprature": 1}))
    nested = await gateway.post_raw(
        path, json.dumps({"contents": contents, "generationConfig": {"tempo": 1}})
    )
    # (google-genai itself warns about an unknown enum value before it sends one)
    safety = await gateway.post_raw(
        path,
        json.dumps(
            {
                "contents": contents,
                "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "X"}],
            }
        ),
    )
    no_sse = await gateway.post_raw(
        gemini_path("flash", "streamGenerateContent") + "?alt=proto", "{}"
    )
    method = await gateway.post_raw(gemini_path("flash", "embedContent"), "{}")

    for reply in (not_json, wrong_type, unknown, nested, safety, no_sse):
        assert reply.status == 400, reply.body
        assert reply.body["error"]["status"] == "INVALID_ARGUMENT"
        assert reply.body["error"]["code"] == 400
    assert unknown.body["error"]["message"] == (
        'Invalid JSON payload received. Unknown name "temprature": Cannot find field.'
    )
    assert 'Unknown name "tempo"' in nested.body["error"]["message"]
    assert "safety_settings[0].threshold" in safety.body["error"]["message"]
    # A method promptbus does not serve has no route (aiohttp's 405, in promptbus's shape):
    # a client error all the same
    assert method.status == 405


async def test_snake_case_field_names_are_taken_as_google_takes_them(gateway: Gateway):
    body = {
        "contents": [{"role": "user", "parts": [{"text": "snakes"}]}],
        "system_instruction": {"parts": [{"text": "be brief"}]},
        "generation_config": {"max_output_tokens": 2},
    }
    reply = await gateway.post_raw(gemini_path("flash", "generateContent"), json.dumps(body))

    assert reply.status == 200, reply.body
    assert reply.body["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert reply.body["usageMetadata"]["candidatesTokenCount"] == 2


async def test_an_upstream_429_is_resource_exhausted_with_retry_info(
    start_gateway: GatewayFactory,
):
    gateway = await start_gateway(retry_max_attempts=1)
    async with genai_client(gateway.url, "v1beta") as sdk:
        with pytest.raises(errors.ClientError) as caught:
            await sdk.aio.models.generate_content(
                model="flash", contents="slow down [[emulator:status=429,retry_after=2]]"
            )

    assert caught.value.code == 429
    assert caught.value.status == "RESOURCE_EXHAUSTED"
    assert details_of(caught.value, "RetryInfo") == [{"@type": RETRY_INFO, "retryDelay": "2s"}]
    assert caught.value.response.headers["Retry-After"] == "2"


async def test_an_unavailable_upstream_is_a_503_server_error(start_gateway: GatewayFactory):
    gateway = await start_gateway(retry_max_attempts=1)
    async with genai_client(gateway.url, "v1") as sdk:
        with pytest.raises(errors.ServerError) as caught:
            await sdk.aio.models.generate_content(
                model="flash", contents="down [[emulator:status=503]]"
            )
        with pytest.raises(errors.ServerError) as waited:
            await sdk.aio.models.generate_content(
                model="flash", contents="down [[emulator:status=503,retry_after=3]]"
            )

    assert caught.value.code == 503
    assert caught.value.status == "UNAVAILABLE"
    assert details_of(caught.value, "RetryInfo") == []
    [info] = details_of(caught.value, "ErrorInfo")
    assert info["metadata"] == {"retryable": "true", "attempts": "1"} | {
        "tried": "gemini/gemini-2.5-flash"
    }
    assert details_of(waited.value, "RetryInfo")[0]["retryDelay"] == "3s"


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_blocked_prompt_comes_back_as_prompt_feedback(gateway: Gateway, version: str):
    async with genai_client(gateway.url, version) as sdk:
        answer = await sdk.aio.models.generate_content(
            model="flash", contents="x [[emulator:block=prompt]]"
        )
        stream = await sdk.aio.models.generate_content_stream(
            model="flash", contents="y [[emulator:block=prompt]]"
        )
        chunks = [chunk async for chunk in stream]

    assert answer.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert not answer.candidates
    assert answer.text is None
    [chunk] = chunks
    assert chunk.prompt_feedback.block_reason == types.BlockedReason.SAFETY


async def test_a_withheld_answer_is_a_safety_finish_without_content(gateway: Gateway):
    async with genai_client(gateway.url, "v1beta") as sdk:
        answer = await sdk.aio.models.generate_content(
            model="flash", contents="x [[emulator:block=safety]]"
        )
        stream = await sdk.aio.models.generate_content_stream(
            model="flash", contents="y [[emulator:block=safety]]"
        )
        chunks = [chunk async for chunk in stream]

    [candidate] = answer.candidates
    assert candidate.finish_reason == types.FinishReason.SAFETY
    assert candidate.content is None
    assert answer.prompt_feedback is None
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.SAFETY


async def test_a_stream_that_breaks_ends_with_google_s_error_event(
    gateway: Gateway, session: aiohttp.ClientSession
):
    prompt = "break [[emulator:chunks=5,stream_error=2]]"
    async with genai_client(gateway.url, "v1beta") as sdk:
        stream = await sdk.aio.models.generate_content_stream(model="flash", contents=prompt)
        texts: list[str] = []

        async def read_all() -> None:
            async for chunk in stream:
                texts.append(chunk.text or "")

        with pytest.raises(errors.ServerError) as caught:
            await read_all()

    assert len(texts) == 2, "the deltas before the break arrived"
    assert caught.value.code == 502
    assert caught.value.status == "UNAVAILABLE"
    # On the wire: `data: {"error": ...}` after the deltas, then the end
    url = gateway.url + gemini_path("flash", "streamGenerateContent") + "?alt=sse"
    body = {"contents": [{"parts": [{"text": prompt + " again"}]}]}
    async with session.post(url, json=body) as resp:
        sent = [event.data async for event in events(resp)]
    assert [next(iter(data)) for data in sent] == ["candidates", "candidates", "error"]
