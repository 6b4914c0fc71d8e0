"""Gemini's REST API: `POST /{version}/models/{model}:generateContent` and friends."""

import math
from typing import Final

import orjson
from aiohttp import web

from pipeline.emulator.answers import Answer, Prompt, compose, read_directives, split_text
from pipeline.emulator.calls import count_call, faulted
from pipeline.emulator.directives import Directives
from pipeline.emulator.gemini_requests import check_contents, read_body, read_prompt, texts
from pipeline.emulator.state import BadRequest, Json
from pipeline.emulator.streaming import StreamPlan, plan_stream, send_stream

_STATUS_NAMES: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_RETRY_INFO: Final = "type.googleapis.com/google.rpc.RetryInfo"
_HARM: Final = {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
# Gemini has no finish reason of its own for tool calls.
_FINISH: Final = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


def json_response(data: object, status: int = 200) -> web.Response:
    """Serialize data as a JSON response."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def google_error(code: int, message: str, retry_after_s: float | None = None) -> web.Response:
    """Build an error response in Google's format, with RetryInfo when a delay is given."""
    error: Json = {"code": code, "message": message, "status": _STATUS_NAMES.get(code, "UNKNOWN")}
    if retry_after_s is None:
        return json_response({"error": error}, code)
    error["details"] = [{"@type": _RETRY_INFO, "retryDelay": duration(retry_after_s)}]
    response = json_response({"error": error}, code)
    response.headers["Retry-After"] = str(math.ceil(retry_after_s))
    return response


def duration(seconds: float) -> str:
    """Format seconds as a protobuf Duration in JSON ("3s", "1.500s")."""
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis / 1000:.3f}s"


def _content(parts: list[Json]) -> Json:
    """Build a model content holding parts."""
    return {"role": "model", "parts": parts}


def _parts(answer: Answer) -> list[Json]:
    """Return the parts of an answer: its function calls, or its text."""
    if answer.tool_calls:
        return [{"functionCall": {"name": c.name, "args": c.args}} for c in answer.tool_calls]
    return [{"text": answer.text}]


def _usage(prompt: Prompt, answer_tokens: int) -> Json:
    """Return usageMetadata for an answer of that many tokens (so far)."""
    return {
        "promptTokenCount": prompt.prompt_tokens,
        "candidatesTokenCount": answer_tokens,
        "totalTokenCount": prompt.prompt_tokens + answer_tokens,
    }


def _reply(prompt: Prompt, directives: Directives, answer: Answer | None) -> Json:
    """Build the complete GenerateContentResponse (answer None: blocked)."""
    reply: Json = {"modelVersion": prompt.model, "responseId": prompt.digest[8:30]}
    if directives.block == "prompt":
        reply["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": [_HARM]}
    elif answer is None:
        ratings = [{**_HARM, "blocked": True}]
        reply["candidates"] = [{"finishReason": "SAFETY", "index": 0, "safetyRatings": ratings}]
    else:
        candidate = {"content": _content(_parts(answer)), "finishReason": _FINISH[answer.finish]}
        reply["candidates"] = [{**candidate, "index": 0, "safetyRatings": []}]
    reply["usageMetadata"] = _usage(prompt, answer.tokens if answer else 0)
    return reply


def answer_call(prompt: Prompt, directives: Directives) -> tuple[Json, Answer | None]:
    """The GenerateContentResponse a call gets, and its answer (None: blocked).

    Raises BadRequest for directives the request cannot satisfy (tool calls without tools).
    """
    answer = None if directives.block else compose(prompt, directives)
    return _reply(prompt, directives, answer), answer


def _stream_plan(
    prompt: Prompt, directives: Directives, answer: Answer | None, reply: Json
) -> StreamPlan:
    """Lay out the stream: text chunks with cumulative usage, the last with finishReason;
    function calls all in one chunk; a blocked answer as its one reply."""
    # Each chunk's parts and the answer tokens sent by its end.
    pieces: list[tuple[list[Json], int]] = []
    if answer is not None and answer.tool_calls:
        pieces = [(_parts(answer), answer.tokens)]
    elif answer is not None:
        split = split_text(answer.text, directives.chunks)
        pieces = [
            ([{"text": text}], len("".join(split[: i + 1]).split())) for i, text in enumerate(split)
        ]
    head = {"modelVersion": reply["modelVersion"], "responseId": reply["responseId"]}
    chunks = [
        {
            **head,
            "candidates": [{"content": _content(parts), "index": 0}],
            "usageMetadata": _usage(prompt, tokens),
        }
        for parts, tokens in pieces
    ]
    if directives.stops_after is None:
        chunks[-1:] = [_finished(chunk, reply) for chunk in chunks[-1:]] or [reply]
    error = {"code": 500, "message": "Emulated stream error.", "status": "INTERNAL"}
    events = [_event(chunk) for chunk in chunks]
    return plan_stream([], events, [], directives, _event({"error": error}))


def _finished(chunk: Json, reply: Json) -> Json:
    """Return a stream's last chunk: its own content, the reply's finish and usage."""
    candidate = {**reply["candidates"][0], "content": chunk["candidates"][0]["content"]}
    return {**reply, "candidates": [candidate]}


def _event(data: Json) -> bytes:
    """Frame one server-sent event as Google does."""
    return b"data: " + orjson.dumps(data) + b"\r\n\r\n"


async def _count_tokens(request: web.Request) -> web.Response:
    """Serve countTokens: the words of `contents` (or of `generateContentRequest`)."""
    try:
        body = await read_body(request)
        inner = body.get("generateContentRequest")
        source = inner if isinstance(inner, dict) else body
        contents = check_contents(source, "CountTokensRequest")
    except BadRequest as exc:
        return google_error(400, str(exc))
    system = source.get("systemInstruction") or {}
    total = sum(len(text.split()) for content in [*contents, system] for text in texts(content))
    return json_response({"totalTokens": total})


async def model_action(request: web.Request) -> web.StreamResponse:
    """Serve generateContent, streamGenerateContent and countTokens."""
    # The model id and the action share one path segment: "gemini-2.5-flash:generateContent".
    model, _, action = request.match_info["model_action"].rpartition(":")
    if model and action == "countTokens":
        return await _count_tokens(request)
    if not model or action not in ("generateContent", "streamGenerateContent"):
        return google_error(404, f"Unknown method: {request.match_info['model_action']}")
    stream = action == "streamGenerateContent"
    stats = count_call(request, "gemini", model, stream)
    try:
        prompt = read_prompt(model, await read_body(request))
        parsed = read_directives(prompt)
    except BadRequest as exc:
        stats.errors += 1
        return google_error(400, str(exc))
    directives = await faulted(request, "gemini", model, parsed, google_error)
    if isinstance(directives, web.StreamResponse):
        return directives
    try:
        reply, answer = answer_call(prompt, directives)
    except BadRequest as exc:
        stats.errors += 1
        return google_error(400, str(exc))
    if not stream:
        return json_response(reply)
    plan = _stream_plan(prompt, directives, answer, reply)
    return await send_stream(request, plan, directives.chunk_delay_ms)
