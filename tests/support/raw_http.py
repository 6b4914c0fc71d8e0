"""A raw TCP client for HTTP a well-behaved client would never send."""

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class RawConnection:
    """One TCP connection to a gateway, written to and read from byte by byte if need be."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_all(self, timeout_s: float) -> bytes:
        """Everything the server sends until it closes the connection (within `timeout_s`)."""
        async with asyncio.timeout(timeout_s):
            return await self.reader.read(-1)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):  # the server closed it first
            await self.writer.wait_closed()


async def connect(url: str) -> RawConnection:
    """A raw connection to the gateway at `url`."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    return RawConnection(reader, writer)


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response."""
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> bytes:
    """The body of a raw (not chunked) HTTP response."""
    return response.split(b"\r\n\r\n", 1)[1]
