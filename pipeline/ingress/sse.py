"""Streamed answers as Server-Sent Events, in whichever API's event format the route speaks.

One sender serves every API: it replays a cached answer as deltas, or follows a live
stream. An error before the first delta is an ordinary HTTP error response (the routes'
middleware renders it); after the first byte it can only be an event in the stream.
"""

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final, Protocol

import orjson
import structlog
from aiohttp import web

from pipeline.errors import PromptbusError
from pipeline.ingress.middleware import REQUEST_ID_HEADER, REQUEST_ID_KEY
from pipeline.sync_path import Answer, LiveStream

log = structlog.get_logger("promptbus.sse")

# A cached answer is replayed in pieces of about this many characters, cut after whitespace.
REPLAY_PIECE_CHARS: Final = 64
_WORDS: Final = re.compile(r"\S+\s*|\s+")
_STREAM_HEADERS: Final = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # Proxies that buffer (nginx) would hold the deltas back.
    "X-Accel-Buffering": "no",
}


class _EventStream(web.StreamResponse):
    """A stream whose headers leave with its first event, in one send instead of two.

    On loopback each send costs about 0.3 ms, and the first event is ready when the stream
    opens (a stream opens on its first delta). aiohttp's own `Response` buffers its headers
    the same way; should the attribute go, headers are sent at once, as before.
    """

    _send_headers_immediately = False


class StreamFormat(Protocol):
    """How one API frames a streamed answer's events."""

    def delta(self, text: str) -> bytes:
        """The event for one text delta."""
        ...

    def done(self, body: bytes, response: Mapping[str, Any]) -> bytes:
        """The closing events for the whole answer (its JSON `body`, parsed as `response`)."""
        ...

    def error(self, error: PromptbusError) -> bytes:
        """The event for an error after the stream started."""
        ...


def answer_headers(answer: Answer) -> dict[str, str]:
    """`X-Cache`, and `Age` on a hit."""
    if answer.age_s is None:
        return {"X-Cache": "MISS"}
    return {"X-Cache": "HIT", "Age": str(math.floor(answer.age_s))}


def event(name: str | None, data: bytes) -> bytes:
    """One SSE event: an optional `event:` line and one `data:` line (JSON has no newlines)."""
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"data: " + data + b"\n\n"


def replay_pieces(text: str, size: int = REPLAY_PIECE_CHARS) -> Iterator[str]:
    """`text` cut into pieces of about `size` characters, each ending after whitespace."""
    piece: list[str] = []
    length = 0
    for word in _WORDS.findall(text):
        piece.append(word)
        length += len(word)
        if length >= size:
            yield "".join(piece)
            piece, length = [], 0
    if piece:
        yield "".join(piece)


async def open_stream(request: web.Request) -> web.StreamResponse:
    """An SSE response to `request`, prepared: its headers leave with its first event."""
    stream = _EventStream(headers={**_STREAM_HEADERS, REQUEST_ID_HEADER: request[REQUEST_ID_KEY]})
    await stream.prepare(request)
    return stream


async def send_stream(
    request: web.Request,
    streamed: Answer | LiveStream,
    fmt: StreamFormat,
    headers: Mapping[str, str] | None = None,
    parsed: Mapping[str, Any] | None = None,
) -> web.StreamResponse:
    """Send `streamed` as SSE in `fmt`: a cached answer replayed, or a live stream followed.

    `parsed` is a cached answer's body already parsed by the caller (else it is parsed here).
    """
    sent = {**_STREAM_HEADERS, REQUEST_ID_HEADER: request[REQUEST_ID_KEY], **(headers or {})}
    if isinstance(streamed, Answer):
        sent.update(answer_headers(streamed))
        response = orjson.loads(streamed.body) if parsed is None else parsed
        events = [fmt.delta(piece) for piece in replay_pieces(response["text"])]
        events.append(fmt.done(streamed.body, response))
        return web.Response(body=b"".join(events), headers=sent)
    await streamed.opened()
    sent["X-Cache"] = "MISS"
    stream = _EventStream(headers=sent)
    await stream.prepare(request)
    try:
        try:
            async for delta in streamed.deltas():
                await stream.write(fmt.delta(delta))
            answer = streamed.answer()
            await stream.write(fmt.done(answer.body, orjson.loads(answer.body)))
        except PromptbusError as exc:
            log.info("stream failed after it started", error=exc.type, message=exc.message)
            await stream.write(fmt.error(exc))
        await stream.write_eof()
    except ConnectionError:
        # The caller hung up; leaving stops listening (the last listener stops the call).
        log.info("stream caller went away", request_id=request[REQUEST_ID_KEY])
    return stream


class PromptbusStream:
    """promptbus's own events: `delta` ({"text"}), then `done` (the response) or `error`."""

    def delta(self, text: str) -> bytes:
        """A `delta` event."""
        return event("delta", orjson.dumps({"text": text}))

    def done(self, body: bytes, response: Mapping[str, Any]) -> bytes:
        """A `done` event holding the whole response, as a plain request would get it."""
        return event("done", body)

    def error(self, error: PromptbusError) -> bytes:
        """An `error` event holding the JSON error body."""
        return event("error", error.body().model_dump_json(exclude_none=True).encode())
