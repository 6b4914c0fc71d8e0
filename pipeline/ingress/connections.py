"""How the ingress takes HTTP connections: header limits, a read deadline, keep-alive.

aiohttp bounds a request's line and header sizes but not the time a client takes to send
them: a client trickling one byte a second would hold its connection (and its handler,
for a body) for as long as it liked. Here each request gets `http_read_timeout_s` from its
first byte to its body's last, and a request over the header limits gets the JSON error
body of every other error (and no line of its headers in the log).
"""

import asyncio
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from pipeline.errors import HeadersTooLarge, MalformedRequest, PromptbusError
from pipeline.settings import Settings

log = structlog.get_logger("promptbus.ingress")


class _DeadlinedHandler(web.RequestHandler):
    """aiohttp's connection handler, closing a connection whose request arrives too slowly."""

    def __init__(self, manager: web.Server, *, read_timeout_s: float, **options: Any) -> None:
        super().__init__(manager, **options)
        self._read_timeout_s = read_timeout_s
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

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

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

    def __init__(self, made: web.Server, *, read_timeout_s: float, **options: Any) -> None:
        super().__init__(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            **options,
        )
        self._read_timeout_s = read_timeout_s
        self._options = options

    def __call__(self) -> web.RequestHandler:
        return _DeadlinedHandler(
            self, loop=self._loop, read_timeout_s=self._read_timeout_s, **self._options
        )


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

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _DeadlinedServer(made, read_timeout_s=self._read_timeout_s, **self._options)
