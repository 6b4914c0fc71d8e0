"""The compatible APIs: an OpenAI chat request and its Gemini equivalent mean one request."""

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cache.keys import cache_key
from pipeline.errors import PromptbusError
from pipeline.ingress.compat.gemini import requests as gemini
from pipeline.ingress.compat.gemini.wire import GenerateContentRequest, read
from pipeline.ingress.compat.openai import requests as openai
from schemas import GenerateRequest

text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=10)
names = st.from_regex(r"\A[a-z][a-z0-9_]{0,7}\Z")
json_objects = st.dictionaries(
    st.text(max_size=4), st.none() | st.booleans() | st.integers(-100, 100) | text, max_size=3
)


class Pair:
    """The same conversation built up in both shapes."""

    def __init__(self) -> None:
        self.chat: list[dict[str, Any]] = []
        self.contents: list[dict[str, Any]] = []


def _pieces(draw: st.DrawFn) -> tuple[Any, list[dict[str, Any]]]:
    """One text as OpenAI's content (a string or parts) and as Gemini's text parts."""
    pieces = draw(st.lists(text, min_size=1, max_size=3))
    joined = "\n".join(pieces)
    openai_content: Any = joined
    if draw(st.booleans()):
        openai_content = [
            {"type": "text", "text": ("\n" if i else "") + p} for i, p in enumerate(pieces)
        ]
    parts: list[dict[str, Any]] = [{"text": p} for p in pieces]
    if draw(st.booleans()):  # a thought is skipped
        parts.insert(draw(st.integers(0, len(parts))), {"text": draw(text), "thought": True})
    return openai_content, parts


@st.composite
def conversations(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    pair, system = Pair(), None
    if draw(st.booleans()):
        content, parts = _pieces(draw)
        pair.chat.append(
            {"role": draw(st.sampled_from(["system", "developer"])), "content": content}
        )
        system = {"parts": parts}
    call_number = 0
    for _ in range(draw(st.integers(0, 2))):
        content, parts = _pieces(draw)
        pair.chat.append({"role": "user", "content": content})
        pair.contents.append({"role": draw(st.sampled_from(["user", None])), "parts": parts})
        calls = []
        for name in draw(st.lists(names, max_size=2)):
            call_number += 1
            calls.append((f"call-{call_number}", name, draw(json_objects)))
        answer: dict[str, Any] = {"role": "assistant"}
        model_parts: list[dict[str, Any]] = []
        if not calls or draw(st.booleans()):
            answer["content"], model_parts = _pieces(draw)
        if calls:
            answer["tool_calls"] = [
                {
                    "id": i,
                    "type": "function",
                    "function": {"name": n, "arguments": orjson.dumps(a).decode()},
                }
                for i, n, a in calls
            ]
            model_parts += [{"functionCall": {"id": i, "name": n, "args": a}} for i, n, a in calls]
        pair.chat.append(answer)
        pair.contents.append({"role": "model", "parts": model_parts})
        if calls:
            results = [(i, n, draw(json_objects)) for i, n, _ in calls]
            pair.chat += [
                {"role": "tool", "tool_call_id": i, "content": orjson.dumps(r).decode()}
                for i, _, r in results
            ]
            pair.contents.append(
                {
                    "role": "user",
                    "parts": [
                        {"functionResponse": {"id": i, "name": n, "response": r}}
                        for i, n, r in results
                    ],
                }
            )
    content, parts = _pieces(draw)
    pair.chat.append({"role": "user", "content": content})
    pair.contents.append({"role": "user", "parts": parts})
    body: dict[str, Any] = {"contents": pair.contents}
    if system is not None:
        body[draw(st.sampled_from(["systemInstruction", "system_instruction"]))] = system
    return pair.chat, body


@st.composite
def options(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """Generation params, an answer format or tools: (OpenAI fields, Gemini fields)."""
    chat: dict[str, Any] = {}
    config: dict[str, Any] = {}
    camel = draw(st.booleans())

    def put(openai_name: str, gemini_camel: str, gemini_snake: str, value: Any) -> None:
        chat[openai_name] = value
        config[gemini_camel if camel else gemini_snake] = value

    if draw(st.booleans()):
        put("temperature", "temperature", "temperature", draw(st.floats(0, 2)))
    if draw(st.booleans()):
        put("top_p", "topP", "top_p", draw(st.floats(0, 1)))
    if draw(st.booleans()):
        tokens = draw(st.integers(1, 10_000))
        put(
            draw(st.sampled_from(["max_tokens", "max_completion_tokens"])),
            "maxOutputTokens",
            "max_output_tokens",
            tokens,
        )
    if draw(st.booleans()):
        put("seed", "seed", "seed", draw(st.integers(-(2**31), 2**31)))
    if draw(st.booleans()):
        stops = draw(st.lists(text, min_size=1, max_size=3))
        put("stop", "stopSequences", "stop_sequences", stops)
        if len(stops) == 1 and draw(st.booleans()):
            chat["stop"] = stops[0]
    extra: dict[str, Any] = {}
    kind = draw(st.sampled_from(["none", "json_object", "json_schema", "tools"]))
    mime_key = "responseMimeType" if camel else "response_mime_type"
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
        config[mime_key] = "application/json"
    elif kind == "json_schema":
        schema = {
            "type": "object",
            "properties": {n: {"type": "string"} for n in draw(st.lists(names, max_size=3))},
        }
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema},
        }
        config[mime_key] = "application/json"
        config["responseJsonSchema" if camel else "response_json_schema"] = schema
    elif kind == "tools":
        declared = draw(st.lists(names, min_size=1, max_size=3, unique=True))
        described = {n: draw(st.none() | text) for n in declared}
        params = {n: {"type": "object", "properties": {"q": {"type": "string"}}} for n in declared}
        chat["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": n,
                    **({"description": described[n]} if described[n] else {}),
                    "parameters": params[n],
                },
            }
            for n in declared
        ]
        extra["tools"] = [
            {
                "functionDeclarations": [
                    {
                        "name": n,
                        **({"description": described[n]} if described[n] else {}),
                        "parametersJsonSchema": params[n],
                    }
                    for n in declared
                ]
            }
        ]
        mode = draw(st.sampled_from(["auto", "none", "required", "named", None]))
        modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
        if mode == "named":
            chosen = draw(st.sampled_from(declared))
            chat["tool_choice"] = {"type": "function", "function": {"name": chosen}}
            extra["toolConfig"] = {
                "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [chosen]}
            }
        elif mode is not None:
            chat["tool_choice"] = mode
            extra["toolConfig"] = {"functionCallingConfig": {"mode": modes[mode]}}
    gemini_fields = {**extra, **({"generationConfig": config} if config else {})}
    return chat, gemini_fields


def _keyed(request: GenerateRequest) -> str:
    return cache_key(request, tenant="t", provider="gemini", provider_model="gemini-2.5-flash")


@settings(max_examples=120)
@given(conversation=conversations(), extra=options())
def test_an_openai_request_and_its_gemini_twin_mean_the_same(
    conversation: tuple[list[dict[str, Any]], dict[str, Any]],
    extra: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    messages, contents = conversation
    chat_fields, gemini_fields = extra
    chat = {"model": "flash", "messages": messages, **chat_fields}
    body = {**contents, **gemini_fields}

    from_openai = openai.to_generate_request(openai.read_request(orjson.loads(orjson.dumps(chat))))
    wire = read(GenerateContentRequest, orjson.loads(orjson.dumps(body)))
    from_gemini = gemini.to_generate_request(wire, model="flash", stream=False)

    assert from_openai == from_gemini
    assert _keyed(from_openai) == _keyed(from_gemini)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "model",
                    "messages",
                    "role",
                    "content",
                    "contents",
                    "parts",
                    "text",
                    "tools",
                    "generationConfig",
                    "x",
                ]
            )
            | text,
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150)
@given(raw=json_values)
def test_any_body_is_a_request_or_a_4xx(raw: Any) -> None:
    for translate in (
        lambda: openai.to_generate_request(openai.read_request(raw)),
        lambda: gemini.to_generate_request(
            read(GenerateContentRequest, raw), model="flash", stream=False
        ),
    ):
        status = 200
        try:
            translate()
        except PromptbusError as exc:
            status = exc.status
        assert status < 500
