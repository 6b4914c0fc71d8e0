"""A client that stops reading its streamed answers loses its connection within the write
timeout (nothing more is buffered for it); other callers are served meanwhile."""

import asyncio
import contextlib
import json

from tests.support.gateway import GatewayFactory
from tests.support.raw_http import RawConnection, connect

HELLO = {"model": "flash", "prompt": "hello"}
WRITE_TIMEOUT_S = 0.5
# Streams of about 200 KB each (the emulator says the words in 64 deltas), pipelined on one
# connection: 6 MB in all, more than loopback's socket buffers hold (4 MB sent, 8 KB read).
STREAMS = 30
WORDS = 39_000


def _streamed_request(index: int) -> bytes:
    prompt = f"[[emulator:chunks=64,say=stream{index} " + "word " * WORDS + "]]"
    body = json.dumps({"model": "flash", "prompt": prompt, "stream": True}).encode()
    head = (
        b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    return head + body


async def _read_what_is_left(conn: RawConnection, timeout_s: float) -> bytes:
    """What the server still sends before the connection ends (reset or closed)."""
    received = b""
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(timeout_s):
            while chunk := await conn.reader.read(65536):
                received += chunk
    return received


async def test_a_stream_reader_that_never_reads_is_cut_off(start_gateway: GatewayFactory):
    # Given a gateway that aborts a connection whose writes stay blocked for 0.5 s
    gateway = await start_gateway(http_write_timeout_s=WRITE_TIMEOUT_S)
    hostile = await connect(gateway.url, receive_buffer=4096)

    # When a client asks for more streamed answers than the buffers hold and reads none
    hostile.writer.write(b"".join(_streamed_request(i) for i in range(STREAMS)))
    # ...while another caller asks
    _, normal = await asyncio.gather(hostile.wait_reset(10), gateway.generate(HELLO))

    # Then the other caller is answered, and the reader's connection is reset: the
    # streams it did not read are not all there
    assert normal.status == 200, normal.body
    received = await _read_what_is_left(hostile, 3)
    assert received.count(b"event: done") < STREAMS
    await hostile.close()
