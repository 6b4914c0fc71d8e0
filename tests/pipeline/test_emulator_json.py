"""Tests of the emulator's JSON mode over the Gemini and OpenAI APIs, with the real clients."""

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import aiohttp
import jsonschema
import pytest
from google import genai
from langchain_core.runnables import Runnable
from pydantic import BaseModel

from pipeline.emulator import EMULATOR_API_KEY, RunningEmulator
from tests.support.emulator import (
    BEARER,
    GEMINI_MODEL,
    OPENAI_MODEL,
    gemini_chat,
    openai_chat,
    running,
)
from tests.support.emulator_schemas import OBJECT, SCHEMAS, validate


class Inner(BaseModel):
    x: int


class Person(BaseModel):
    name: str
    age: int
    kind: Literal["x", "y"]
    inner: Inner | None = None
    tags: list[str]


PERSON = Person.model_json_schema()
DIRECTIVE_CASES = [
    # directive, user turns, is the answer JSON, does it follow the schema
    ("invalid", 1, True, False),
    ("invalid", 2, True, False),
    ("malformed", 1, False, False),
    ("malformed", 2, False, False),
    ("invalid_then_valid", 1, True, False),
    ("invalid_then_valid", 2, True, True),
    ("malformed_then_valid", 1, False, False),
    ("malformed_then_valid", 2, True, True),
]


def follows(text: str, schema: dict[str, Any]) -> tuple[bool, bool]:
    """Whether text is JSON, and whether it follows schema."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return False, False
    return True, jsonschema.Draft202012Validator(schema).is_valid(document)


def conversation(text: str, user_turns: int) -> list[tuple[str, str]]:
    """One user turn, or the turn, a bad answer and a repair request."""
    first = [("human", text)]
    return first if user_turns == 1 else [*first, ("ai", "{oops"), ("human", "fix the JSON")]


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with running() as emulator:
        yield emulator


@pytest.fixture
async def http(emu: RunningEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emu.base_url) as session:
        yield session


async def test_gemini_with_structured_output(emu: RunningEmulator) -> None:
    async with gemini_chat(emu) as llm:
        structured: Runnable[Any, Any] = llm.with_structured_output(Person, method="json_schema")
        person = await structured.ainvoke("tell me about Ada")

    assert isinstance(person, Person)
    assert person.kind == "x"
    assert person.inner == Inner(x=1)
    assert len(person.tags) == 1


async def test_gemini_bind_json_schema(emu: RunningEmulator) -> None:
    schema = SCHEMAS["$defs ref"]
    async with gemini_chat(emu) as llm:
        bound = llm.bind(response_mime_type="application/json", response_json_schema=schema)
        msg = await bound.ainvoke("list the items")
        chunks = [chunk.text async for chunk in bound.astream("list the items")]

    validate(json.loads(msg.text), schema)
    assert "".join(chunks) == msg.text


async def test_gemini_json_without_schema_wraps_the_answer(emu: RunningEmulator) -> None:
    async with gemini_chat(emu) as llm:
        msg = await llm.bind(response_mime_type="application/json").ainvoke("hi there")

    answer = json.loads(msg.text)
    assert list(answer) == ["answer"]
    assert answer["answer"].startswith(f"[{GEMINI_MODEL}] hi there #")


async def test_google_genai_response_schema_parses(emu: RunningEmulator) -> None:
    # google-genai sends a pydantic class as responseSchema, Gemini's OpenAPI subset.
    options = genai.types.HttpOptions(base_url=emu.base_url, api_version="v1beta")
    client = genai.Client(api_key=EMULATOR_API_KEY, http_options=options)
    config = genai.types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=Person
    )
    try:
        reply = await client.aio.models.generate_content(
            model=GEMINI_MODEL, contents="about Ada", config=config
        )
    finally:
        await client.aio.aclose()

    assert isinstance(reply.parsed, Person)
    assert reply.parsed.name == "about Ada"


async def test_gemini_schema_without_json_mime_type_is_400(http: aiohttp.ClientSession) -> None:
    body = {
        "contents": [{"parts": [{"text": "hi"}]}],
        "generationConfig": {"responseJsonSchema": OBJECT},
    }
    async with http.post(f"/v1beta/models/{GEMINI_MODEL}:generateContent", json=body) as resp:
        assert resp.status == 400
        assert "responseMimeType" in (await resp.json())["error"]["message"]


async def test_unresolvable_ref_is_400(http: aiohttp.ClientSession) -> None:
    schema = {"$ref": "#/$defs/Missing"}
    body = {
        "model": OPENAI_MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    async with http.post("/v1/chat/completions", json=body, headers=BEARER) as resp:
        assert resp.status == 400
        assert "#/$defs/Missing" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize(("directive", "turns", "is_json", "is_valid"), DIRECTIVE_CASES)
async def test_gemini_json_directives(
    emu: RunningEmulator, directive: str, turns: int, is_json: bool, is_valid: bool
) -> None:
    async with gemini_chat(emu) as llm:
        bound = llm.bind(response_mime_type="application/json", response_json_schema=PERSON)
        msg = await bound.ainvoke(conversation(f"Ada [[emulator:json={directive}]]", turns))

    assert follows(msg.text, PERSON) == (is_json, is_valid)


async def test_openai_with_structured_output_json_schema(emu: RunningEmulator) -> None:
    structured: Runnable[Any, Any] = openai_chat(emu).with_structured_output(
        Person, method="json_schema"
    )
    person = await structured.ainvoke("tell me about Ada")

    assert isinstance(person, Person)
    assert person.name == "tell me about Ada"
    assert person.inner == Inner(x=1)


class Answer(BaseModel):
    answer: str


async def test_openai_with_structured_output_json_mode(emu: RunningEmulator) -> None:
    # json_mode sends response_format json_object and no schema: the answer is wrapped.
    structured: Runnable[Any, Any] = openai_chat(emu).with_structured_output(
        Answer, method="json_mode"
    )
    parsed = await structured.ainvoke("hi there")

    assert isinstance(parsed, Answer)
    assert parsed.answer.startswith(f"[{OPENAI_MODEL}] hi there #")


async def test_openai_json_schema_stream(emu: RunningEmulator) -> None:
    schema = SCHEMAS["arrays"]
    response_format = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    llm = openai_chat(emu).bind(response_format=response_format)

    msg = await llm.ainvoke("some words here")
    chunks = [chunk.text async for chunk in llm.astream("some words here")]

    validate(json.loads(msg.text), schema)
    assert "".join(chunks) == msg.text


@pytest.mark.parametrize(("directive", "turns", "is_json", "is_valid"), DIRECTIVE_CASES)
async def test_openai_json_directives(
    emu: RunningEmulator, directive: str, turns: int, is_json: bool, is_valid: bool
) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "P", "schema": PERSON}}
    llm = openai_chat(emu).bind(response_format=response_format)

    msg = await llm.ainvoke(conversation(f"Ada [[emulator:json={directive}]]", turns))

    assert follows(msg.text, PERSON) == (is_json, is_valid)


async def test_json_directive_without_json_mode_still_answers_json(emu: RunningEmulator) -> None:
    msg = await openai_chat(emu).ainvoke("hi [[emulator:json=invalid]]")

    assert follows(msg.text, {"required": ["answer"]}) == (True, False)
