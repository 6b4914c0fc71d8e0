"""The bad-key throttle: counted per address in a window, a cool-down, a bounded table."""

from pipeline.ingress.auth_throttle import AuthThrottle
from tests.support.settings import settings_for_test


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, **overrides: object) -> AuthThrottle:
    values = {"auth_failures_max": 3, "auth_failure_window_s": 10.0, "auth_cooldown_s": 30.0}
    return AuthThrottle(settings_for_test(**(values | overrides)), clock)


def test_the_nth_failure_in_the_window_starts_the_cool_down() -> None:
    clock = Clock()
    limiter = throttle(clock)
    for _ in range(2):
        limiter.failed("10.0.0.1")
        assert limiter.wait_s("10.0.0.1") is None

    limiter.failed("10.0.0.1")

    assert limiter.wait_s("10.0.0.1") == 30.0
    clock.now += 29.5
    assert limiter.wait_s("10.0.0.1") == 0.5
    assert limiter.wait_s("10.0.0.2") is None  # another address is not slowed
    clock.now += 0.5
    assert limiter.wait_s("10.0.0.1") is None  # cooled down, and it starts afresh
    limiter.failed("10.0.0.1")
    assert limiter.wait_s("10.0.0.1") is None


def test_failures_spread_past_the_window_never_add_up() -> None:
    clock = Clock()
    limiter = throttle(clock)
    for _ in range(10):
        limiter.failed("10.0.0.1")
        limiter.failed("10.0.0.1")
        clock.now += 10.0  # the window ends before a third failure
    assert limiter.wait_s("10.0.0.1") is None


def test_the_table_is_bounded_and_forgets_the_least_recent_first() -> None:
    clock = Clock()
    limiter = throttle(clock, auth_failure_max_addresses=16)
    for _ in range(3):
        limiter.failed("blocked")
    limiter.failed("old")
    limiter.failed("old")
    for n in range(100):
        limiter.failed(f"10.0.{n}.1")
        limiter.wait_s("blocked")  # still trying: kept
    assert len(limiter) == 16
    assert limiter.wait_s("blocked") is not None
    limiter.failed("old")  # its two earlier failures were forgotten
    assert limiter.wait_s("old") is None


def test_zero_turns_it_off() -> None:
    limiter = throttle(Clock(), auth_failures_max=0)
    for _ in range(100):
        limiter.failed("10.0.0.1")
    assert (limiter.enabled, limiter.wait_s("10.0.0.1"), len(limiter)) == (False, None, 0)
