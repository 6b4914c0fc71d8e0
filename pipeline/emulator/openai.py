"""OpenAI's Chat Completions API: `POST /v1/chat/completions` and `GET /v1/models`."""

import math
import time
from typing import Any, Final

import orjson
from aiohttp import web

from pipeline.emulator.answers import JsonMode, Prompt, compose, split_text
from pipeline.emulator.calls import count_call, faulted
from pipeline.emulator.directives import parse_directives
from pipeline.emulator.gemini import MODEL_NAMES as GEMINI_MODEL_NAMES
from pipeline.emulator.gemini import MODELS as GEMINI_MODELS
from pipeline.emulator.gemini import json_response
from pipeline.emulator.state import BadRequest, Json

MODELS: Final = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o", "gpt-4.1")
_CREATED: Final = 1_700_000_000
_ERRORS: Final = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "timeout"),
}
_ROLES: Final = ("system", "developer", "user", "assistant", "tool")
_FORMATS: Final = ("text", "json_object", "json_schema")
# What a safety block answers: no content, no tokens.
_FILTERED: Final = (None, 0, "content_filter")


def openai_error(
    status: int, message: str, code: str | None = None, retry_after_s: float | None = None
) -> web.Response:
    """Build an error response in OpenAI's format, with retry headers when a delay is given."""
    kind, default_code = _ERRORS.get(
        status, ("invalid_request_error" if status < 500 else "server_error", None)
    )
    error = {"message": message, "type": kind, "param": None, "code": code or default_code}
    response = json_response({"error": error}, status)
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(math.ceil(retry_after_s))
        response.headers["retry-after-ms"] = str(round(retry_after_s * 1000))
    return response


def _authorized(request: web.Request) -> bool:
    """Whether the request carries a bearer key (any non-empty key is accepted)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(key.strip())


def _unauthorized() -> web.Response:
    return openai_error(401, "You didn't provide an API key (Authorization: Bearer <key>).", None)


def _text(content: Any, index: int) -> str:
    """Return the text of a message's content: a string or a list of parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise BadRequest(f"messages[{index}].content must be a string or an array of parts")
    texts = []
    for part in content:
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise BadRequest(f"messages[{index}].content: every part needs a type")
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise BadRequest(f"messages[{index}].content: a text part needs a text")
            texts.append(part["text"])
    return " ".join(texts)


def _number(body: Json, name: str, low: float, high: float, integer: bool = False) -> Any:
    """Return an optional numeric parameter, checked against its bounds."""
    value = body.get(name)
    kinds = (int,) if integer else (int, float)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high
    ):
        raise BadRequest(f"Invalid value for '{name}': expected a number in [{low}, {high}]")
    return value


def _json_mode(body: Json) -> JsonMode | None:
    """Read `response_format`: text, json_object, or json_schema with a schema."""
    spec = body.get("response_format")
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("type") not in _FORMATS:
        raise BadRequest(f"Invalid 'response_format': type must be one of {', '.join(_FORMATS)}")
    if spec["type"] == "text":
        return None
    if spec["type"] == "json_object":
        return JsonMode()
    wrapper = spec.get("json_schema")
    if not isinstance(wrapper, dict) or not isinstance(wrapper.get("name"), str):
        raise BadRequest("Missing required parameter: 'response_format.json_schema.name'")
    schema = wrapper.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise BadRequest("Invalid 'response_format.json_schema.schema': expected an object")
    return JsonMode(schema)


def _prompt(model: str, body: Json) -> Prompt:
    """Reduce a chat completion request to what the answer depends on."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("Missing required parameter: 'messages'")
    turns = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise BadRequest(f"Invalid 'messages[{index}]': a role among {', '.join(_ROLES)}")
        turns.append({"role": message["role"], "content": _text(message.get("content"), index)})
    if body.get("n") not in (None, 1):
        raise BadRequest("Invalid value for 'n': the emulator answers with one choice")
    limit = _number(body, "max_completion_tokens", 1, math.inf, True)
    limit = _number(body, "max_tokens", 1, math.inf, True) if limit is None else limit
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise BadRequest("Invalid 'stop': expected a string or an array of strings")
    params = {
        "temperature": _number(body, "temperature", 0, 2),
        "top_p": _number(body, "top_p", 0, 1),
        "max_tokens": limit,
        "stop": stops,
        "response_format": body.get("response_format"),
    }
    return Prompt(
        model=model,
        user_turns=tuple(t["content"] for t in turns if t["role"] == "user"),
        texts=tuple(t["content"] for t in turns),
        canonical={"model": model, "messages": turns, "params": params},
        max_tokens=limit,
        stop=tuple(stops),
        json_mode=_json_mode(body),
    )


def _status_error(status: int, message: str, retry_after_s: float | None) -> web.Response:
    return openai_error(status, message, None, retry_after_s)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Serve `POST /v1/chat/completions`, plain or streamed."""
    if not _authorized(request):
        return _unauthorized()
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    model = body.get("model") if isinstance(body, dict) else None
    stream = isinstance(body, dict) and body.get("stream") is True
    stats = count_call(request, "openai", model if isinstance(model, str) else None, stream)
    try:
        if not isinstance(body, dict):
            raise BadRequest("We could not parse the JSON body of your request.")
        if not isinstance(model, str) or not model:
            raise BadRequest("Missing required parameter: 'model'")
        prompt = _prompt(model, body)
        parsed = parse_directives(prompt.user_turns)
    except BadRequest as exc:
        stats.errors += 1
        return openai_error(400, str(exc))
    directives = await faulted(request, "openai", model, parsed, _status_error)
    if isinstance(directives, web.StreamResponse):
        return directives
    if directives.block == "prompt":
        stats.errors += 1
        message = "The prompt was filtered by the content management policy."
        return openai_error(400, message, "content_filter")
    try:
        answer = None if directives.block == "safety" else compose(prompt, directives)
    except BadRequest as exc:
        stats.errors += 1
        return openai_error(400, str(exc))
    content, tokens, finish = (answer.text, answer.tokens, answer.finish) if answer else _FILTERED
    usage = {
        "prompt_tokens": prompt.prompt_tokens,
        "completion_tokens": tokens,
        "total_tokens": prompt.prompt_tokens + tokens,
    }
    head = {
        "id": f"chatcmpl-{prompt.digest[:24]}",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_emulator",
    }
    if not stream:
        reply = {"role": "assistant", "content": content, "refusal": None}
        choice = {"index": 0, "message": reply, "logprobs": None, "finish_reason": finish}
        return json_response(
            {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        )
    options = body.get("stream_options")
    with_usage = isinstance(options, dict) and options.get("include_usage") is True
    return await _stream(request, head, content, finish, usage if with_usage else None)


async def _stream(
    request: web.Request, head: Json, content: str | None, finish: str, usage: Json | None
) -> web.StreamResponse:
    """Send the answer as `chat.completion.chunk` events, then usage if asked, then [DONE]."""
    chunk_head = {**head, "object": "chat.completion.chunk"}
    if usage is not None:
        chunk_head["usage"] = None
    deltas: list[Json] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": piece} for piece in split_text(content) if piece] if content else []
    chunks: list[tuple[Json, str | None]] = [(delta, None) for delta in deltas]
    chunks.append(({}, finish))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for delta, reason in chunks:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        await response.write(
            b"data: " + orjson.dumps({**chunk_head, "choices": [choice]}) + b"\n\n"
        )
    if usage is not None:
        last = {**chunk_head, "choices": [], "usage": usage}
        await response.write(b"data: " + orjson.dumps(last) + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def _model(name: str) -> Json:
    return {"id": name, "object": "model", "created": _CREATED, "owned_by": "emulator"}


async def list_models(request: web.Request) -> web.Response:
    """List the models in OpenAI's format (Gemini's format for a Gemini client's key)."""
    if "x-goog-api-key" in request.headers and "Authorization" not in request.headers:
        return json_response({"models": GEMINI_MODELS})
    if not _authorized(request):
        return _unauthorized()
    names = [*MODELS, *GEMINI_MODEL_NAMES]
    return json_response({"object": "list", "data": [_model(name) for name in names]})


async def get_model(request: web.Request) -> web.Response:
    """Describe one model: any name is answered."""
    if not _authorized(request):
        return _unauthorized()
    return json_response(_model(request.match_info["model"]))
