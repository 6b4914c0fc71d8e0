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
from pipeline.chains.stepwise import first_llm_step, input_text
from pipeline.chains.values import as_text
from pipeline.errors import ValidationFailed
from pipeline.ingress.body import parse_model, read_json
from pipeline.ingress.chain_calls import ChainCalls
from pipeline.ingress.chain_stream import stream_chain
from pipeline.ingress.keys import SERVICES, SETTINGS
from pipeline.ingress.permit import check_model
from pipeline.ingress.principal import principal_of
from pipeline.ingress.session_summary import start_fold
from pipeline.sessions import ChainMemory, SessionWindow
from schemas import Message, Role
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
    if invocation.session_id is None:
        return await _invoked(request, chain, invocation, None)
    if invocation.stream:
        raise ValidationFailed(
            "a streamed invocation does not take a session_id; invoke it without stream",
            field="session_id",
        )
    return await _in_session(request, chain, invocation, invocation.session_id)


async def _in_session(
    request: web.Request, chain: Chain, invocation: ChainInvocation, session_id: str
) -> web.StreamResponse:
    """One turn of the session: its history before the chain's first llm step, the chain's
    input and output kept once it succeeds; the session held throughout, as a sync turn."""
    sessions = request.app[SERVICES].sessions
    window = SessionWindow.of(request.app[SETTINGS])
    tenant = principal_of(request).tenant
    async with sessions.turn(tenant, session_id):
        history = await sessions.history(tenant, session_id)
        summary = await sessions.summary(tenant, session_id) if window.summarised else None
        step = None if chain.spec.custom else first_llm_step(chain.spec)
        memory = ChainMemory(tuple(history), summary, step, window)
        reply, result = await _run(request, chain, invocation, memory)
        turn = [
            Message(role=Role.USER, content=input_text(invocation.variables) or "(no input)"),
            Message(role=Role.ASSISTANT, content=as_text(result.output) or "(no output)"),
        ]
        await sessions.append(tenant, session_id, turn)
    if window.summarised:
        start_fold(request, tenant, session_id)
    return reply


async def _invoked(
    request: web.Request, chain: Chain, invocation: ChainInvocation, memory: ChainMemory | None
) -> web.StreamResponse:
    if invocation.stream:
        calls = _calls(request, chain, invocation, memory)
        with using_gateway(calls):
            return await stream_chain(
                request,
                chain,
                dict(invocation.variables),
                lambda s: result_of(chain, calls, s),
            )
    reply, _ = await _run(request, chain, invocation, memory)
    return reply


async def _run(
    request: web.Request, chain: Chain, invocation: ChainInvocation, memory: ChainMemory | None
) -> tuple[web.Response, ChainResult]:
    """The chain run to its end here, and its result."""
    spec = chain.spec
    calls = _calls(request, chain, invocation, memory)
    with using_gateway(calls):
        try:
            state = await chain.runnable.ainvoke(dict(invocation.variables))
        except INPUT_ERRORS as exc:
            if not spec.custom:  # a config chain's variables were checked: a bug, as it is
                raise
            raise refusal(spec.id, exc) from exc
    body = result_of(chain, calls, state)
    reply = web.Response(body=body.model_dump_json(), content_type="application/json")
    return reply, body


def _calls(
    request: web.Request, chain: Chain, invocation: ChainInvocation, memory: ChainMemory | None
) -> ChainCalls:
    spec = chain.spec
    return ChainCalls(
        request,
        invocation.cache,
        streaming=invocation.stream,
        chain=(spec.id, spec.version),
        memory=memory,
    )


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
