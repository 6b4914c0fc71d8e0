"""Gemini REST emulator: an aiohttp server the real google-genai client can talk to.

Answers are deterministic, derived only from the request. Fault directives in the last
user text are obeyed (the call is still counted in /stats):

    [[emulator:status=503]]    answer with that 4xx/5xx status and Google's error body
    [[emulator:block=safety]]  one candidate, finishReason SAFETY, no content parts
    [[emulator:block=prompt]]  no candidates, promptFeedback.blockReason SAFETY
    [[emulator:empty]]         one candidate, finishReason STOP, empty text
    [[emulator:delay=250]]     wait that many extra milliseconds before answering

Directives combine, as separate brackets or comma-separated in one bracket,
e.g. ``[[emulator:delay=100,status=429]]``. An unknown directive is a 400.
"""

import asyncio
import hashlib
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

EMULATOR_API_KEY: Final = "emulator"

Json = dict[str, Any]

_ACTIONS: Final = ("generateContent", "streamGenerateContent")
_MODELS: Final = [
    {"name": f"models/{name}", "supportedGenerationMethods": [*_ACTIONS, "countTokens"]}
    for name in ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-2.0-flash")
]
_STATUS_NAMES: Final = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_HARM: Final = {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
_DIRECTIVE: Final = re.compile(r"\[\[emulator:([^\]]*)\]\]")
_ECHO_CHARS: Final = 200
_STREAM_CHUNKS: Final = 3
_MAX_BODY: Final = 20 * 1024 * 1024


@dataclass(frozen=True)
class EmulatorConfig:
    """Emulator settings."""

    latency_ms: float = 0.0


@dataclass
class EmulatorStats:
    """Counters of generate requests received."""

    calls: int = 0
    by_model: dict[str, int] = field(default_factory=dict)
    stream_calls: int = 0
    errors: int = 0

    def reset(self) -> None:
        """Set every counter to zero."""
        self.calls = self.stream_calls = self.errors = 0
        self.by_model.clear()


CONFIG_KEY: Final = web.AppKey("emulator_config", EmulatorConfig)
STATS_KEY: Final = web.AppKey("emulator_stats", EmulatorStats)


class _BadRequest(Exception):
    """A request the real API would reject with INVALID_ARGUMENT."""


@dataclass(frozen=True)
class _Directives:
    """Faults requested by the last user text."""

    status: int | None = None
    block: str | None = None
    empty: bool = False
    delay_ms: float = 0.0


def _json(data: object, status: int = 200) -> web.Response:
    """Serialize data as a JSON response."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(code: int, message: str) -> web.Response:
    """Build an error response in Google's format."""
    status = _STATUS_NAMES.get(code, "UNKNOWN")
    return _json({"error": {"code": code, "message": message, "status": status}}, code)


def _texts(content: Json) -> list[str]:
    """Return the text parts of one content."""
    return [p["text"] for p in content.get("parts", []) if isinstance(p.get("text"), str)]


def _content(text: str) -> Json:
    """Build a model content holding one text part."""
    return {"role": "model", "parts": [{"text": text}]}


def _last_user_text(body: Json) -> str:
    """Return the text of the last user turn ("" if there is none)."""
    for content in reversed(body["contents"]):
        # The API treats a content without a role as a user turn.
        if content.get("role", "user") == "user":
            return " ".join(_texts(content))
    return ""


def _parse_directives(text: str) -> _Directives:
    """Collect the fault directives found in text."""
    found: dict[str, Any] = {}
    for group in _DIRECTIVE.findall(text):
        for item in filter(None, (part.strip() for part in group.split(","))):
            key, _, value = item.partition("=")
            if key == "status" and value.isdigit() and 400 <= int(value) <= 599:
                found["status"] = int(value)
            elif key == "block" and value in ("safety", "prompt"):
                found["block"] = value
            elif key == "empty" and not value:
                found["empty"] = True
            elif key == "delay" and value.replace(".", "", 1).isdigit():
                found["delay_ms"] = float(value)
            else:
                raise _BadRequest(f"Unknown emulator directive: {item!r}")
    return _Directives(**found)


async def _read_body(request: web.Request) -> Json:
    """Parse and minimally validate a GenerateContentRequest."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise _BadRequest(f"Invalid JSON payload received. {exc}") from exc
    if not isinstance(body, dict):
        raise _BadRequest("Invalid JSON payload received. Expected an object.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _BadRequest("* GenerateContentRequest.contents: contents is not specified")
    if not all(isinstance(c, dict) and isinstance(c.get("parts"), list) for c in contents):
        raise _BadRequest("* GenerateContentRequest.contents: every content needs parts")
    return body


def _reply(model: str, body: Json, directives: _Directives) -> Json:
    """Build the complete GenerateContentResponse; tokens are whitespace-separated words."""
    system = body.get("systemInstruction") or {}
    config = body.get("generationConfig") or {}
    canonical = {"model": model, "contents": body["contents"], "system": system, "config": config}
    digest = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
    prompt_tokens = sum(len(t.split()) for c in [*body["contents"], system] for t in _texts(c))
    answer_tokens = 0
    reply: Json = {"modelVersion": model, "responseId": digest[8:30]}
    if directives.block == "prompt":
        reply["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": [_HARM]}
    elif directives.block == "safety":
        ratings = [{**_HARM, "blocked": True}]
        reply["candidates"] = [{"finishReason": "SAFETY", "index": 0, "safetyRatings": ratings}]
    else:
        echo = " ".join(_DIRECTIVE.sub(" ", _last_user_text(body)).split())[:_ECHO_CHARS]
        words = [] if directives.empty else [f"[{model}]", *echo.split(), f"#{digest[:8]}"]
        limit = config.get("maxOutputTokens")
        finish = "STOP"
        if isinstance(limit, int) and 0 < limit < len(words):
            words, finish = words[:limit], "MAX_TOKENS"
        answer_tokens = len(words)
        candidate = {"content": _content(" ".join(words)), "finishReason": finish, "index": 0}
        reply["candidates"] = [{**candidate, "safetyRatings": []}]
    reply["usageMetadata"] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": answer_tokens,
        "totalTokenCount": prompt_tokens + answer_tokens,
    }
    return reply


def _stream_chunks(reply: Json) -> list[Json]:
    """Split a reply into text chunks; only the last carries finishReason and usage."""
    try:
        candidate: Json = reply["candidates"][0]
        text: str = candidate["content"]["parts"][0]["text"]
    except (KeyError, IndexError):
        return [reply]
    pieces: list[str] = re.findall(r"\s*\S+\s*", text)
    if len(pieces) < 2:
        return [reply]
    size = math.ceil(len(pieces) / min(_STREAM_CHUNKS, len(pieces)))
    texts = ["".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]
    head = {"modelVersion": reply["modelVersion"], "responseId": reply["responseId"]}
    chunks = [{**head, "candidates": [{"content": _content(t), "index": 0}]} for t in texts[:-1]]
    last = {**reply, "candidates": [{**candidate, "content": _content(texts[-1])}]}
    return [*chunks, last]


async def _generate(request: web.Request) -> web.StreamResponse:
    """Serve generateContent and streamGenerateContent."""
    # The model id and the action share one path segment: "gemini-2.5-flash:generateContent".
    model, _, action = request.match_info["model_action"].rpartition(":")
    if not model or action not in _ACTIONS:
        return _error(404, f"Unknown method: {request.match_info['model_action']}")
    stats = request.app[STATS_KEY]
    stats.calls += 1
    stats.by_model[model] = stats.by_model.get(model, 0) + 1
    stream = action == "streamGenerateContent"
    if stream:
        stats.stream_calls += 1
    try:
        body = await _read_body(request)
        directives = _parse_directives(_last_user_text(body))
    except _BadRequest as exc:
        stats.errors += 1
        return _error(400, str(exc))
    delay_ms = request.app[CONFIG_KEY].latency_ms + directives.delay_ms
    if delay_ms > 0:
        await asyncio.sleep(delay_ms / 1000)
    if directives.status is not None:
        stats.errors += 1
        return _error(directives.status, f"Emulated error {directives.status} by directive.")
    reply = _reply(model, body, directives)
    if not stream:
        return _json(reply)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for chunk in _stream_chunks(reply):
        await response.write(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
    await response.write_eof()
    return response


async def _list_models(request: web.Request) -> web.Response:
    """List the emulated models."""
    return _json({"models": _MODELS})


async def _healthz(request: web.Request) -> web.Response:
    """Report liveness."""
    return _json({"status": "ok"})


async def _stats(request: web.Request) -> web.Response:
    """Report the request counters; POST zeroes them first."""
    stats = request.app[STATS_KEY]
    if request.method == "POST":
        stats.reset()
    return _json(asdict(stats))


@web.middleware
async def _google_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render routing errors (404, 405) in Google's error format."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)


def create_emulator_app(config: EmulatorConfig) -> web.Application:
    """Build the emulator application."""
    # aiohttp's default 1 MB body cap is far below what Gemini accepts inline.
    app = web.Application(middlewares=[_google_errors], client_max_size=_MAX_BODY)
    app[CONFIG_KEY] = config
    app[STATS_KEY] = EmulatorStats()
    version = "{version:v1(?:beta)?}"
    app.router.add_post(f"/{version}/models/{{model_action}}", _generate)
    app.router.add_get(f"/{version}/models", _list_models)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/stats", _stats)
    app.router.add_post("/stats/reset", _stats)
    return app


@dataclass(frozen=True)
class RunningEmulator:
    """Handle to a started emulator."""

    host: str
    port: int
    _runner: web.AppRunner = field(repr=False)

    @property
    def base_url(self) -> str:
        """Return the root URL clients pass as base_url."""
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Close connections and release the port."""
        await self._runner.cleanup()


async def start_emulator(
    config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> RunningEmulator:
    """Start on a loopback port (0 = free port) in the running loop; returns the handle."""
    runner = web.AppRunner(create_emulator_app(config), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port: int = runner.addresses[0][1]
    return RunningEmulator(host, bound_port, runner)
