"""Server-Sent Events read off a real HTTP response, as a client sees them."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict


@dataclass
class Event:
    """One SSE event: its name (None when it has no `event:` line) and its JSON data."""

    name: str | None
    data: Any


@dataclass
class Stream:
    """A whole streamed answer: status, headers, every event in order."""

    status: int
    headers: "CIMultiDict[str]"
    events: list[Event] = field(default_factory=list)
    body: Any = None

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]

    @property
    def text(self) -> str:
        """The deltas of promptbus's own format, joined."""
        return "".join(e.data["text"] for e in self.named("delta"))


async def events(resp: aiohttp.ClientResponse) -> AsyncIterator[Event]:
    """Each event of `resp` as it arrives; a `data:` that is not JSON stays a string."""
    name: str | None = None
    data: list[str] = []
    async for raw in resp.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    value: Any = json.loads(text)
                except ValueError:
                    value = text
                yield Event(name, value)
            name, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


async def read_stream(
    session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None
) -> Stream:
    """POST `body` and read the whole answer: its events, or its JSON body if not a stream."""
    async with session.post(url, json=body, headers=headers) as resp:
        stream = Stream(resp.status, CIMultiDict(resp.headers))
        if resp.content_type != "text/event-stream":
            stream.body = await resp.json(content_type=None)
            return stream
        stream.events = [event async for event in events(resp)]
        return stream
