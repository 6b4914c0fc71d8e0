"""Who is calling: the tenant (and API key) a request acts for.

The authentication middleware sets it on each request; every route reads it from here,
never from a header of its own. A request with no principal set acts for the default
tenant (the embedded default with no keys configured).
"""

from dataclasses import dataclass
from typing import Final

from aiohttp import web

from schemas import DEFAULT_TENANT


@dataclass(frozen=True, slots=True)
class Principal:
    """The tenant a request acts for, the id of the key it came with (None: no key), and
    whether it came with the admin key (which may act on every tenant); a key's limits:
    the models it may call (None: all) and its requests and tokens per minute."""

    tenant: str
    key_id: str | None = None
    admin: bool = False
    models: frozenset[str] | None = None
    rpm: int | None = None
    tpm: int | None = None


ANONYMOUS: Final = Principal(DEFAULT_TENANT)
# Where the middleware leaves it on the request.
PRINCIPAL_KEY: Final = web.RequestKey("principal", Principal)


def principal_of(request: web.Request) -> Principal:
    """The request's principal; the default tenant when none was set."""
    principal = request.get(PRINCIPAL_KEY)
    return ANONYMOUS if principal is None else principal
