"""Authentication: who a request acts for, from its API key, set on the request.

Keys come as `Authorization: Bearer`, `x-api-key`, or on the Gemini surface
`x-goog-api-key` / `?key=`. The admin key acts for the admin API (and as the default
tenant elsewhere); a tenant's key for its tenant, with its limits (pipeline/ingress/permit.py).
While keys are not required (pipeline/tenancy/modes.py) every request is tenant `default`,
whatever key it sends. A missing or bad key is a 401 in the error shape of the API the
route speaks. Health probes and the OpenAPI document need no key.
"""

from enum import StrEnum
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from pipeline.errors import AuthThrottled, PermissionDenied, PromptbusError, Unauthenticated
from pipeline.ingress.auth_throttle import AuthThrottle
from pipeline.ingress.compat.gemini import is_gemini_request
from pipeline.ingress.compat.gemini.errors import render_error as gemini_error
from pipeline.ingress.compat.openai.errors import render_error as openai_error
from pipeline.ingress.keys import SERVICES
from pipeline.ingress.middleware import REQUEST_ID_HEADER, REQUEST_ID_KEY, Handler, log_failure
from pipeline.ingress.principal import PRINCIPAL_KEY, Principal
from pipeline.settings import Settings
from pipeline.tenancy import Grant, Mode, digest_of
from pipeline.tenancy.apikeys import MAX_KEY_CHARS, same_digest
from schemas import DEFAULT_TENANT

OPEN_PATHS: Final = frozenset({"/healthz", "/readyz", "/openapi.json", "/dashboard"})
# The dashboard's page files hold no data (what it shows comes from guarded APIs).
OPEN_PREFIX: Final = "/dashboard/static/"
ADMIN_PREFIX: Final = "/v1/admin/"
ADMIN: Final = Principal(DEFAULT_TENANT, admin=True)
_MISSING: Final = (
    "an API key is required: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
)


class Surface(StrEnum):
    """The API a route speaks, which decides the shape of its errors."""

    PROMPTBUS = "promptbus"
    OPENAI = "openai"
    GEMINI = "gemini"


def surface_of(request: web.Request) -> Surface:
    """The API of the route `request` asks for, by its path."""
    path = request.path
    if path.startswith("/v1beta/"):
        return Surface.GEMINI
    if path.startswith("/v1/models/") and ":" in path.rsplit("/", 1)[-1]:
        return Surface.GEMINI  # a method of a model: :generateContent and the like
    if path == "/v1/models" or path.startswith("/v1/models/"):
        return Surface.GEMINI if is_gemini_request(request) else Surface.OPENAI
    if path == "/v1/chat/completions":
        return Surface.OPENAI
    return Surface.PROMPTBUS


def presented_key(request: web.Request, surface: Surface) -> str | None:
    """The key the request came with, if any (an over-long one is no key of ours: empty)."""
    headers = request.headers
    authorization = headers.get("Authorization")
    key: str | None = None
    if authorization is not None and authorization[:7].lower() == "bearer ":
        key = authorization[7:].strip()
    else:
        key = headers.get("x-api-key")
        if key is None and surface is Surface.GEMINI:
            key = headers.get("x-goog-api-key") or request.query.get("key")
    if key is not None and len(key) > MAX_KEY_CHARS:
        return ""
    return key


def _refuse(request: web.Request, surface: Surface, error: PromptbusError) -> web.Response:
    """The refusal in the surface's shape (promptbus's own: the request middleware's)."""
    if surface is Surface.PROMPTBUS:
        raise error
    log_failure(request, error)
    response = (openai_error if surface is Surface.OPENAI else gemini_error)(error)
    response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID_KEY]
    return response


def authentication(settings: Settings) -> Middleware:
    """The middleware that sets each request's principal, or refuses it."""
    admin_key = settings.admin_key
    admin_digest = None if admin_key is None else digest_of(admin_key.get_secret_value())
    # The principal of each grant the directory holds, made once (a frozen dataclass costs
    # a microsecond to build, which a cache hit notices); bounded like the directory.
    principals: dict[int, tuple[Grant, Principal]] = {}
    throttle = AuthThrottle(settings)

    def principal_for(grant: Grant) -> Principal:
        held = principals.get(id(grant))
        if held is not None and held[0] is grant:
            return held[1]
        principal = Principal(
            grant.tenant, grant.key_id, models=grant.models, rpm=grant.rpm, tpm=grant.tpm
        )
        if len(principals) >= settings.key_cache_max_entries:
            principals.clear()
        principals[id(grant)] = (grant, principal)
        return principal

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIX):
            return await handler(request)
        surface = surface_of(request)
        # The TCP peer's address: behind a proxy, the proxy's (X-Forwarded-For is not read).
        # Looked up only while some address has failed (a cache hit's path pays one check).
        if throttle.watching and (wait_s := throttle.wait_s(request.remote or "")) is not None:
            return _refuse(request, surface, _throttled(wait_s))
        key = presented_key(request, surface)
        digest = None if key is None else digest_of(key)
        if digest is not None and admin_digest is not None and same_digest(admin_digest, digest):
            request[PRINCIPAL_KEY] = ADMIN
            return await handler(request)
        try:
            if path.startswith(ADMIN_PREFIX):
                return await _refuse_admin(request, digest, admin_digest is not None)
            principal = await tenant_principal(request, digest)
        except PromptbusError as exc:  # a bad key, or the key database away: the API's shape
            # A key was sent and is no key: a guess (a missing key is not one).
            if isinstance(exc, Unauthenticated) and digest is not None:
                throttle.failed(request.remote or "")
            if path.startswith(ADMIN_PREFIX):
                raise
            return _refuse(request, surface, exc)
        if principal is not None:
            request[PRINCIPAL_KEY] = principal
        return await handler(request)

    async def tenant_principal(request: web.Request, digest: str | None) -> Principal | None:
        """The principal of the request's key; None while keys are not required."""
        tenancy = request.app[SERVICES].tenancy
        if tenancy.mode is Mode.OPEN:
            return None
        # A cache hit's path: what is known already is not awaited for.
        if not tenancy.keys_known_required() and not await tenancy.keys_required():
            return None
        if digest is None:
            raise Unauthenticated(_MISSING)
        known = tenancy.directory.known_grant(digest)
        grant = known[1] if known is not None else await tenancy.directory.grant(digest)
        if grant is None or grant.revoked:
            raise Unauthenticated("the API key is not valid")
        if grant.tenant_disabled:
            raise PermissionDenied(f"tenant {grant.tenant!r} is disabled")
        tenancy.last_used.note(grant.key_id)
        return principal_for(grant)

    return authenticate


def _throttled(wait_s: float) -> AuthThrottled:
    return AuthThrottled(
        "too many requests with a bad API key came from this address; wait before trying again",
        retry_after_s=wait_s,
    )


async def _refuse_admin(request: web.Request, digest: str | None, configured: bool) -> web.Response:
    """Refuse a caller of the admin API without the admin key: 401, or 403 for a tenant key."""
    if not configured:
        raise PermissionDenied("the admin API is off: set PROMPTBUS_ADMIN_KEY to use it")
    if digest is None:
        raise Unauthenticated("the admin API needs the admin key (PROMPTBUS_ADMIN_KEY)")
    grant = await request.app[SERVICES].tenancy.directory.grant(digest)
    if grant is not None and grant.usable:
        raise PermissionDenied("a tenant's API key may not use the admin API")
    raise Unauthenticated("the admin API needs the admin key (PROMPTBUS_ADMIN_KEY)")
