"""What the admin routes share: the admin check, the store, JSON answers."""

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from pipeline.errors import PermissionDenied
from pipeline.ingress.body import parse_model, read_json
from pipeline.ingress.keys import SERVICES, SETTINGS
from pipeline.ingress.principal import principal_of
from pipeline.tenancy import Tenancy

M = TypeVar("M", bound=BaseModel)


def tenancy_of(request: web.Request) -> Tenancy:
    """The process's tenancy, once the request is known to come with the admin key.

    The authentication middleware refuses every other caller of /v1/admin/ already; this
    check keeps a route added elsewhere from being open by mistake.
    """
    if not principal_of(request).admin:
        raise PermissionDenied("the admin API needs the admin key (PROMPTBUS_ADMIN_KEY)")
    return request.app[SERVICES].tenancy


async def body_of(request: web.Request, model: type[M]) -> M:
    """The request's JSON body as `model` (400 if not JSON, 422 if not valid)."""
    return parse_model(model, await read_json(request, request.app[SETTINGS].max_body_bytes))


def answer(model: BaseModel, status: int = 200) -> web.Response:
    """`model` as the JSON body."""
    return web.Response(
        status=status, body=model.model_dump_json(), content_type="application/json"
    )
