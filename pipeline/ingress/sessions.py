"""GET and DELETE /v1/sessions/{id}: a conversation kept server-side, the caller tenant's own.

A turn joins a session by `session_id` in a generate request, or by the `X-Session-Id`
header on the OpenAI-compatible API (whose body has no such field; `user` names an end
user, not a conversation).
"""

import re
from typing import Final

from aiohttp import web

from pipeline.errors import NotFound, ValidationFailed
from pipeline.ingress.keys import SERVICES
from pipeline.ingress.principal import principal_of
from schemas.sessions import SessionView

SESSION_HEADER: Final = "X-Session-Id"
_SESSION_ID: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def add_routes(app: web.Application) -> None:
    """Register the session routes on `app`."""
    app.router.add_get("/v1/sessions/{session_id}", get_session)
    app.router.add_delete("/v1/sessions/{session_id}", delete_session)


def session_header(request: web.Request) -> str | None:
    """The session the request's `X-Session-Id` names; a 400 naming the header if malformed."""
    value = request.headers.get(SESSION_HEADER)
    if value is None:
        return None
    if not _SESSION_ID.match(value):
        raise ValidationFailed(
            f"{SESSION_HEADER} must be 1 to 128 letters, digits, '_', '.', ':' or '-'",
            field=SESSION_HEADER,
        )
    return value


async def get_session(request: web.Request) -> web.Response:
    """The session's kept messages, oldest first, and when it expires; 404 if there is none."""
    tenant, session_id = principal_of(request).tenant, request.match_info["session_id"]
    sessions = request.app[SERVICES].sessions
    ttl_s = await sessions.ttl_s(tenant, session_id)
    if ttl_s is None:
        raise NotFound(f"no session {session_id!r}")
    view = SessionView(
        id=session_id,
        messages=tuple(await sessions.history(tenant, session_id)),
        summary=await sessions.summary(tenant, session_id),
        ttl_s=ttl_s,
    )
    return web.Response(body=view.model_dump_json(), content_type="application/json")


async def delete_session(request: web.Request) -> web.Response:
    """Forget the session: 204, or 404 if there is none."""
    tenant, session_id = principal_of(request).tenant, request.match_info["session_id"]
    if not await request.app[SERVICES].sessions.delete(tenant, session_id):
        raise NotFound(f"no session {session_id!r}")
    return web.Response(status=204)
