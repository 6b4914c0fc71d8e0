"""GET /v1/chains, GET /v1/chains/{id}, POST /v1/chains/{id}/invoke: chains from config.

An invocation runs the chain's Runnable in this process. Each of its model calls is a
request of its own on promptbus's path, for the invoking tenant and key: the key must allow
the model and has it counted under its limits, the cache and coalescing answer identical
steps, and the usage ledger gets one record a call (surface `chain`).
"""

import time
from typing import Any

from aiohttp import web

from pipeline.chains import ChainVersion, using_gateway
from pipeline.chains.spec import LlmStep
from pipeline.errors import PromptbusError, ValidationFailed
from pipeline.ingress.body import parse_model, read_json
from pipeline.ingress.keys import SEND, SERVICES, SETTINGS
from pipeline.ingress.middleware import REQUEST_ID_KEY
from pipeline.ingress.permit import check_model, permit, settle
from pipeline.ingress.principal import principal_of
from pipeline.ingress.serve import count_spent
from pipeline.ledger import answered_model, caller, failed
from schemas import CacheControl, GenerateRequest, GenerateResponse
from schemas.chains import (
    ChainCall,
    ChainInfo,
    ChainInvocation,
    ChainList,
    ChainResult,
    ChainStepInfo,
    ChainUsage,
)


def add_routes(app: web.Application) -> None:
    """Register the chain routes on `app`."""
    app.router.add_get("/v1/chains", list_chains)
    app.router.add_get("/v1/chains/{chain_id}", get_chain)
    app.router.add_post("/v1/chains/{chain_id}/invoke", invoke_chain)


async def list_chains(request: web.Request) -> web.Response:
    """Every version of every chain, by id, then version."""
    return _listing(request.app[SERVICES].chains.versions())


async def get_chain(request: web.Request) -> web.Response:
    """One chain's versions; 404 for an unknown id."""
    return _listing(request.app[SERVICES].chains.versions(request.match_info["chain_id"]))


async def invoke_chain(request: web.Request) -> web.Response:
    """Run the chain with the variables given; its output, step values and calls."""
    invocation = parse_model(
        ChainInvocation, await read_json(request, request.app[SETTINGS].max_body_bytes)
    )
    chain = request.app[SERVICES].chains.get(request.match_info["chain_id"], invocation.version)
    spec = chain.spec
    if not spec.custom:  # a custom chain's Runnable checks its own input
        _check_variables(spec, invocation.variables)
    for step in spec.steps.values():
        if isinstance(step, LlmStep):
            check_model(request, step.model)  # a 403 before any step runs
    calls = ChainCalls(request, spec, invocation.cache)
    with using_gateway(calls):
        try:
            state = await chain.runnable.ainvoke(dict(invocation.variables))
        except (KeyError, TypeError, ValueError) as exc:
            if not spec.custom:
                raise
            # What a Runnable raises for input it cannot take (a prompt's missing variable).
            raise ValidationFailed(
                f"custom chain {spec.id!r} refused its variables: {exc}", field="variables"
            ) from exc
    result = ChainResult(
        id=request[REQUEST_ID_KEY],
        chain=spec.id,
        version=spec.version,
        output=state[spec.output],
        steps={name: value for name, value in state.items() if name in spec.steps},
        calls=tuple(calls.made),
        usage=calls.usage(),
    )
    return web.Response(body=result.model_dump_json(), content_type="application/json")


class ChainCalls:
    """The gateway of one invocation: its model calls answered as the caller's requests."""

    def __init__(self, request: web.Request, chain: ChainVersion, cache: CacheControl) -> None:
        self._request = request
        self._chain = chain
        self._cache = cache
        self.made: list[ChainCall] = []
        self._saved_usd = 0.0

    async def generate(self, request: GenerateRequest, *, step: str | None) -> GenerateResponse:
        """The answer to one model call of the chain, on the sync path."""
        http = self._request
        principal = principal_of(http)
        body = request.model_copy(update={"cache": self._cache})
        who = caller(
            body,
            tenant=principal.tenant,
            key_id=principal.key_id,
            request_id=http[REQUEST_ID_KEY],
            surface="chain",
        )
        usage = http.app[SERVICES].usage
        started = time.perf_counter()
        admitted = None
        try:
            admitted = await permit(http, body)
            answer = await http.app[SEND].sync_path.answer(
                body,
                request_id=http[REQUEST_ID_KEY],
                tenant=principal.tenant,
                max_age_s=self._cache.max_age,
                key_id=principal.key_id,
            )
        except PromptbusError as exc:
            usage.record(failed(who, exc.type, _ms_since(started)))
            await settle(http, admitted, None)
            raise
        response = answer.response or GenerateResponse.model_validate_json(answer.body)
        usage.record(answered_model(who, response, _ms_since(started)))
        count_spent(http, response)
        await settle(http, admitted, response)
        self._note(step, response)
        return response

    def _note(self, step: str | None, response: GenerateResponse) -> None:
        shared = response.cache.hit or response.cache.coalesced
        if shared:
            self._saved_usd += response.cost.total_usd
        self.made.append(
            ChainCall(
                step=step,
                model=response.model,
                provider_model=response.provider_model,
                cache_hit=response.cache.hit,
                coalesced=response.cache.coalesced,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                cost_usd=0.0 if shared else response.cost.total_usd,
            )
        )

    def usage(self) -> ChainUsage:
        """What the invocation's calls spent, in all."""
        return ChainUsage(
            calls=len(self.made),
            cache_hits=sum(call.cache_hit for call in self.made),
            input_tokens=sum(call.input_tokens for call in self.made),
            output_tokens=sum(call.output_tokens for call in self.made),
            cost_usd=round(sum(call.cost_usd for call in self.made), 9),
            saved_usd=round(self._saved_usd, 9),
        )


def _check_variables(chain: ChainVersion, variables: dict[str, Any]) -> None:
    """A 422 naming the first variable missing, or given and not taken."""
    name = f"chain {chain.id!r} version {chain.version}"
    missing = sorted(set(chain.inputs) - set(variables))
    if missing:
        raise ValidationFailed(
            f"{name} needs variable {missing[0]!r} (missing: {', '.join(missing)})",
            field=f"variables.{missing[0]}",
        )
    extra = sorted(set(variables) - set(chain.inputs))
    if extra:
        raise ValidationFailed(
            f"{name} has no variable {extra[0]!r} (it takes {', '.join(chain.inputs)})",
            field=f"variables.{extra[0]}",
        )


def _listing(versions: list[ChainVersion]) -> web.Response:
    body = ChainList(data=tuple(_info(version) for version in versions))
    return web.Response(body=body.model_dump_json(), content_type="application/json")


def _info(chain: ChainVersion) -> ChainInfo:
    return ChainInfo(
        id=chain.id,
        version=chain.version,
        description=chain.description,
        inputs=chain.inputs,
        output=chain.output,
        steps=tuple(ChainStepInfo(name=s.name, kind=s.kind) for s in chain.steps.values()),
    )


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
