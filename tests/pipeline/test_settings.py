"""Settings read at start-up: the number of serving processes."""

import os

import pytest
from pydantic import ValidationError

from pipeline.settings import Settings


def test_one_process_by_default_and_it_shares_its_own_state():
    settings = Settings()

    assert settings.processes == 1
    assert settings.shares_state


@pytest.mark.parametrize("value", ["auto", "AUTO", " auto "])
def test_auto_is_the_core_count(monkeypatch: pytest.MonkeyPatch, value: str):
    monkeypatch.setenv("PROMPTBUS_PROCESSES", value)

    assert Settings().processes == os.cpu_count()
    assert Settings(processes=value).processes == os.cpu_count()


def test_a_number_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PROMPTBUS_PROCESSES", "3")

    assert Settings().processes == 3


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "", 0, 257])
def test_anything_else_is_refused(value: object):
    with pytest.raises(ValidationError) as raised:
        Settings(processes=value)

    assert raised.value.errors()[0]["loc"] == ("processes",)


def test_many_processes_share_state_only_through_redis():
    assert not Settings(processes=2).shares_state
    assert Settings(processes=2, redis_url="redis://127.0.0.1:6379/15").shares_state
