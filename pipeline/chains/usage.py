"""What a chain's model calls spent: one `ChainCall` a call, and their sum."""

from collections.abc import Sequence

from schemas import GenerateResponse
from schemas.chains import ChainCall, ChainUsage


def call_of(step: str | None, response: GenerateResponse) -> ChainCall:
    """The call `step` made, answered by `response` (a shared answer cost nothing, saved its
    price)."""
    shared = response.cache.hit or response.cache.coalesced
    price = response.cost.total_usd
    return ChainCall(
        step=step,
        model=response.model,
        provider_model=response.provider_model,
        cache_hit=response.cache.hit,
        coalesced=response.cache.coalesced,
        input_tokens=response.usage.input_tokens,
        output_tokens=response.usage.output_tokens,
        cost_usd=0.0 if shared else price,
        saved_usd=price if shared else 0.0,
    )


def usage_of(calls: Sequence[ChainCall]) -> ChainUsage:
    """What `calls` spent, in all."""
    return ChainUsage(
        calls=len(calls),
        cache_hits=sum(call.cache_hit for call in calls),
        input_tokens=sum(call.input_tokens for call in calls),
        output_tokens=sum(call.output_tokens for call in calls),
        cost_usd=round(sum(call.cost_usd for call in calls), 9),
        saved_usd=round(sum(call.saved_usd for call in calls), 9),
    )
