"""A raw TCP client for HTTP a well-behaved client would never send."""

import asyncio
import contextlib
import errno
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.support.polling import poll


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

    async def wait_reset(self, timeout_s: float) -> None:
        """Wait, reading nothing, until the server has reset the connection."""
        sock = self.writer.get_extra_info("socket")

        async def error() -> int:
            return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))

        await poll(error, lambda e: e == errno.ECONNRESET, timeout_s=timeout_s, what="reset")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):  # the server closed it first
            await self.writer.wait_closed()


async def connect(url: str, *, receive_buffer: int | None = None) -> RawConnection:
    """A raw connection to the gateway at `url`; `receive_buffer` shrinks its socket's."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        # Before connecting: the window the server may fill is set by it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    # A small reader limit too: the client's own buffer must not read for it.
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    return RawConnection(reader, writer)


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response."""
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> bytes:
    """The body of a raw (not chunked) HTTP response."""
    return response.split(b"\r\n\r\n", 1)[1]
