"""The model calls of one chain invocation, each answered as the invoking caller's request.

Each call is a request of its own on promptbus's path, for the invoking tenant and key: the
key must allow the model and has it counted under its limits, the cache and coalescing
answer identical calls, and the usage ledger gets one row a call (surface `chain`).
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from pipeline.chains.usage import call_of, usage_of
from pipeline.errors import PromptbusError, StreamInterrupted
from pipeline.ingress.keys import SEND
from pipeline.ingress.middleware import REQUEST_ID_KEY
from pipeline.ingress.permit import permit, settle
from pipeline.ingress.principal import principal_of
from pipeline.ingress.recorded import recorded
from pipeline.ingress.sse import replay_pieces
from pipeline.ledger import ChainTag
from pipeline.sessions import ChainMemory
from pipeline.sync_path import Answer
from schemas import CacheControl, GenerateRequest, GenerateResponse
from schemas.chains import ChainCall, ChainUsage

_Done = Callable[[str | None, GenerateResponse], Awaitable[None]]


class ChainCalls:
    """The gateway of one invocation: its model calls answered as the caller's requests."""

    def __init__(
        self,
        request: web.Request,
        cache: CacheControl,
        *,
        streaming: bool,
        chain: tuple[str, int],
        memory: ChainMemory | None = None,
    ) -> None:
        self.streaming = streaming
        self._http = request
        self.request_id = request[REQUEST_ID_KEY]
        self._cache = cache
        self._chain = chain
        self._memory = memory
        self.made: list[ChainCall] = []

    async def generate(self, request: GenerateRequest, *, step: str | None) -> GenerateResponse:
        """The answer to one model call of the chain, on the sync path."""
        async with self._call(request, step) as (body, done):
            answer = await self._http.app[SEND].sync_path.answer(
                body,
                request_id=self._http[REQUEST_ID_KEY],
                tenant=principal_of(self._http).tenant,
                max_age_s=self._cache.max_age,
                key_id=principal_of(self._http).key_id,
            )
            response = answer.response or GenerateResponse.model_validate_json(answer.body)
            await done(step, response)
        return response

    async def stream(
        self, request: GenerateRequest, *, step: str | None
    ) -> AsyncIterator[str | GenerateResponse]:
        """One model call of the chain streamed: its deltas, then the whole answer."""
        async with self._call(request, step) as (body, done):
            async with self._http.app[SEND].sync_path.stream(
                body,
                request_id=self._http[REQUEST_ID_KEY],
                tenant=principal_of(self._http).tenant,
                max_age_s=self._cache.max_age,
                key_id=principal_of(self._http).key_id,
            ) as streamed:
                if isinstance(streamed, Answer):  # a cached answer: replayed
                    response = streamed.response or GenerateResponse.model_validate_json(
                        streamed.body
                    )
                    for piece in replay_pieces(response.text):
                        yield piece
                else:
                    async for delta in streamed.deltas():
                        yield delta
                    whole, error = streamed.outcome()
                    if whole is None:
                        raise error or StreamInterrupted("the stream ended without its answer")
                    response = whole
            await done(step, response)
        yield response

    @asynccontextmanager
    async def _call(
        self, request: GenerateRequest, step: str | None
    ) -> AsyncIterator[tuple[GenerateRequest, _Done]]:
        """One call as the caller's request: admitted under the key, one ledger row however
        it ends; the block answers it and hands the answer to `done`."""
        http = self._http
        body = request.model_copy(update={"cache": self._cache})
        if self._memory is not None:
            body = self._memory.applied(body, step)
        admitted = None
        try:
            tag = ChainTag(*self._chain, step)
            async with recorded(http, body, surface="chain", chain=tag) as answered:
                admitted = await permit(http, body)

                async def done(step: str | None, response: GenerateResponse) -> None:
                    answered(response)
                    await settle(http, admitted, response)
                    self._note(step, response)

                yield body, done
        except PromptbusError:
            await settle(http, admitted, None)
            raise

    def _note(self, step: str | None, response: GenerateResponse) -> None:
        self.made.append(call_of(step, response))

    def usage(self) -> ChainUsage:
        """What the invocation's calls spent, in all."""
        return usage_of(self.made)
