"""Requests over the header limits get a 431 JSON error and lose their connection; others
are served meanwhile."""

import asyncio
import json

import pytest

from tests.support.gateway import GatewayFactory
from tests.support.raw_http import body_of, connect, status_of

HELLO = {"model": "flash", "prompt": "hello"}


def _request(line: bytes, headers: list[bytes]) -> bytes:
    return line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


OVERSIZED = {
    "request line": _request(b"GET /healthz?" + b"a" * 5000 + b" HTTP/1.1", [b"Host: x"]),
    "header field": _request(b"GET /healthz HTTP/1.1", [b"Host: x", b"X-Big: " + b"b" * 5000]),
    "header count": _request(
        b"GET /healthz HTTP/1.1", [b"Host: x"] + [b"X-H%d: v" % i for i in range(40)]
    ),
}


@pytest.mark.parametrize("case", list(OVERSIZED))
async def test_oversized_headers_get_431_and_a_closed_connection(
    start_gateway: GatewayFactory, case: str
):
    # Given a gateway with 4 KiB lines and 32 headers at most
    gateway = await start_gateway(http_max_line_bytes=4096, http_max_headers=32)
    hostile = await connect(gateway.url)

    # When a client sends a request over one limit while another caller asks normally
    await hostile.send(OVERSIZED[case])
    answer, normal = await asyncio.gather(hostile.read_all(5), gateway.generate(HELLO))

    # Then it gets a 431 in the JSON error shape, naming the limits, and the connection
    # ends (read_all returned: the server closed it); the other caller got its answer
    assert status_of(answer) == 431
    error = json.loads(body_of(answer))["error"]
    assert error["type"] == "headers_too_large"
    assert "4096 bytes" in error["message"]
    assert "32 headers" in error["message"]
    assert b"bbbb" not in answer
    assert normal.status == 200, normal.body
    await hostile.close()


async def test_a_header_under_the_limit_is_served(start_gateway: GatewayFactory):
    gateway = await start_gateway(http_max_line_bytes=4096, http_max_headers=32)
    hostile = await connect(gateway.url)

    await hostile.send(
        _request(
            b"GET /healthz HTTP/1.1", [b"Host: x", b"Connection: close", b"X-Ok: " + b"o" * 3000]
        )
    )
    answer = await hostile.read_all(5)

    assert status_of(answer) == 200
    await hostile.close()
