"""How the ingress takes HTTP connections: header limits, a read deadline, keep-alive.

aiohttp bounds a request's line and header sizes but not the time a client takes to send
them: a client trickling one byte a second would hold its connection (and its handler,
for a body) for as long as it liked. Here each request gets `http_read_timeout_s` from its
first byte to its body's last, and a request over the header limits gets the JSON error
body of every other error (and no line of its headers in the log).

Nor does aiohttp bound the time a write waits for a client that does not read: a handler
waits in `drain()` for as long as the socket stays full, holding the answer and its task.
Here a connection whose writes stay paused (the transport's buffer over its high-water
mark) for `http_write_timeout_s` is aborted, which ends its handler and frees its buffer.
"""

import asyncio
import socket
import struct
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from pipeline.errors import HeadersTooLarge, MalformedRequest, PromptbusError
from pipeline.settings import Settings

log = structlog.get_logger("promptbus.ingress")


class _DeadlinedHandler(web.RequestHandler):
    """aiohttp's connection handler, closing a connection whose request arrives too slowly."""

    def __init__(
        self, manager: web.Server, *, read_timeout_s: float, write_timeout_s: float, **options: Any
    ) -> None:
        super().__init__(manager, **options)
        self._read_timeout_s = read_timeout_s
        self._write_timeout_s = write_timeout_s
        self._stall: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        # The body being received under the deadline; None while its headers are.
        self._body: Any = None

    def data_received(self, data: bytes) -> None:
        idle = not self._request_in_progress and not self._messages
        if self._deadline is None and data and idle:  # the first bytes of a request
            self._deadline = self._loop.call_later(self._read_timeout_s, self._late)
            self._body = None
        received = self._request_count
        super().data_received(data)
        if self._deadline is None:
            return
        if self._request_count != received and self._messages:
            self._body = self._messages[-1][1]
        if self._body is not None and self._body.is_eof():
            self._deadline.cancel()
            self._deadline = None
            self._body = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._stall = self._loop.call_later(self._write_timeout_s, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def connection_lost(self, exc: BaseException | None) -> None:
        for timer in (self._deadline, self._stall):
            if timer is not None:
                timer.cancel()
        self._deadline = self._stall = None
        super().connection_lost(exc)

    def _stalled(self) -> None:
        self._stall = None
        log.warning(
            "client not reading: connection aborted",
            limit_s=self._write_timeout_s,
            peer=str(self.peername),
        )
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: the kernel drops what it still holds for the client too (a reset),
            # instead of keeping it for a reader that may never read.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # close() would wait for the full buffer to drain: abort drops it.
        self.transport.abort()

    def _late(self) -> None:
        self._deadline = None
        log.warning(
            "request not received in time: connection closed",
            part="body" if self._body is not None else "headers",
            limit_s=self._read_timeout_s,
            peer=str(self.peername),
        )
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        # The exception's text quotes the line it choked on (an Authorization header, say):
        # neither the log nor the answer repeats it.
        error = _protocol_error(exc, request.protocol)
        log.info(
            "malformed request: connection closed",
            status=error.status,
            error=error.type,
            peer=str(self.peername),
        )
        response = web.Response(
            status=error.status,
            body=error.body().model_dump_json(exclude_none=True),
            content_type="application/json",
        )
        response.force_close()
        return response


def _protocol_error(exc: HttpProcessingError, handler: Any) -> PromptbusError:
    if isinstance(exc, LineTooLong) or "Too many headers" in str(exc):
        return HeadersTooLarge(
            f"request line and each header line must be at most {handler.max_line_size} bytes, "
            f"and at most {handler.max_headers} headers"
        )
    return MalformedRequest("request is not well-formed HTTP/1.1")


class _DeadlinedServer(web.Server):
    """aiohttp's server, making a `_DeadlinedHandler` for each connection."""

    def __init__(
        self, made: web.Server, *, read_timeout_s: float, write_timeout_s: float, **options: Any
    ) -> None:
        super().__init__(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            **options,
        )
        self._timeouts = {"read_timeout_s": read_timeout_s, "write_timeout_s": write_timeout_s}
        self._options = options

    def __call__(self) -> web.RequestHandler:
        return _DeadlinedHandler(self, loop=self._loop, **self._timeouts, **self._options)


class IngressRunner(web.AppRunner):
    """An AppRunner for the ingress: its connections bounded as `settings` say."""

    def __init__(self, app: web.Application, settings: Settings) -> None:
        # handler_cancellation: a caller that hangs up cancels its handler, and so its
        # upstream call unless coalesced callers still wait for it (writes are shielded).
        super().__init__(app, access_log=None, handle_signals=False, handler_cancellation=True)
        self._options: dict[str, Any] = {
            "access_log": None,
            "max_line_size": settings.http_max_line_bytes,
            "max_field_size": settings.http_max_line_bytes,
            "max_headers": settings.http_max_headers,
            "keepalive_timeout": settings.http_keepalive_s,
        }
        self._read_timeout_s = settings.http_read_timeout_s
        self._write_timeout_s = settings.http_write_timeout_s

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _DeadlinedServer(
            made,
            read_timeout_s=self._read_timeout_s,
            write_timeout_s=self._write_timeout_s,
            **self._options,
        )
