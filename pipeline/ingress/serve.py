"""One request through the one path: cache, coalescing, routing; plain or streamed.

Every API surface (promptbus's own and the compatible ones) parses its body into a
`GenerateRequest`, then hands it here with its own renderings of an answer and a stream.
Each request served here leaves one usage record in the ledger, however it ends.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from handlers import identify
from pipeline.errors import PromptbusError
from pipeline.ingress.cache_control import merge_cache_control
from pipeline.ingress.keys import SEND, SERVICES, SETTINGS
from pipeline.ingress.middleware import REQUEST_ID_KEY
from pipeline.ingress.permit import Admitted, permit, settle
from pipeline.ingress.principal import principal_of
from pipeline.ingress.recorded import count_spent
from pipeline.ingress.session_summary import start_fold
from pipeline.ingress.sse import StreamFormat, answer_headers, send_stream
from pipeline.ledger import (
    CANCELLED,
    Caller,
    UsageEntry,
    UsageSink,
    answered,
    answered_model,
    caller,
    failed,
)
from pipeline.sessions import turn_of, with_history
from pipeline.sync_path import Answer, LiveStream
from schemas import GenerateRequest, GenerateResponse

# How a surface renders a whole answer (its JSON body, parsed) as its own response body.
AnswerRenderer = Callable[[bytes, Mapping[str, Any]], bytes]


async def serve(
    request: web.Request,
    body: GenerateRequest,
    *,
    stream: StreamFormat,
    render: AnswerRenderer | None = None,
    key: str | None = None,
    tenant: str,
    stream_headers: Mapping[str, str] | None = None,
    surface: str = "generate",
) -> web.StreamResponse:
    """Answer `body` as a plain response (`render`ed; None: promptbus's own) or a stream.

    `tenant` is the request's (its principal's): the cache key and coalescing are its own.
    The request's key must allow the model (pipeline/ingress/permit.py).
    The request's `Cache-Control` header tightens the body's cache controls.
    `stream_headers` go on a streamed answer (a format that is not SSE names its type).
    `surface` names the API in the usage record.
    A request with a `session_id` is one turn of its session (`_in_session`).
    """
    if body.session_id is not None:
        return await _in_session(request, body, stream, render, tenant, stream_headers, surface)
    return await _answer(request, body, stream, render, key, tenant, stream_headers, surface)


async def _in_session(
    request: web.Request,
    body: GenerateRequest,
    stream: StreamFormat,
    render: AnswerRenderer | None,
    tenant: str,
    stream_headers: Mapping[str, str] | None,
    surface: str,
) -> web.StreamResponse:
    """One turn: sent after the session's kept turns, and kept itself once answered.

    The session is held from reading its history to keeping the turn, so that turns of
    one session run one after the other, each with the one before it.
    """
    assert body.session_id is not None
    sessions = request.app[SERVICES].sessions
    settings = request.app[SETTINGS]
    session_id = body.session_id
    summarised = settings.session_memory == "summary"
    async with sessions.turn(tenant, session_id):
        history = await sessions.history(tenant, session_id)
        sent = with_history(
            body,
            history,
            max_turns=settings.session_max_turns,
            max_tokens=settings.session_max_tokens,
            summary=await sessions.summary(tenant, session_id) if summarised else None,
        )

        async def keep(response: GenerateResponse) -> None:
            await sessions.append(tenant, session_id, turn_of(body, response))
            if summarised:
                start_fold(request, tenant, session_id)

        # The key is the sent request's: it covers the history.
        return await _answer(
            request, sent, stream, render, None, tenant, stream_headers, surface, keep
        )


async def _answer(
    request: web.Request,
    body: GenerateRequest,
    stream: StreamFormat,
    render: AnswerRenderer | None,
    key: str | None,
    tenant: str,
    stream_headers: Mapping[str, str] | None,
    surface: str,
    keep: Callable[[GenerateResponse], Awaitable[None]] | None = None,
) -> web.StreamResponse:
    """`serve`'s answer; `keep` is given the whole answer once it was sent in full."""
    started = time.perf_counter()
    principal = principal_of(request)
    request_id = request[REQUEST_ID_KEY]
    who = caller(
        body, tenant=tenant, key_id=principal.key_id, request_id=request_id, surface=surface
    )
    usage = request.app[SERVICES].usage
    admitted: Admitted | None = None
    try:
        admitted = await permit(request, body)
        controls = merge_cache_control(request.headers.get("Cache-Control"), body.cache)
        if controls is not body.cache:
            # Cache controls are not part of the key: a key given stays right.
            body = body.model_copy(update={"cache": controls})
        key = key or identify(request.app[SERVICES].ctx.catalog, body, tenant)
        sync_path = request.app[SEND].sync_path
        if body.stream:
            async with sync_path.stream(
                body,
                request_id=request_id,
                tenant=tenant,
                max_age_s=controls.max_age,
                key=key,
                key_id=principal.key_id,
            ) as streamed:
                sent = await _send_stream(
                    request, streamed, stream, stream_headers, usage, who, started
                )
                live = isinstance(streamed, LiveStream) and not streamed.shared
                if live:
                    count_spent(request, streamed.response)
                await settle(request, admitted, streamed.response if live else None)
                if keep is not None and (whole := _whole(streamed)) is not None:
                    await keep(whole)
                return sent
        answer = await sync_path.answer(
            body,
            request_id=request_id,
            tenant=tenant,
            max_age_s=controls.max_age,
            key=key,
            key_id=principal.key_id,
        )
    except PromptbusError as exc:
        usage.record(failed(who, exc.type, _ms_since(started)))
        await settle(request, admitted, None)
        raise
    except asyncio.CancelledError:
        usage.record(failed(who, None, _ms_since(started), status=CANCELLED))
        raise
    if answer.response is not None:
        count_spent(request, answer.response)
    if admitted is not None:  # a key with a tpm: the hit path pays nothing otherwise
        await settle(request, admitted, answer.response)
    parsed = orjson.loads(answer.body)
    usage.record(answered(who, parsed, _ms_since(started)))
    if keep is not None:
        await keep(answer.response or GenerateResponse.model_validate(parsed))
    payload = answer.body if render is None else render(answer.body, parsed)
    headers = {"Content-Type": "application/json", **answer_headers(answer)}
    return web.Response(body=payload, headers=headers)


async def _send_stream(
    request: web.Request,
    streamed: Answer | LiveStream,
    fmt: StreamFormat,
    headers: Mapping[str, str] | None,
    usage: UsageSink,
    who: Caller,
    started: float,
) -> web.StreamResponse:
    """Send a stream; its record is made once it ended, however it ended.

    An error before the first delta propagates (and `serve` records it); after that the
    stream says so in an event, and the record here names it.
    """
    if isinstance(streamed, Answer):
        parsed = orjson.loads(streamed.body)
        usage.record(answered(who, parsed, _ms_since(started)))
        return await send_stream(request, streamed, fmt, headers, parsed)
    response = await send_stream(request, streamed, fmt, headers)
    usage.record(_stream_entry(who, streamed, started))
    return response


def _whole(streamed: Answer | LiveStream) -> GenerateResponse | None:
    """A sent stream's whole answer; None when it broke off."""
    if isinstance(streamed, Answer):
        return streamed.response or GenerateResponse.model_validate_json(streamed.body)
    return streamed.outcome()[0]


def _stream_entry(who: Caller, streamed: LiveStream, started: float) -> UsageEntry:
    """A live stream's record: its whole answer, the error that broke it, or its caller gone."""
    response, error = streamed.outcome()
    if response is not None:
        return answered_model(who, response, _ms_since(started))
    if error is not None:
        return failed(who, error.type, _ms_since(started))
    return failed(who, None, _ms_since(started), status=CANCELLED)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
