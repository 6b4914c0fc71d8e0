"""Cache lookup: a fresh enough stored answer comes back marked as a hit; nothing else does."""

import time
from typing import Any

import pytest

from handlers import cache_lookup, identified
from pipeline.cache.responses import encode
from schemas import GenerateRequest, StageEnvelope
from tests.handlers.stage_support import Stages
from tests.support.envelopes import answer


def request(**cache: Any) -> GenerateRequest:
    return GenerateRequest(model="flash", prompt="name a colour", cache=cache)


async def stored(stages: Stages, req: GenerateRequest, *, age_s: float = 0.0) -> StageEnvelope:
    """The request identified, with an answer stored under its key `age_s` ago."""
    envelope = await identified(stages.envelope(req), stages.ctx)
    assert envelope.cache_key is not None
    entry = encode(answer("blue", key=envelope.cache_key), stored_at=time.time() - age_s, ttl_s=600)
    assert await stages.l1.set(envelope.cache_key, entry, ttl=600)
    return envelope


async def test_a_stored_answer_comes_back_as_a_hit_with_its_tier_and_age(stages: Stages) -> None:
    # Given an answer stored under the request's key 5 s ago
    envelope = await stored(stages, request(), age_s=5.0)

    # When the request is looked up
    found = await cache_lookup(envelope, stages.ctx)

    # Then the stored answer is attached, marked as an L1 hit of about that age
    assert found.response is not None
    assert found.response.text == "blue"
    cache = found.response.cache
    assert cache.hit is True
    assert cache.tier == "l1"
    assert cache.key == envelope.cache_key
    assert cache.age_s == pytest.approx(5.0, abs=1.0)
    assert cache.ttl_s == 600
    assert cache.stored is False


async def test_no_cache_skips_the_lookup(stages: Stages) -> None:
    # Given a stored answer, and a request that says no_cache
    envelope = await stored(stages, request(no_cache=True))

    # When it is looked up, Then no answer is attached (the model is asked)
    found = await cache_lookup(envelope, stages.ctx)
    assert found.response is None


async def test_an_answer_older_than_max_age_is_skipped(stages: Stages) -> None:
    # Given an answer stored two minutes ago
    old = await stored(stages, request(max_age=60), age_s=120.0)

    # When a request that accepts at most a minute-old answer looks it up
    found = await cache_lookup(old, stages.ctx)

    # Then it is not served; a request that accepts five minutes is
    assert found.response is None
    lenient = await cache_lookup(
        await identified(stages.envelope(request(max_age=300)), stages.ctx), stages.ctx
    )
    assert lenient.response is not None
    assert lenient.response.cache.age_s == pytest.approx(120.0, abs=1.0)


async def test_a_key_with_nothing_stored_is_a_miss(stages: Stages) -> None:
    envelope = await identified(stages.envelope(request()), stages.ctx)
    found = await cache_lookup(envelope, stages.ctx)
    assert found.response is None
    assert found == envelope


async def test_a_request_not_identified_is_a_value_error(stages: Stages) -> None:
    # Given an envelope with no cache key (identify did not run)
    envelope = stages.envelope(request())

    # When it is looked up, Then the stage refuses it, saying what is missing
    with pytest.raises(ValueError, match="identify it first"):
        await cache_lookup(envelope, stages.ctx)
