"""Structured output: schema checks, parsing, the repair conversation, and the whole step
against the real providers on the real emulator."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
import pytest

from handlers.structured import (
    MAX_SCHEMA_BYTES,
    InvalidAnswer,
    check_schema,
    parse_answer,
    repair_conversation,
    structured_answer,
)
from pipeline.errors import InvalidModelOutput, ValidationFailed
from pipeline.providers.langchain_base import LangChainProvider
from schemas import Message, Role
from schemas.stages import Generation
from tests.support.emulator import Emulator
from tests.support.providers import PARAMS, PERSON, ask, gemini_on, openai_on

# --- check_schema -------------------------------------------------------------------------


def nested(levels: int) -> dict[str, Any]:
    """A schema of `levels` objects, each the `items` of the one around it."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels - 1):
        schema = {"type": "array", "items": schema}
    return schema


def refusal(schema: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        check_schema(schema)
    assert caught.value.status == 422
    assert caught.value.field == "response_schema"
    return caught.value


@pytest.mark.parametrize(
    "schema",
    [
        PERSON,
        {},
        nested(32),
        {"$defs": {"p": PERSON}, "type": "array", "items": {"$ref": "#/$defs/p"}},
        {
            "type": "object",
            "properties": {"a~b/c": {"type": "string"}, "r": {"$ref": "#/properties/a~0b~1c"}},
        },
        {"enum": [{"$ref": "http://not.a.ref/it/is/data"}]},
    ],
)
def test_valid_schemas_pass(schema: dict[str, Any]):
    check_schema(schema)


def test_an_invalid_schema_says_what_is_wrong():
    error = refusal({"type": "object", "properties": {"age": {"type": "integr"}}})

    assert "not a valid JSON Schema" in error.message
    assert "properties.age.type" in error.message


def test_a_schema_over_64_kib_is_refused():
    big = {"type": "string", "description": "x" * MAX_SCHEMA_BYTES}

    assert "bytes serialized, over the limit of 65536" in refusal(big).message


def test_a_schema_nested_past_32_levels_is_refused():
    assert "nests 33 levels deep" in refusal(nested(33)).message


def test_a_schema_must_be_an_object():
    assert "must be a JSON object" in refusal(["type", "string"]).message


def test_remote_refs_are_refused():
    error = refusal({"$ref": "https://example.com/schema.json"})

    assert "points outside the schema" in error.message


def test_a_ref_that_does_not_resolve_is_refused():
    error = refusal({"type": "array", "items": {"$ref": "#/$defs/missing"}})

    assert "'#/$defs/missing' does not resolve" in error.message


# --- parse_answer -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "Ada", "age": 36}',
        '  {"name": "Ada", "age": 36}\n',
        '```json\n{"name": "Ada", "age": 36}\n```',
        '```\n{"name": "Ada", "age": 36}\n```\n',
        '```JSON\r\n{"name": "Ada",\n "age": 36}\r\n```',
        '```json {"name": "Ada", "age": 36}```',
        '```{"name": "Ada", "age": 36}```',
    ],
)
def test_a_valid_answer_parses(text: str):
    assert parse_answer(text, PERSON) == {"name": "Ada", "age": 36}


def test_a_fenced_scalar_keeps_its_value():
    assert parse_answer("```true```", {"type": "boolean"}) is True


def test_not_json_says_so():
    with pytest.raises(InvalidAnswer) as caught:
        parse_answer('{"name": "Ada", "age": ', PERSON)

    assert caught.value.reason.startswith("the answer is not valid JSON")


def test_a_missing_property_names_it():
    with pytest.raises(InvalidAnswer) as caught:
        parse_answer('{"name": "Ada"}', PERSON)

    assert caught.value.reason == "at $: 'age' is a required property"


def test_a_wrong_type_names_the_path():
    with pytest.raises(InvalidAnswer) as caught:
        parse_answer('```json\n{"name": "Ada", "age": "old"}\n```', PERSON)

    assert caught.value.reason == "at $.age: 'old' is not of type 'integer'"


def test_a_long_reason_is_clipped():
    schema = {"type": "array", "maxItems": 1}

    with pytest.raises(InvalidAnswer) as caught:
        parse_answer(orjson.dumps(list(range(1000))).decode(), schema)

    assert len(caught.value.reason) <= 300


# --- repair_conversation ------------------------------------------------------------------


def test_the_repair_conversation_shows_the_answer_and_the_problem():
    conversation = ask("who? [[emulator:json=invalid]]", system="be exact")

    repaired = repair_conversation(conversation, '{"name": "Ada"}', "at $: 'age' is missing")

    assert repaired[:2] == conversation
    assert repaired[2] == Message(role=Role.ASSISTANT, content='{"name": "Ada"}')
    assert repaired[3].role == Role.USER
    assert "at $: 'age' is missing" in repaired[3].content
    assert "only the corrected JSON" in repaired[3].content
    assert len(repaired) == 4


def test_an_empty_bad_answer_still_makes_a_valid_message():
    repaired = repair_conversation(ask("x"), "  ", "the answer is not valid JSON")

    assert repaired[1].content == "(an empty answer)"


# --- structured_answer against the real providers -----------------------------------------

ProviderOn = Callable[[str], AbstractAsyncContextManager[LangChainProvider]]
PROVIDERS: dict[str, tuple[str, ProviderOn]] = {
    "gemini": ("gemini-2.5-flash", lambda url: gemini_on(url)),
    "openai": ("gpt-4o-mini", lambda url: openai_on(f"{url}/v1")),
}


class Recorded:
    """The step's `call`: one provider call per conversation, each one kept."""

    def __init__(self, provider: LangChainProvider, model: str) -> None:
        self.provider, self.model = provider, model
        self.conversations: list[tuple[Message, ...]] = []
        self.answers: list[Generation] = []

    async def __call__(self, conversation: tuple[Message, ...]) -> Generation:
        self.conversations.append(conversation)
        answer = await self.provider.generate(
            self.model, conversation, PARAMS, response_schema=PERSON
        )
        self.answers.append(answer)
        return answer


@pytest.fixture(params=sorted(PROVIDERS))
async def call(request: pytest.FixtureRequest, emulator: Emulator) -> AsyncIterator[Recorded]:
    model, provider_on = PROVIDERS[request.param]
    async with provider_on(emulator.base_url) as provider:
        yield Recorded(provider, model)


async def test_a_valid_first_answer_needs_one_call(call: Recorded):
    generation = await structured_answer(call, ask("describe someone"), PERSON)

    assert len(call.answers) == 1
    assert generation.json_ == orjson.loads(generation.text)
    assert set(generation.json_) >= {"name", "age"}
    assert generation.usage == call.answers[0].usage


@pytest.mark.parametrize("fault", ["invalid_then_valid", "malformed_then_valid"])
async def test_an_invalid_answer_is_repaired_once(call: Recorded, fault: str):
    # Given a model whose first answer is bad, and good once it is told what was wrong
    conversation = ask(f"describe someone [[emulator:json={fault}]]")

    # When the step runs
    generation = await structured_answer(call, conversation, PERSON)

    # Then a second call carried the bad answer and the problem, and its JSON is returned
    first, second = call.answers
    assert call.conversations[1][:1] == conversation
    assert call.conversations[1][1] == Message(role=Role.ASSISTANT, content=first.text)
    assert generation.json_ == orjson.loads(second.text)
    assert generation.text == second.text
    # And the usage counts both calls
    assert generation.usage.input_tokens == first.usage.input_tokens + second.usage.input_tokens
    assert generation.usage.output_tokens == first.usage.output_tokens + second.usage.output_tokens
    assert generation.usage.total_tokens == first.usage.total_tokens + second.usage.total_tokens


async def test_still_invalid_after_the_repair_is_invalid_model_output(call: Recorded):
    with pytest.raises(InvalidModelOutput) as caught:
        await structured_answer(call, ask("describe someone [[emulator:json=invalid]]"), PERSON)

    assert len(call.answers) == 2
    assert caught.value.status == 502
    assert not caught.value.retryable
    assert "does not match the response schema" in caught.value.message
    assert "at $" in caught.value.message
