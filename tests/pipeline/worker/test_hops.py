"""Long webhook waits are made in hops no broker will hold against a consumer timeout."""

import pytest

from pipeline.worker.service import MAX_HOP_S, hop_delay


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
