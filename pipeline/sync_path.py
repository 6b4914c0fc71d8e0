"""The sync fast path: cache lookup, then one coalesced run of the stages per key."""

from handlers import StageContext, cache_lookup, dedupe, generate, postprocess
from pipeline.coalesce import SingleFlight
from pipeline.errors import UpstreamTimeout
from schemas import GenerateResponse, StageEnvelope


class SyncPath:
    """Answers one request inline: the stages the Celery chain runs, in process."""

    def __init__(self, ctx: StageContext, *, coalesce_wait_s: float) -> None:
        self._ctx = ctx
        self._flights: SingleFlight[GenerateResponse] = SingleFlight()
        self._wait_s = coalesce_wait_s

    @property
    def in_flight(self) -> int:
        """Distinct upstream calls running now."""
        return self._flights.in_flight()

    async def answer(self, envelope: StageEnvelope) -> GenerateResponse:
        """The cached answer if fresh enough, else one shared upstream call's answer."""
        envelope = await cache_lookup(await dedupe(envelope, self._ctx), self._ctx)
        if envelope.response is not None:
            return envelope.response
        assert envelope.cache_key is not None
        # Callers that may not store must not ride on a call that stores, and vice versa.
        flight = f"{envelope.cache_key}:{int(envelope.request.cache.no_store)}"
        try:
            response, shared = await self._flights.run(
                flight, lambda: self._fill(envelope), wait_s=self._wait_s
            )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"no answer within {self._wait_s:g}s") from exc
        if shared:
            info = response.cache.model_copy(update={"coalesced": True})
            response = response.model_copy(update={"cache": info})
        return response

    async def _fill(self, envelope: StageEnvelope) -> GenerateResponse:
        envelope = await postprocess(await generate(envelope, self._ctx), self._ctx)
        assert envelope.response is not None
        return envelope.response
