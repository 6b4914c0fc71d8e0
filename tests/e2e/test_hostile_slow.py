"""Slow-loris clients (headers or body one byte at a time) lose their connection within the
read timeout; other callers are served meanwhile, and a slow but steady keep-alive
connection is not cut."""

import asyncio
import contextlib
import time

from tests.support.gateway import GatewayFactory
from tests.support.raw_http import RawConnection, connect, status_of

HELLO = {"model": "flash", "prompt": "hello"}
TIMEOUT_S = 0.5


async def _trickle(conn: RawConnection, data: bytes) -> None:
    """Send `data` one byte every 50 ms, until it is all sent or the connection is closed."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            await conn.send(bytes([byte]))
            await asyncio.sleep(0.05)


async def _closed_after(conn: RawConnection, head: bytes, trickled: bytes) -> tuple[float, bytes]:
    """Seconds from the request's first byte until the server closed the connection."""
    started = time.monotonic()
    await conn.send(head)
    sender = asyncio.create_task(_trickle(conn, trickled))
    try:
        answer = await conn.read_all(5)
    finally:
        sender.cancel()
    return time.monotonic() - started, answer


async def test_headers_sent_a_byte_at_a_time_are_cut_off(start_gateway: GatewayFactory):
    # Given a gateway that gives a request 0.5 s to arrive
    gateway = await start_gateway(http_read_timeout_s=TIMEOUT_S)
    hostile = await connect(gateway.url)

    # When a client trickles its headers (never ending them) while another caller asks
    headers = b"".join(b"X-Slow-%d: v\r\n" % i for i in range(200))
    (took, answer), normal = await asyncio.gather(
        _closed_after(hostile, b"G", b"ET /healthz HTTP/1.1\r\nHost: x\r\n" + headers),
        gateway.generate(HELLO),
    )

    # Then its connection is closed once the timeout is up, with nothing answered
    assert TIMEOUT_S <= took < TIMEOUT_S + 1.0
    assert answer == b""
    assert normal.status == 200, normal.body
    await hostile.close()


async def test_a_body_sent_a_byte_at_a_time_is_cut_off(start_gateway: GatewayFactory):
    gateway = await start_gateway(http_read_timeout_s=TIMEOUT_S)
    hostile = await connect(gateway.url)
    body = b'{"model": "flash", "prompt": "' + b"s" * 200 + b'"}'
    head = (
        b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )

    (took, answer), normal = await asyncio.gather(
        _closed_after(hostile, head, body), gateway.generate(HELLO)
    )

    assert TIMEOUT_S <= took < TIMEOUT_S + 1.0
    assert answer == b""
    assert normal.status == 200, normal.body
    await hostile.close()


async def test_a_keep_alive_connection_outliving_the_timeout_is_served(
    start_gateway: GatewayFactory,
):
    # Given the same timeout: it is per request, not per connection
    gateway = await start_gateway(http_read_timeout_s=TIMEOUT_S)
    conn = await connect(gateway.url)

    # When one connection sends a request every 0.3 s, past the timeout in all
    statuses = []
    for _ in range(4):
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), 5)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await asyncio.wait_for(conn.reader.readexactly(length), 5)
        statuses.append(status_of(head))
        await asyncio.sleep(0.3)

    # Then each is answered on it
    assert statuses == [200] * 4
    await conn.close()
