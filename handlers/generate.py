"""Generate: the routed model call (retries, fallbacks, limits), and structured output."""

import dataclasses
import time

from handlers.context import StageContext
from handlers.structured import structured_answer
from pipeline.errors import PromptbusError
from pipeline.providers.base import ToolOffer
from pipeline.resilience.calls import Call, DeltaSink
from pipeline.resilience.router import RetryLater
from schemas import Message, RoutingState, StageEnvelope
from schemas.stages import Generation


class StageDeferred(Exception):
    """A job's step must run again after `delay_s` with `envelope` (a Celery retry)."""

    def __init__(self, delay_s: float, envelope: StageEnvelope, reason: str) -> None:
        super().__init__(reason)
        self.delay_s = delay_s
        self.envelope = envelope


async def generate(
    envelope: StageEnvelope, ctx: StageContext, *, on_delta: DeltaSink | None = None
) -> StageEnvelope:
    """Attach the answer of the first deployment that gives a usable one.

    A sync request waits between attempts in process; a job's step is deferred instead
    (StageDeferred), carrying its routing state so that the budget and deadline hold
    across Celery retries.

    With `on_delta` the answer is streamed to it as it arrives. A structured answer is the
    exception: it is checked (and repaired) whole, then handed over in one delta, since
    text already sent cannot be taken back.
    """
    if envelope.cache_key is None:
        raise ValueError("generate needs the request's key: identify it first")
    request = envelope.request
    if ctx.budgets is not None:
        await ctx.budgets.check(envelope.tenant, envelope.key_id)
    router = ctx.router
    route = ctx.catalog.route(request.model)
    in_job = envelope.job_id is not None
    policy = router.policy
    if envelope.routing is not None:
        state = envelope.routing
    elif in_job and envelope.deadline is not None:
        state = RoutingState(deadline=envelope.deadline)
    else:
        budget_s = policy.job_deadline_s if in_job else policy.sync_deadline_s
        state = RoutingState(deadline=time.time() + budget_s)
    call = Call(
        request.conversation(),
        request.params,
        request.response_schema,
        tools=ToolOffer.of(request),
        safety_settings=request.safety_settings,
        user=request.user,
    )

    async def routed(conversation: tuple[Message, ...]) -> Generation:
        nonlocal state
        answer, state = await router.generate(
            route,
            dataclasses.replace(call, conversation=conversation),
            state,
            wait_in_process=not in_job,
            on_delta=on_delta if request.response_schema is None else None,
        )
        return answer

    try:
        if request.response_schema is None:
            generation = await routed(call.conversation)
        else:
            generation = await structured_answer(routed, call.conversation, request.response_schema)
            if on_delta is not None:
                on_delta(generation.text)
    except RetryLater as later:
        deferred = envelope.model_copy(update={"routing": later.state})
        raise StageDeferred(later.delay_s, deferred, later.reason.message) from None
    except PromptbusError as exc:
        if exc.attempts is None:
            exc.attempts, exc.tried = state.attempts, state.tried or None
        raise
    return envelope.model_copy(update={"generation": generation, "routing": state})
