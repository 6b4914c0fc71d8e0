"""Gemini's REST API: `POST /v1beta/models/{model}:generateContent` and friends."""

import math
from typing import Any, Final

import orjson
from aiohttp import web

from pipeline.emulator.answers import JsonMode, Prompt, compose, split_text
from pipeline.emulator.calls import count_call, faulted
from pipeline.emulator.directives import Directives, parse_directives
from pipeline.emulator.state import BadRequest, Json

ACTIONS: Final = ("generateContent", "streamGenerateContent")
MODEL_NAMES: Final = (
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
)
MODELS: Final = [
    {"name": f"models/{name}", "supportedGenerationMethods": [*ACTIONS, "countTokens"]}
    for name in MODEL_NAMES
]
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
_FINISH: Final = {"stop": "STOP", "length": "MAX_TOKENS"}
_OPENAPI_INTS: Final = ("minItems", "maxItems", "minLength", "maxLength", "minProperties")


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


def from_openapi(schema: Any) -> Any:
    """Translate Gemini's OpenAPI subset (`"type": "OBJECT"`, `nullable`) to JSON Schema."""
    if isinstance(schema, list):
        return [from_openapi(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: Json = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: from_openapi(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = from_openapi(value)
        elif key in _OPENAPI_INTS and isinstance(value, str) and value.isdigit():
            out[key] = int(value)  # int64 fields travel as JSON strings
        elif key not in ("nullable", "propertyOrdering", "property_ordering"):
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _texts(content: Json) -> list[str]:
    """Return the text parts of one content."""
    return [p["text"] for p in content.get("parts", []) if isinstance(p.get("text"), str)]


def _content(text: str) -> Json:
    """Build a model content holding one text part."""
    return {"role": "model", "parts": [{"text": text}]}


async def _read_body(request: web.Request) -> Json:
    """Parse and minimally validate a GenerateContentRequest."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Invalid JSON payload received. {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("Invalid JSON payload received. Expected an object.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest("* GenerateContentRequest.contents: contents is not specified")
    if not all(isinstance(c, dict) and isinstance(c.get("parts"), list) for c in contents):
        raise BadRequest("* GenerateContentRequest.contents: every content needs parts")
    return body


def _json_mode(config: Json) -> JsonMode | None:
    """Read JSON mode from a generationConfig: responseMimeType and an optional schema."""
    json_schema, openapi_schema = config.get("responseJsonSchema"), config.get("responseSchema")
    if config.get("responseMimeType") != "application/json":
        if json_schema is not None or openapi_schema is not None:
            raise BadRequest(
                "* GenerateContentRequest.generation_config.response_mime_type: "
                "a response schema needs responseMimeType application/json"
            )
        return None
    for schema in (json_schema, openapi_schema):
        if schema is not None and not isinstance(schema, dict):
            raise BadRequest("* GenerateContentRequest.generation_config: a schema is an object")
    if isinstance(json_schema, dict):
        return JsonMode(json_schema)
    return JsonMode(from_openapi(openapi_schema) if isinstance(openapi_schema, dict) else None)


def _prompt(model: str, body: Json) -> Prompt:
    """Reduce a GenerateContentRequest to what the answer depends on."""
    system = body.get("systemInstruction") or {}
    config = body.get("generationConfig") or {}
    contents: list[Json] = body["contents"]
    # The API treats a content without a role as a user turn.
    users = [" ".join(_texts(c)) for c in contents if c.get("role", "user") == "user"]
    limit = config.get("maxOutputTokens")
    stops = config.get("stopSequences") or []
    return Prompt(
        model=model,
        user_turns=tuple(users),
        texts=tuple(t for c in [*contents, system] for t in _texts(c)),
        canonical={"model": model, "contents": contents, "system": system, "config": config},
        max_tokens=limit if isinstance(limit, int) else None,
        stop=tuple(s for s in stops if isinstance(s, str)),
        json_mode=_json_mode(config),
    )


def _reply(prompt: Prompt, directives: Directives) -> Json:
    """Build the complete GenerateContentResponse."""
    reply: Json = {"modelVersion": prompt.model, "responseId": prompt.digest[8:30]}
    answer_tokens = 0
    if directives.block == "prompt":
        reply["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": [_HARM]}
    elif directives.block == "safety":
        ratings = [{**_HARM, "blocked": True}]
        reply["candidates"] = [{"finishReason": "SAFETY", "index": 0, "safetyRatings": ratings}]
    else:
        answer = compose(prompt, directives)
        answer_tokens = answer.tokens
        candidate = {"content": _content(answer.text), "finishReason": _FINISH[answer.finish]}
        reply["candidates"] = [{**candidate, "index": 0, "safetyRatings": []}]
    reply["usageMetadata"] = {
        "promptTokenCount": prompt.prompt_tokens,
        "candidatesTokenCount": answer_tokens,
        "totalTokenCount": prompt.prompt_tokens + answer_tokens,
    }
    return reply


def _stream_chunks(reply: Json) -> list[Json]:
    """Split a reply into text chunks; only the last carries finishReason and usage."""
    try:
        candidate: Json = reply["candidates"][0]
        text: str = candidate["content"]["parts"][0]["text"]
    except (KeyError, IndexError):
        return [reply]
    texts = split_text(text)
    head = {"modelVersion": reply["modelVersion"], "responseId": reply["responseId"]}
    chunks = [{**head, "candidates": [{"content": _content(t), "index": 0}]} for t in texts[:-1]]
    last = {**reply, "candidates": [{**candidate, "content": _content(texts[-1])}]}
    return [*chunks, last]


async def generate(request: web.Request) -> web.StreamResponse:
    """Serve generateContent and streamGenerateContent."""
    # The model id and the action share one path segment: "gemini-2.5-flash:generateContent".
    model, _, action = request.match_info["model_action"].rpartition(":")
    if not model or action not in ACTIONS:
        return google_error(404, f"Unknown method: {request.match_info['model_action']}")
    stream = action == "streamGenerateContent"
    stats = count_call(request, "gemini", model, stream)
    try:
        prompt = _prompt(model, await _read_body(request))
        parsed = parse_directives(prompt.user_turns)
    except BadRequest as exc:
        stats.errors += 1
        return google_error(400, str(exc))
    directives = await faulted(request, "gemini", model, parsed, google_error)
    if isinstance(directives, web.StreamResponse):
        return directives
    try:
        reply = _reply(prompt, directives)
    except BadRequest as exc:
        stats.errors += 1
        return google_error(400, str(exc))
    if not stream:
        return json_response(reply)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for chunk in _stream_chunks(reply):
        await response.write(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
    await response.write_eof()
    return response


async def list_models(request: web.Request) -> web.Response:
    """List the emulated Gemini models."""
    return json_response({"models": MODELS})
