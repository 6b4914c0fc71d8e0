"""How a worker's lost work comes back: Redis transport options, and what prefork children use."""

import pytest
from pydantic import SecretStr

from pipeline.bus.connection import restore_interval_s, transport_options
from pipeline.settings import Settings
from pipeline.worker.prefork import check_prefork, child_settings
from pipeline.worker.side import visibility_warning

REDIS_BROKER = "redis://127.0.0.1:6379/1"


@pytest.mark.parametrize(
    ("visibility_s", "interval_s"), [(1, 1.0), (5, 1.25), (40, 10.0), (3600, 10.0)]
)
def test_redis_sweeps_unacked_messages_a_few_times_per_visibility_timeout(
    visibility_s: int, interval_s: float
):
    # Given a Redis broker with a visibility timeout
    settings = Settings(broker_url=REDIS_BROKER, redis_visibility_timeout_s=visibility_s)

    # Then every sweep scans (no throttle), at most 10 s apart and never busier than 1 s
    options = transport_options(settings)
    assert options["visibility_timeout"] == visibility_s
    assert options["unacked_restore_interval"] == pytest.approx(interval_s)
    assert options["unacked_restore_throttle"] == 1
    assert restore_interval_s(visibility_s) == pytest.approx(interval_s)


def test_a_deployment_with_a_bus_suffix_keeps_its_unacked_messages_apart():
    options = transport_options(Settings(broker_url=REDIS_BROKER, bus_suffix=".blue"))
    assert options["unacked_key"] == "unacked.blue"
    assert options["unacked_index_key"] == "unacked_index.blue"
    assert options["unacked_mutex_key"] == "unacked_mutex.blue"


def test_without_a_suffix_kombus_own_unacked_keys_stay():
    options = transport_options(Settings(broker_url=REDIS_BROKER))
    assert not {"unacked_key", "unacked_index_key", "unacked_mutex_key"} & set(options)


def test_rabbitmq_has_no_visibility_timeout_to_tune():
    options = transport_options(Settings(broker_url="amqp://guest:guest@127.0.0.1:5672//"))
    assert options == {"confirm_publish": True}


def test_a_visibility_timeout_below_a_steps_run_time_is_warned_about():
    short = Settings(broker_url=REDIS_BROKER, redis_visibility_timeout_s=5)
    warning = visibility_warning(short, step_timeout_s=60)
    assert warning is not None
    assert "PROMPTBUS_REDIS_VISIBILITY_TIMEOUT_S=5" in warning
    assert visibility_warning(Settings(broker_url=REDIS_BROKER), step_timeout_s=60) is None
    amqp = Settings(broker_url="amqp://127.0.0.1//", redis_visibility_timeout_s=5)
    assert visibility_warning(amqp, step_timeout_s=60) is None


def test_a_prefork_child_uses_the_parents_built_in_emulator():
    # Given settings that need the built-in emulator for both providers
    settings = Settings(google_api_key=None, openai_api_key=None)

    # Then a child points both at the parent's emulator, and starts none of its own
    child = child_settings(settings, "http://127.0.0.1:9999")
    assert child.gemini_base_url == "http://127.0.0.1:9999"
    assert child.openai_base_url == "http://127.0.0.1:9999/v1"
    assert not child.uses_emulator


def test_a_prefork_child_keeps_real_provider_settings():
    settings = Settings(google_api_key=SecretStr("key"), openai_base_url="https://llm.example/v1")
    assert child_settings(settings, None) == settings
    child = child_settings(settings, "http://127.0.0.1:9999")
    assert child.gemini_base_url is None
    assert child.openai_base_url == "https://llm.example/v1"


def test_a_prefork_pool_needs_a_broker_shared_by_processes():
    with pytest.raises(ValueError, match="memory://"):
        check_prefork(Settings(broker_url="memory://"))
    check_prefork(Settings(broker_url=REDIS_BROKER))
    check_prefork(Settings(broker_url="amqp://guest:guest@127.0.0.1:5672//"))
