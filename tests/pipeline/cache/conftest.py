"""Fixtures for the cache tests."""

import pytest

from tests.support.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when a test advances it."""
    return FakeClock()
