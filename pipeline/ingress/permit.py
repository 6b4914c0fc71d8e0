"""What a key may do once it is known to be valid: the models it may call, its rate limits.

Checked where a request's model is known (after its body is read), so a refusal is in the
surface's own error shape: a model the key does not allow is a 403, a key over its
requests or tokens per minute a 429 with Retry-After. A request without a key (the
default tenant, the admin key) has no such limits.

Tokens are counted when a request is admitted, by an estimate; a sync or streamed answer
then settles the count to what it spent upstream (a cache hit or a coalesced answer: none).
A job keeps its estimate: its answer is made in a worker, which does not hold key limits.
"""

from dataclasses import dataclass
from typing import Final

from aiohttp import web

from pipeline.errors import PermissionDenied, RateLimited
from pipeline.ingress.keys import SERVICES
from pipeline.ingress.principal import Principal, principal_of
from pipeline.resilience.ratelimit import Limits
from schemas import GenerateRequest, GenerateResponse

# A key's rpm and tpm are per minute.
KEY_WINDOW_S: Final = 60.0


def allowed(request: web.Request, principal: Principal, model: str) -> bool:
    """Whether the key may call `model`: by the name asked, the route's, or an alias of it."""
    models = principal.models
    if models is None or model in models:
        return True
    route = request.app[SERVICES].ctx.catalog.route(model)  # UnknownModel: a 404 as ever
    names = {route.name}
    if route.single:
        spec = route.deployments[0].spec
        names.update((spec.provider_model, *spec.aliases))
    return not models.isdisjoint(names)


def estimated_tokens(body: GenerateRequest) -> int:
    """A rough token count of a request, for a key's tpm (counted when it is admitted)."""
    chars = len(body.prompt or "") + len(body.system or "")
    chars += sum(len(message.content) for message in body.messages or ())
    return chars // 4 + (body.params.max_output_tokens or 0) + 1


def check_model(request: web.Request, model: str) -> None:
    """Refuse (403) a model the request's key may not call."""
    principal = principal_of(request)
    if principal.models is not None and not allowed(request, principal, model):
        raise PermissionDenied(f"this API key may not use model {model!r}", field="model")


@dataclass(frozen=True, slots=True)
class Admitted:
    """Tokens counted under a key's tpm at admission, to be settled once the answer is known."""

    key: str
    limits: Limits
    estimated: int


async def permit(request: web.Request, body: GenerateRequest) -> Admitted | None:
    """Refuse `body` if the request's key may not make it now (403, or 429 with a wait).

    When the key has a tpm, what was counted for it (`settle` it); else None.
    """
    principal = principal_of(request)
    if principal.key_id is None:
        return None
    check_model(request, body.model)
    if principal.rpm is None and principal.tpm is None:
        return None
    limits = Limits(requests=principal.rpm, tokens=principal.tpm, window_s=KEY_WINDOW_S)
    limiter = request.app[SERVICES].backends.limiter
    key, estimated = f"apikey:{principal.key_id}", estimated_tokens(body)
    wait_s = await limiter.acquire(key, limits, tokens=estimated)
    if wait_s > 0:
        raise RateLimited(
            "this API key is over its requests or tokens per minute", retry_after_s=wait_s
        )
    return None if principal.tpm is None else Admitted(key, limits, estimated)


async def settle(
    request: web.Request, admitted: Admitted | None, response: GenerateResponse | None
) -> None:
    """Count what the answer spent upstream under the key's tpm instead of the estimate.

    `response` None: nothing was spent (the request failed, or its caller went away).
    """
    if admitted is None:
        return
    actual = 0
    if response is not None and not (response.cache.hit or response.cache.coalesced):
        actual = response.usage.total_tokens
    limiter = request.app[SERVICES].backends.limiter
    await limiter.settle(admitted.key, admitted.limits, estimated=admitted.estimated, actual=actual)
