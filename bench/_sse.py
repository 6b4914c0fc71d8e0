"""Server-Sent Events as the streams bench reads them: events, their text, time to first chunk."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from _common import JSON_HEADERS, Load, client_session
from _http_load import BodyFor, timed_workers

# One event: its `event:` name (None without one) and its data lines joined.
Event = tuple[str | None, bytes]


class EventParser:
    """Turns SSE lines, fed one at a time, into whole events."""

    def __init__(self) -> None:
        self._name: str | None = None
        self._data: list[bytes] = []

    def feed(self, raw: bytes) -> Event | None:
        """Take one line (its line break included or not); the event a blank line ends."""
        line = raw.rstrip(b"\r\n")
        if not line:
            return self.flush()
        field, _, value = line.partition(b":")
        # The format strips one space after the colon; a line with no colon is a field name.
        value = value[1:] if value.startswith(b" ") else value
        if field == b"event":
            self._name = value.decode()
        elif field == b"data":
            self._data.append(value)
        return None

    def flush(self) -> Event | None:
        """The event under way at the end of the stream, if any."""
        event = (self._name, b"\n".join(self._data)) if self._data else None
        self._name, self._data = None, []
        return event


def parse_events(body: bytes) -> list[Event]:
    """Every event of a whole SSE body."""
    parser = EventParser()
    events = [e for line in body.splitlines() if (e := parser.feed(line)) is not None]
    return events + [e for e in [parser.flush()] if e is not None]


@dataclass(frozen=True)
class StreamFormat:
    """One API's events: the text an event carries and whether it closes the answer."""

    name: str
    text: Callable[[Event], str]
    closes: Callable[[Event], bool]

    def check(self, events: Iterable[Event]) -> str | None:
        """Why `events` are not one whole answer with text, or None if they are."""
        seen = list(events)
        if not any(self.text(e) for e in seen):
            return f"{self.name} stream of {len(seen)} events carried no text"
        if not seen or not self.closes(seen[-1]):
            return f"{self.name} stream did not end with its closing event"
        return None


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _promptbus_text(event: Event) -> str:
    data = _json(event[1]) if event[0] == "delta" else None
    return data.get("text", "") if isinstance(data, dict) else ""


def _openai_text(event: Event) -> str:
    data = _json(event[1])
    if not isinstance(data, dict) or not data.get("choices"):
        return ""
    return data["choices"][0].get("delta", {}).get("content") or ""


def _gemini_text(event: Event) -> str:
    data = _json(event[1])
    try:
        return "".join(p.get("text", "") for p in data["candidates"][0]["content"]["parts"])
    except (TypeError, KeyError, IndexError):
        return ""


def _gemini_closes(event: Event) -> bool:
    data = _json(event[1])
    try:
        return bool(data["candidates"][0].get("finishReason"))
    except (TypeError, KeyError, IndexError):
        return False


PROMPTBUS_SSE = StreamFormat("promptbus", _promptbus_text, lambda e: e[0] == "done")
OPENAI_SSE = StreamFormat("openai", _openai_text, lambda e: e[1] == b"[DONE]")
GEMINI_SSE = StreamFormat("gemini", _gemini_text, _gemini_closes)


async def timed_stream(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    fmt: StreamFormat,
    headers: Mapping[str, str],
    cache: str | None,
) -> float | str:
    """POST one streamed request: seconds to its first event with text, or why it failed.

    The body is read as it arrives, line by line, and to its end: the stream must
    close as its format says, with X-Cache equal to `cache` when that is given.
    """
    parser = EventParser()
    first: float | None = None
    events: list[Event] = []
    began = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                text = (await response.read())[:300].decode(errors="replace")
                return f"HTTP {response.status}: {text}"
            if cache and (got := response.headers.get("X-Cache")) != cache:
                return f"X-Cache was {got}, not {cache}"
            async for line in response.content:
                if (event := parser.feed(line)) is None:
                    continue
                if first is None and fmt.text(event):
                    first = time.perf_counter() - began
                events.append(event)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if (last := parser.flush()) is not None:
        events.append(last)
    if (problem := fmt.check(events)) is not None or first is None:
        return problem or "no text"
    return first


async def ttfc_load(
    url: str,
    body_for: BodyFor,
    fmt: StreamFormat,
    workers: int,
    duration_s: float,
    stagger_s: float,
    headers: Mapping[str, str] | None = None,
    cache: str | None = None,
) -> Load:
    """`workers` closed loops of streamed requests for `duration_s`; the Load is of TTFC."""
    sent = {**JSON_HEADERS, **(headers or {})}
    async with client_session(workers, 30) as session:

        async def request(number: int) -> float | str:
            return await timed_stream(session, url, body_for(number), fmt, sent, cache)

        return await timed_workers(request, workers, duration_s, stagger_s)


def stream_problem(body: bytes, fmt: StreamFormat) -> str | None:
    """Why a whole SSE body is not one whole answer in `fmt`, or None."""
    return fmt.check(parse_events(body))
