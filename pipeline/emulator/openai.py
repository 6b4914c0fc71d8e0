"""OpenAI's Chat Completions API: `POST /v1/chat/completions`, plain or streamed."""

import math
import time
from typing import Final

import orjson
from aiohttp import web

from pipeline.emulator.answers import Answer, compose, read_directives, split_text
from pipeline.emulator.calls import count_call, faulted
from pipeline.emulator.directives import Directives
from pipeline.emulator.gemini import json_response
from pipeline.emulator.openai_requests import read_prompt
from pipeline.emulator.state import BadRequest, Json
from pipeline.emulator.streaming import StreamPlan, plan_stream, send_stream
from pipeline.emulator.tools import split_arguments

_ERRORS: Final = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "timeout"),
}
_DONE: Final = b"data: [DONE]\n\n"


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


def authorized(request: web.Request) -> bool:
    """Whether the request carries a bearer key (any non-empty key is accepted)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(key.strip())


def unauthorized() -> web.Response:
    """Answer a request without a bearer key."""
    return openai_error(401, "You didn't provide an API key (Authorization: Bearer <key>).", None)


def _status_error(status: int, message: str, retry_after_s: float | None) -> web.Response:
    return openai_error(status, message, None, retry_after_s)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Serve `POST /v1/chat/completions`, plain or streamed."""
    if not authorized(request):
        return unauthorized()
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
        prompt = read_prompt(model, body)
        parsed = read_directives(prompt)
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
        # A safety block answers no content, no tokens.
        answer = None if directives.block == "safety" else compose(prompt, directives)
    except BadRequest as exc:
        stats.errors += 1
        return openai_error(400, str(exc))
    tokens = answer.tokens if answer else 0
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
        choice = {"index": 0, "logprobs": None, **_message(answer)}
        return json_response(
            {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        )
    options = body.get("stream_options")
    with_usage = isinstance(options, dict) and options.get("include_usage") is True
    plan = _stream_plan(head, answer, usage if with_usage else None, directives)
    return await send_stream(request, plan, directives.chunk_delay_ms)


def _message(answer: Answer | None) -> Json:
    """Return a choice's message and finish_reason (None: filtered for safety)."""
    reply: Json = {"role": "assistant", "content": None, "refusal": None}
    if answer is None:
        return {"message": reply, "finish_reason": "content_filter"}
    if answer.tool_calls:
        reply["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in answer.tool_calls
        ]
    else:
        reply["content"] = answer.text
    return {"message": reply, "finish_reason": answer.finish}


def _content_deltas(answer: Answer | None, pieces: int | None) -> list[Json]:
    """Return the deltas carrying the answer: text pieces, or each tool call and its
    argument fragments."""
    if answer is None:
        return []
    if not answer.tool_calls:
        texts = split_text(answer.text, pieces) if answer.text else []
        return [{"content": text} for text in texts if text]
    deltas: list[Json] = []
    for index, call in enumerate(answer.tool_calls):
        function = {"name": call.name, "arguments": ""}
        deltas.append({"index": index, "id": call.id, "type": "function", "function": function})
        deltas += [
            {"index": index, "function": {"arguments": fragment}}
            for fragment in split_arguments(call.arguments, pieces)
        ]
    return [{"tool_calls": [delta]} for delta in deltas]


def _stream_plan(
    head: Json, answer: Answer | None, usage: Json | None, directives: Directives
) -> StreamPlan:
    """Lay out the `chat.completion.chunk` events: role, content, finish, usage, [DONE]."""
    chunk_head = {**head, "object": "chat.completion.chunk"}
    if usage is not None:
        chunk_head["usage"] = None

    def event(delta: Json, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**chunk_head, "choices": [choice]}) + b"\n\n"

    calls = answer is not None and bool(answer.tool_calls)
    opening = [event({"role": "assistant", "content": None if calls else ""})]
    content = [event(delta) for delta in _content_deltas(answer, directives.chunks)]
    closing = [event({}, answer.finish if answer else "content_filter")]
    if usage is not None:
        last = {**chunk_head, "choices": [], "usage": usage}
        closing.append(b"data: " + orjson.dumps(last) + b"\n\n")
    error = {
        "message": f"Emulated stream error after {directives.stream_error} chunks.",
        "type": "server_error",
        "param": None,
        "code": "stream_error",
    }
    error_event = b"data: " + orjson.dumps({"error": error}) + b"\n\n"
    return plan_stream(opening, content, [*closing, _DONE], directives, error_event)
