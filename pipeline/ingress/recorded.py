"""What a model call made for a request's caller spent: counted in the metrics, and, for a
call beyond the request's own answer (a chain's steps, a session's summary), one usage row
however it ends."""

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from pipeline.errors import PromptbusError
from pipeline.ingress.keys import SERVICES
from pipeline.ingress.middleware import REQUEST_ID_KEY
from pipeline.ingress.principal import principal_of
from pipeline.ledger import ChainTag, answered_model, caller, failed
from schemas import GenerateRequest, GenerateResponse


@asynccontextmanager
async def recorded(
    request: web.Request, body: GenerateRequest, *, surface: str, chain: ChainTag | None = None
) -> AsyncIterator[Callable[[GenerateResponse], None]]:
    """Make the call within (for `chain`'s step, if given); hand its answer to the function
    yielded. A PromptbusError out of the block is recorded as the call's failure (and goes on)."""
    principal = principal_of(request)
    who = caller(
        body,
        tenant=principal.tenant,
        key_id=principal.key_id,
        request_id=request[REQUEST_ID_KEY],
        surface=surface,
        chain=chain,
    )
    usage = request.app[SERVICES].usage
    started = time.perf_counter()

    def answered(response: GenerateResponse) -> None:
        usage.record(answered_model(who, response, (time.perf_counter() - started) * 1000))
        count_spent(request, response)

    try:
        yield answered
    except PromptbusError as exc:
        usage.record(failed(who, exc.type, (time.perf_counter() - started) * 1000))
        raise


def count_spent(request: web.Request, response: GenerateResponse | None) -> None:
    """Count what a generated answer spent, for the tenant asking (a shared one spent nothing)."""
    if response is None or response.cache.hit or response.cache.coalesced:
        return
    metrics = request.app[SERVICES].metrics
    metrics.spent(
        response.provider_model, principal_of(request).tenant, response.usage, response.cost
    )
