"""Single-flight: one call per key, shared results, cancelled only when nobody waits."""

import asyncio

import pytest

from pipeline.coalesce import SingleFlight


async def test_concurrent_callers_share_one_call():
    flights: SingleFlight[int] = SingleFlight()
    calls = 0

    async def call() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 42

    results = await asyncio.gather(*(flights.run("k", call, wait_s=5) for _ in range(10)))

    assert calls == 1
    assert [value for value, _ in results] == [42] * 10
    assert sum(shared for _, shared in results) == 9
    assert flights.in_flight() == 0


async def test_a_new_call_starts_after_the_previous_landed():
    flights: SingleFlight[int] = SingleFlight()
    counter = iter(range(100))

    async def call() -> int:
        return next(counter)

    first, _ = await flights.run("k", call, wait_s=5)
    second, _ = await flights.run("k", call, wait_s=5)

    assert (first, second) == (0, 1)


async def test_errors_reach_every_caller():
    flights: SingleFlight[int] = SingleFlight()

    async def call() -> int:
        await asyncio.sleep(0.02)
        raise RuntimeError("upstream broke")

    results = await asyncio.gather(
        *(flights.run("k", call, wait_s=5) for _ in range(3)), return_exceptions=True
    )

    assert all(isinstance(r, RuntimeError) for r in results)
    assert flights.in_flight() == 0


async def test_one_caller_leaving_does_not_cancel_the_call_for_others():
    flights: SingleFlight[str] = SingleFlight()
    started = asyncio.Event()

    async def call() -> str:
        started.set()
        await asyncio.sleep(0.1)
        return "done"

    leaver = asyncio.create_task(flights.run("k", call, wait_s=5))
    await started.wait()
    stayer = asyncio.create_task(flights.run("k", call, wait_s=5))
    await asyncio.sleep(0)
    leaver.cancel()

    assert await stayer == ("done", True)
    with pytest.raises(asyncio.CancelledError):
        await leaver


async def test_the_call_is_cancelled_when_every_caller_left():
    flights: SingleFlight[str] = SingleFlight()
    cancelled = asyncio.Event()

    async def call() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    caller = asyncio.create_task(flights.run("k", call, wait_s=5))
    await asyncio.sleep(0.01)
    caller.cancel()

    await asyncio.wait_for(cancelled.wait(), timeout=2)
    await asyncio.sleep(0)
    assert flights.in_flight() == 0


async def test_waiting_is_bounded():
    flights: SingleFlight[str] = SingleFlight()

    async def call() -> str:
        await asyncio.sleep(10)
        return "late"

    with pytest.raises(TimeoutError):
        await flights.run("k", call, wait_s=0.05)
