"""The circuit breaker, on a clock the tests move by hand."""

import pytest
from structlog.typing import EventDict

from pipeline.resilience.breaker import CircuitBreaker
from tests.support.clock import FakeClock

FAILURES, WINDOW_S, COOLDOWN_S = 3, 10.0, 30.0
D = "gemini/gemini-2.5-flash"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failures=FAILURES, window_s=WINDOW_S, cooldown_s=COOLDOWN_S, clock=clock)


def trip(breaker: CircuitBreaker, key: str = D) -> None:
    for _ in range(FAILURES):
        breaker.failure(key)


def test_a_new_key_is_closed(breaker: CircuitBreaker) -> None:
    assert (breaker.allow(D), breaker.state(D), breaker.retry_in(D)) == (True, "closed", 0.0)
    assert breaker.snapshot() == {}


def test_failures_within_the_window_open_the_circuit(
    breaker: CircuitBreaker, clock: FakeClock, logs: list[EventDict]
) -> None:
    breaker.failure(D)
    clock.advance(5)
    breaker.failure(D)
    assert breaker.state(D) == "closed"
    clock.advance(4.9)
    breaker.failure(D)

    assert breaker.state(D) == "open"
    assert [breaker.allow(D) for _ in range(3)] == [False] * 3
    assert breaker.retry_in(D) == pytest.approx(COOLDOWN_S)
    assert logs == [
        {
            "event": "breaker_opened",
            "log_level": "warning",
            "deployment": D,
            "failures": 3,
            "window_s": WINDOW_S,
            "cooldown_s": COOLDOWN_S,
        }
    ]
    # Other deployments are not affected
    assert breaker.allow("gemini/gemini-2.5-pro")


def test_failures_spread_wider_than_the_window_do_not(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    # Every WINDOW_S / 2 seconds: at most two within any window
    for _ in range(10):
        clock.advance(WINDOW_S / (FAILURES - 1))
        breaker.failure(D)
    assert breaker.state(D) == "closed"
    assert breaker.allow(D)
    assert breaker.snapshot()[D]["failures"] == FAILURES - 1


def test_a_success_clears_the_failures(breaker: CircuitBreaker) -> None:
    for _ in range(FAILURES - 1):
        breaker.failure(D)
    breaker.success(D)
    for _ in range(FAILURES - 1):
        breaker.failure(D)
    assert breaker.state(D) == "closed"


def test_after_the_cooldown_exactly_one_probe_goes(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.advance(COOLDOWN_S - 0.1)
    assert not breaker.allow(D)
    assert breaker.retry_in(D) == pytest.approx(0.1)
    clock.advance(0.1)

    assert breaker.state(D) == "half_open"
    assert breaker.retry_in(D) == 0.0
    assert [breaker.allow(D) for _ in range(5)] == [True, False, False, False, False]


def test_a_successful_probe_closes_the_circuit(
    breaker: CircuitBreaker, clock: FakeClock, logs: list[EventDict]
) -> None:
    trip(breaker)
    clock.advance(COOLDOWN_S)
    assert breaker.allow(D)
    breaker.success(D)

    assert breaker.state(D) == "closed"
    assert [breaker.allow(D) for _ in range(3)] == [True] * 3
    assert [line["event"] for line in logs] == [
        "breaker_opened",
        "breaker_probing",
        "breaker_closed",
    ]
    # It takes a full count of fresh failures to open it again
    for _ in range(FAILURES - 1):
        breaker.failure(D)
    assert breaker.state(D) == "closed"


def test_a_failed_probe_reopens_for_a_fresh_cooldown(
    breaker: CircuitBreaker, clock: FakeClock, logs: list[EventDict]
) -> None:
    trip(breaker)
    clock.advance(COOLDOWN_S + 7)
    assert breaker.allow(D)
    clock.advance(2)
    breaker.failure(D)

    assert breaker.state(D) == "open"
    assert breaker.retry_in(D) == pytest.approx(COOLDOWN_S)
    assert not breaker.allow(D)
    clock.advance(COOLDOWN_S)
    assert breaker.allow(D)
    assert not breaker.allow(D)
    assert logs[-2] == {
        "event": "breaker_reopened",
        "log_level": "warning",
        "deployment": D,
        "cooldown_s": COOLDOWN_S,
    }


def test_release_frees_the_probe_slot(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(COOLDOWN_S)
    assert breaker.allow(D)
    assert not breaker.allow(D)
    breaker.release(D)

    assert breaker.state(D) == "half_open"
    assert breaker.allow(D)
    assert not breaker.allow(D)


def test_late_failures_while_open_do_not_extend_the_cooldown(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.advance(10)
    breaker.failure(D)  # a call that started before the circuit opened
    assert breaker.retry_in(D) == pytest.approx(COOLDOWN_S - 10)


def test_the_snapshot_reports_each_deployment(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker, "a")
    breaker.failure("b")
    clock.advance(5)

    assert breaker.snapshot() == {
        "a": {"state": "open", "failures": FAILURES, "retry_in": COOLDOWN_S - 5},
        "b": {"state": "closed", "failures": 1, "retry_in": 0.0},
    }
