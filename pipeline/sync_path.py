"""The sync fast path: cache lookup, then one coalesced run of the stages per key."""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog

from handlers import StageContext, generate, identify, postprocess
from pipeline.coalesce import RedisSingleFlight, SingleFlight, StreamFlight, StreamFlights
from pipeline.errors import PromptbusError, UpstreamTimeout
from pipeline.tracing import names, stage_span
from schemas import GenerateRequest, GenerateResponse, StageEnvelope

log = structlog.get_logger("promptbus.sync")


@dataclass(frozen=True, slots=True)
class Answer:
    """A ready-to-send answer: its JSON body, its cache age when it was a hit, and the
    response itself when it was generated (a hit is bytes only)."""

    body: bytes
    age_s: float | None = None
    response: GenerateResponse | None = None


class LiveStream:
    """A streamed answer being generated: its deltas as they come, then the whole answer."""

    def __init__(self, flight: StreamFlight, shared: bool) -> None:
        self._flight = flight
        self.shared = shared

    async def opened(self) -> None:
        """Wait for the first delta; raises the error of a stream that failed before it."""
        await self._flight.started()
        if not self._flight.deltas and self._flight.error is not None:
            raise self._flight.error

    def deltas(self) -> AsyncIterator[str]:
        """Every delta from the first, live; raises the error of a stream that broke."""
        return self._flight.follow()

    def outcome(self) -> tuple[GenerateResponse | None, PromptbusError | None]:
        """How the stream ended so far: its whole answer, or the error that broke it."""
        response = self._flight.response
        if response is not None and self.shared:
            info = response.cache.model_copy(update={"coalesced": True})
            response = response.model_copy(update={"cache": info})
        return response, self._flight.error

    @property
    def response(self) -> GenerateResponse | None:
        """The whole response once the stream has finished normally, else None."""
        return self._flight.response

    def answer(self) -> Answer:
        """The whole answer, once `deltas` has ended."""
        response = self._flight.response
        if response is None:
            raise RuntimeError("the stream has not finished")
        if self.shared:
            info = response.cache.model_copy(update={"coalesced": True})
            response = response.model_copy(update={"cache": info})
        return Answer(response.model_dump_json().encode())


class SyncPath:
    """Answers one request inline: the stages the Celery chain runs, in process."""

    def __init__(
        self,
        ctx: StageContext,
        *,
        coalesce_wait_s: float,
        across_processes: RedisSingleFlight | None = None,
    ) -> None:
        self._ctx = ctx
        self._metrics = ctx.metrics
        self._flights: SingleFlight[GenerateResponse] = SingleFlight()
        self._across = across_processes
        self._wait_s = coalesce_wait_s
        self._streams = StreamFlights()

    @property
    def in_flight(self) -> int:
        """Distinct upstream calls running now, streamed or not."""
        return self._flights.in_flight() + self._streams.in_flight()

    async def answer(
        self,
        request: GenerateRequest,
        *,
        request_id: str,
        tenant: str,
        max_age_s: float | None,
        key: str | None = None,
        key_id: str | None = None,
    ) -> Answer:
        """The cached answer if fresh enough, else one shared upstream call's answer."""
        key = key or identify(self._ctx.catalog, request, tenant)
        if self._ctx.tracer is None:  # tracing off: a hit pays one check for it
            hit = await self._hit(request, key, max_age_s)
        else:
            with stage_span(self._ctx.tracer, names.LOOKUP) as span:
                hit = await self._hit(request, key, max_age_s)
                span.set_attribute(names.CACHE_HIT, hit is not None)
        if hit is not None:
            return hit
        envelope = _envelope(request, request_id, tenant, max_age_s, key, key_id)
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            response = await self._coalesced(envelope, key)
            log.info(
                "generated",
                model=response.provider_model,
                coalesced=response.cache.coalesced,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
            )
        return Answer(response.model_dump_json().encode(), response=response)

    @asynccontextmanager
    async def stream(
        self,
        request: GenerateRequest,
        *,
        request_id: str,
        tenant: str,
        max_age_s: float | None,
        key: str | None = None,
        key_id: str | None = None,
    ) -> AsyncIterator[Answer | LiveStream]:
        """The cached answer if fresh enough, else a live stream shared by identical callers.

        Leaving the context stops listening: the last listener to leave cancels the upstream
        call, and a stream that did not finish normally is never stored.
        """
        key = key or identify(self._ctx.catalog, request, tenant)
        if self._ctx.tracer is None:  # tracing off: a hit pays one check for it
            hit = await self._hit(request, key, max_age_s)
        else:
            with stage_span(self._ctx.tracer, names.LOOKUP) as span:
                hit = await self._hit(request, key, max_age_s)
                span.set_attribute(names.CACHE_HIT, hit is not None)
        if hit is not None:
            yield hit
            return
        envelope = _envelope(request, request_id, tenant, max_age_s, key, key_id)

        async def produce(flight: StreamFlight) -> GenerateResponse:
            tracer = self._ctx.tracer
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                with stage_span(tracer, names.GENERATE, envelope):
                    done = await generate(envelope, self._ctx, on_delta=flight.push)
                with stage_span(tracer, names.POSTPROCESS, envelope):
                    done = await postprocess(done, self._ctx)
                assert done.response is not None
                log.info("streamed", model=done.response.provider_model, deltas=len(flight.deltas))
                return done.response

        async with self._streams.join(_flight_key(request, key), produce) as (flight, shared):
            if shared:
                self._metrics.coalesced("process")
            yield LiveStream(flight, shared)

    async def _hit(
        self, request: GenerateRequest, key: str, max_age_s: float | None
    ) -> Answer | None:
        """The cache lookup stage, kept lean: a hit builds no envelope."""
        if request.cache.no_cache:
            self._metrics.cache_bypass()
            return None
        now = time.time()
        cached = await self._ctx.cache.fresh(key, max_age_s, now)
        if cached is None:
            self._metrics.cache_miss()
            return None
        self._metrics.cache_hit(cached.tier)
        age = cached.age(now)
        return Answer(cached.body(key, tier=cached.tier, age_s=age), age)

    async def _coalesced(self, envelope: StageEnvelope, key: str) -> GenerateResponse:
        flight = _flight_key(envelope.request, key)
        try:
            response, shared = await self._flights.run(
                flight, lambda: self._fill_once(envelope, key), wait_s=self._wait_s
            )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"no answer within {self._wait_s:g}s") from exc
        if shared:
            self._metrics.coalesced("process")
            info = response.cache.model_copy(update={"coalesced": True})
            response = response.model_copy(update={"cache": info})
        return response

    async def _fill_once(self, envelope: StageEnvelope, key: str) -> GenerateResponse:
        """One process's call, shared with other processes through Redis when there is one."""
        # An answer that is not stored cannot be handed to other processes through the cache.
        if self._across is None or envelope.request.cache.no_store:
            return await self._fill(envelope)

        async def stored() -> GenerateResponse | None:
            now = time.time()
            cached = await self._ctx.cache.fresh(key, None, now)
            if cached is None:
                return None
            return cached.response(key, tier=cached.tier, age_s=cached.age(now))

        response, shared = await self._across.run(key, lambda: self._fill(envelope), check=stored)
        if shared:
            self._metrics.coalesced("processes")
            info = response.cache.model_copy(update={"coalesced": True, "hit": False})
            response = response.model_copy(update={"cache": info})
        return response

    async def _fill(self, envelope: StageEnvelope) -> GenerateResponse:
        tracer = self._ctx.tracer
        with stage_span(tracer, names.GENERATE, envelope):
            envelope = await generate(envelope, self._ctx)
        with stage_span(tracer, names.POSTPROCESS, envelope):
            envelope = await postprocess(envelope, self._ctx)
        assert envelope.response is not None
        return envelope.response


def _envelope(
    request: GenerateRequest,
    request_id: str,
    tenant: str,
    max_age_s: float | None,
    key: str,
    key_id: str | None,
) -> StageEnvelope:
    """The envelope of a miss; every field was validated already, so it skips validation.

    `key_id` is the caller's API key (its budget is checked and charged); None: no key.
    """
    return StageEnvelope.model_construct(
        request_id=request_id,
        tenant=tenant,
        key_id=key_id,
        request=request,
        max_age_s=max_age_s,
        cache_key=key,
    )


def _flight_key(request: GenerateRequest, key: str) -> str:
    """Callers that may not store must not ride on a call that stores, and vice versa."""
    return f"{key}:{int(request.cache.no_store)}"
