"""Errors in the shape of the API a route speaks."""

import functools
from collections.abc import Callable

from aiohttp import web

from pipeline.errors import PromptbusError
from pipeline.ingress.middleware import REQUEST_ID_HEADER, REQUEST_ID_KEY, Handler, log_failure

# How an API renders an error as its response (status, body and headers).
ErrorRenderer = Callable[[PromptbusError], web.Response]


def speaking(render: ErrorRenderer) -> Callable[[Handler], Handler]:
    """Wrap a route so that its errors come back as `render` shapes them."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def spoken(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except PromptbusError as exc:
                log_failure(request, exc)
                response = render(exc)
                response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID_KEY]
                return response

        return spoken

    return wrap
