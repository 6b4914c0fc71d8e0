"""Routing: one request's upstream calls across its route's deployments, under one policy.

Each round tries the route's deployments in strategy order, skipping those whose circuit
is open or whose rate limit is full, and falling back down the order on retryable
failures (and on safety blocks where the route says so). When a round ends without an
answer, the request waits (backoff with jitter, a server's retry delay, or room under a
rate limit) and tries again, until the attempt budget or the deadline runs out. The sync
path waits in process; the job path raises `RetryLater` so that Celery waits instead.
"""

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from opentelemetry.trace import Tracer

from pipeline.catalog import Deployment, ModelSpec, Route
from pipeline.errors import (
    ContentBlocked,
    PromptbusError,
    RateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from pipeline.metrics import Metrics
from pipeline.providers.base import ChatProvider
from pipeline.resilience.breaker import CircuitBreaker
from pipeline.resilience.calls import Call, DeltaSink, judge, streamed
from pipeline.resilience.load import DeploymentLoad
from pipeline.resilience.ratelimit import Limits, RateLimiter
from pipeline.resilience.retry import RetryPolicy
from pipeline.resilience.strategies import order
from pipeline.tracing import answered, provider_span
from schemas import RoutingState
from schemas.stages import Generation

log = structlog.get_logger("promptbus.router")


class RetryLater(Exception):
    """The job path's wait: retry the generate step after `delay_s`, carrying `state`."""

    def __init__(self, delay_s: float, state: RoutingState, reason: PromptbusError) -> None:
        super().__init__(f"retry in {delay_s:.3f}s: {reason.message}")
        self.delay_s = delay_s
        self.state = state
        self.reason = reason


@dataclass
class _Round:
    """How one pass down the deployments ended, when no deployment answered."""

    state: RoutingState
    error: PromptbusError | None = None
    retry_after_s: float | None = None
    limited_s: float | None = None
    cooling_s: float | None = None


class Router:
    """Sends calls to deployments: retries, fallbacks, circuit breakers and rate limits."""

    def __init__(
        self,
        providers: Mapping[str, ChatProvider],
        *,
        policy: RetryPolicy,
        breaker: CircuitBreaker,
        limiter: RateLimiter,
        load: DeploymentLoad,
        window_s: float,
        rate_limit_wait_s: float,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._providers = providers
        self.policy = policy
        self.breaker = breaker
        self.load = load
        self._limiter = limiter
        self._window_s = window_s
        self._limit_wait_s = rate_limit_wait_s
        self._rng = rng or random.Random()
        self._metrics = metrics or Metrics()
        self._tracer = tracer

    async def generate(
        self,
        route: Route,
        call: Call,
        state: RoutingState,
        *,
        wait_in_process: bool,
        on_delta: DeltaSink | None = None,
    ) -> tuple[Generation, RoutingState]:
        """The first usable answer, with the routing state that records how it was reached.

        With `on_delta` the answer is streamed: each text delta goes to `on_delta` as it
        arrives. Retries and fallbacks then hold only until the first delta is out; a failure
        after it raises StreamInterrupted.
        """
        state = state.model_copy(update={"strategy": route.strategy})
        waited_for_room = 0.0
        while True:
            answer, ended = await self._round(route, call, state, on_delta)
            if answer is not None:
                return answer, ended.state
            state = ended.state
            wait_s, error = self._next_wait(route, ended)
            if wait_s is None:
                raise _annotated(error, state)
            deadline = state.deadline or float("inf")
            if time.time() + wait_s > deadline:
                raise _annotated(error, state)
            limited = isinstance(error, RateLimited)
            if not wait_in_process:
                if limited:
                    self._metrics.rate_limit_wait("job", wait_s)
                raise RetryLater(wait_s, state, error)
            if ended.error is None and ended.limited_s is None:
                # Every deployment is cooling down: a sync caller is told when to come back
                # rather than held for the cooldown (which is what the breaker is for).
                raise _annotated(error, state)
            if limited:
                if waited_for_room + wait_s > self._limit_wait_s:
                    raise _annotated(error, state)
                waited_for_room += wait_s
                self._metrics.rate_limit_wait("sync", wait_s)
            log.info("waiting before the next round", route=route.name, wait_s=round(wait_s, 3))
            await asyncio.sleep(wait_s)

    def _next_wait(self, route: Route, ended: _Round) -> tuple[float | None, PromptbusError]:
        """How long to wait before another round (None: give up), and the error if not."""
        state = ended.state
        if ended.error is None and ended.limited_s is not None:
            names = ", ".join(d.name for d in route.deployments)
            error: PromptbusError = RateLimited(
                f"rate limit reached for {names}", retry_after_s=ended.limited_s
            )
            return ended.limited_s, error
        if ended.error is None:
            error = UpstreamUnavailable(
                f"every deployment of {route.name!r} is cooling down after failures",
                retry_after_s=ended.cooling_s,
            )
            return ended.cooling_s, error
        error = ended.error
        if not self.policy.retryable(error) or state.attempts >= self.policy.max_attempts:
            return None, error
        wait_s = self.policy.backoff_s(state.attempts, ended.retry_after_s, self._rng)
        return wait_s, error

    async def _round(
        self, route: Route, call: Call, state: RoutingState, on_delta: DeltaSink | None
    ) -> tuple[Generation | None, _Round]:
        ended = _Round(state)
        for deployment in order(route, self.load, self._rng):
            if ended.state.attempts >= self.policy.max_attempts:
                break
            name = deployment.name
            if not self.breaker.allow(name):
                ended.cooling_s = _least(ended.cooling_s, self.breaker.retry_in(name))
                continue
            limits = self._limits(deployment.spec)
            estimate = call.estimated_tokens()
            if limits is not None:
                room_in = await self._limiter.acquire(name, limits, tokens=estimate)
                if room_in > 0:
                    self.breaker.release(name)
                    self._metrics.rate_limited(name)
                    ended.limited_s = _least(ended.limited_s, room_in)
                    continue
            ended.state = ended.state.model_copy(update={"attempts": ended.state.attempts + 1})
            try:
                generation = await self._traced_attempt(deployment, call, on_delta)
            except PromptbusError as exc:
                ended.state = _tried(ended.state, name)
                if not self._fall_back(route, deployment, exc, ended.state.attempts):
                    raise _annotated(exc, ended.state) from None
                ended.error = exc
                if exc.retry_after_s is not None:
                    ended.retry_after_s = max(ended.retry_after_s or 0.0, exc.retry_after_s)
                continue
            if limits is not None:
                await self._limiter.settle(
                    name, limits, estimated=estimate, actual=generation.usage.total_tokens
                )
            ended.state = ended.state.model_copy(update={"deployment": name})
            return generation, ended
        return None, ended

    async def _attempt(
        self, deployment: Deployment, call: Call, on_delta: DeltaSink | None
    ) -> Generation:
        """One upstream call, judged; the breaker and load stats learn how it went."""
        name, spec = deployment.name, deployment.spec
        provider = self._providers.get(spec.provider)
        if provider is None:
            self.breaker.release(name)
            raise UpstreamUnavailable(f"provider {spec.provider!r} is not configured")
        started = time.perf_counter()
        self.load.start(name)
        latency_s: float | None = None
        try:
            if on_delta is None:
                generation = await provider.generate(
                    spec.provider_model,
                    call.conversation,
                    call.params,
                    response_schema=call.response_schema,
                    tools=call.tools,
                    user=call.user,
                    safety_settings=call.safety_settings,
                )
            else:
                generation = await streamed(provider, spec.provider_model, call, on_delta)
            took = latency_s = time.perf_counter() - started
        except PromptbusError as exc:
            self._metrics.upstream(spec, time.perf_counter() - started, exc.type, None)
            if self.policy.retryable(exc):
                self.breaker.failure(name)
            else:
                # The deployment answered; the request itself was refused.
                self.breaker.success(name)
            raise
        except BaseException:
            self.breaker.release(name)
            raise
        finally:
            self.load.end(name, latency_s)
        self.breaker.success(name)
        try:
            judge(generation)
        except PromptbusError as exc:
            self._metrics.upstream(spec, took, exc.type, generation.usage)
            raise
        self._metrics.upstream(spec, took, None, generation.usage)
        return generation

    async def _traced_attempt(
        self, deployment: Deployment, call: Call, on_delta: DeltaSink | None
    ) -> Generation:
        """One attempt in a span of its own (GenAI attributes, token usage, error.type)."""
        streamed = on_delta is not None
        with provider_span(self._tracer, deployment, call.params, streamed=streamed) as span:
            generation = await self._attempt(deployment, call, on_delta)
            answered(span, generation)
            return generation

    def _fall_back(
        self, route: Route, deployment: Deployment, error: PromptbusError, attempts: int
    ) -> bool:
        """Whether `error` lets the request go on to another deployment or round."""
        retryable = self.policy.retryable(error)
        blocked = isinstance(error, ContentBlocked) and route.fallback_on_blocked
        log.warning(
            "upstream attempt failed",
            deployment=deployment.name,
            attempt=attempts,
            error=error.type,
            message=error.message,
            retry_after_s=error.retry_after_s,
            falls_back=retryable or blocked,
        )
        return retryable or blocked

    def _limits(self, spec: ModelSpec) -> Limits | None:
        if spec.rpm is None and spec.tpm is None:
            return None
        return Limits(requests=spec.rpm, tokens=spec.tpm, window_s=self._window_s)


def _tried(state: RoutingState, name: str) -> RoutingState:
    return state.model_copy(update={"tried": (*state.tried, name)})


def _least(current: float | None, value: float) -> float:
    return value if current is None else min(current, value)


def _annotated(error: PromptbusError, state: RoutingState) -> PromptbusError:
    """`error` with the attempts made and the deployments tried, for the caller to see."""
    error.attempts = state.attempts
    error.tried = state.tried or None
    if isinstance(error, UpstreamTimeout | UpstreamUnavailable) and state.attempts > 1:
        error.message = f"{error.message} (after {state.attempts} attempts)"
    return error
