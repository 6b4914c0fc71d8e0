"""The bridge when dispatching an event fails: waited out if the failure is the
infrastructure's, dead-lettered after a bounded number of tries if it is the event's own
(a poison event).

A real Bridge consumes a real broker; only its dispatch function is the test's own, failing
on cue.
"""

import asyncio
import threading
from collections.abc import Iterator, Sequence

import pytest

from pipeline.bus.bridge import DISPATCH_MAX_ATTEMPTS, Bridge
from pipeline.bus.dispatch import Dispatched, Fate
from pipeline.bus.sources import Delivery
from pipeline.settings import Settings
from tests.support.bus import Bus, provisioned_bus
from tests.support.bus_tap import BusTap
from tests.support.unique import new_id


@pytest.fixture(params=["memory", "rabbitmq", "redis"])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    with provisioned_bus(request.param) as provisioned:
        yield provisioned


class ScriptedDispatch:
    """Fails each event with the scripted errors in turn, then starts it; counts its calls."""

    def __init__(self, *errors: Exception, forever: Exception | None = None) -> None:
        self._errors = list(errors)
        self._forever = forever
        self.calls = 0
        self.started: list[bytes] = []
        self._lock = threading.Lock()

    def __call__(self, batch: Sequence[Delivery]) -> list[Dispatched | BaseException]:
        return [self._one(delivery.body) for delivery in batch]

    def _one(self, body: bytes) -> Dispatched | BaseException:
        with self._lock:
            self.calls += 1
            if self._errors:
                return self._errors.pop(0)
        if self._forever is not None:
            return self._forever
        self.started.append(body)
        return Dispatched(Fate.STARTED)


def _bridge(bus: Bus, dispatch: ScriptedDispatch) -> Bridge:
    settings = Settings(broker_url=bus.url, bus_suffix=bus.suffix, broker_heartbeat_s=0)
    return Bridge(settings, bus.topology, dispatch=dispatch)


async def _until(check: "object", timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_poison_event_is_dead_lettered_after_bounded_tries(bus: Bus) -> None:
    dispatch = ScriptedDispatch(forever=ValueError("a bug meets this event"))
    bridge = _bridge(bus, dispatch)
    tag = new_id("poison")
    async with BusTap.dead_letters(bus) as dlq:
        await asyncio.to_thread(bridge.start)
        try:
            await asyncio.to_thread(bus.publish_raw, b'{"any": "event"}', test_id=tag)

            dead = await dlq.wait_for(test_id=tag, timeout_s=15)
        finally:
            await asyncio.to_thread(bridge.stop)

    assert dead.raw == b'{"any": "event"}'
    assert str(dead.reason).startswith(f"dispatch failed {DISPATCH_MAX_ATTEMPTS} times: ValueError")
    assert dispatch.calls == DISPATCH_MAX_ATTEMPTS
    assert dispatch.started == []


async def test_failures_of_the_event_then_of_the_store_are_waited_out(bus: Bus) -> None:
    # Two failures of its own (below the bound), then the store down twice (not counted)
    dispatch = ScriptedDispatch(
        ValueError("once"), KeyError("twice"), ConnectionError("redis down"), TimeoutError()
    )
    bridge = _bridge(bus, dispatch)
    tag = new_id("flaky")
    async with BusTap.dead_letters(bus) as dlq:
        await asyncio.to_thread(bridge.start)
        try:
            await asyncio.to_thread(bus.publish_raw, b'{"any": "event"}', test_id=tag)

            await _until(lambda: dispatch.started)
            await asyncio.sleep(0.5)  # room for a duplicate start or a dead letter to show
        finally:
            await asyncio.to_thread(bridge.stop)

        assert dispatch.started == [b'{"any": "event"}'], "the event must start exactly once"
        assert dispatch.calls == 5
        assert dlq.tagged(tag) == []
