"""The bad-key throttle under any interleaving: only an address that failed N times waits."""

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingress.auth_throttle import AuthThrottle
from tests.support.settings import settings_for_test

MAX, WINDOW_S, COOLDOWN_S = 3, 10.0, 30.0
SETTINGS = settings_for_test(
    auth_failures_max=MAX,
    auth_failure_window_s=WINDOW_S,
    auth_cooldown_s=COOLDOWN_S,
    auth_failure_max_addresses=16,
)
steps = st.lists(
    st.tuples(
        st.integers(0, 3) | st.integers(0, 40), st.booleans(), st.floats(0, 20, allow_nan=False)
    ),
    max_size=80,
)


@settings(max_examples=400)  # cheap, and windows that just miss need many tries
@given(steps=steps)
def test_only_an_address_with_n_recent_failures_ever_waits(
    steps: list[tuple[int, bool, float]],
) -> None:
    now = [0.0]
    limiter = AuthThrottle(SETTINGS, lambda: now[0])
    failures: dict[int, list[float]] = {}
    for address, fails, advance in steps:
        now[0] += advance
        name = f"10.0.0.{address}"
        wait = limiter.wait_s(name)
        if wait is not None:
            assert 0 < wait <= COOLDOWN_S
            # It failed MAX times within one window that ended less than a cool-down ago.
            times = failures[address]
            assert any(
                sum(1 for t in times if start <= t < start + WINDOW_S) >= MAX
                and now[0] - start < WINDOW_S + COOLDOWN_S
                for start in times
            )
        elif fails:
            limiter.failed(name)
            failures.setdefault(address, []).append(now[0])
    assert len(limiter) <= 16
    counted = Counter({a: len(t) for a, t in failures.items()})
    for address in range(41):
        if counted[address] < MAX:
            assert limiter.wait_s(f"10.0.0.{address}") is None
