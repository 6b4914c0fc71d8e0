"""Long waits are made in hops no broker will redeliver or hold against a consumer timeout."""

import pytest

from pipeline.settings import Settings
from pipeline.worker.hops import MAX_HOP_S, hop_delay, max_hop_s


def test_a_task_without_a_due_time_runs_now():
    assert hop_delay(None, now=1000.0) is None


def test_a_due_task_runs_now_give_or_take_a_second():
    assert hop_delay(1000.5, now=1000.0) is None
    assert hop_delay(900.0, now=1000.0) is None


def test_a_short_wait_is_one_hop():
    assert hop_delay(1030.0, now=1000.0) == pytest.approx(30.0)


def test_a_long_wait_is_cut_into_hops_under_rabbitmqs_consumer_timeout():
    ten_hours = 10 * 3600
    assert hop_delay(1000.0 + ten_hours, now=1000.0) == MAX_HOP_S
    assert MAX_HOP_S < 30 * 60  # RabbitMQ's default consumer_timeout


def test_a_long_wait_is_cut_into_hops_of_the_given_bound():
    assert hop_delay(1000.0 + 3600, now=1000.0, max_hop=2.5) == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("broker_url", "visibility_s", "expected"),
    [
        ("amqp://guest:guest@127.0.0.1:5672//", 5, MAX_HOP_S),
        ("memory://", 5, MAX_HOP_S),
        ("redis://127.0.0.1:6379/1", 3600, MAX_HOP_S),
        ("redis://127.0.0.1:6379/1", 600, 300.0),
        ("rediss://127.0.0.1:6380/1", 60, 30.0),
        ("redis://127.0.0.1:6379/1", 5, 2.5),
    ],
)
def test_the_hop_bound_on_redis_is_half_the_visibility_timeout(
    broker_url: str, visibility_s: int, expected: float
):
    # Given a broker and a visibility timeout (which only Redis has)
    settings = Settings(broker_url=broker_url, redis_visibility_timeout_s=visibility_s)

    # Then a countdown never outlives it: a delayed task is not handed to a second worker
    assert max_hop_s(settings) == pytest.approx(expected)
    if broker_url.startswith("redis"):
        assert max_hop_s(settings) < visibility_s


def test_a_visibility_timeout_of_a_few_seconds_is_a_valid_setting():
    assert Settings(redis_visibility_timeout_s=5).redis_visibility_timeout_s == 5
