"""The job stores' one-time claims and idempotency keys, memory and Redis."""

from pipeline.jobs.memory import MemoryJobStore
from pipeline.jobs.store import JobStore
from tests.support.clock import FakeClock

# The shared fixtures, imported so pytest finds them here.


async def test_claims_are_one_time_until_released(store: JobStore) -> None:
    # Given a claim taken for a minute
    assert await store.claim("emit", "job_a", 60) is True

    # Then it cannot be taken twice, while other kinds and keys are free
    assert await store.claim("emit", "job_a", 60) is False
    assert await store.claim("dispatch", "job_a", 60) is True
    assert await store.claim("emit", "job_b", 60) is True

    # When it is released, it can be taken again, once
    await store.release("emit", "job_a")
    assert await store.claim("emit", "job_a", 60) is True
    assert await store.claim("emit", "job_a", 60) is False


async def test_a_claim_is_free_again_once_its_time_is_up(
    memory_store: MemoryJobStore, clock: FakeClock
) -> None:
    # Given a claim taken for a minute
    assert await memory_store.claim("emit", "job_a", 60) is True

    # Then it holds until its time is up, and no longer
    clock.advance(59)
    assert await memory_store.claim("emit", "job_a", 60) is False
    clock.advance(2)
    assert await memory_store.claim("emit", "job_a", 60) is True


async def test_idempotency_keys_reserve_replay_and_drop(store: JobStore) -> None:
    # Given a key reserved for a job for an hour
    assert await store.reserve_idempotency_key("default", "k1", "print-1", "job_a", 3600) is None

    # Then reserving it again gives back what it holds, whatever is asked
    held = await store.reserve_idempotency_key("default", "k1", "print-2", "job_b", 3600)
    assert held == ("print-1", "job_a")

    # And the same key of another tenant is another key, even one that looks alike
    assert await store.reserve_idempotency_key("acme", "k1", "print-2", "job_c", 3600) is None
    assert await store.reserve_idempotency_key("acme:k1", "", "print-3", "job_d", 3600) is None

    # And a dropped key is free at once
    await store.drop_idempotency_key("default", "k1")
    assert await store.reserve_idempotency_key("default", "k1", "print-5", "job_f", 3600) is None
    held = await store.reserve_idempotency_key("default", "k1", "print-6", "job_g", 3600)
    assert held == ("print-5", "job_f")


async def test_idempotency_keys_expire(memory_store: MemoryJobStore, clock: FakeClock) -> None:
    # Given a key reserved for a job for an hour
    assert await memory_store.reserve_idempotency_key("t", "k1", "print-1", "job_a", 3600) is None

    # When its hour is up, it can be reserved afresh
    clock.advance(3601)
    assert await memory_store.reserve_idempotency_key("t", "k1", "print-3", "job_d", 3600) is None
    held = await memory_store.reserve_idempotency_key("t", "k1", "print-4", "job_e", 3600)
    assert held == ("print-3", "job_d")
