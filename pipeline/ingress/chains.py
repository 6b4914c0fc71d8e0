"""GET /v1/chains, GET /v1/chains/{id}, POST /v1/chains/{id}/invoke: chains from config.

An invocation runs the chain's Runnable in this process, each model call a request of the
invoking caller's own (pipeline/ingress/chain_calls.py); with `stream: true` its steps and
the output step's text come as Server-Sent Events (pipeline/ingress/chain_stream.py).
"""

from typing import Any

from aiohttp import web

from pipeline.chains import Chain, ChainVersion, using_gateway
from pipeline.chains.build import State
from pipeline.chains.custom import INPUT_ERRORS, refusal
from pipeline.chains.spec import LlmStep
from pipeline.errors import ValidationFailed
from pipeline.ingress.body import parse_model, read_json
from pipeline.ingress.chain_calls import ChainCalls
from pipeline.ingress.chain_stream import stream_chain
from pipeline.ingress.keys import SERVICES, SETTINGS
from pipeline.ingress.permit import check_model
from schemas.chains import ChainInfo, ChainInvocation, ChainList, ChainResult, ChainStepInfo


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


async def invoke_chain(request: web.Request) -> web.StreamResponse:
    """Run the chain with the variables given; its output, step values and calls."""
    invocation = parse_model(
        ChainInvocation, await read_json(request, request.app[SETTINGS].max_body_bytes)
    )
    chain = request.app[SERVICES].chains.get(request.match_info["chain_id"], invocation.version)
    spec = chain.spec
    if not spec.custom:  # a custom chain's Runnable checks its own input
        check_variables(spec, invocation.variables)
    for step in spec.steps.values():
        if isinstance(step, LlmStep):
            check_model(request, step.model)  # a 403 before any step runs
    calls = ChainCalls(
        request, invocation.cache, streaming=invocation.stream, chain=(spec.id, spec.version)
    )
    variables = dict(invocation.variables)
    with using_gateway(calls):
        if invocation.stream:
            return await stream_chain(
                request, chain, variables, lambda s: result_of(chain, calls, s)
            )
        try:
            state = await chain.runnable.ainvoke(variables)
        except INPUT_ERRORS as exc:
            if not spec.custom:  # a config chain's variables were checked: a bug, as it is
                raise
            raise refusal(spec.id, exc) from exc
    body = result_of(chain, calls, state)
    return web.Response(body=body.model_dump_json(), content_type="application/json")


def result_of(chain: Chain, calls: ChainCalls, state: State) -> ChainResult:
    """The invocation's answer from the chain's final state and the calls it made."""
    spec = chain.spec
    return ChainResult(
        id=calls.request_id,
        chain=spec.id,
        version=spec.version,
        output=state[spec.output],
        steps={name: value for name, value in state.items() if name in spec.steps},
        calls=tuple(calls.made),
        usage=calls.usage(),
    )


def check_variables(chain: ChainVersion, variables: dict[str, Any]) -> None:
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
