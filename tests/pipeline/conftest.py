"""Fixtures for tests that need a real Redis."""

from tests.pipeline.redis_support import private_redis, shared

__all__ = ["private_redis", "shared"]
