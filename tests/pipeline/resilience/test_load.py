"""Load per deployment: calls in flight and the moving average of latency."""

import pytest

from pipeline.resilience.load import DeploymentLoad
from tests.support.clock import FakeClock


def test_an_unknown_deployment_is_idle_and_unmeasured() -> None:
    load = DeploymentLoad()
    assert (load.in_flight("d"), load.latency("d")) == (0, None)


def test_calls_in_flight_are_counted_per_deployment() -> None:
    load = DeploymentLoad()
    for key in ["a", "a", "b"]:
        load.start(key)
    assert (load.in_flight("a"), load.in_flight("b")) == (2, 1)
    load.end("a", None)
    load.end("b", 0.5)
    assert (load.in_flight("a"), load.in_flight("b")) == (1, 0)
    # Ending more calls than were started never goes below zero
    load.end("b", None)
    assert load.in_flight("b") == 0


def test_latency_is_an_exponentially_weighted_average_of_successes() -> None:
    load = DeploymentLoad(alpha=0.5)
    for latency in [1.0, 2.0, None, 4.0]:
        load.start("d")
        load.end("d", latency)
    # 1.0, then 1.0 + 0.5 * (2.0 - 1.0) = 1.5, a failure changes nothing, then 2.75
    assert load.latency("d") == pytest.approx(2.75)
    assert load.latency("other") is None


def test_the_default_alpha_weighs_the_newest_sample_by_three_tenths() -> None:
    load = DeploymentLoad()
    load.end("d", 1.0)
    load.end("d", 2.0)
    assert load.latency("d") == pytest.approx(1.3)


def test_track_measures_a_successful_block() -> None:
    clock = FakeClock()
    load = DeploymentLoad(clock=clock)
    with load.track("d"):
        assert load.in_flight("d") == 1
        clock.advance(0.25)
    assert (load.in_flight("d"), load.latency("d")) == (0, 0.25)


def test_track_frees_the_slot_but_records_no_latency_when_the_block_raises() -> None:
    clock = FakeClock()
    load = DeploymentLoad(clock=clock)

    def failing_call() -> None:
        with load.track("d"):
            clock.advance(3)
            raise RuntimeError("upstream broke")

    with pytest.raises(RuntimeError, match="upstream"):
        failing_call()
    assert (load.in_flight("d"), load.latency("d")) == (0, None)


def test_the_snapshot_lists_every_deployment_seen() -> None:
    load = DeploymentLoad()
    load.start("b")
    load.end("a", 0.2)
    assert load.snapshot() == {
        "a": {"in_flight": 0, "latency_s": 0.2},
        "b": {"in_flight": 1, "latency_s": None},
    }


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_alpha_must_be_a_weight(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        DeploymentLoad(alpha=alpha)
